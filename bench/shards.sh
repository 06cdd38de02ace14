#!/usr/bin/env bash
# HDF5 shard write MB/s and random 96³ crop reads/s of vesalius vs h5py (same chunks, filters)
set -euo pipefail
b="$VESALIUS_BUILD/bench/bench_shard"
nz=${NZ:-160}; ny=${NY:-512}; nx=${NX:-512}; crops=${CROPS:-60}; edge=${EDGE:-96}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$b" gen "$t/ct.raw" "$nz" "$ny" "$nx"
mb=$(awk -v n=$((nz * ny * nx)) 'BEGIN{printf "%.0f", n * 2 / 1e6}')
echo "volume: synthetic CT int16 ${nz}x${ny}x${nx} (${mb} MB), chunks 64^3, shuffle+deflate 4+fletcher32"
mkdir "$t/c" "$t/p"
mkdir "$t/c1"
ours_w1=$("$b" write "$t/c1" "$t/ct.raw" "$nz" "$ny" "$nx" 1 | sed 's/.*"mb_s":\([0-9.]*\).*/\1/')
rm -rf "$t/c1"
ours_w=$("$b" write "$t/c" "$t/ct.raw" "$nz" "$ny" "$nx" 2 | sed 's/.*"mb_s":\([0-9.]*\).*/\1/')
peer=$(/usr/bin/python3 - "$t/ct.raw" "$t/p/peer.h5" "$nz" "$ny" "$nx" "$crops" "$edge" <<'PY'
import os, sys, time, h5py, numpy as np
raw, out, nz, ny, nx, crops, edge = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
a = np.fromfile(raw, dtype="<i2").reshape(nz, ny, nx)
t0 = time.perf_counter()
with h5py.File(out, "w") as f:
    f.create_dataset("v", data=a, chunks=tuple(min(64, s) for s in a.shape), shuffle=True,
                     compression="gzip", compression_opts=4, fletcher32=True)
fd = os.open(out, os.O_RDONLY); os.fsync(fd); os.close(fd)
w = a.nbytes / 1e6 / (time.perf_counter() - t0)
rng = np.random.default_rng(7)
with h5py.File(out, "r") as f:
    d = f["v"]
    t0 = time.perf_counter()
    for _ in range(crops):
        z, y, x = (int(rng.integers(0, s - edge + 1)) for s in d.shape)
        c = d[z:z + edge, y:y + edge, x:x + edge].astype(np.float32)
    r = crops / (time.perf_counter() - t0)
print("%.1f %.1f" % (w, r))
PY
)
peer_w=${peer% *}; peer_r=${peer#* }
ours_r=$("$b" crops "$t/c" "$crops" "$edge" 0 | sed 's/.*"crops_s":\([0-9.]*\).*/\1/')
ours_p=$("$b" crops "$t/c" "$crops" "$edge" 4 | sed 's/.*"crops_s":\([0-9.]*\).*/\1/')
printf '%-34s %10s %10s %8s\n' measure vesalius h5py ratio
printf '%-34s %10s %10s %8s\n' "write MB/s, 1 thread (incl. fsync)" "$ours_w1" "$peer_w" "$(awk -v a="$ours_w1" -v b="$peer_w" 'BEGIN{printf "%.2fx", a/b}')"
printf '%-34s %10s %10s %8s\n' "write MB/s, 2 threads" "$ours_w" "$peer_w" "$(awk -v a="$ours_w" -v b="$peer_w" 'BEGIN{printf "%.2fx", a/b}')"
printf '%-34s %10s %10s %8s\n' "random ${edge}^3 crops/s (sync)" "$ours_r" "$peer_r" "$(awk -v a="$ours_r" -v b="$peer_r" 'BEGIN{printf "%.2fx", a/b}')"
printf '%-34s %10s %10s\n' "random ${edge}^3 crops/s (prefetch, 2 thr)" "$ours_p" "-"
echo "shards: write ${ours_w} MB/s at 2 threads, ${ours_w1} MB/s at 1 ($(awk -v a="$ours_w" -v b="$peer_w" 'BEGIN{printf "%.2f", a/b}')x h5py), ${edge}^3 crops ${ours_r}/s ($(awk -v a="$ours_r" -v b="$peer_r" 'BEGIN{printf "%.2f", a/b}')x h5py)"
