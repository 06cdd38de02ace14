#!/usr/bin/env bash
# test_run — `vesalius run STUDY.yaml`: stages run once and skip when nothing changed (exit 5),
# a new DICOM series reruns ingest and the stages after it, --dry-run changes nothing, a
# second concurrent run exits 6, kill -9 during pretraining then a rerun ends with the same
# model and training curve as an uninterrupted run, study-file mistakes name the line.
set -u
V=${VESALIUS:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
"$V" demo-cohort --out "$t/c" --unlabeled 5 --labeled 0 --radiographs 0 --matrix 40 --slices 14:18 --seed 21 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
study() { # study FILE OUTDIR
  cat >"$1" <<YAML
name: run-test
output: $2
seed: 5
threads: 2
deid:
  key_file: $t/site.key
ingest:
  sources: [$t/c/dicom]
preprocess:
  mode: standard
pretrain:
  crop: [16, 32, 32]
  patch: [8, 8, 8]
  dim: 32
  depth: 1
  heads: 2
  dec_dim: 16
  dec_depth: 1
  dec_heads: 2
  batch: 4
  steps: 150
  warmup_steps: 10
  lr: 0.001
  checkpoint_every: 10
YAML
}
study "$t/a.yaml" "$t/a"; study "$t/b.yaml" "$t/b"
"$V" run "$t/a.yaml" 2>"$t/log"; check "first run" 0 $?
for f in stages/ingest.json stages/pretrain.json pretrain/model.safetensors logs/pretrain.curve.jsonl run.jsonl; do
  [ -s "$t/a/$f" ] && echo "ok: $f" || { echo "FAIL: missing $f"; fails=$((fails + 1)); }
done
"$V" run "$t/a.yaml" 2>"$t/log"; check "rerun with nothing new does nothing" 5 $?
grep -q "pretrain: up to date" "$t/log" && echo "ok: pretrain skipped" || { echo "FAIL: pretrain not skipped"; fails=$((fails + 1)); }
"$V" run "$t/a.yaml" --dry-run >"$t/plan" 2>&1; check "dry run" 0 $?
grep -q "pretrain *up to date" "$t/plan" && echo "ok: the plan says pretrain is up to date" || { echo "FAIL: plan"; cat "$t/plan"; fails=$((fails + 1)); }
# another run holds the folder
flock "$t/a/.run.lock" sleep 3 & holder=$!
for _ in $(seq 100); do flock -n "$t/a/.run.lock" true 2>/dev/null || break; sleep 0.05; done # held by now
"$V" run "$t/a.yaml" 2>/dev/null; check "concurrent run refused" 6 $?
wait
# kill -9 during pretraining, then rerun; compare with an uninterrupted run
for attempt in 1 2 3; do # the kill must land during pretraining; a run that got past it is tried again
  rm -rf "$t/b"
  "$V" run "$t/b.yaml" 2>/dev/null & pid=$!
  for _ in $(seq 1200); do [ -s "$t/b/pretrain/checkpoint.ckpt" ] && break; sleep 0.02; done
  kill -9 $pid; wait $pid 2>/dev/null
  sleep 0.3 # the stage dies with the runner (PR_SET_PDEATHSIG)
  [ -f "$t/b/stages/pretrain.started" ] && [ ! -f "$t/b/stages/pretrain.json" ] && break
done
[ -f "$t/b/stages/pretrain.started" ] && [ ! -f "$t/b/stages/pretrain.json" ] && echo "ok: killed during pretraining" \
  || { echo "FAIL: the kill never landed during pretraining"; fails=$((fails + 1)); }
"$V" run "$t/b.yaml" 2>/dev/null; check "rerun after kill -9" 0 $?
grep -q '"msg":"resuming .* at step [1-9]' "$t/b/logs/pretrain.jsonl" && echo "ok: the rerun resumed pretraining mid-way" \
  || { echo "FAIL: the rerun did not resume a checkpoint"; fails=$((fails + 1)); }
cmp -s "$t/a/pretrain/model.safetensors" "$t/b/pretrain/model.safetensors" && echo "ok: same model as the uninterrupted run" || { echo "FAIL: model differs after kill -9"; fails=$((fails + 1)); }
cmp -s "$t/a/logs/pretrain.curve.jsonl" "$t/b/logs/pretrain.curve.jsonl" && echo "ok: same training curve" || { echo "FAIL: curve differs after kill -9"; fails=$((fails + 1)); }
# a new series arrives: ingest and pretraining run again
"$V" demo-cohort --out "$t/c2" --unlabeled 1 --labeled 0 --radiographs 0 --matrix 40 --slices 14:14 --seed 22 >/dev/null 2>&1
cp -r "$t/c2/dicom/unlabeled/s0000" "$t/c/dicom/unlabeled/new"
"$V" run "$t/a.yaml" 2>"$t/log"; check "new series: rerun" 0 $?
grep -q "pretrain: running" "$t/log" && echo "ok: pretraining reran on the new shards" || { echo "FAIL: pretraining did not rerun"; fails=$((fails + 1)); }
# study-file mistakes
printf 'name: x\noutput: %s/x\npretrain:\n  stpes: 3\n' "$t" >"$t/bad.yaml"
"$V" run "$t/bad.yaml" 2>"$t/err"; check "wrong key" 2 $?
grep -q "bad.yaml:4: key 'pretrain.stpes'" "$t/err" && echo "ok: names file, line and key" || { echo "FAIL: $(cat "$t/err")"; fails=$((fails + 1)); }
printf 'name: x\noutput: %s/x\npretrain:\n  steps: many\n' "$t" >"$t/bad.yaml"
"$V" run "$t/bad.yaml" 2>"$t/err"; check "wrong type" 2 $?
grep -q "bad.yaml:4: key 'pretrain.steps'" "$t/err" && echo "ok: names the line of the wrong type" || { echo "FAIL: $(cat "$t/err")"; fails=$((fails + 1)); }
"$V" run "$t/missing.yaml" 2>"$t/err"; check "missing study file" 2 $?
grep -q "missing.yaml" "$t/err" && echo "ok: names the missing file" || { echo "FAIL: $(cat "$t/err")"; fails=$((fails + 1)); }
"$V" run "$t/a.yaml" --from nowhere 2>/dev/null; check "unknown --from stage" 2 $?
echo "$fails failed"
[ "$fails" -eq 0 ]
