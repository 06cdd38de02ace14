#!/usr/bin/env bash
# test_pacs_limits — what a production PACS imposes and what we impose on ourselves:
#   - a partial retrieval (an instance the peer cannot send us) is retried, recorded 'partial',
#     reported (exit 4) and pulled whole the next night once the peer holds it properly;
#   - C-FIND results cut short by Orthanc's LimitFindResults: the date window is split until
#     every study is listed; what still cannot be listed (a study's series) is reported and
#     the watermark stays before it;
#   - per-run limits leave the rest for the next runs; outside the time-of-day window nothing
#     is pulled (exit 5).
set -u
source "$VESALIUS_SRC/tests/pacs/pacs_env.sh"
summary() { /usr/bin/python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['pacs'][0]; print(p['$2'])" "$1/ingest-summary.json"; }
fast="--pacs-retries 1 --pacs-backoff 0.1"

cohort "$t/c" 22 # 8 series in 7 studies: one study holds a CT and a radiograph
"$V" ingest "$t/c/dicom" --out "$t/folder" --key "$t/k" --preprocess none 2>/dev/null; check "folder ingest" 0 $?
total=8

# --- a partial series: one instance re-labelled with a SOP class we do not accept ---------
victim=$(ls "$t/c/dicom/unlabeled/s0001/"*.dcm | tail -1)
cp "$victim" "$t/victim.dcm"
dcmodify -nb -m "(0008,0016)=1.2.840.10008.5.1.4.1.1.6.1" "$t/victim.dcm" 2>/dev/null || fail "dcmodify"
orthanc_start "$t/orthanc"
orthanc_load $(find "$t/c/dicom" -type f ! -path "$victim" | sort)
victim_id=$(curl -s -X POST "http://127.0.0.1:$ORTHANC_HTTP/instances" --data-binary @"$t/victim.dcm" |
    /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['ID'])")
"$V" ingest "$URL" --out "$t/p" --key "$t/k" --preprocess none $fast 2>"$t/p1.log"; check "a partial series: exit 4" 4 $?
[ "$(summary "$t/p" series_partial)" = 1 ] && [ "$(summary "$t/p" series_pulled)" = 7 ] && ok "1 series partial, 7 pulled" ||
    fail "partial $(summary "$t/p" series_partial), pulled $(summary "$t/p" series_pulled)"
grep -q "retry 1 of 1" "$t/p1.log" && ok "the partial series was retried" || fail "no retry logged"
row=$(sqlite3 "$t/p/catalog.sqlite" "SELECT state, received, expected FROM pacs_series WHERE state='partial'")
n_victim=$(ls "$t/c/dicom/unlabeled/s0001/"*.dcm | wc -l)
# (Orthanc refuses the whole C-GET when one instance has no presentation context: 0 arrive)
IFS='|' read -r state received expected <<<"$row"
[ "$state" = partial ] && [ "$expected" = "$n_victim" ] && [ "$received" -lt "$expected" ] &&
    ok "the catalog records it partial ($received of $expected)" || fail "partial row: $row"
"$V" ingest "$URL" --out "$t/p" --key "$t/k" --preprocess none $fast 2>/dev/null; check "next night, still partial: exit 4" 4 $?
[ "$(summary "$t/p" series_pulled)" = 0 ] && [ "$(summary "$t/p" series_partial)" = 1 ] && ok "only the partial series was retried" ||
    fail "pulled $(summary "$t/p" series_pulled)"
curl -s -X DELETE "http://127.0.0.1:$ORTHANC_HTTP/instances/$victim_id" >/dev/null
orthanc_load "$victim"
"$V" ingest "$URL" --out "$t/p" --key "$t/k" --preprocess none $fast 2>/dev/null; check "once the peer holds it whole: exit 0" 0 $?
[ "$(summary "$t/p" series_pulled)" = 1 ] && ok "the healed series was pulled" || fail "pulled $(summary "$t/p" series_pulled)"
same_volumes "$t/folder" "$t/p" && ok "then the output equals the folder ingest" || fail "volumes differ"
[ "$(sqlite3 "$t/p/catalog.sqlite" "SELECT COUNT(*) FROM pacs_series WHERE state='done'")" = 8 ] && ok "all 8 series done" || fail "pacs_series states"

# --- C-FIND results cut short ---------------------------------------------------------------
orthanc_stop
orthanc_start "$t/orthanc" '"LimitFindResults": 2'
"$V" ingest "$URL?since=19000101" --out "$t/l2" --key "$t/k" --preprocess none 2>"$t/l2.log"; check "LimitFindResults 2, since a date" 0 $?
grep -q "was cut short.*splitting" "$t/l2.log" && ok "the date window was split" || fail "no split logged"
same_volumes "$t/folder" "$t/l2" && ok "split listings found every series" || fail "volumes differ under LimitFindResults 2"
"$V" ingest "$URL" --out "$t/l2all" --key "$t/k" --preprocess none 2>"$t/l2all.log"; check "LimitFindResults 2, every date: exit 4" 4 $?
grep -q "listing by date" "$t/l2all.log" && same_volumes "$t/folder" "$t/l2all" && [ "$(summary "$t/l2all" not_listed)" = "[{'what': 'studies without a StudyDate', 'reason': 'the peer cut the listing of every study short, and undated studies cannot be listed by date'}]" ] &&
    ok "every dated series found by date windows; undated studies reported as not listed" || fail "listing every date: $(summary "$t/l2all" not_listed)"
orthanc_stop
orthanc_start "$t/orthanc" '"LimitFindResults": 1'
"$V" ingest "$URL?since=19000101" --out "$t/l1" --key "$t/k" --preprocess none 2>"$t/l1.log"; check "LimitFindResults 1: exit 4" 4 $?
/usr/bin/python3 - "$t/l1/ingest-summary.json" <<'PY' && ok "the summary names the study whose series could not be listed" || fail "not_listed"
import json, sys
p = json.load(open(sys.argv[1]))['pacs'][0]
nl = p['not_listed']
print(nl)
sys.exit(0 if len(nl) == 1 and nl[0]['what'].startswith('every series of study 2.25.') and 'cancel' in nl[0]['reason'] else 1)
PY
[ "$(summary "$t/l1" series_pulled)" = 7 ] && ok "the other 7 series were pulled" || fail "pulled $(summary "$t/l1" series_pulled)"
[ "$(sqlite3 "$t/l1/catalog.sqlite" "SELECT watermark FROM pacs_peers")" = 20180907 ] && ok "the watermark stays at the unlisted study's date" ||
    fail "watermark $(sqlite3 "$t/l1/catalog.sqlite" "SELECT watermark FROM pacs_peers")"

# --- per-run limits and the time-of-day window --------------------------------------------
orthanc_stop
orthanc_start "$t/orthanc"
for run in 1 2 3; do
    "$V" ingest "$URL" --out "$t/lim" --key "$t/k" --preprocess none --pacs-max-series 3 2>/dev/null
    check "max_series=3, run $run" 0 $?
    want=$((run < 3 ? 3 : 2))
    [ "$(summary "$t/lim" series_pulled)" = $want ] && [ "$(summary "$t/lim" series_deferred)" = $((total - 3 * run > 0 ? total - 3 * run : 0)) ] &&
        ok "run $run pulled $want, deferred the rest" || fail "run $run: pulled $(summary "$t/lim" series_pulled), deferred $(summary "$t/lim" series_deferred)"
done
same_volumes "$t/folder" "$t/lim" && ok "three limited runs equal one folder ingest" || fail "volumes differ after limited runs"
"$V" ingest "$URL" --out "$t/inst" --key "$t/k" --preprocess none --pacs-max-instances 10 2>/dev/null; check "max_instances=10" 0 $?
n=$(sqlite3 "$t/inst/catalog.sqlite" "SELECT COUNT(*) FROM sources")
[ "$n" -ge 1 ] && [ "$n" -le 10 ] && ok "max_instances: $n instances pulled" || fail "max_instances: $n pulled"
later=$(date -d '+2 hours' +%H:%M)-$(date -d '+3 hours' +%H:%M)
"$V" ingest "$URL" --out "$t/win" --key "$t/k" --preprocess none --pacs-window $later 2>"$t/win.log"; check "outside the window: exit 5" 5 $?
[ "$(summary "$t/win" outside_window)" = True ] && grep -q "outside the retrieval window" "$t/win.log" && ok "the run says it is outside the window" || fail "window not reported"
now=$(date -d '-1 hour' +%H:%M)-$(date -d '+1 hour' +%H:%M)
"$V" ingest "$URL" --out "$t/win" --key "$t/k" --preprocess none --pacs-window $now 2>/dev/null; check "inside the window" 0 $?
finish
