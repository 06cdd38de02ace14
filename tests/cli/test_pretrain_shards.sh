#!/usr/bin/env bash
# test_pretrain_shards — pretraining reads ingested shards: DICOM cohort -> ingest -> pretrain;
# the loss falls; SIGTERM mid-run then --resume gives a byte-identical model and checkpoint
# (the shard stream's position and the augmentation rng are both restored), here through the
# working-set sampler (2 of the 5 volumes at a time); resuming with another working set is
# refused; the uniform sampler (--working-set 0) still trains; a modality with no volumes is
# refused clearly.
set -u
V=${VESALIUS:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
"$V" demo-cohort --out "$t/c" --unlabeled 5 --labeled 0 --radiographs 0 --matrix 40 --slices 14:20 --seed 3 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
"$V" ingest "$t/c/dicom" --out "$t/o" --key "$t/k" --preprocess standard 2>/dev/null; check "ingest" 0 $?
tiny="--shards $t/o --crop 16,32,32 --patch 8 --dim 32 --depth 2 --heads 2 --dec-dim 16 --dec-depth 1 --dec-heads 2 --batch 4 --seed 9 --lr 1e-3 --warmup 20 -j 2"
long="$tiny --working-set 2 --swap-every 8 --steps 400 --checkpoint-every 50 --log-every 10 --log-json"
"$V" pretrain $long --out "$t/full" 2>"$t/log"; check "pretrain on shards" 0 $?
/usr/bin/python3 - "$t/log" <<'PY' || fails=$((fails + 1))
import json, sys
losses = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"pretrain.step"' in l]
losses = [float(x) for x in losses]
print("losses: first %.3f, last ten %.3f" % (sum(losses[:3]) / 3, sum(losses[-10:]) / 10))
ok = len(losses) >= 20 and sum(losses[-10:]) / 10 < 0.9 * sum(losses[:3]) / 3
print("ok: the loss falls" if ok else "FAIL: the loss does not fall")
sys.exit(0 if ok else 1)
PY
for attempt in 1 2 3; do # the signal must land mid-run; a run that ends first is tried again
  rm -rf "$t/int"
  "$V" pretrain $long --out "$t/int" >/dev/null 2>&1 & pid=$!
  for _ in $(seq 400); do [ -s "$t/int/checkpoint.ckpt" ] && break; sleep 0.02; done
  kill -TERM $pid; wait $pid; rc=$?
  [ $rc != 0 ] && break
done
check "SIGTERM lands mid-run" 1 $rc
"$V" pretrain $long --resume --log-level info --out "$t/int" >"$t/resume" 2>&1; check "resume after SIGTERM" 0 $?
grep -q "resuming .* at step [1-9]" "$t/resume" && echo "ok: resumed mid-way ($(grep -o 'at step [0-9]*' "$t/resume"))" \
  || { echo "FAIL: the resumed run did not start mid-way"; fails=$((fails + 1)); }
cmp -s "$t/full/model.safetensors" "$t/int/model.safetensors" && echo "ok: resumed model is byte-identical" || { echo "FAIL: resumed model differs"; fails=$((fails + 1)); }
cmp -s "$t/full/checkpoint.ckpt" "$t/int/checkpoint.ckpt" && echo "ok: resumed checkpoint is byte-identical" || { echo "FAIL: resumed checkpoint differs"; fails=$((fails + 1)); }
[ -s "$t/full/preview.png" ] && echo "ok: preview written" || { echo "FAIL: no preview"; fails=$((fails + 1)); }
"$V" pretrain ${long/--working-set 2/--working-set 3} --resume --out "$t/full" >"$t/out" 2>&1; check "resume with another working set refused" 2 $?
grep -q "trained with --working-set 2 --swap-every 8" "$t/out" && echo "ok: names the checkpoint's working set" || { echo "FAIL: unclear message"; cat "$t/out"; fails=$((fails + 1)); }
"$V" pretrain $tiny --working-set 0 --steps 3 --out "$t/uniform" >/dev/null 2>&1; check "uniform sampler" 0 $?
"$V" pretrain $tiny --steps 2 --modality XA --out "$t/xa" >"$t/out" 2>&1; check "no volumes of a modality" 1 $?
grep -q "no volumes" "$t/out" && echo "ok: says there are no volumes" || { echo "FAIL: unclear message"; cat "$t/out"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
