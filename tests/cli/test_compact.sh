#!/usr/bin/env bash
# test_compact — `vesalius compact` on an ingest output folder (driven by tests/tools/store_tool):
# after rebuilt series left dead volumes in old shards, compaction rewrites the mostly-dead
# shards; the live volumes (key, checksum, shape, sources) are exactly those before, h5py sees
# each once, dead voxels drop, verify is clean and a rerun of ingest has nothing to do. Then
# kill -9 at instants spread over a compaction (several seeds), rerun: the same end state.
set -u
tool=${1:?usage: test_compact.sh STORE_TOOL}
V=${VESALIUS:?}
t=$(mktemp -d)
bg=""
cleanup() { [ -n "$bg" ] && kill -9 "$bg" 2>/dev/null; rm -rf "$t"; }
trap cleanup EXIT
fails=0
check() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1 (got '$3', wanted '$2')"; fails=$((fails + 1)); fi; }
max=150000

mkdir "$t/src"
for s in $(seq 1 60); do
  for k in $(seq 1 $((4 + s % 3))); do printf 'series s%03d\nslice %d\n' "$s" "$k" >"$t/src/f$(printf %03d $s)_$k.dcm"; done
done
"$tool" ingest "$t/base" "$t/src" $max >/dev/null; check "first ingest" 0 $?
# a new slice for two series in three: their old volumes die in the first shards
for s in $(seq 1 60); do
  [ $((s % 3)) -ne 0 ] && printf 'series s%03d\nslice 9\n' "$s" >"$t/src/f$(printf %03d $s)_9.dcm"
done
"$tool" ingest "$t/base" "$t/src" $max >/dev/null; check "ingest of the new slices" 0 $?

# what must survive: live volumes and every source (shard names aside)
state() {
  "$tool" dump "$1" | awk -F'|' '$1=="volume" && $7=="live" {print "live", $2, $4, $5, $6} $1=="source" {print "source", $2, $3, $4, $5, $6, $7}' | sort
}
h5live() { /usr/bin/python3 -c "
import glob, sys, h5py
live, copies = {}, {}
for p in sorted(glob.glob(sys.argv[1] + '/shards/shard-*.h5')):  # later shards supersede
    with h5py.File(p, 'r') as f:
        for k in f['volumes']:
            live[k] = f['volumes'][k].attrs['checksum']; copies[k] = copies.get(k, 0) + 1
            f['volumes'][k][()]  # every voxel decodes
print('\n'.join('%s %s' % (k, live[k].decode() if isinstance(live[k], bytes) else live[k]) for k in sorted(live)))
print('max copies', max(copies.values()))" "$1"; }
state "$t/base" >"$t/want.state"
h5live "$t/base" | grep -v '^max copies' >"$t/want.h5"
check "60 live volumes before" 60 "$(grep -c '^live ' "$t/want.state")"
n_before=$(ls "$t/base/shards" | grep -c '\.h5$')
for seed in 1 2 3 4 5 6 7 8; do cp -a "$t/base" "$t/k$seed"; done

cp -a "$t/base" "$t/ref"
start=$(date +%s.%N)
"$V" compact "$t/ref" --min-live 0.5 --shard-mb 0.05 >"$t/ref.out" 2>"$t/ref.err"; check "compact exits 0" 0 $?
span=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b - a}')
cat "$t/ref.out"
state "$t/ref" >"$t/got.state"
if cmp -s "$t/want.state" "$t/got.state"; then echo "ok: live volumes and sources unchanged"; else echo "FAIL: catalog changed"; diff "$t/want.state" "$t/got.state" | head -5; fails=$((fails + 1)); fi
h5live "$t/ref" >"$t/got.h5"
check "h5py: same live volumes and checksums" "$(cat "$t/want.h5")" "$(grep -v '^max copies' "$t/got.h5")"
check "h5py: each volume stored once after compaction" "max copies 1" "$(grep '^max copies' "$t/got.h5")"
before=$(sed 's/.*dead voxels \([0-9]*\) -> \([0-9]*\)/\1/' "$t/ref.out"); after=$(sed 's/.*dead voxels \([0-9]*\) -> \([0-9]*\)/\2/' "$t/ref.out")
check "dead voxels gone" 1 "$([ "$before" -gt 0 ] && [ "$after" = 0 ] && echo 1 || echo 0)"
n_after=$(ls "$t/ref/shards" | grep -c '\.h5$')
check "fewer shards ($n_before -> $n_after)" 1 "$([ "$n_after" -lt "$n_before" ] && echo 1 || echo 0)"
check "no temporary shard left" 0 "$(ls "$t/ref/shards" | grep -c tmp)"
"$tool" verify "$t/ref" >/dev/null; check "verify clean" 0 $?
"$V" verify "$t/ref" >/dev/null; check "vesalius verify clean" 0 $?
"$V" compact "$t/ref" --min-live 0.5 >/dev/null 2>&1; check "a second compact has nothing to do" 5 $?
"$tool" ingest "$t/ref" "$t/src" $max >/dev/null 2>"$t/ingest.err"; check "ingest afterwards has nothing to do" 5 $?
flock "$t/ref/.lock" sleep 3 & holder=$!
for _ in $(seq 100); do flock -n "$t/ref/.lock" true 2>/dev/null || break; sleep 0.05; done
"$V" compact "$t/ref" >/dev/null 2>&1; check "compact while ingest holds the lock is refused" 6 $?
wait $holder

"$V" compact "$t/nowhere" >/dev/null 2>"$t/nowhere.err"; check "compact of a folder without a catalog fails" 3 $?
check "and creates nothing" 0 "$([ -e "$t/nowhere" ] && echo 1 || echo 0)"
# the window between the commit that drops a shard and its unlink, made on purpose: an old
# shard file back on disk and on the drop list; the next run deletes it and changes nothing else
old=$(ls "$t/base/shards" | head -1)
cp "$t/base/shards/$old" "$t/ref/shards/$old"
/usr/bin/python3 -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('INSERT INTO dropped_shards(name) VALUES(?)', (sys.argv[2],)); c.commit()" "$t/ref/catalog.sqlite" "$old"
"$V" compact "$t/ref" >/dev/null 2>&1; check "compact after a kill before the unlink: nothing to compact" 5 $?
check "the dropped shard's file is deleted" 0 "$(ls "$t/ref/shards" | grep -c "$old")"
check "and the drop list is empty" 0 "$(/usr/bin/python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM dropped_shards').fetchone()[0])" "$t/ref/catalog.sqlite")"
state "$t/ref" >"$t/got.state"
if cmp -s "$t/want.state" "$t/got.state"; then echo "ok: and the catalog is unchanged"; else echo "FAIL: catalog changed"; fails=$((fails + 1)); fi

# kill -9 at instants spread over the compaction's duration; rerun; the same end state
mid=0
for seed in 1 2 3 4 5 6 7 8; do
  out="$t/k$seed"
  delay=$(awk -v s="$seed" -v span="$span" 'BEGIN{srand(s); printf "%.3f", 0.005 + span * rand()}')
  "$V" compact "$out" --min-live 0.5 --shard-mb 0.05 >/dev/null 2>&1 &
  bg=$!
  sleep "$delay"
  kill -9 "$bg" 2>/dev/null; wait "$bg" 2>/dev/null; bg=""
  [ "$(ls "$out/shards" | sha256sum)" != "$(ls "$t/base/shards" | sha256sum)" ] && [ "$(ls "$out/shards" | sha256sum)" != "$(ls "$t/ref/shards" | sha256sum)" ] && mid=$((mid + 1))
  "$V" compact "$out" --min-live 0.5 --shard-mb 0.05 >/dev/null 2>"$t/rerun.err"; rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 5 ] || { echo "FAIL: seed $seed rerun exit $rc"; cat "$t/rerun.err"; fails=$((fails + 1)); }
  state "$out" >"$t/got.state"
  if cmp -s "$t/want.state" "$t/got.state"; then echo "ok: seed $seed (killed at ${delay}s of ${span}s): no volume lost or duplicated, sources intact"
  else echo "FAIL: seed $seed catalog differs"; diff "$t/want.state" "$t/got.state" | head -5; fails=$((fails + 1)); fi
  h5live "$out" >"$t/got.h5"
  check "seed $seed: h5py sees the same live volumes" "$(cat "$t/want.h5")" "$(grep -v '^max copies' "$t/got.h5")"
  check "seed $seed: no temporary shard left" 0 "$(ls "$out/shards" | grep -c tmp)"
  "$V" verify "$out" >/dev/null; check "seed $seed: verify clean" 0 $?
  "$tool" ingest "$out" "$t/src" $max >/dev/null 2>&1; check "seed $seed: every shard known, nothing to ingest" 5 $?
  check "seed $seed: dead voxels gone" 0 "$("$tool" dump "$out" | grep -c '|retired|')"
done
echo "$mid of 8 kills left a half-compacted folder"
check "some kills landed mid-compaction" 1 "$([ "$mid" -ge 1 ] && echo 1 || echo 0)"
echo "$fails failed"
[ "$fails" -eq 0 ]
