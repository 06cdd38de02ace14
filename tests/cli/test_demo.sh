#!/usr/bin/env bash
# test_demo — the demo cohort generator: deterministic bytes for a seed, readable by pydicom,
# labels where pydicom's geometry puts the tumours, planted identifiers present.
set -u
V=${VESALIUS:?}; SRC=${VESALIUS_SRC:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
args="--unlabeled 8 --labeled 6 --radiographs 2 --matrix 48 --slices 16:24 --positive-share 0.67"
"$V" demo-cohort --out "$t/a" $args --seed 5 -j 2 || { echo "FAIL: generator"; exit 1; }
"$V" demo-cohort --out "$t/b" $args --seed 5 -j 1 || { echo "FAIL: generator"; exit 1; }
"$V" demo-cohort --out "$t/c" $args --seed 6 || { echo "FAIL: generator"; exit 1; }
if diff -r "$t/a" "$t/b" >/dev/null; then echo "ok: same seed, other thread count, same bytes"
else echo "FAIL: same seed gave different bytes"; fails=$((fails + 1)); fi
if diff -rq "$t/a" "$t/c" >/dev/null; then echo "FAIL: another seed gave the same cohort"; fails=$((fails + 1))
else echo "ok: another seed, another cohort"; fi
n=$(find "$t/a/dicom" -name '*.dcm' | wc -l)
[ "$n" -gt 100 ] && echo "ok: $n files" || { echo "FAIL: only $n files"; fails=$((fails + 1)); }
/usr/bin/python3 "$SRC/tests/cli/demo_check.py" "$t/a" || fails=$((fails + 1))
# --contrast scales every tumour's contrast and nothing else: same seed and diameters, same
# tumours where they were (soft-tissue ones 3x their contrast; lung nodules are solid either way)
few="--unlabeled 0 --labeled 8 --radiographs 0 --matrix 48 --slices 16:24 --positive-share 1 --diameter 16:24 --subtle-share 0"
"$V" demo-cohort --out "$t/k1" $few --seed 7 >/dev/null 2>&1 && "$V" demo-cohort --out "$t/k3" $few --seed 7 --contrast 3 >/dev/null 2>&1 ||
  { echo "FAIL: generator with --contrast"; fails=$((fails + 1)); }
for k in k1 k3; do # (a CT-only cohort misses the mix the full check wants; only contrasts are read)
  /usr/bin/python3 "$SRC/tests/cli/demo_check.py" "$t/$k" "$t/$k.txt" >/dev/null
  [ -s "$t/$k.txt" ] || { echo "FAIL: no tumour contrasts measured in the $k cohort"; fails=$((fails + 1)); touch "$t/$k.txt"; }
done
if cmp -s "$t/k1/labels/annotations.csv" "$t/k3/labels/annotations.csv" &&
   paste -d' ' "$t/k1.txt" "$t/k3.txt" | awk '$1 != $3 {bad = 1} $2 * $2 < 225 {next} {print $4 / $2}
     END {exit bad}' | sort -g | awk '{r[NR] = $1} END {m = r[int((NR + 1) / 2)]; exit !(NR >= 1 && m > 2.2 && m < 3.8)}'; then
  echo "ok: --contrast 3 keeps the tumours and triples their contrast (median ratio)"
else echo "FAIL: --contrast 3 did not scale the tumours' contrast"; paste "$t/k1.txt" "$t/k3.txt"; fails=$((fails + 1)); fi
"$V" demo-cohort --out "$t/d" --diameter 1:4 >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] && echo "ok: bad --diameter is a usage error" || { echo "FAIL: bad --diameter exit $rc"; fails=$((fails + 1)); }
"$V" demo-cohort --out "$t/d" --contrast 3x >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] && echo "ok: a --contrast that is not a number is a usage error" || { echo "FAIL: --contrast 3x exit $rc"; fails=$((fails + 1)); }
"$V" demo-cohort --out "$t/d" --matrix 8 >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] && echo "ok: bad --matrix is a usage error" || { echo "FAIL: bad --matrix exit $rc"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
