#!/usr/bin/env bash
# whole vesalius ingest of a 300-slice 512x512 CT series vs a pydicom+h5py script and dcm2niix -z y -1
set -euo pipefail
# Every tool reads the same series from the page cache and writes a compressed volume:
#   vesalius  ingest --threads 2 --preprocess none: read, assemble, de-identify, shard (deflate
#             default), catalog, fsync'ed (a nightly run; the stored voxels are the HU, as the
#             reference's: preprocessing, on by default, would store windowed float32)
#   pydicom   bench/ingest_ref.py: pydicom + numpy + h5py, gzip 1 + shuffle, chunks 64^3, the
#             same voxels (checked below), one thread, no fsync
#   dcm2niix  dcm2niix -z y -1: compressed NIfTI through pigz (both cores), no fsync
# ROUNDS interleaved rounds (default 5), fresh outputs each time, medians; peak RSS of each.
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
command -v pigz >/dev/null || echo "bench: pigz is missing: dcm2niix -z y falls back to its one-thread zlib" >&2
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/site.key" && chmod 600 "$work/site.key"
bytes=$(du -sb "$series" | cut -f1)
mb=$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1e6}')

range() { awk '{print $1}' "$1" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}'; }
rm -f "$work"/*.runs
for r in $(seq "$rounds"); do
  rm -rf "$work/ves" "$work/ref.h5" "$work/nii" && mkdir -p "$work/nii"
  timed vesalius "$v" --threads "$threads" --log-level warn ingest "$series" --out "$work/ves" --key "$work/site.key" --preprocess none
  timed pydicom /usr/bin/python3 "$here/ingest_ref.py" "$series" "$work/ref.h5"
  timed dcm2niix dcm2niix -z y -1 -b n -o "$work/nii" -f vol "$series"
done
# The same voxels: the shard's volume as h5py reads it equals the reference's.
/usr/bin/python3 - "$work/ves/shards" "$work/ref.h5" <<'PY' || { echo "bench: shard voxels differ from the pydicom reference" >&2; exit 1; }
import glob, sys, h5py, numpy as np
(shard,) = glob.glob(sys.argv[1] + "/*.h5")
with h5py.File(shard, "r") as f, h5py.File(sys.argv[2], "r") as g:
    (key,) = list(f["volumes"])
    a, b = f["volumes"][key][...], g["volume"][...]
    sys.exit(0 if a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b) else 1)
PY
size() { du -sb "$1" | awk '{printf "%.1f", $1 / 1e6}'; }
echo "$n x 512x512 CT, $mb MB of DICOM (explicit VR little endian), page cache warm, $rounds interleaved rounds;" \
  "load $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores; shard voxels == pydicom's (h5py)"
row() { # row LABEL NAME OUTPUT
  printf '%-40s %9.3f %11s %7.2f %6s MB %6s MB\n' "$1" "$(median 1 "$work/$2.runs")" "$(range "$work/$2.runs")" \
    "$(median 3 "$work/$2.runs")" "$(size "$3")" $(($(median 2 "$work/$2.runs") / 1024))
}
printf '%-40s %9s %11s %7s %9s %9s\n' tool "median s" range "cpu s" output "peak RSS"
row "vesalius ingest --threads $threads" vesalius "$work/ves/shards"
row "pydicom + h5py (gzip 1, 1 thread)" pydicom "$work/ref.h5"
row "dcm2niix -z y -1 (pigz)" dcm2niix "$work/nii"
tv=$(median 1 "$work/vesalius.runs"); tp=$(median 1 "$work/pydicom.runs"); td=$(median 1 "$work/dcm2niix.runs")
cv=$(median 3 "$work/vesalius.runs"); cp=$(median 3 "$work/pydicom.runs"); cd=$(median 3 "$work/dcm2niix.runs")
echo "ingest: vesalius $(awk -v a="$tp" -v b="$tv" 'BEGIN{printf "%.2f", a/b}')x pydicom+h5py, $(awk -v a="$td" -v b="$tv" 'BEGIN{printf "%.2f", a/b}')x dcm2niix -z y -1 in wall time (CPU time: $(awk -v a="$cp" -v b="$cv" 'BEGIN{printf "%.2f", a/b}')x, $(awk -v a="$cd" -v b="$cv" 'BEGIN{printf "%.2f", a/b}')x) ($n x 512x512 CT, $mb MB, $threads threads, medians of $rounds)"
