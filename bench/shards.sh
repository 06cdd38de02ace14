#!/usr/bin/env bash
# HDF5 shard write MB/s vs h5py; random 96³ crops/s cold (vs h5py) and under the trainer's working-set sampler, vs what the MAE trainer consumes
set -euo pipefail
b="$VESALIUS_BUILD/bench/bench_shard"
v="$VESALIUS_BUILD/vesalius"
nz=${NZ:-160}; ny=${NY:-512}; nx=${NX:-512}; crops=${CROPS:-40}; edge=${EDGE:-96}; chunk=${CHUNK:-32}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
field() { sed "s/.*\"$1\":\([0-9.]*\).*/\1/"; }
"$b" gen "$t/ct.raw" "$nz" "$ny" "$nx"
mb=$(awk -v n=$((nz * ny * nx)) 'BEGIN{printf "%.0f", n * 2 / 1e6}')
echo "best of 3 for every figure (the machine is shared)"
echo "volume: synthetic CT int16 ${nz}x${ny}x${nx} (${mb} MB), chunks ${chunk}^3, shuffle+deflate (default level; h5py: gzip 4)+fletcher32; load $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores"
mkdir -p "$t/c1" "$t/c" "$t/p"
ours_w1=$("$b" write "$t/c1" "$t/ct.raw" "$nz" "$ny" "$nx" 1 "$chunk" | field mb_s)
rm -rf "$t/c1"
ours_w=$("$b" write "$t/c" "$t/ct.raw" "$nz" "$ny" "$nx" 2 "$chunk" | field mb_s)
peer=$(/usr/bin/python3 - "$t/ct.raw" "$t/p/peer.h5" "$nz" "$ny" "$nx" "$crops" "$edge" "$chunk" <<'PY'
import os, sys, time, h5py, numpy as np
raw, out, nz, ny, nx, crops, edge, chunk = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
a = np.fromfile(raw, dtype="<i2").reshape(nz, ny, nx)
best = 1e30  # best of 3, as the C side: the machine is shared
for _ in range(3):
    t0 = time.perf_counter()
    with h5py.File(out, "w") as f:
        f.create_dataset("v", data=a, chunks=tuple(min(chunk, s) for s in a.shape), shuffle=True,
                         compression="gzip", compression_opts=4, fletcher32=True)
    fd = os.open(out, os.O_RDONLY); os.fsync(fd); os.close(fd)
    best = min(best, time.perf_counter() - t0)
w = a.nbytes / 1e6 / best
rng = np.random.default_rng(7)
with h5py.File(out, "r") as f:
    d = f["v"]
    best = 1e30
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(crops):
            z, y, x = (int(rng.integers(0, s - edge + 1)) for s in d.shape)
            c = d[z:z + edge, y:y + edge, x:x + edge].astype(np.float32)
        best = min(best, time.perf_counter() - t0)
    r = crops / best
print("%.1f %.1f" % (w, r))
PY
)
peer_w=${peer% *}; peer_r=${peer#* }
ours_r=$("$b" crops "$t/c" "$crops" "$edge" 0 | field crops_s)
ours_r2=$("$b" crops "$t/c" "$crops" "$edge" 0 0 2 | field crops_s)
ours_p=$("$b" crops "$t/c" "$crops" "$edge" 4 | field crops_s)
ours_c=$("$b" crops "$t/c" $((crops * 2)) "$edge" 4 256 | field crops_s)
# the same volume without deflate (shuffle + Fletcher-32 only): what --deflate 0 buys
mkdir -p "$t/raw0"
"$b" write "$t/raw0" "$t/ct.raw" "$nz" "$ny" "$nx" 1 "$chunk" 0 >/dev/null
bytes4=$(du -b "$t/c" | cut -f1); bytes0=$(du -b "$t/raw0" | cut -f1)
ours_0=$("$b" crops "$t/raw0" "$crops" "$edge" 0 | field crops_s)
rm -rf "$t/raw0"
cold=$(printf '%s\n' "$ours_r" "$ours_r2" "$ours_p" | sort -g | tail -1) # best cold way
cold_cpu=$("$b" crops "$t/c" "$crops" "$edge" 8 0 1 | field cpu_ms) # CPU per cold crop
# The trainer's sampler (pretrain defaults: working set of WS volumes, one swapped every SWAP
# crops; the stream of mae_source_shards: depth 8, 2 threads, a cache of WS+1 volumes) over an
# archive of NVOL volumes of this size, about twice the cache, so that every entering volume
# is read cold; timed after the first window (WS*SWAP crops), best of 3 rounds of 8 swaps.
ws=${WS:-8}; swap=${SWAP:-256}; nvol=${NVOL:-$((2 * ws + 2))}
vol_mib=$(( (nz * ny * nx * 2 + 1048575) / 1048576 ))
cache_mib=$(( (ws + 1) * vol_mib ))
mkdir -p "$t/set"
"$b" writeset "$t/set" "$t/ct.raw" "$nz" "$ny" "$nx" 2 "$chunk" "$nvol"
ws_out=$("$b" crops "$t/set" $((8 * swap)) "$edge" 8 "$cache_mib" 1 "$ws" "$swap")
rm -rf "$t/set"
ours_ws=$(echo "$ws_out" | field crops_s); ws_cpu=$(echo "$ws_out" | field cpu_ms); ws_hit=$(echo "$ws_out" | field hit)
# what the MAE trainer consumes: default model (crop 96, patch 16, dim 192, depth 6), batch 8
"$v" pretrain --out "$t/mae" --shards "$t/c" --steps 4 --log-every 1 --log-json 2>"$t/mae.log" >/dev/null
trainer=$(grep -o '"samples_per_s":"*[0-9.]*' "$t/mae.log" | tail -2 | grep -o '[0-9.]*$' | awk '{s+=$1} END{printf "%.1f", s/NR}')
printf '%-40s %10s %10s %8s\n' measure vesalius h5py ratio
printf '%-40s %10s %10s %8s\n' "write MB/s, 1 filter thread (+ fsync)" "$ours_w1" "$peer_w" "$(ratio "$ours_w1" "$peer_w")x"
printf '%-40s %10s %10s %8s\n' "write MB/s, 2 filter threads" "$ours_w" "$peer_w" "$(ratio "$ours_w" "$peer_w")x"
printf '%-40s %10s %10s %8s\n' "random ${edge}^3 crops/s, cold, 1 thread" "$ours_r" "$peer_r" "$(ratio "$ours_r" "$peer_r")x"
printf '%-40s %10s %10s\n' "  2 threads inflating each crop" "$ours_r2" "-"
printf '%-40s %10s %10s\n' "  prefetch stream, 2 threads" "$ours_p" "-"
printf '%-40s %10s %10s\n' "  + 256 MB chunk cache (volume fits)" "$ours_c" "-"
printf '%-40s %10s %10s\n' "  deflate 0 ($(ratio "$bytes0" "$bytes4")x bytes), cold" "$ours_0" "-"
printf '%-40s %10s %10s\n' "  working set ${ws}/${nvol} vols, swap ${swap}" "$ours_ws" "-"
printf '%-40s %10s\n' "MAE trainer consumes (crops/s)" "$trainer"
pct() { awk -v r="$1" -v ms="$2" 'BEGIN{printf "%.0f%%", r * ms / 10}'; }
verdict() { awk -v a="$1" -v t="$2" 'BEGIN{print (a >= 20 * t) ? "meets 20x" : "below 20x"}'; }
echo "working set: ${nvol} volumes (${nvol}x${vol_mib} MiB inflated) through a ${cache_mib} MiB cache, hit rate ${ws_hit}; reader CPU per crop ${ws_cpu} ms (cold ${cold_cpu} ms), i.e. $(pct "$trainer" "$ws_cpu") of a core at the trainer's rate (cold $(pct "$trainer" "$cold_cpu"))"
echo "shards: write ${ours_w1} MB/s ($(ratio "$ours_w1" "$peer_w")x h5py); the trainer consumes ${trainer} crops/s; under its working-set sampler (W=${ws}, R=${swap}, archive ${nvol} volumes > cache) ${ours_ws} ${edge}^3 crops/s = $(ratio "$ours_ws" "$trainer")x ($(verdict "$ours_ws" "$trainer")); cold random ${cold}/s = $(ratio "$cold" "$trainer")x ($(verdict "$cold" "$trainer"); ${ours_r}/s 1 thread = $(ratio "$ours_r" "$peer_r")x h5py); cached one volume ${ours_c}/s, --deflate 0 cold ${ours_0}/s"
