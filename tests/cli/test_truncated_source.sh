#!/usr/bin/env bash
# test_truncated_source SHIM — a source file cut short by another process while vesalius reads
# it (made deterministic by SHIM, an LD_PRELOAD library that truncates the file the moment it is
# first mapped or read) is rejected by name with its reason, and the run goes on: no SIGBUS.
# inspect (the ingest reader), ingest and verify-deid's raw-byte scan.
set -u
V=${VESALIUS:?}
SHIM=${1:?truncate_shim.so}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 # the shim comes first
"$V" demo-cohort --out "$t/c" --unlabeled 2 --labeled 0 --radiographs 0 --matrix 64 --slices 4:4 --seed 9 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
mkdir -p "$t/src"
cp -r "$t"/c/dicom/unlabeled/s0000 "$t/src/good"
cp "$(ls "$t"/c/dicom/unlabeled/s0001/*.dcm | head -1)" "$t/src/cut.dcm"
cut_run() { cp "$(ls "$t"/c/dicom/unlabeled/s0001/*.dcm | head -1)" "$t/src/cut.dcm"; LD_PRELOAD=$SHIM VS_TRUNCATE_PATH=$t/src/cut.dcm "$@"; }

cut_run "$V" inspect "$t/src" --summary "$t/inspect.json" >"$t/out" 2>&1; rc=$?
check "inspect with a file cut while read: exit 4, not a signal" 4 $rc
/usr/bin/python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))
r = [x for x in s['rejected_files'] if x['path'].endswith('cut.dcm')]
sys.exit(not (r and 'truncated' in r[0]['reason'] and s['used'] == 4))" "$t/inspect.json" \
  && echo "ok: the cut file is rejected by name as truncated; the 4 others are used" || { echo "FAIL: $(cat "$t/out" | tail -3)"; fails=$((fails + 1)); }

cut_run "$V" ingest "$t/src" --out "$t/o" --key "$t/k" -j 1 >"$t/out" 2>&1; rc=$?
check "ingest with a file cut while read: exit 4, the rest ingested" 4 $rc
[ "$(ls "$t"/o/shards/*.h5 2>/dev/null | wc -l)" -ge 1 ] && echo "ok: shards written" || { echo "FAIL: no shards"; fails=$((fails + 1)); }

head -c 3000000 /dev/urandom >"$t/blob.bin"
LD_PRELOAD=$SHIM VS_TRUNCATE_PATH=$t/blob.bin "$V" verify-deid "$t/blob.bin" >"$t/out" 2>&1; rc=$?
check "verify-deid on a file cut while scanned: exit 1 (not readable), not a signal" 1 $rc
grep -q "blob.bin.*truncated" "$t/out" && echo "ok: verify-deid names it as truncated" || { echo "FAIL: $(tail -2 "$t/out")"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
