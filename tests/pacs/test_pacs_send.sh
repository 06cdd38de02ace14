#!/usr/bin/env bash
# test_pacs_send — `vesalius send` C-STOREs de-identified files to a research PACS (a real
# Orthanc) as they are, and refuses any file verify-deid flags: a planted original is named and
# never reaches the PACS (exit 7); what arrived is byte-identical in its dataset and pulls back
# into the same volumes as an ingest of the de-identified folder; an unreachable PACS is exit 8.
set -u
source "$VESALIUS_SRC/tests/pacs/pacs_env.sh"

cohort "$t/c" 21
"$V" anonymize "$t/c/dicom" --out "$t/anon" --key "$t/k" 2>/dev/null; check "anonymize" 0 $?
n_anon=$(find "$t/anon" -type f -name '*.dcm' | wc -l)
orthanc_start "$t/orthanc"
count() { curl -s "http://127.0.0.1:$ORTHANC_HTTP/statistics" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['CountInstances'])"; }

# an original (identifying) file planted among the de-identified ones
planted=$(find "$t/c/dicom" -type f | sort | head -1)
cp "$planted" "$t/anon/planted.dcm"
echo "not dicom" >"$t/anon/notes.txt"
"$V" send "$t/anon" "$URL" 2>"$t/send.log"; check "send refuses the planted file" 7 $?
grep -q "planted.dcm: refused, not sent: verify-deid finds" "$t/send.log" && ok "the refused file is named" || fail "log: $(cat "$t/send.log")"
[ "$(count)" = "$n_anon" ] && ok "the $n_anon de-identified files reached the PACS, the planted one did not" || fail "$(count) instances in the PACS, wanted $n_anon"
clean_of_phi "$t/c" "$t/send.log" && ok "the send log holds no identifier" || fail "identifier in the log"
rm "$t/anon/planted.dcm"
"$V" send "$t/anon" "$URL" 2>/dev/null; check "sending the clean folder again" 0 $?
[ "$(count)" = "$n_anon" ] && ok "resending stores no duplicate" || fail "$(count) instances after resending"

# what the PACS holds is what was sent: pull it back by C-GET, compare with a folder ingest
"$V" ingest "$t/anon" --out "$t/folder" --key "$t/k2" --preprocess none 2>/dev/null; check "folder ingest of the sent files" 0 $?
"$V" ingest "$URL" --out "$t/back" --key "$t/k2" --preprocess none 2>/dev/null; check "pull the research PACS back" 0 $?
same_volumes "$t/folder" "$t/back" && ok "the round trip keeps every volume" || fail "volumes differ after the round trip"
id=$(curl -s "http://127.0.0.1:$ORTHANC_HTTP/instances" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)[0])")
curl -s "http://127.0.0.1:$ORTHANC_HTTP/instances/$id/file" -o "$t/stored.dcm"
uid=$(dcmdump +P 0008,0018 "$t/stored.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
sent=$(grep -l -r --include='*.dcm' "$uid" "$t/anon" | head -1)
[ -n "$sent" ] && cmp -s <(dcmdump "$sent" 2>/dev/null | grep -v '^(0002,') <(dcmdump "$t/stored.dcm" 2>/dev/null | grep -v '^(0002,') &&
    ok "a stored instance's dataset equals the file sent" || fail "stored dataset differs from the file sent"

"$V" send "$t/anon" "pacs://ORTHANC@127.0.0.1:4299" --pacs-retries 0 2>"$t/closed.log"; check "closed port" 8 $?
grep -q "127.0.0.1:4299" "$t/closed.log" && ok "the error names host:port" || fail "error: $(cat "$t/closed.log")"
"$V" send "$t/anon" 2>/dev/null; check "no URL is a usage error" 2 $?
finish
