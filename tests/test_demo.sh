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
/usr/bin/python3 "$SRC/tests/demo_check.py" "$t/a" || fails=$((fails + 1))
"$V" demo-cohort --out "$t/d" --matrix 8 >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] && echo "ok: bad --matrix is a usage error" || { echo "FAIL: bad --matrix exit $rc"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
