#!/usr/bin/env bash
# test_finetune_cli — `vesalius finetune` and `vesalius predict` end to end: shards written by the
# shard writer with labels under ORIGINAL UIDs, a split (`vesalius split`), a short MAE
# pretraining, both arms over label budgets x seeds: nested budgets, the same training patients
# in both arms, no dev or test patient in training, only dev patients for early stopping, test
# and dev series predicted once per fit with their set, the test patients' labels changing no
# trained weight; predictions and labels that `vesalius validate` accepts, no original UID in any
# output, whole-volume prediction with NIfTI heatmaps (read back with nibabel), and clear
# failures for a missing site key, a malformed label line and a mismatched checkpoint; ensembles
# of members (finetune.members) in the fit and in `vesalius predict`.
set -u
V=${VESALIUS:?}
TOOL=${1:?det_cohort}
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
contains() { if grep -q -- "$3" "$2"; then echo "ok: $1"; else echo "FAIL: $1 (no '$3')"; fails=$((fails + 1)); fi; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$TOOL" "$t" 16 2>"$t/out"; check "cohort written" 0 $?
arch="--crop 16 --patch 4 --dim 32 --depth 2 --heads 2"
"$V" pretrain --synthetic 3 $arch --dec-dim 16 --dec-depth 1 --dec-heads 2 --batch 2 --steps 10 \
  --target plain --visible-weight 0.5 -j 1 --log-level warn --out "$t/mae" >"$t/out" 2>&1
check "pretraining" 0 $?
lab="--labels $t/annotations.csv --volume-labels $t/volumes.csv --key $t/site.key"
# 8 patients (2 series each): 2 test, 1 dev, 5 train
"$V" split --shards "$t/shards" $lab --seed 5 --test-share 0.25 --dev-share 0.125 --out "$t/split" \
  --log-level warn; check "split" 0 $?
common="--shards $t/shards $lab --split $t/split/splits.csv --budgets 2,4 --seeds 2 --seed 5 \
  --steps 40 --batch 4 --eval-every 20 --patience 3 --lr 2e-3 --scratch-lr 3e-3 --loss bce --mine-every 10 -j 1 --log-level warn"
"$V" finetune $common --init "$t/mae/checkpoint.ckpt" --out "$t/ft-mae" >"$t/out" 2>&1; check "finetune from the MAE" 0 $?
"$V" finetune $common $arch --width 8 --out "$t/ft-scratch" >"$t/out" 2>&1; check "finetune from scratch" 0 $?
for f in splits.csv labels.csv fits.csv mae-b2-s0.det mae-b4-s1.det train-mae-b2-s1.jsonl predictions-mae.csv predictions-mae.jsonl; do
  [ -s "$t/ft-mae/$f" ] && echo "ok: wrote $f" || { echo "FAIL: no $f"; fails=$((fails + 1)); }
done
contains "training log holds train.step" "$t/ft-mae/train-mae-b4-s0.jsonl" '"event":"train.step"'
cmp -s "$t/ft-mae/splits.csv" "$t/split/splits.csv" && cmp -s "$t/ft-scratch/splits.csv" "$t/split/splits.csv"
check "both arms used the given split" 0 $?
if grep -rq "1.2.826.0.1.3680043.99" "$t/ft-mae" "$t/ft-scratch"; then echo "FAIL: an original UID in the outputs"; fails=$((fails + 1)); else echo "ok: no original UID in the outputs"; fi
/usr/bin/python3 - "$t" <<'PY'; check "budgets nested, arms paired, roles kept apart, every dev and test series predicted once per fit" 0 $?
import csv, sys
t = sys.argv[1]
role = {r["patient"]: r["role"] for r in csv.DictReader(open(f"{t}/split/splits.csv", newline="").readlines()[1:])}
assert sorted(role.values()).count("test") == 2 and sorted(role.values()).count("train") == 5, role
patient = {r["series"]: r["patient"] for r in csv.DictReader(open(f"{t}/keys.csv"))}
fits = {}
for arm in ("mae", "scratch"):
    rows = list(csv.DictReader(open(f"{t}/ft-{arm}/fits.csv")))
    fits[arm] = sorted((r["budget"], r["seed"], r["role"], r["patient"]) for r in rows)
    for b, s in [(b, s) for b in ("2", "4") for s in ("0", "1")]:
        tr = {r["patient"] for r in rows if r["budget"] == b and r["seed"] == s and r["role"] == "train"}
        dv = {r["patient"] for r in rows if r["budget"] == b and r["seed"] == s and r["role"] == "dev"}
        assert len(tr) == int(b), (arm, b, s, tr)
        assert all(role[p] == "train" for p in tr), "a dev or test patient trained"
        assert dv == {p for p in role if role[p] == "dev"}, "early stopping saw a non-dev patient"
        if b == "4":
            small = {r["patient"] for r in rows if r["budget"] == "2" and r["seed"] == s and r["role"] == "train"}
            assert small < tr, "budget 2 is not a subset of budget 4"
    labels = {r["series"] for r in csv.DictReader(open(f"{t}/ft-{arm}/labels.csv"))}
    assert {role[patient[k]] for k in labels} == {"dev", "test"}, "labels.csv holds a training series"
    vol = {}
    for r in csv.DictReader(open(f"{t}/ft-{arm}/predictions-{arm}.csv")):
        assert r["arm"] == arm
        p = float(r["probability"]); assert 0.0 <= p <= 1.0
        assert r["set"] == role[patient[r["series"]]], "set column differs from the split"
        if r["x"] == "":
            k = (r["series"], r["budget"], r["seed"])
            assert k not in vol, "two volume rows"
            vol[k] = r["set"]
    assert set(vol) == {(k, b, s) for k in labels for b in ("2", "4") for s in ("0", "1")}, (arm, len(vol))
assert fits["mae"] == fits["scratch"], "the arms trained on different patients"
PY
# the test patients' labels change no trained weight: drop their lesions and flip their labels
/usr/bin/python3 - "$t" <<'PY'
import csv, sys
t = sys.argv[1]
role = {r["patient"]: r["role"] for r in csv.DictReader(open(f"{t}/split/splits.csv").readlines()[1:])}
test = {r["seriesuid"] for r in csv.DictReader(open(f"{t}/keys.csv")) if role[r["patient"]] == "test"}
with open(f"{t}/annotations.csv") as f, open(f"{t}/ann-edited.csv", "w") as g:
    for i, line in enumerate(f):
        if i == 0 or line.split(",")[0] not in test:
            g.write(line)
with open(f"{t}/volumes.csv") as f, open(f"{t}/vol-edited.csv", "w") as g:
    for i, line in enumerate(f):
        uid, lab = line.strip().split(",")
        g.write(line if i == 0 or uid not in test else f"{uid},{1 - int(lab)}\n")
PY
"$V" finetune ${common/$lab/--labels $t/ann-edited.csv --volume-labels $t/vol-edited.csv --key $t/site.key} $arch \
  --width 8 --only-budget 4 --only-seed 1 --out "$t/ft-edited" >"$t/out" 2>&1; check "finetune with the test labels edited" 0 $?
cmp -s "$t/ft-edited/scratch-b4-s1.det" "$t/ft-scratch/scratch-b4-s1.det"; check "the test patients' labels change no weight" 0 $?
cmp -s "$t/ft-edited/labels.csv" "$t/ft-scratch/labels.csv"; check "... while the labels did change" 1 $?
"$V" validate --predictions "$t/ft-mae/predictions-mae.csv" "$t/ft-scratch/predictions-scratch.jsonl" \
  --labels "$t/ft-mae/labels.csv" --train-log "$t/ft-mae/train-mae-b4-s0.jsonl" --bootstrap 20 \
  --out "$t/report" >"$t/out" 2>&1; check "validate reads predictions, labels and the log" 0 $?
[ -s "$t/report/report.json" ] && echo "ok: report.json" || { echo "FAIL: no report.json"; fails=$((fails + 1)); }

"$V" predict --model "$t/ft-mae/mae-b4-s0.det" --shards "$t/shards" --out "$t/p.csv" --json "$t/p.jsonl" \
  --heatmaps "$t/hm" --budget 4 --seed 0 --arm mae -j 1 --log-level warn >"$t/out" 2>&1; check "predict" 0 $?
[ "$(grep -c ',,,,' "$t/p.csv")" = 16 ] && echo "ok: 16 volume rows" || { echo "FAIL: volume rows"; fails=$((fails + 1)); }
[ "$(ls "$t/hm" | wc -l)" = 16 ] && echo "ok: 16 heatmaps" || { echo "FAIL: heatmaps"; fails=$((fails + 1)); }
/usr/bin/python3 - "$t" <<'PY'; check "heatmap max equals the volume score" 0 $?
import csv, glob, os, sys
import nibabel as nib, numpy as np
t = sys.argv[1]
score = {r["series"]: float(r["probability"]) for r in csv.DictReader(open(f"{t}/p.csv")) if r["x"] == ""}
for f in glob.glob(f"{t}/hm/*.nii.gz"):
    key = os.path.basename(f)[:-7]
    img = nib.load(f)
    assert img.shape == (16, 16, 10), img.shape  # (x, y, z) cells of 2^3 voxels over 32 x 32 x 20
    assert abs(float(np.asarray(img.dataobj).max()) - score[key]) < 1e-5
PY

# a study file supplies the labels, key, seed, budgets and training settings, and names the
# split's folder; options override
mkdir -p "$t/study-out/ingest" && ln -s "$t/shards" "$t/study-out/ingest/shards"
cat >"$t/study.yaml" <<YAML
name: det-test
output: study-out
seed: 3
threads: 1
deid:
  key_file: site.key
labels:
  format: points
  file: annotations.csv
finetune:
  mode: probe
  budgets: [2]
  seeds: 2
  steps: 30
  batch: 4
  lr: 0.002
  scratch_lr: 0.002
  loss: bce
  width: 8
YAML
"$V" finetune --study "$t/study.yaml" $arch --log-level warn >"$t/out" 2>&1; check "finetune without the split refused" 3 $?
contains "names the missing split" "$t/out" "study-out/split/splits.csv"
"$V" split --study "$t/study.yaml" --log-level warn >"$t/out" 2>&1; check "split from the study file" 0 $?
"$V" finetune --study "$t/study.yaml" $arch --log-level warn >"$t/out" 2>&1; check "finetune from a study file" 0 $?
[ -s "$t/study-out/finetune-scratch/predictions-scratch.csv" ] && echo "ok: study output folder" || { echo "FAIL: no study outputs"; fails=$((fails + 1)); }
contains "the study's seed made the split" "$t/study-out/finetune-scratch/splits.csv" "seed=3"
"$V" finetune --study "$t/study.yaml" $arch --budgets 9 --log-level warn --out "$t/x" >"$t/out" 2>&1; check "a budget above the train role" 2 $?
contains "says how many there are" "$t/out" "9 training patients asked for"
# augmentation: the study's pretrain section (flips, intensity_scale, intensity_shift), or options
one="$arch --only-seed 0 --steps 10 --log-level warn"
"$V" finetune --study "$t/study.yaml" $one --out "$t/aug-default" >"$t/out" 2>&1; check "finetune, default augmentation" 0 $?
"$V" finetune --study "$t/study.yaml" $one --no-flip --scale 0 --shift 0 --out "$t/aug-off" >"$t/out" 2>&1
check "finetune, augmentation off by options" 0 $?
sed 's/^labels:/pretrain:\n  flips: false\n  intensity_scale: 0\n  intensity_shift: 0\nlabels:/' "$t/study.yaml" >"$t/study-noaug.yaml"
"$V" finetune --study "$t/study-noaug.yaml" $one --out "$t/aug-study" >"$t/out" 2>&1; check "finetune, augmentation off by the study" 0 $?
cmp -s "$t/aug-off/scratch-b2-s0.det" "$t/aug-study/scratch-b2-s0.det"; check "the study's augmentation reaches finetune" 0 $?
cmp -s "$t/aug-off/scratch-b2-s0.det" "$t/aug-default/scratch-b2-s0.det"; check "augmentation changes the detector" 1 $?
"$V" finetune --study "$t/study.yaml" $one --shift 2 --out "$t/x" >"$t/out" 2>&1; check "a shift above 1 is refused" 2 $?
# by default no evaluation on dev: every step runs and the last weights are kept; eval_every in
# the study turns early stopping on
[ "$(grep -c '"val_loss"' "$t/study-out/finetune-scratch/train-scratch-b2-s0.jsonl")" = 0 ] \
  && [ "$(grep -c '"train.step"' "$t/study-out/finetune-scratch/train-scratch-b2-s0.jsonl")" = 30 ] \
  && echo "ok: the default study keeps the last weights, all 30 steps" || { echo "FAIL: the default study evaluated on dev"; fails=$((fails + 1)); }
sed 's/^  loss: bce$/  loss: bce\n  eval_every: 10/' "$t/study.yaml" >"$t/study-val.yaml"
"$V" finetune --study "$t/study-val.yaml" $arch --only-seed 0 --log-level warn --out "$t/val" >"$t/out" 2>&1; check "finetune with validation" 0 $?
[ "$(grep -c '"val_loss"' "$t/val/train-scratch-b2-s0.jsonl")" -ge 1 ] \
  && echo "ok: eval_every 10 evaluates on dev" || { echo "FAIL: no validation with eval_every 10"; fails=$((fails + 1)); }

# finetune.members: M detectors per fit on the same volumes; member 0 is the plain fit, the fit
# predicts with their ensemble, and `vesalius predict` with the M models gives the same rows
"$V" finetune --study "$t/study.yaml" $one --members 3 --out "$t/ens" >"$t/out" 2>&1; check "finetune with 3 members" 0 $?
for f in scratch-b2-s0.det scratch-b2-s0-m1.det scratch-b2-s0-m2.det train-scratch-b2-s0-m2.jsonl; do
  [ -s "$t/ens/$f" ] && echo "ok: wrote $f" || { echo "FAIL: no $f"; fails=$((fails + 1)); }
done
cmp -s "$t/ens/scratch-b2-s0.det" "$t/aug-default/scratch-b2-s0.det"; check "member 0 is the one-member fit" 0 $?
cmp -s "$t/ens/scratch-b2-s0.det" "$t/ens/scratch-b2-s0-m1.det"; check "member 1 has its own seed" 1 $?
cmp -s "$t/ens/predictions-scratch.csv" "$t/aug-default/predictions-scratch.csv"; check "the ensemble predicts otherwise" 1 $?
grep -q '"finetune.members": "3"' "$t/ens/settings.json"; check "settings.json records the members" 0 $?
tests=$(awk -F, '$5 == "test" && $6 == "" {printf " --series %s", $1}' "$t/ens/predictions-scratch.csv")
"$V" predict --model "$t/ens/scratch-b2-s0.det" --model "$t/ens/scratch-b2-s0-m1.det" \
  --model "$t/ens/scratch-b2-s0-m2.det" --shards "$t/shards" $tests --arm scratch --budget 2 --seed 0 \
  --out "$t/ens-p.csv" -j 1 --log-level warn >"$t/out" 2>&1; check "predict with 3 models" 0 $?
awk -F, 'NR == 1 || $5 == "test"' "$t/ens/predictions-scratch.csv" | sort >"$t/ens-fit.rows"
sort "$t/ens-p.csv" >"$t/ens-p.rows"
[ "$(wc -l <"$t/ens-p.rows")" -gt 2 ] && cmp -s "$t/ens-fit.rows" "$t/ens-p.rows"
check "predict's ensemble gives the fit's test rows, byte for byte" 0 $?

"$V" finetune $common --key "$t/missing.key" --out "$t/x" >"$t/out" 2>&1; check "missing site key" 3 $?
printf 'seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,2,oops,4\n' >"$t/bad.csv"
"$V" finetune --shards "$t/shards" --labels "$t/bad.csv" --key "$t/site.key" --split "$t/split/splits.csv" --out "$t/x" >"$t/out" 2>&1; check "malformed label line" 1 $?
contains "names the file and line" "$t/out" "bad.csv:2:"
"$V" predict --model "$t/mae/checkpoint.ckpt" --shards "$t/shards" --out "$t/q.csv" >"$t/out" 2>&1; check "an MAE checkpoint is not a detector" 1 $?
contains "says what the file is not" "$t/out" "not a vesalius detector checkpoint"
[ ! -e "$t/q.csv" ] && echo "ok: nothing written on failure" || { echo "FAIL: q.csv written"; fails=$((fails + 1)); }
exit $fails
