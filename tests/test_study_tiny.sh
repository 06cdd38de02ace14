#!/usr/bin/env bash
# test_study_tiny — the demo pipeline in miniature, end to end through `vesalius run`: a small
# generated cohort with planted identifiers and tumours -> ingest -> pretrain -> fine-tune from
# the MAE and from scratch (k-fold) -> validate. Every stage's outputs exist and agree; the
# generator's identifier list is found nowhere in shards, catalog, predictions, reports or logs
# (verify-deid); a rerun does nothing; kill -9 during fine-tuning then a rerun ends with the
# same report.json (apart from its run_time line) as the uninterrupted run.
set -u
V=${VESALIUS:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
"$V" demo-cohort --out "$t/c" --unlabeled 6 --labeled 8 --radiographs 1 --matrix 40 --slices 14:18 --positive-share 0.5 --seed 31 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
study() { # study DIR: DIR/study.yaml writing DIR/out (identical files, so identical reports)
  mkdir -p "$1"
  cat >"$1/study.yaml" <<YAML
name: tiny-demo
output: out
seed: 7
threads: 2
deid:
  key_file: $t/site.key
ingest:
  sources: [$t/c/dicom]
preprocess:
  mode: standard
  ct_window: [-200, 300]
pretrain:
  modalities: [CT]
  crop: [16, 32, 32]
  patch: [8, 8, 8]
  dim: 24
  depth: 1
  heads: 2
  dec_dim: 12
  dec_depth: 1
  dec_heads: 2
  batch: 4
  steps: 40
  warmup_steps: 5
  lr: 0.001
  checkpoint_every: 10
labels:
  format: points
  file: $t/c/labels/annotations.csv
  volumes: $t/c/labels/volumes.csv
finetune:
  mode: finetune
  folds: 2
  steps: 200
  batch: 2
  eval_every: 20
validate:
  bootstrap: 50
YAML
}
study "$t/a"; study "$t/b"
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
cases = {(c['series'], c['arm']) for c in r['cases']}
ok &= all((s, a) in cases for s in series for a in ('mae', 'scratch'))
ok &= all(s.startswith('2.25.') for s in series)
print('ok: report compares both arms on every labeled series' if ok else 'FAIL: report inconsistent with the labels')
sys.exit(0 if ok else 1)
PY
# shards, catalog, run summary, predictions, labels, reports and logs (model weights are raw
# floats, where a digit-and-dot run can look like a UID by chance)
"$V" verify-deid --phi-list "$t/c/phi.txt" "$t/a/out/ingest" "$t/a/out/report" "$t/a/out/logs" \
  "$t/a/out/run.jsonl" "$t/a/out"/finetune-*/*.csv "$t/a/out"/finetune-*/*.jsonl >"$t/vd" 2>&1; rc=$?
check "verify-deid finds no planted identifier in the outputs" 0 $rc
[ $rc = 0 ] || cat "$t/vd" # locations only: verify-deid never prints a value
"$V" verify-deid --phi-list "$t/c/phi.txt" "$t/c/dicom/labeled" >/dev/null 2>&1; check "verify-deid does find them in the input" 7 $?
"$V" run "$t/a/study.yaml" 2>/dev/null; check "rerun: nothing to do" 5 $?
# kill -9 during fine-tuning, rerun, same report
"$V" run "$t/b/study.yaml" 2>/dev/null & pid=$!
for _ in $(seq 3000); do [ -f "$t/b/out/stages/finetune-mae.started" ] && break; sleep 0.02; done
sleep 0.3; kill -9 $pid; wait $pid 2>/dev/null
[ -f "$t/b/out/stages/finetune-mae.json" ] && echo "note: fine-tuning finished before the kill" || echo "ok: killed during fine-tuning"
"$V" run "$t/b/study.yaml" 2>/dev/null; check "rerun after kill -9" 0 $?
if diff <(grep -v '"run_time"' "$t/a/out/report/report.json") <(grep -v '"run_time"' "$t/b/out/report/report.json") >/dev/null; then
  echo "ok: the same report.json as the uninterrupted run"
else
  echo "FAIL: report.json differs after kill -9"; fails=$((fails + 1))
fi
echo "$fails failed"
[ "$fails" -eq 0 ]
