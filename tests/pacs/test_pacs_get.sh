#!/usr/bin/env bash
# test_pacs_get — `vesalius ingest pacs://...` by C-GET from a real Orthanc: the same volumes as
# a folder ingest of the same files (seven transfer syntaxes), nothing identifying in the output
# or the logs (DCMTK's debug logging stays off), nothing left in $TMPDIR; a second nightly run
# pulls nothing (exit 5); after new studies arrive it pulls only those; modality filtering.
set -u
source "$VESALIUS_SRC/tests/pacs/pacs_env.sh"

cohort "$t/c" 21
orthanc_start "$t/orthanc"
orthanc_load $(find "$t/c/dicom" -type f | sort)
"$V" ingest "$t/c/dicom" --out "$t/folder" --key "$t/k" --preprocess none 2>/dev/null; check "folder ingest" 0 $?

mkdir -p "$t/tmp"
TMPDIR="$t/tmp" "$V" --log-level debug ingest "$URL" --out "$t/get" --key "$t/k" --preprocess none 2>"$t/get.log"
check "PACS ingest by C-GET" 0 $?
same_volumes "$t/folder" "$t/get" && ok "C-GET gives the volumes of the folder ingest" || fail "C-GET volumes differ"
[ -z "$(ls -A "$t/tmp")" ] && ok "\$TMPDIR gained nothing" || fail "\$TMPDIR holds $(ls -A "$t/tmp")"
left=$(cd "$t/get" && find . -type f ! -path './shards/*' ! -name catalog.sqlite ! -name 'catalog.sqlite-*' ! -name .lock ! -name ingest-summary.json ! -name settings.json)
[ -z "$left" ] && ok "no other file in the output folder" || fail "unexpected files: $left"
clean_of_phi "$t/c" "$t/get" "$t/get.log" && ok "verify-deid finds nothing in the output and the debug log" || fail "identifying data found"
grep -q -i -E "dimse|C-STORE-RQ|\(0010,0010\)" "$t/get.log" && fail "DCMTK's own log reached stderr" || ok "DCMTK's logger is off"
pulled() { /usr/bin/python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['pacs'][0]; print(p['$2'])" "$1/ingest-summary.json"; }
[ "$(pulled "$t/get" series_pulled)" = 8 ] && ok "8 series pulled" || fail "$(pulled "$t/get" series_pulled) series pulled, wanted 8"
sqlite3 "$t/get/catalog.sqlite" "SELECT COUNT(*) FROM pacs_series WHERE state='done'" | grep -qx 8 &&
    ok "the catalog records 8 series done, by pseudonym" || fail "pacs_series rows"

# the nightly rerun: nothing new
"$V" ingest "$URL" --out "$t/get" --key "$t/k" --preprocess none 2>"$t/get2.log"; check "second nightly run pulls nothing" 5 $?
[ "$(pulled "$t/get" series_pulled)" = 0 ] && ok "no series retrieved again" || fail "series retrieved again"
mark=$(sqlite3 "$t/get/catalog.sqlite" "SELECT watermark FROM pacs_peers")
[ "$mark" = "$(date +%Y%m%d)" ] && ok "watermark moved to today" || fail "watermark $mark"

# new studies arrive (dated today, as a nightly run sees them); only they are pulled
cohort "$t/c2" 23
today=$(date +%Y%m%d)
find "$t/c2/dicom" -type f -exec dcmodify -nb -m "(0008,0020)=$today" {} + 2>/dev/null || fail "dcmodify"
orthanc_load $(find "$t/c2/dicom" -type f | sort)
"$V" ingest "$URL" --out "$t/get" --key "$t/k" --preprocess none 2>"$t/get3.log"; check "third run with new studies" 0 $?
n_new=$(find "$t/c2/dicom" -mindepth 2 -maxdepth 2 -type d | wc -l)
[ "$(pulled "$t/get" series_pulled)" = "$n_new" ] && ok "only the $n_new new series were pulled" || fail "$(pulled "$t/get" series_pulled) pulled, wanted $n_new"
"$V" ingest "$t/c/dicom" "$t/c2/dicom" --out "$t/folder2" --key "$t/k" --preprocess none 2>/dev/null
same_volumes "$t/folder2" "$t/get" && ok "the three runs equal one folder ingest of both cohorts" || fail "volumes differ after new studies"

# a modality filter
"$V" ingest "$URL?modality=MR&since=20180101" --out "$t/mr" --key "$t/k" --preprocess none 2>/dev/null; check "MR only" 0 $?
mods=$(sqlite3 "$t/mr/catalog.sqlite" "SELECT group_concat(DISTINCT modality) FROM volumes")
want=$(sqlite3 "$t/folder2/catalog.sqlite" "SELECT COUNT(*) FROM volumes WHERE modality='MR'")
got=$(sqlite3 "$t/mr/catalog.sqlite" "SELECT COUNT(*) FROM volumes")
[ "$mods" = MR ] && [ "$got" = "$want" ] && ok "modality=MR pulls the $want MR series only" || fail "modality filter: $mods, $got of $want"
finish
