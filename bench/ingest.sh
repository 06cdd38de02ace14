#!/usr/bin/env bash
# DICOM read+assemble MB/s: vesalius inspect vs dcm2niix -z n on one 300-slice 512x512 CT series
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
v="$VESALIUS_BUILD/vesalius"
n=${SLICES:-300}
work=${BENCH_DIR:-$(mktemp -d)}
trap '[ -n "${BENCH_DIR:-}" ] || rm -rf "$work"' EXIT
series="$work/series"
if [ ! -f "$series/IM$(printf %04d $((n - 1))).dcm" ]; then
  echo "writing a $n-slice 512x512 CT series with pydicom ..."
  /usr/bin/python3 - "$root/tests/oracle" "$series" "$n" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from dicom_common import phantom, positions_along, write_series
folder, n = sys.argv[2], int(sys.argv[3])
hu = phantom(512, 512, n, seed=1)
write_series(folder, hu, [1, 0, 0, 0, 1, 0], positions_along([-200.0, -180.0, -300.0], [0, 0, 1.25], n),
             spacing=(0.78, 0.78), series_uid="1.2.826.0.1.3680043.9.7611.99.1")
PY
fi
bytes=$(du -sb "$series" | cut -f1)
mb=$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1e6}')
cat "$series"/* >/dev/null # both tools read from the page cache
best() { # best wall time of 3 runs of "$@"
  local b=1e9
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "bench: '$1' failed" >&2; exit 1; }; t1=$(date +%s.%N)
    b=$(awk -v a="$t1" -v s="$t0" -v b="$b" 'BEGIN{d=a-s; print (d<b)?d:b}')
  done
  echo "$b"
}
out="$work/nii"; mkdir -p "$out"
t_v=$(best "$v" --threads 1 inspect "$series")
t_d=$(best dcm2niix -z n -b n -o "$out" -f vol "$series")
"$v" inspect "$series" | head -1
# Memory: one series in flight; the int16 volume itself is n x 512 x 512 x 2 bytes.
rss=$(/usr/bin/time -f %M "$v" inspect "$series" 2>&1 >/dev/null | tail -1)
echo "vesalius peak RSS: $((rss / 1024)) MB for a $((n * 512 * 512 * 2 / 1000000)) MB int16 volume"
rate() { awk -v m="$mb" -v t="$1" 'BEGIN{printf "%.0f", m/t}'; }
printf '%-10s %10s %10s\n' tool seconds MB/s
printf '%-10s %10.3f %10s\n' vesalius "$t_v" "$(rate "$t_v")"
printf '%-10s %10.3f %10s\n' dcm2niix "$t_d" "$(rate "$t_d")"
echo "ingest: vesalius $(rate "$t_v") MB/s vs dcm2niix $(rate "$t_d") MB/s on $n x 512x512 CT ($mb MB, single thread, $(awk -v a="$t_d" -v b="$t_v" 'BEGIN{printf "%.2f", a/b}')x)"
