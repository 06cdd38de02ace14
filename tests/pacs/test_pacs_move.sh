#!/usr/bin/env bash
# test_pacs_move — `vesalius ingest pacs://...` by C-MOVE to our own C-STORE receiver, from a
# real Orthanc: the same volumes as a folder ingest; through a 0700 spool of unnamed files that
# is empty afterwards; a move destination the peer does not know is exit 8, naming it.
set -u
source "$VESALIUS_SRC/tests/pacs/pacs_env.sh"

cohort "$t/c" 22
orthanc_start "$t/orthanc"
orthanc_load $(find "$t/c/dicom" -type f | sort)
"$V" ingest "$t/c/dicom" --out "$t/folder" --key "$t/k" --preprocess none 2>/dev/null; check "folder ingest" 0 $?

mkdir -p "$t/tmp"
TMPDIR="$t/tmp" "$V" ingest "$URL" --out "$t/move" --key "$t/k" --preprocess none --pacs-retrieve move \
    --pacs-move-port $MOVE_PORT 2>"$t/move.log"
check "PACS ingest by C-MOVE" 0 $?
same_volumes "$t/folder" "$t/move" && ok "C-MOVE gives the volumes of the folder ingest" || fail "C-MOVE volumes differ"
grep -q 'Move-SCU request received for AET "VESALIUS"' "$t/orthanc/orthanc.log" && ok "Orthanc served C-MOVE to us" || fail "Orthanc's log shows no C-MOVE"
grep -q 'C-GET' "$t/orthanc/orthanc.log" && fail "Orthanc served a C-GET" || ok "no C-GET was asked"
[ -z "$(ls -A "$t/tmp")" ] && ok "\$TMPDIR gained nothing" || fail "\$TMPDIR holds $(ls -A "$t/tmp")"
clean_of_phi "$t/c" "$t/move" "$t/move.log" && ok "verify-deid finds nothing" || fail "identifying data found"

# the same through a spool folder: created 0700, empty after the run
"$V" ingest "$URL" --out "$t/spooled" --key "$t/k" --preprocess none --pacs-retrieve move \
    --pacs-move-port $MOVE_PORT --pacs-spool "$t/spool" 2>"$t/spool.log"
check "C-MOVE through a spool folder" 0 $?
same_volumes "$t/folder" "$t/spooled" && ok "spooled C-MOVE gives the same volumes" || fail "spooled volumes differ"
[ "$(stat -c %a "$t/spool")" = 700 ] && [ -z "$(ls -A "$t/spool")" ] && ok "spool is 0700 and empty" || fail "spool: $(stat -c %a "$t/spool") $(ls -A "$t/spool")"
chmod 755 "$t/spool"
"$V" ingest "$URL" --out "$t/spooled2" --key "$t/k" --pacs-spool "$t/spool" 2>"$t/spool2.log"
check "a spool open to others is refused" 3 $?
grep -q "mode 0700" "$t/spool2.log" && ok "the reason names the mode" || fail "reason: $(cat "$t/spool2.log")"

# the same from a study file's ingest.sources and pacs: section (a relative spool)
mkdir -p "$t/st"
cat >"$t/st/study.yaml" <<EOF
name: pacs-move
output: out
deid:
  key_file: $t/k
ingest:
  sources: ["$URL"]
preprocess:
  mode: none
pacs:
  retrieve: move
  move_port: $MOVE_PORT
  spool: spool
  retries: 1
EOF
"$V" ingest --study "$t/st/study.yaml" --out "$t/st/out" 2>"$t/st.log"; check "C-MOVE from a study file" 0 $?
same_volumes "$t/folder" "$t/st/out" && ok "the study file's pull gives the same volumes" || fail "study-file volumes differ"
[ -d "$t/st/spool" ] && [ -z "$(ls -A "$t/st/spool")" ] && ok "the study's relative spool was used and left empty" || fail "study spool"
sed -i 's/retries: 1/retries: many/' "$t/st/study.yaml"
"$V" ingest --study "$t/st/study.yaml" --out "$t/st/out" 2>"$t/st2.log"; check "a bad pacs: value is a usage error" 2 $?
grep -q "study.yaml:13: key 'pacs.retries'" "$t/st2.log" && ok "the error names the file, line and key" || fail "message: $(cat "$t/st2.log")"

# a destination the PACS does not know
start=$(date +%s)
"$V" ingest "$URL" --out "$t/nodest" --key "$t/k" --pacs-retrieve move --pacs-move-port $MOVE_PORT \
    --pacs-move-aet NOBODY --pacs-retries 2 --pacs-backoff 5 2>"$t/nodest.log"
check "unknown move destination" 8 $?
grep -q "127.0.0.1:$ORTHANC_DICOM: C-MOVE refused.*move destination NOBODY" "$t/nodest.log" && ok "the reason names host:port and the destination" ||
    fail "reason: $(tail -2 "$t/nodest.log")"
[ $(($(date +%s) - start)) -lt 5 ] && ok "refused at once, no retry of a permanent refusal" || fail "took $(($(date +%s) - start)) s"
finish
