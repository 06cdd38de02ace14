#!/usr/bin/env bash
# verify-deid MB/s over the demo's ingest output with 100 to 100,000 listed identifiers, vs grep -F -i -f
set -euo pipefail
# The output folder: DEMO (default build/demo, after `make demo`) without its cohort/ (the
# inputs, full of planted identifiers); without one, the demo cohort is written and ingested
# with the demo study's settings into a temporary folder (a few minutes, not timed).
# Lists: the cohort's phi.txt (every planted identifier), and lists of 100, 1,000, 10,000 and
# 100,000 identifiers (the first of phi.txt, then made-up names, IDs, accession numbers and
# dates, as a hospital's list holds). ROUNDS interleaved rounds (default 3), medians.
# Peer: LC_ALL=C grep -F -i -a -r -c -f LIST (one multi-string search per file, no boundaries).
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
v="$VESALIUS_BUILD/vesalius"
threads=${THREADS:-2}
rounds=${ROUNDS:-3}
demo=${DEMO:-$root/build/demo}
work=${BENCH_DIR:-$(mktemp -d)} # BENCH_DIR keeps the written cohort and output for the next run
trap '[ -n "${BENCH_DIR:-}" ] || rm -rf "$work"' EXIT
if [ -d "$demo/ingest/shards" ] && [ -s "$demo/cohort/phi.txt" ]; then
  phi="$demo/cohort/phi.txt"
  targets=()
  for e in "$demo"/*; do
    case $(basename "$e") in cohort | cohort.options) ;; *) targets+=("$e") ;; esac
  done
elif [ -s "$work/out/ingest/catalog.sqlite" ] && [ -s "$work/cohort/phi.txt" ]; then
  phi="$work/cohort/phi.txt"
  targets=("$work/out")
else
  echo "no demo output in $demo: writing the demo cohort and ingesting it (not timed) ..."
  rm -rf "$work/cohort" "$work/out"
  "$v" --log-level warn demo-cohort --out "$work/cohort" --labeled 200 --contrast 4 --diameter 12:30 >/dev/null
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/site.key" && chmod 600 "$work/site.key"
  rc=0
  "$v" --threads "$threads" --log-level warn ingest --study "$root/studies/demo/demo.yaml" \
    "$work/cohort/dicom" --out "$work/out/ingest" --key "$work/site.key" >/dev/null || rc=$?
  [ $rc = 0 ] || [ $rc = 4 ] || { echo "bench: ingest failed ($rc)" >&2; exit 1; }
  phi="$work/cohort/phi.txt"
  targets=("$work/out")
fi
bytes=$(du -scb "${targets[@]}" | tail -1 | cut -f1)
mb=$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1e6}')
n_real=$(grep -c . "$phi")
/usr/bin/python3 - "$phi" "$work" <<'PY'
import random, sys
real = [l.rstrip("\r\n") for l in open(sys.argv[1]) if l.strip()]
rng = random.Random(16)
given = ["James", "Mary", "Ahmed", "Wei", "Olga", "Sven", "Ines", "Kofi", "Yuki", "Lucia"]
made = []
while len(made) < 100000:
    k = len(made) % 4
    if k == 0:
        made.append("%s^%s" % ("".join(rng.choice("BCDFGKLMNPRSTVZ") + rng.choice("aeiou") for _ in range(3)), rng.choice(given)))
    elif k == 1:
        made.append("MRN%08d" % rng.randrange(10**8))
    elif k == 2:
        made.append("ACC%09d" % rng.randrange(10**9))
    else:
        made.append("%04d%02d%02d" % (rng.randrange(1920, 2020), rng.randrange(1, 13), rng.randrange(1, 29)))
for n in (100, 1000, 10000, 100000):
    items = (real + made)[:n]
    open("%s/phi-%d.txt" % (sys.argv[2], n), "w").write("\n".join(items) + "\n")
PY
cp "$phi" "$work/phi-real.txt"
sizes="real 100 1000 10000 100000"

timed() { # timed NAME OKCODES CMD... -> appends "wall_s hit_lines cpu_s" to $work/NAME.runs
  local name=$1 ok=$2; shift 2
  cat "$work"/phi-*.txt >/dev/null
  local t0=$EPOCHREALTIME rc=0
  /usr/bin/time -f "%U %S" -o "$work/$name.cpu" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  local t1=$EPOCHREALTIME
  case " $ok " in *" $rc "*) ;; *) echo "bench: $name exited $rc:" >&2; tail -3 "$work/$name.err" >&2; exit 1 ;; esac
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b - a}') $(grep -c . "$work/$name.out" || true) $(tail -1 "$work/$name.cpu" | awk '{printf "%.2f", $1 + $2}')" >>"$work/$name.runs"
}
median() {
  awk -v f="$1" '{print $f}' "$2" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
find "${targets[@]}" -type f -exec cat {} + >/dev/null # page cache warm
for r in $(seq "$rounds"); do
  for s in $sizes; do
    timed "ves-$s" "0 7" "$v" --threads "$threads" --log-level warn verify-deid --phi-list "$work/phi-$s.txt" "${targets[@]}"
    timed "grep-$s" "0 1" env LC_ALL=C grep -F -i -a -r -c -f "$work/phi-$s.txt" "${targets[@]}"
  done
done
echo "scanned: ${targets[*]} ($mb MB); $rounds interleaved rounds, medians; load $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores"
printf '%-22s %10s %9s %7s %9s %10s %9s %7s %8s\n' identifiers "vesalius s" MB/s "cpu s" "hit lines" "grep s" MB/s "cpu s" ratio
lo=1e9; hi=0
for s in $sizes; do
  tv=$(median 1 "$work/ves-$s.runs"); tg=$(median 1 "$work/grep-$s.runs")
  label=$s; [ "$s" = real ] && label="phi.txt ($n_real)"
  printf '%-22s %10.3f %9.0f %7.2f %9s %10.3f %9.0f %7.2f %7.2fx\n' "$label" "$tv" "$(awk -v m="$mb" -v t="$tv" 'BEGIN{print m/t}')" \
    "$(median 3 "$work/ves-$s.runs")" "$(median 2 "$work/ves-$s.runs")" "$tg" "$(awk -v m="$mb" -v t="$tg" 'BEGIN{print m/t}')" \
    "$(median 3 "$work/grep-$s.runs")" "$(awk -v a="$tg" -v b="$tv" 'BEGIN{print a/b}')"
  if [ "$s" != real ]; then
    cv=$(median 3 "$work/ves-$s.runs")
    lo=$(awk -v a="$lo" -v b="$tv" 'BEGIN{print (b < a) ? b : a}'); hi=$(awk -v a="$hi" -v b="$tv" 'BEGIN{print (b > a) ? b : a}')
    clo=$(awk -v a="${clo:-1e9}" -v b="$cv" 'BEGIN{print (b < a) ? b : a}'); chi=$(awk -v a="${chi:-0}" -v b="$cv" 'BEGIN{print (b > a) ? b : a}')
  fi
done
tr=$(median 1 "$work/ves-real.runs"); gr=$(median 1 "$work/grep-real.runs")
echo "verify-deid: $(awk -v m="$mb" -v t="$tr" 'BEGIN{printf "%.0f", m/t}') MB/s with phi.txt ($n_real identifiers, $threads threads, $(awk -v a="$gr" -v b="$tr" 'BEGIN{printf "%.2f", a/b}')x grep -F -i); slowest/fastest over 100-100,000 identifiers $(awk -v a="$hi" -v b="$lo" 'BEGIN{printf "%.2f", a/b}')x wall, $(awk -v a="$chi" -v b="$clo" 'BEGIN{printf "%.2f", a/b}')x CPU"
