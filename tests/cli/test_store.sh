#!/usr/bin/env bash
# test_store — the ingest output folder (io/store + io/catalog + io/shard) driven by
# tests/tools/store_tool as `vesalius ingest` will drive it:
#   * kill -9 at random instants (several seeds), rerun: catalog and shards equal an
#     uninterrupted run (same bytes), every source accounted for once, verify clean;
#   * a rerun with no new files does nothing (exit 5); new files are ingested, a new slice
#     rebuilds its series and retires the old volume; h5py sees one live copy per series;
#   * a second concurrent run is refused (exit 6) with a clear message.
set -u
tool=${1:?usage: test_store.sh STORE_TOOL}
t=$(mktemp -d)
bg=""
cleanup() { [ -n "$bg" ] && kill -9 "$bg" 2>/dev/null; rm -rf "$t"; }
trap cleanup EXIT
fails=0
check() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1 (got '$3', wanted '$2')"; fails=$((fails + 1)); fi; }
max=120000 # bytes per shard: several shards per run

# 240 source files: 48 series of 4-6 slices each (some interleaved names) + 6 rejects.
mkdir "$t/src"
n=0
for s in $(seq 1 48); do
  for k in $(seq 1 $((4 + s % 3))); do
    printf 'series s%03d\nslice %d\n' "$s" "$k" >"$t/src/f$(printf %03d $s)_$k.dcm"; n=$((n + 1))
  done
done
for r in 1 2 3 4 5 6; do echo "garbage $r" >"$t/src/junk$r.txt"; n=$((n + 1)); done
# a series whose volume the shard writer refuses (a key that is not a safe dataset name)
for k in 1 2; do printf 'series bad/key\nslice %d\n' $k >"$t/src/fbad_$k.dcm"; n=$((n + 1)); done
echo "sources: $n files"

"$tool" ingest "$t/ref" "$t/src" $max >"$t/ref.json"; check "uninterrupted run exits 4 (rejects)" 4 $?
"$tool" dump "$t/ref" >"$t/ref.dump" || fails=$((fails + 1))
(cd "$t/ref/shards" && sha256sum shard-*.h5) >"$t/ref.sums"
check "every source accounted for once" "$n" "$(grep -c '^source|' "$t/ref.dump")"
check "48 live volumes" 48 "$(grep -c '^volume|.*|live|' "$t/ref.dump")"
check "the run lists its 8 rejects" 8 "$(grep -c '^rejected ' "$t/ref.json")"
check "the refused series' files are rejected with the reason" 2 "$(grep -c "^rejected fbad_.*: series key 'bad/key' is not" "$t/ref.json")"
check "several shards" 1 "$([ "$(wc -l <"$t/ref.sums")" -ge 4 ] && echo 1 || echo 0)"

for seed in 1 2 3 4 5 6 7 8 9; do
  out="$t/kill$seed"
  # kill at a seed-dependent instant: seeds 1-5 after 0.05-0.95 s of a run slowed to ~20 ms a
  # volume; seeds 6-9 after 0.01-0.3 s of a full-speed run (inside writes, seals and commits)
  if [ "$seed" -le 5 ]; then slow=20; span=0.9; else slow=0; span=0.29; fi
  delay=$(awk -v s="$seed" -v span="$span" 'BEGIN{srand(s); printf "%.3f", 0.01 + span * rand()}')
  VS_STORE_SLOW_MS=$slow "$tool" ingest "$out" "$t/src" $max >/dev/null 2>&1 &
  bg=$!
  sleep "$delay"
  kill -9 "$bg" 2>/dev/null; wait "$bg" 2>/dev/null; bg=""
  partial=$(ls "$out/shards" 2>/dev/null | wc -l)
  "$tool" ingest "$out" "$t/src" $max >"$t/rerun.json" 2>"$t/rerun.err"
  rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 4 ] || [ "$rc" = 5 ] || { echo "FAIL: seed $seed rerun exit $rc"; cat "$t/rerun.err"; fails=$((fails + 1)); }
  "$tool" dump "$out" >"$t/got.dump"
  (cd "$out/shards" && sha256sum shard-*.h5) >"$t/got.sums"
  if cmp -s "$t/ref.dump" "$t/got.dump"; then echo "ok: seed $seed (killed at ${delay}s, $partial files): catalog equals the uninterrupted run"
  else echo "FAIL: seed $seed catalog differs"; diff "$t/ref.dump" "$t/got.dump" | head -5; fails=$((fails + 1)); fi
  if cmp -s "$t/ref.sums" "$t/got.sums"; then echo "ok: seed $seed: shards byte-identical"
  else echo "FAIL: seed $seed shards differ"; diff "$t/ref.sums" "$t/got.sums" | head -5; fails=$((fails + 1)); fi
  check "seed $seed: no temporary shard left" 0 "$(ls "$out/shards" | grep -c tmp)"
  "$tool" verify "$out" >/dev/null; check "seed $seed: verify clean" 0 $?
done

# A catalog that is not this folder's (here: lost) makes the run stop instead of deleting shards.
mv "$t/ref/catalog.sqlite" "$t/catalog.saved"
"$tool" ingest "$t/ref" "$t/src" $max >/dev/null 2>"$t/lost.err"; check "a lost catalog stops the run" 1 $?
check "and says which shard it does not know" 1 "$(grep -c 'shard-000002.h5: the catalog does not know this shard' "$t/lost.err")"
check "no shard was deleted" "$(wc -l <"$t/ref.sums")" "$(ls "$t/ref/shards" | grep -c '\.h5$')"
rm -f "$t/ref/catalog.sqlite"*; mv "$t/catalog.saved" "$t/ref/catalog.sqlite"

# Rerun with nothing new.
"$tool" ingest "$t/ref" "$t/src" $max >"$t/again.json"; check "rerun with no new files exits 5" 5 $?
check "rerun wrote nothing" '{"volumes":0,"replaced":0,"rejected":0,"shards":0,"recovered":0}' "$(cat "$t/again.json")"

# New files: a new slice in series s007 and a whole new series s100.
printf 'series s007\nslice 9\n' >"$t/src/f007_9.dcm"
for k in 1 2 3; do printf 'series s100\nslice %d\n' $k >"$t/src/f100_$k.dcm"; done
"$tool" ingest "$t/ref" "$t/src" $max >"$t/new.json"; check "incremental run exits 0" 0 $?
check "incremental run wrote 2 volumes, 1 replacing" '{"volumes":2,"replaced":1,"rejected":0,"shards":1,"recovered":0}' "$(cat "$t/new.json")"
"$tool" dump "$t/ref" >"$t/new.dump"
check "s007 has one live volume of 6 slices" 1 "$(grep -c '^volume|s007|.*|6,48,56|6|live|' "$t/new.dump")"
check "s007's old volume is retired" 1 "$(grep -c '^volume|s007|.*|retired|' "$t/new.dump")"
check "all 6 s007 sources point at the new shard" 6 "$(grep '^source|f007_' "$t/new.dump" | grep -c "$(ls "$t/ref/shards" | sort | tail -1)")"
/usr/bin/python3 - "$t/ref/shards" <<'PY' || fails=$((fails + 1))
import glob, sys, h5py
live = {}
for p in sorted(glob.glob(sys.argv[1] + "/shard-*.h5")):  # later shards supersede earlier ones
    with h5py.File(p, "r") as f:
        for row in f["index"][()]:
            live[row["key"].decode()] = tuple(row["shape"])
ok = len(live) == 49 and live["s007"] == (6, 48, 56) and live["s100"] == (3, 48, 56)
print(("ok" if ok else "FAIL") + ": h5py sees 49 series, the newest copy of s007 has 6 slices")
sys.exit(0 if ok else 1)
PY
"$tool" ingest "$t/ref" "$t/src" $max >/dev/null; check "and then nothing to do again" 5 $?

# A second concurrent run is refused cleanly.
VS_STORE_SLOW_MS=200 "$tool" ingest "$t/busy" "$t/src" $max >/dev/null 2>&1 &
bg=$!
for i in $(seq 50); do [ -f "$t/busy/catalog.sqlite" ] && break; sleep 0.1; done
sleep 0.3
"$tool" ingest "$t/busy" "$t/src" $max 0 >/dev/null 2>"$t/busy.err"; check "concurrent run exits 6" 6 $?
check "concurrent run names the folder" 1 "$(grep -c "$t/busy: another vesalius run is writing this folder" "$t/busy.err")"
"$tool" ingest "$t/busy" "$t/src" $max 300 >/dev/null 2>&1; check "waiting 300 ms is not enough either" 6 $?
kill -9 "$bg" 2>/dev/null; wait "$bg" 2>/dev/null; bg=""

echo "$fails failed"
[ "$fails" -eq 0 ]
