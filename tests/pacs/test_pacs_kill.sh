#!/usr/bin/env bash
# test_pacs_kill — kill -9 in the middle of a PACS pull (after some series were retrieved and a
# shard was sealed, before the end), then rerun: the same volumes as an uninterrupted ingest,
# series committed before the kill are not retrieved again, and nothing is left in the spool
# folder or $TMPDIR. And the peer killed in the middle of a pull: exit 8, what was retrieved is
# committed, nothing is left, the next run completes.
set -u
source "$VESALIUS_SRC/tests/pacs/pacs_env.sh"

"$V" demo-cohort --out "$t/c" --unlabeled 14 --labeled 0 --radiographs 0 --matrix 128 --slices 6:8 \
    --seed 31 >/dev/null 2>&1 || { echo "FAIL: demo-cohort"; exit 1; }
ORTHANC_NODELAY=0 orthanc_start "$t/orthanc" # a slow peer (~40 ms a message), so the kill lands mid-pull
orthanc_load $(find "$t/c/dicom" -type f | sort)
"$V" ingest "$t/c/dicom" --out "$t/folder" --key "$t/k" --preprocess none 2>/dev/null; check "folder ingest" 0 $?
total=$(find "$t/c/dicom" -mindepth 2 -maxdepth 2 -type d | wc -l)

mkdir -p "$t/tmp"
args=(--out "$t/killed" --key "$t/k" --preprocess none --shard-mb 1 --pacs-spool "$t/spool")
TMPDIR="$t/tmp" "$V" --log-json ingest "$URL" "${args[@]}" 2>"$t/killed.log" &
pid=$!
# kill once a shard was sealed (about 11 volumes of 1 MiB) and one more series was retrieved
at_seal=""
for _ in $(seq 1000); do
    n=$(grep -c 'instances retrieved' "$t/killed.log")
    [ -z "$at_seal" ] && grep -q 'sealed' "$t/killed.log" && at_seal=$n
    [ -n "$at_seal" ] && [ "$n" -gt "$at_seal" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
got=$(grep -c 'instances retrieved' "$t/killed.log")
sealed=$(grep -c 'sealed' "$t/killed.log")
if [ "$got" -ge 2 ] && [ "$got" -lt "$total" ] && [ "$sealed" -ge 1 ] && [ ! -e "$t/killed/ingest-summary.json" ]; then
    ok "killed mid-pull: $got of $total series retrieved, $sealed shard(s) sealed"
else
    fail "the kill did not land mid-pull ($got of $total retrieved, $sealed sealed)"
fi
[ -d "$t/spool" ] && [ -z "$(ls -A "$t/spool")" ] && ok "the spool folder is empty after kill -9" || fail "spool holds: $(ls -A "$t/spool")"
[ -z "$(ls -A "$t/tmp")" ] && ok "\$TMPDIR gained nothing" || fail "\$TMPDIR holds $(ls -A "$t/tmp")"

TMPDIR="$t/tmp" "$V" ingest "$URL" "${args[@]}" 2>"$t/rerun.log"; check "rerun after kill -9" 0 $?
same_volumes "$t/folder" "$t/killed" && ok "killed and rerun equals an uninterrupted ingest" || fail "volumes differ after the kill"
present=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pacs'][0]['series_present'])" "$t/killed/ingest-summary.json")
[ "$present" -ge 1 ] && [ "$present" -lt "$total" ] && ok "$present series committed before the kill were not retrieved again" ||
    fail "$present series kept from before the kill"
[ -z "$(ls -A "$t/spool")" ] && [ -z "$(ls -A "$t/tmp")" ] && ok "spool and \$TMPDIR empty after the rerun" || fail "leftovers"
"$V" ingest "$URL" "${args[@]}" 2>/dev/null; check "a third run has nothing to do" 5 $?
# the peer dies mid-pull: exit 8 naming it, what was retrieved is committed, the spool is empty,
# and once the peer is back the next run completes the same volumes
TMPDIR="$t/tmp" "$V" --log-json ingest "$URL" --out "$t/dies" --key "$t/k" --preprocess none \
    --pacs-spool "$t/spool" --pacs-retries 1 --pacs-backoff 0.1 --pacs-dimse-timeout 3 2>"$t/dies.log" &
pid=$!
for _ in $(seq 1000); do
    [ "$(grep -c 'instances retrieved' "$t/dies.log")" -ge 3 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
done
kill -9 "$ORTHANC_PID"; wait "$ORTHANC_PID" 2>/dev/null
wait $pid; check "the peer died mid-pull" 8 $?
got=$(grep -c 'instances retrieved' "$t/dies.log")
[ "$got" -ge 3 ] && [ "$got" -lt "$total" ] && ok "it died after $got of $total series" || fail "$got of $total series before the peer died"
grep -q "127.0.0.1:$ORTHANC_DICOM" "$t/dies.log" && ok "the error names host:port" || fail "error: $(tail -2 "$t/dies.log")"
live=$(sqlite3 "$t/dies/catalog.sqlite" "SELECT COUNT(*) FROM volumes WHERE state='live'")
[ "$live" = "$got" ] && ok "the $got series retrieved before are committed" || fail "$live volumes committed, $got retrieved"
[ -z "$(ls -A "$t/spool")" ] && [ -z "$(ls -A "$t/tmp")" ] && ok "spool and \$TMPDIR empty after the failure" || fail "leftovers"
orthanc_start "$t/orthanc"
"$V" ingest "$URL" --out "$t/dies" --key "$t/k" --preprocess none 2>/dev/null; check "the next run, peer back" 0 $?
same_volumes "$t/folder" "$t/dies" && ok "then the volumes equal an uninterrupted ingest" || fail "volumes differ after the peer came back"
clean_of_phi "$t/c" "$t/killed" "$t/dies" "$t/killed.log" "$t/rerun.log" "$t/dies.log" && ok "verify-deid finds nothing" || fail "identifying data found"
finish
