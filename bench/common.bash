# bench/common.bash — sourced by the benchmarks (not one itself: bench/run lists *.sh only).

# ct_series DIR N: a N-slice 512x512 CT series written once with pydicom (tests/oracle/dicom_common.py).
ct_series() {
  local series=$1 n=$2
  [ -f "$series/IM$(printf %04d $((n - 1))).dcm" ] && return 0
  echo "writing a $n-slice 512x512 CT series with pydicom ..."
  /usr/bin/python3 - "$root/tests/oracle" "$series" "$n" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from dicom_common import phantom, positions_along, write_series
folder, n = sys.argv[2], int(sys.argv[3])
hu = phantom(512, 512, n, seed=1)
write_series(folder, hu, [1, 0, 0, 0, 1, 0], positions_along([-200.0, -180.0, -300.0], [0, 0, 1.25], n),
             spacing=(0.78, 0.78), series_uid="1.2.826.0.1.3680043.9.7611.99.1")
PY
}

# timed NAME CMD...: run CMD with the series ($series) in the page cache and no other run's
# writeback pending; appends "wall_s peak_rss_kb cpu_s" to $work/NAME.runs (cpu: user + system
# of the process and its children, the figure other work on a shared machine disturbs least).
timed() {
  local name=$1; shift
  cat "$series"/* >/dev/null
  sync
  local t0=$EPOCHREALTIME
  /usr/bin/time -f "%M %U %S" -o "$work/$name.rss" "$@" >/dev/null 2>"$work/$name.err" ||
    { echo "bench: $name failed:" >&2; tail -3 "$work/$name.err" >&2; exit 1; }
  local t1=$EPOCHREALTIME
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b - a}') $(tail -1 "$work/$name.rss" | awk '{printf "%d %.2f", $1, $2 + $3}')" >>"$work/$name.runs"
}

# median FIELD FILE: the median of one column.
median() {
  awk -v f="$1" '{print $f}' "$2" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
