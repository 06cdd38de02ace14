#!/usr/bin/env bash
# test_study_tiny — the demo pipeline in miniature, end to end through `vesalius run`: a small
# generated cohort with planted identifiers and tumours -> ingest -> pretrain -> fine-tune from
# the MAE and from scratch (label budget x seeds) -> validate. Every stage's outputs exist and agree; the
# generator's identifier list is found nowhere in shards, catalog, predictions, reports or logs
# (verify-deid); a rerun does nothing. (kill -9 during each stage: test_run_kill.sh.)
set -u
V=${VESALIUS:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
. "$(dirname "$0")/tiny_study.sh"
study "$t/a"
"$V" run "$t/a/study.yaml" 2>"$t/log"; check "the whole study runs" 0 $?
for f in ingest/ingest-summary.json pretrain/model.safetensors finetune-mae/predictions-mae.csv \
         finetune-scratch/predictions-scratch.csv finetune-mae/splits.csv report/report.json \
         report/report.html report/report.md; do
  [ -s "$t/a/out/$f" ] && echo "ok: $f" || { echo "FAIL: missing $f"; fails=$((fails + 1)); }
done
grep -q "report: .*report.html" "$t/log" && grep -q "mae: AUC" "$t/log" && echo "ok: prints the report and its headline" || { echo "FAIL: no headline"; fails=$((fails + 1)); }
/usr/bin/python3 - "$t/a/out" <<'PY' || fails=$((fails + 1))
import json, sys, csv
out = sys.argv[1]
r = json.load(open(out + '/report/report.json'))
ok = all(r['comparison'][arm] is not None for arm in ('mae', 'scratch'))
series = {row['series'] for row in csv.DictReader(open(out + '/finetune-mae/labels.csv'))}
test = {row['series'] for row in csv.DictReader(open(out + '/finetune-mae/predictions-mae.csv')) if row['set'] == 'test'}
cases = {(c['series'], c['arm'], c['seed']) for c in r['cases']}
ok &= test <= series and cases == {(s, a, k) for s in test for a in ('mae', 'scratch') for k in (0, 1)}
ok &= all(s.startswith('2.25.') for s in series)
ok &= [b['budget'] for b in r['budgets']] == [2] and r['headline_budget'] == 2
print('ok: report compares both arms on every test series and seed' if ok else 'FAIL: report inconsistent with the labels')
# the detection gallery: pictures of both arms, each with its coloured box, no key in a caption
import base64, io, re
from PIL import Image
g = r['gallery']
pics = re.findall(r'data:image/png;base64,([^"]+)', open(out + '/report/report.html').read())
boxed = 0
for b64 in pics[-len(g):] if g else []:
    im = Image.open(io.BytesIO(base64.b64decode(b64))).convert('RGB')
    boxed += any(r_ != g_ or g_ != b_ for r_, g_, b_ in im.getdata())
good = (len(g) >= 4 and {c['caption'].split(':')[0] for c in g} == {'mae', 'scratch'}
        and boxed == len(g) and not any('2.25.' in c['caption'] or 'VS' in c['caption'] for c in g))
print('ok: %d detection pictures of both arms, each with its box' % len(g) if good else 'FAIL: gallery %r' % g)
sys.exit(0 if ok and good else 1)
PY
# shards, catalog, run summary, predictions, labels, reports and logs (model weights are raw
# floats, where a digit-and-dot run can look like a UID by chance)
"$V" verify-deid --phi-list "$t/c/phi.txt" "$t/a/out/ingest" "$t/a/out/report" "$t/a/out/logs" \
  "$t/a/out/run.jsonl" "$t/a/out"/finetune-*/*.csv "$t/a/out"/finetune-*/*.jsonl >"$t/vd" 2>&1; rc=$?
check "verify-deid finds no planted identifier in the outputs" 0 $rc
[ $rc = 0 ] || cat "$t/vd" # locations only: verify-deid never prints a value
"$V" verify-deid --phi-list "$t/c/phi.txt" "$t/c/dicom/labeled" >/dev/null 2>&1; check "verify-deid does find them in the input" 7 $?
"$V" run "$t/a/study.yaml" 2>/dev/null; check "rerun: nothing to do" 5 $?
echo "$fails failed"
[ "$fails" -eq 0 ]
