#!/usr/bin/env bash
# test_shard_cli — `vesalius inspect` and `vesalius verify` on shards written by C: attributes
# listed, corrupt and newer shards reported by name with the documented exit codes.
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
tool=${1:?usage: test_shard_cli.sh SHARD_TOOL}
fails=0
check() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1 (got '$3', wanted '$2')"; fails=$((fails + 1)); fi; }
contains() { if grep -q -- "$3" "$2"; then echo "ok: $1"; else echo "FAIL: $1 (no '$3')"; fails=$((fails + 1)); cat "$2"; fi; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$tool" write "$t/out" || exit 1

"$V" inspect "$t/out/shards/shard-000001.h5" >"$t/o" 2>&1; check "inspect a shard exits 0" 0 $?
contains "inspect shows the schema version" "$t/o" "schema_version  *1$"
contains "inspect shows a volume" "$t/o" "^  /volumes/ct-0004$"
contains "inspect shows its shape" "$t/o" "shape  *70 100 90$"
contains "inspect shows the retained UID" "$t/o" "series_instance_uid  *2.25.123456789$"
"$V" inspect "$t/out" >"$t/o" 2>&1; check "inspect an output folder exits 0" 0 $?
check "inspect lists all three volumes" 3 "$(grep -c '^  /volumes/' "$t/o")"
"$V" inspect "$t/nothing" >"$t/o" 2>&1; check "inspect a missing path exits 3" 3 $?
echo hi >"$t/x.txt"
"$V" inspect "$t/x.txt" >"$t/o" 2>&1; check "inspect a file that is neither shard nor DICOM exits 0" 0 $?
contains "and counts it as skipped" "$t/o" "skipped 1: not DICOM"

"$V" verify "$t/out" >"$t/o" 2>&1; check "verify a clean folder exits 0" 0 $?
contains "verify counts" "$t/o" "verify: 2 shards, 3 volumes, 0 corrupt shards, 0 corrupt volumes"
"$V" verify >"$t/o" 2>&1; check "verify without DIR is a usage error" 2 $?

# verify-deid scans shards: clean ones pass, a planted identifier is found (and not printed)
printf 'Doe^John\nMRN4711\nSt Elsewhere\n' >"$t/phi.txt"
"$V" verify-deid "$t/out/shards" --phi-list "$t/phi.txt" >"$t/o" 2>&1; check "verify-deid on clean shards exits 0" 0 $?
mkdir "$t/planted"; cp "$t/out/shards/shard-000001.h5" "$t/planted/"
/usr/bin/python3 -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); f['volumes/ct-0004'].attrs['body_part']='CHEST ST ELSEWHERE'; f.close()" "$t/planted/shard-000001.h5"
"$V" verify-deid "$t/planted" --phi-list "$t/phi.txt" >"$t/o" 2>&1; check "verify-deid on a planted shard exits 7" 7 $?
contains "names the shard" "$t/o" "shard-000001.h5"
check "never prints the identifier" 0 "$(grep -ci 'elsewhere' "$t/o")"

# damage: truncate shard 2, make shard 1 claim a newer schema
s2="$t/out/shards/shard-000002.h5"
truncate -s $(($(stat -c %s "$s2") / 2)) "$s2"
/usr/bin/python3 -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); f.attrs['schema_version']=2; f.close()" "$t/out/shards/shard-000001.h5"
"$V" verify "$t/out" >"$t/o" 2>&1; check "verify with corrupt shards exits 1" 1 $?
contains "verify names the truncated shard" "$t/o" "corrupt shard .*shard-000002.h5"
contains "verify names the newer schema" "$t/o" "shard-000001.h5: shard schema version 2 is newer than this vesalius reads (1)"
contains "verify still counts" "$t/o" "verify: 2 shards, 0 volumes, 2 corrupt shards"
"$V" inspect "$t/out/shards/shard-000001.h5" >"$t/o" 2>&1; check "inspect a newer shard exits 1" 1 $?
contains "inspect explains the newer schema" "$t/o" "upgrade vesalius"

echo "$fails failed"
[ "$fails" -eq 0 ]
