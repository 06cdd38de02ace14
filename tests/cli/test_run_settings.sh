#!/usr/bin/env bash
# test_run_settings — `vesalius run` reruns exactly what a change touches. After a finished
# run of a small study: changing any key of any section reruns the stages that read it and
# every stage after them, and no other (the plan of --dry-run, for every key the stages
# record, and real reruns for some); an edited label file reruns fine-tuning and validation;
# nothing changed exits 5; the dry run names what changed; the site key appears nowhere, only
# its fingerprint; and each stage command run by hand with the same settings as options writes
# the same bytes as the study run.
set -u
V=${VESALIUS:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
same() { if cmp -s "$2" "$3"; then echo "ok: $1"; else echo "FAIL: $1 ($2 differs from $3)"; fails=$((fails + 1)); fi; }
. "$(dirname "$0")/tiny_study.sh"
study "$t/a"
sed -i "s/^  steps: 100$/  steps: 24/" "$t/a/study.yaml" # fine-tuning: short, it runs three times here
S=$t/a/study.yaml O=$t/a/out
"$V" run "$S" 2>"$t/log"; check "the study runs" 0 $?
"$V" run "$S" 2>/dev/null; check "nothing changed: exit 5" 5 $?

# Every key the stages record, changed one at a time: the dry run's plan.
/usr/bin/python3 - "$V" "$S" "$O" "$t" <<'PY' || fails=$((fails + 1))
import glob, json, os, re, subprocess, sys
V, S, O, t = sys.argv[1:]
order = ["ingest", "split", "pretrain", "finetune-mae", "finetune-scratch", "validate"]
# the dry run cannot know whether a new split changes its test set, so it plans pretraining (and
# what consumes it) after a split that runs; the real reruns below show it is skipped when not
after = {"ingest": order, "split": ["split", "pretrain", "finetune-mae", "finetune-scratch", "validate"],
         "pretrain": ["pretrain", "finetune-mae", "validate"],
         "finetune-mae": ["finetune-mae", "validate"], "finetune-scratch": ["finetune-scratch", "validate"],
         "validate": ["validate"]}
reads = {s: set(json.load(open(f"{O}/stages/{s}.json"))["settings"]) for s in order}
c = f"{t}/c"
open(f"{t}/other.csv", "w").write(open(f"{c}/labels/annotations.csv").read() + "\n")
# a valid other value for each key (the tiny study's own in comments)
new = {
    "seed": "8", "threads": "1", "deid.key_file": f"{t}/other.key", "deid.linkage": f"{t}/link.sqlite",
    "deid.retain_safe_private": "true", "deid.retain_uids": "true", "deid.retain_device_identity": "true",
    "deid.retain_institution_identity": "true", "deid.retain_patient_characteristics": "true",
    "deid.retain_long_full_dates": "true", "deid.retain_long_modified_dates": "true",
    "deid.clean_descriptors": "true", "deid.clean_structured_content": "true", "deid.clean_graphics": "true",
    "deid.accept_burned_in": "true", "ingest.sources": f"[{c}/dicom/labeled]", "ingest.max_voxels": "1000000",
    "ingest.missing_slices": "resample", "ingest.keep_localizers": "true", "preprocess.mode": "none",
    "preprocess.reorient": "false", "preprocess.spacing": "[1, 1, 1]", "preprocess.interpolation": "nearest",
    "preprocess.ct_window": "[-100, 200]", "preprocess.n4": "true", "preprocess.mr_percentiles": "[2, 98]",
    "preprocess.foreground_crop": "true", "preprocess.crop_threshold": "0.5", "preprocess.crop_margin": "2",
    "shards.max_mb": "512", "shards.chunk": "[16, 16, 16]", "shards.deflate": "6",
    "pretrain.modalities": "[MR]", "pretrain.include_test": "true", "pretrain.crop": "[32, 32, 32]", "pretrain.patch": "[16, 16, 16]",
    "pretrain.dim": "48", "pretrain.depth": "2", "pretrain.heads": "4", "pretrain.mlp_ratio": "2",
    "pretrain.dec_dim": "24", "pretrain.dec_depth": "2", "pretrain.dec_heads": "4", "pretrain.mask_ratio": "0.5",
    "pretrain.batch": "2", "pretrain.steps": "41", "pretrain.warmup_steps": "6", "pretrain.accumulate": "2",
    "pretrain.checkpoint_every": "20", "pretrain.log_every": "5", "pretrain.lr": "0.002",
    "pretrain.min_lr": "0.0001", "pretrain.weight_decay": "0.1", "pretrain.clip": "1",
    "pretrain.decay_norms_and_biases": "false", "pretrain.target": "plain",
    "pretrain.visible_loss_weight": "0.5", "pretrain.flips": "false", "pretrain.intensity_scale": "0.2",
    "pretrain.intensity_shift": "0.2", "pretrain.working_set": "4", "pretrain.swap_every": "128",
    "pretrain.chunk_cache_mb": "64", "distributed.ranks": "2", "labels.format": "volume",
    "labels.file": f"{t}/other.csv",
    "labels.volumes": f"{t}/other.csv", "finetune.dev_share": "0.3", "finetune.test_share": "0.4",
    "finetune.mode": "probe", "finetune.budgets": "[1]", "finetune.seeds": "3", "finetune.steps": "10",
    "finetune.batch": "4", "finetune.lr": "0.002", "finetune.layer_decay": "0.5", "finetune.lesion_share": "0.3",
    "finetune.scratch_lr": "0.003", "finetune.eval_every": "10", "finetune.patience": "3", "finetune.loss": "bce",
    "finetune.focal_gamma": "1", "finetune.width": "8", "finetune.hard_share": "0.5", "finetune.mine_every": "5",
    "finetune.mine_top": "4", "finetune.hard_weighted": "true", "finetune.zoom": "0.1", "finetune.rotate": "10",
    "finetune.test_flips": "true", "finetune.members": "2", "finetune.window": "[0, 1]",
    "validate.bootstrap": "60", "validate.dev_sensitivity": "0.8", "validate.operating_points": "[0.3, 0.5]",
}
base = open(S).read().splitlines()

def with_key(key, value):
    """The study with one key set (replaced, or added to its section)."""
    lines = list(base)
    sec, _, name = key.rpartition(".")
    if not sec:
        lines = [l for l in lines if not l.startswith(name + ":")]
        return "\n".join([f"{name}: {value}"] + lines) + "\n"
    if sec + ":" not in lines:
        lines.append(sec + ":")
    i = lines.index(sec + ":") + 1
    j = i
    while j < len(lines) and lines[j].startswith("  "):
        j += 1
    lines = lines[:i] + [l for l in lines[i:j] if not l.startswith(f"  {name}:")] + lines[j:]
    lines.insert(i, f"  {name}: {value}")
    return "\n".join(lines) + "\n"

def plan(text, extra=()):
    path = os.path.join(os.path.dirname(S), "changed.yaml")  # same folder: the same output
    open(path, "w").write(text)
    r = subprocess.run([V, "run", path, "--dry-run", *extra], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    runs, why = set(), {}
    for line in r.stdout.splitlines():
        stage, _, state = line.partition(" ")
        state = state.strip()
        why[stage] = state
        if state.startswith("run:") and (stage != "ingest" or "starts over" in state):
            runs.add(stage)
    return runs, why

bad = 0
keys = sorted(set().union(*reads.values()))
missing = [k for k in keys if k not in new]
if missing:
    print("FAIL: no changed value in this test for", ", ".join(missing), "(add one to `new`)")
    bad += 1
for key in keys:
    if key not in new:
        continue
    want = set()
    for s in order:
        if key in reads[s]:
            want |= set(after[s])
    runs, why = plan(with_key(key, new[key]))
    if runs is None:
        print(f"FAIL: {key}: the changed study is refused: {why}"); bad += 1
    elif runs != want:
        print(f"FAIL: {key}: reruns {sorted(runs)}, wanted {sorted(want)}"); bad += 1
    else:
        first = [s for s in order if s in want][0]
        if key not in why[first]:
            print(f"FAIL: {key}: the plan does not name it: {why[first]}"); bad += 1
print(f"{'ok' if not bad else 'FAIL'}: {len(keys)} recorded keys, each reruns exactly its stages and those after")
# the encoder's shape reaches the scratch arm, the optimizer's does not
assert "pretrain.dim" in reads["finetune-scratch"] and "pretrain.lr" not in reads["finetune-scratch"]
# keys no stage reads: the name reruns nothing; scratch_baseline drops an arm, so validate reruns
runs, why = plan(with_key("name", "renamed"))
ok = runs == set()
runs, why = plan(with_key("finetune.scratch_baseline", "false"))
ok &= runs == {"validate"} and why.get("finetune-scratch") == "does not apply to this study"
runs, why = plan(open(S).read(), ["-j", "1"])  # -j N is the setting threads
ok &= runs == {"pretrain", "finetune-mae", "finetune-scratch", "validate"}
print("ok: name, scratch_baseline and -j" if ok else "FAIL: name, scratch_baseline or -j")
sys.exit(1 if bad or not ok else 0)
PY

# Real reruns: what ran is what the plan said.
started() { /usr/bin/python3 -c "
import json, sys
ev = [json.loads(l) for l in open('$O/run.jsonl')][int(sys.argv[1]):]
print(','.join(e['stage'] for e in ev if e['event'] == 'stage.start' and e['stage'] != 'ingest'))" "$1"; }
n=$(wc -l <"$O/run.jsonl")
sed -i "s/^  steps: 24$/  steps: 30/; s/^  seeds: 2$/  seeds: 1/" "$S"
"$V" run "$S" --dry-run >"$t/plan"; grep -q "finetune-mae *run: finetune.seeds: 2 -> 1; finetune.steps: 24 -> 30" "$t/plan" \
  && echo "ok: the plan names the changed settings" || { echo "FAIL: plan: $(cat "$t/plan")"; fails=$((fails + 1)); }
"$V" run "$S" 2>/dev/null; check "finetune.seeds and steps changed: rerun" 0 $?
[ "$(started "$n")" = "finetune-mae,finetune-scratch,validate" ] && echo "ok: reran fine-tuning and validation only" \
  || { echo "FAIL: reran $(started "$n")"; fails=$((fails + 1)); }
grep -q '"finetune.seeds": "1"' "$O/report/report.json" && echo "ok: the report's provenance holds the settings" \
  || { echo "FAIL: no settings in the report"; fails=$((fails + 1)); }
n=$(wc -l <"$O/run.jsonl")
{ head -1 "$t/c/labels/volumes.csv"; tail -n +2 "$t/c/labels/volumes.csv" | sort -r; } >"$t/v" && cp "$t/v" "$t/c/labels/volumes.csv"
"$V" run "$S" --dry-run | grep -q "labels.volumes: content changed" && echo "ok: the plan names the label file" \
  || { echo "FAIL: the plan does not name the label file"; fails=$((fails + 1)); }
"$V" run "$S" 2>/dev/null; check "label file edited: rerun" 0 $?
[ "$(started "$n")" = "split,finetune-mae,finetune-scratch,validate" ] \
  && echo "ok: an edited label file reruns the split, fine-tuning and validation (the same test set: not pretraining)" \
  || { echo "FAIL: reran $(started "$n")"; fails=$((fails + 1)); }
# a split key: dev_share moves no test patient, so pretraining does not rerun; test_share does
n=$(wc -l <"$O/run.jsonl")
sed -i "s/^finetune:$/finetune:\n  dev_share: 0.1/" "$S"
"$V" run "$S" 2>/dev/null; check "finetune.dev_share changed: rerun" 0 $?
[ "$(started "$n")" = "split,finetune-mae,finetune-scratch,validate" ] && echo "ok: dev_share reruns the split, fine-tuning and validation (not pretraining)" \
  || { echo "FAIL: reran $(started "$n")"; fails=$((fails + 1)); }
n=$(wc -l <"$O/run.jsonl")
sed -i "s/^finetune:$/finetune:\n  test_share: 0.25/" "$S"
"$V" run "$S" 2>/dev/null; check "finetune.test_share changed: rerun" 0 $?
[ "$(started "$n")" = "split,pretrain,finetune-mae,finetune-scratch,validate" ] && echo "ok: test_share reruns the split, pretraining on the new pool and what follows" \
  || { echo "FAIL: reran $(started "$n")"; fails=$((fails + 1)); }
grep -q '"excluded_volumes": 2,' "$O/pretrain/pool.json" && echo "ok: the new pool leaves out the 2 test patients' volumes" \
  || { echo "FAIL: $(cat "$O/pretrain/pool.json")"; fails=$((fails + 1)); }
"$V" run "$S" 2>/dev/null; check "then nothing changed: exit 5" 5 $?
key=$(cat "$t/site.key")
if grep -rqF "$key" "$O"; then echo "FAIL: the site key is in the output"; fails=$((fails + 1)); else echo "ok: the key is nowhere in the output"; fi
grep -q '"deid.key_file": "keyed-sha256:' "$O/stages/finetune-mae.json" && echo "ok: its fingerprint is recorded" \
  || { echo "FAIL: no key fingerprint"; fails=$((fails + 1)); }

# The same settings as options, by hand: the same bytes.
"$V" ingest "$t/c/dicom" --out "$t/ingest" --key "$t/site.key" --ct-window=-200,300 -j 2 2>/dev/null; check "ingest by hand" 0 $?
same "ingest: the same settings.json" "$t/ingest/settings.json" "$O/ingest/settings.json"
for f in "$O"/ingest/shards/*.h5; do same "ingest: the same $(basename "$f")" "$t/ingest/shards/$(basename "$f")" "$f"; done
"$V" split --shards "$O/ingest/shards" --labels "$t/c/labels/annotations.csv" --volume-labels "$t/c/labels/volumes.csv" \
  --key "$t/site.key" --seed 7 --dev-share 0.1 --test-share 0.25 --out "$t/split" --log-level warn; check "split by hand" 0 $?
for f in splits.csv settings.json; do same "split: the same $f" "$t/split/$f" "$O/split/$f"; done
"$V" pretrain --shards "$O/ingest" --split "$t/split/splits.csv" --out "$t/pretrain" --seed 7 -j 2 --modality CT --crop 16,32,32 \
  --patch 8 --dim 24 --depth 1 --heads 2 --dec-dim 12 --dec-depth 1 --dec-heads 2 --batch 4 --steps 40 --warmup 5 --lr 0.001 \
  --checkpoint-every 10 --log-level warn; check "pretrain by hand" 0 $?
for f in model.safetensors checkpoint.ckpt pool.json settings.json; do same "pretrain: the same $f" "$t/pretrain/$f" "$O/pretrain/$f"; done
ft="--shards $O/ingest/shards --labels $t/c/labels/annotations.csv --volume-labels $t/c/labels/volumes.csv
  --key $t/site.key --seed 7 -j 2 --split $t/split/splits.csv --budgets 2 --seeds 1 --steps 30 --batch 2 --eval-every 20
  --log-level warn"
"$V" finetune $ft --crop 16,32,32 --patch 8 --dim 24 --depth 1 --heads 2 --out "$t/scratch"; check "finetune scratch by hand" 0 $?
"$V" finetune $ft --init "$O/pretrain/checkpoint.ckpt" --out "$t/mae"; check "finetune mae by hand" 0 $?
for arm in mae scratch; do
  for f in "predictions-$arm.csv" splits.csv settings.json; do same "finetune-$arm: the same $f" "$t/$arm/$f" "$O/finetune-$arm/$f"; done
done
"$V" finetune $ft --init "$O/pretrain/checkpoint.ckpt" --dim 48 --out "$t/x" 2>"$t/err"; check "an encoder option with --init is refused" 2 $?
grep -q "with --init the architecture" "$t/err" && echo "ok: says why" || { echo "FAIL: $(cat "$t/err")"; fails=$((fails + 1)); }
set -- ; for s in ingest split pretrain finetune-mae finetune-scratch; do set -- "$@" --stage-settings "$s=$O/$s/settings.json"; done
"$V" validate --predictions "$O/finetune-mae/predictions-mae.csv" --train-log "finetune-mae=$O/finetune-mae/train-mae-b2-s0.jsonl" \
  --predictions "$O/finetune-scratch/predictions-scratch.csv" --train-log "finetune-scratch=$O/finetune-scratch/train-scratch-b2-s0.jsonl" \
  --labels "$O/finetune-mae/labels.csv" --train-log "pretrain=$O/logs/pretrain.curve.jsonl" --preview "mae=$O/pretrain/preview.png" \
  --out "$t/report" --shards "$O/ingest/shards" --record-seed study=7 --study "$S" --seed 7 --bootstrap 50 -j 2 "$@" 2>/dev/null
check "validate by hand" 0 $?
same "validate: the same settings.json" "$t/report/settings.json" "$O/report/settings.json"
diff <(grep -v '"run_time"' "$t/report/report.json") <(grep -v '"run_time"' "$O/report/report.json") >/dev/null \
  && echo "ok: validate: the same report.json" || { echo "FAIL: report.json differs"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
