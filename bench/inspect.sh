#!/usr/bin/env bash
# DICOM read+assemble: vesalius inspect vs dcm2niix -z n on one 300-slice 512x512 CT series
set -euo pipefail
# ROUNDS interleaved rounds (default 5) of `vesalius --threads THREADS (2) inspect` and
# `dcm2niix -z n` (reads, assembles and writes an uncompressed NIfTI), page cache warm, medians.
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
v="$VESALIUS_BUILD/vesalius"
n=${SLICES:-300}
threads=${THREADS:-2}
rounds=${ROUNDS:-5}
work=${BENCH_DIR:-$(mktemp -d)}
trap '[ -n "${BENCH_DIR:-}" ] || rm -rf "$work"' EXIT
series="$work/series"
. "$here/common.bash"
ct_series "$series" "$n"
bytes=$(du -sb "$series" | cut -f1)
mb=$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1e6}')
rm -f "$work"/*.runs
for r in $(seq "$rounds"); do
  rm -rf "$work/nii" && mkdir -p "$work/nii"
  timed vesalius "$v" --threads "$threads" inspect "$series"
  timed dcm2niix dcm2niix -z n -b n -o "$work/nii" -f vol "$series"
done
"$v" inspect "$series" | head -1
tv=$(median 1 "$work/vesalius.runs"); td=$(median 1 "$work/dcm2niix.runs")
echo "$rounds interleaved rounds, page cache warm; load $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores"
printf '%-34s %9s %8s %7s %9s\n' tool "median s" MB/s "cpu s" "peak RSS"
printf '%-34s %9.3f %8.0f %7.2f %6s MB\n' "vesalius --threads $threads inspect" "$tv" "$(awk -v m="$mb" -v t="$tv" 'BEGIN{print m/t}')" "$(median 3 "$work/vesalius.runs")" $(($(median 2 "$work/vesalius.runs") / 1024))
printf '%-34s %9.3f %8.0f %7.2f %6s MB\n' "dcm2niix -z n" "$td" "$(awk -v m="$mb" -v t="$td" 'BEGIN{print m/t}')" "$(median 3 "$work/dcm2niix.runs")" $(($(median 2 "$work/dcm2niix.runs") / 1024))
echo "inspect: vesalius $(awk -v a="$td" -v b="$tv" 'BEGIN{printf "%.2f", a/b}')x dcm2niix -z n on $n x 512x512 CT ($mb MB, $threads threads, medians of $rounds)"
