#!/usr/bin/env bash
# test_finetune_cli — `vesalius finetune` and `vesalius predict` end to end: shards written by the
# shard writer with labels under ORIGINAL UIDs, a short MAE pretraining, both arms over 3
# patient-level folds, predictions and labels that `vesalius validate` accepts, no original UID
# in any output, whole-volume prediction with NIfTI heatmaps (read back with nibabel), and
# clear failures for a missing site key, a malformed label line and a mismatched checkpoint.
set -u
V=${VESALIUS:?}
TOOL=${1:?det_cohort}
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
contains() { if grep -q -- "$3" "$2"; then echo "ok: $1"; else echo "FAIL: $1 (no '$3')"; fails=$((fails + 1)); fi; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$TOOL" "$t" 12 2>"$t/out"; check "cohort written" 0 $?
arch="--crop 16 --patch 4 --dim 32 --depth 2 --heads 2"
"$V" pretrain --synthetic 3 $arch --dec-dim 16 --dec-depth 1 --dec-heads 2 --batch 2 --steps 10 \
  --target plain --visible-weight 0.5 -j 1 --log-level warn --out "$t/mae" >"$t/out" 2>&1
check "pretraining" 0 $?
common="--shards $t/shards --labels $t/annotations.csv --volume-labels $t/volumes.csv --key $t/site.key \
  --folds 3 --steps 40 --batch 4 --eval-every 20 --patience 3 --lr 2e-3 --loss bce --mine-every 10 -j 1 --log-level warn"
"$V" finetune $common --init "$t/mae/checkpoint.ckpt" --out "$t/ft-mae" >"$t/out" 2>&1; check "finetune from the MAE" 0 $?
"$V" finetune $common $arch --width 8 --out "$t/ft-scratch" >"$t/out" 2>&1; check "finetune from scratch" 0 $?
for f in splits.csv labels.csv mae-fold0.det mae-fold2.det train-mae-fold1.jsonl predictions-mae.csv predictions-mae.jsonl; do
  [ -s "$t/ft-mae/$f" ] && echo "ok: wrote $f" || { echo "FAIL: no $f"; fails=$((fails + 1)); }
done
contains "training log holds train.step" "$t/ft-mae/train-mae-fold0.jsonl" '"event":"train.step"'
cmp -s "$t/ft-mae/splits.csv" "$t/ft-scratch/splits.csv"; check "both arms use the same folds" 0 $?
if grep -rq "1.2.826.0.1.3680043.99" "$t/ft-mae" "$t/ft-scratch"; then echo "FAIL: an original UID in the outputs"; fails=$((fails + 1)); else echo "ok: no original UID in the outputs"; fi
/usr/bin/python3 - "$t" <<'PY'; check "every labeled series predicted once per arm, in its test fold" 0 $?
import csv, sys
t = sys.argv[1]
labels = {r["series"] for r in csv.DictReader(open(f"{t}/ft-mae/labels.csv"))}
assert len(labels) == 12, len(labels)
for arm in ("mae", "scratch"):
    vol = {}
    for r in csv.DictReader(open(f"{t}/ft-{arm}/predictions-{arm}.csv")):
        assert r["arm"] == arm
        p = float(r["probability"]); assert 0.0 <= p <= 1.0
        if r["x"] == "":
            assert r["series"] not in vol, "two volume rows"
            vol[r["series"]] = int(r["fold"])
    assert set(vol) == labels, (arm, len(vol))
    assert set(vol.values()) == {0, 1, 2}
PY
"$V" validate --predictions "$t/ft-mae/predictions-mae.csv" "$t/ft-scratch/predictions-scratch.jsonl" \
  --labels "$t/ft-mae/labels.csv" --train-log "$t/ft-mae/train-mae-fold0.jsonl" --bootstrap 20 \
  --out "$t/report" >"$t/out" 2>&1; check "validate reads predictions, labels and the log" 0 $?
[ -s "$t/report/report.json" ] && echo "ok: report.json" || { echo "FAIL: no report.json"; fails=$((fails + 1)); }

"$V" predict --model "$t/ft-mae/mae-fold0.det" --shards "$t/shards" --out "$t/p.csv" --json "$t/p.jsonl" \
  --heatmaps "$t/hm" --fold 0 --arm mae -j 1 --log-level warn >"$t/out" 2>&1; check "predict" 0 $?
[ "$(grep -c ',,,,' "$t/p.csv")" = 12 ] && echo "ok: 12 volume rows" || { echo "FAIL: volume rows"; fails=$((fails + 1)); }
[ "$(ls "$t/hm" | wc -l)" = 12 ] && echo "ok: 12 heatmaps" || { echo "FAIL: heatmaps"; fails=$((fails + 1)); }
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

# a study file supplies the labels, key, seed, folds and training settings; options override
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
  folds: 3
  steps: 30
  batch: 4
  lr: 0.002
  loss: bce
  width: 8
YAML
"$V" finetune --study "$t/study.yaml" $arch --log-level warn >"$t/out" 2>&1; check "finetune from a study file" 0 $?
[ -s "$t/study-out/finetune-scratch/predictions-scratch.csv" ] && echo "ok: study output folder" || { echo "FAIL: no study outputs"; fails=$((fails + 1)); }
contains "the study's seed made the folds" "$t/study-out/finetune-scratch/splits.csv" "seed=3"
# augmentation: the study's pretrain section (flips, intensity_scale, intensity_shift), or options
one="$arch --fold 0 --steps 10 --log-level warn"
"$V" finetune --study "$t/study.yaml" $one --out "$t/aug-default" >"$t/out" 2>&1; check "finetune, default augmentation" 0 $?
"$V" finetune --study "$t/study.yaml" $one --no-flip --scale 0 --shift 0 --out "$t/aug-off" >"$t/out" 2>&1
check "finetune, augmentation off by options" 0 $?
sed 's/^labels:/pretrain:\n  flips: false\n  intensity_scale: 0\n  intensity_shift: 0\nlabels:/' "$t/study.yaml" >"$t/study-noaug.yaml"
"$V" finetune --study "$t/study-noaug.yaml" $one --out "$t/aug-study" >"$t/out" 2>&1; check "finetune, augmentation off by the study" 0 $?
cmp -s "$t/aug-off/scratch-fold0.det" "$t/aug-study/scratch-fold0.det"; check "the study's augmentation reaches finetune" 0 $?
cmp -s "$t/aug-off/scratch-fold0.det" "$t/aug-default/scratch-fold0.det"; check "augmentation changes the detector" 1 $?
"$V" finetune --study "$t/study.yaml" $one --shift 2 --out "$t/x" >"$t/out" 2>&1; check "a shift above 1 is refused" 2 $?
# eval_every 0 in the study: no validation, every step runs and the last weights are kept
sed 's/^  width: 8$/  width: 8\n  eval_every: 0\n  val_fraction: 0/' "$t/study.yaml" >"$t/study-noval.yaml"
"$V" finetune --study "$t/study-noval.yaml" $arch --fold 0 --log-level warn --out "$t/noval" >"$t/out" 2>&1; check "finetune without validation" 0 $?
[ "$(grep -c '"val_loss"' "$t/noval/train-scratch-fold0.jsonl")" = 0 ] && [ "$(grep -c '"train.step"' "$t/noval/train-scratch-fold0.jsonl")" = 30 ] \
  && echo "ok: no validation, all 30 steps" || { echo "FAIL: eval_every 0"; fails=$((fails + 1)); }
[ "$(grep -c '"val_loss"' "$t/study-out/finetune-scratch/train-scratch-fold0.jsonl")" -ge 1 ] \
  && echo "ok: the default study validates" || { echo "FAIL: no validation with the default eval_every"; fails=$((fails + 1)); }

"$V" finetune $common --key "$t/missing.key" --out "$t/x" >"$t/out" 2>&1; check "missing site key" 3 $?
printf 'seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,2,oops,4\n' >"$t/bad.csv"
"$V" finetune --shards "$t/shards" --labels "$t/bad.csv" --key "$t/site.key" --out "$t/x" >"$t/out" 2>&1; check "malformed label line" 1 $?
contains "names the file and line" "$t/out" "bad.csv:2:"
"$V" predict --model "$t/mae/checkpoint.ckpt" --shards "$t/shards" --out "$t/q.csv" >"$t/out" 2>&1; check "an MAE checkpoint is not a detector" 1 $?
contains "says what the file is not" "$t/out" "not a vesalius detector checkpoint"
[ ! -e "$t/q.csv" ] && echo "ok: nothing written on failure" || { echo "FAIL: q.csv written"; fails=$((fails + 1)); }
exit $fails
