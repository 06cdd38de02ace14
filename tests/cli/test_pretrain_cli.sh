#!/usr/bin/env bash
# test_pretrain_cli — `vesalius pretrain` end to end on synthetic volumes: outputs, usage
# errors, refusal to resume with other settings, and SIGTERM + --resume giving a model
# byte-identical to an uninterrupted run.
set -u
V=${VESALIUS:?}
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
contains() { if grep -q -- "$3" "$2"; then echo "ok: $1"; else echo "FAIL: $1 (no '$3')"; fails=$((fails + 1)); fi; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
tiny="--synthetic 3 --crop 16,16,16 --patch 4 --dim 24 --depth 1 --heads 2 --dec-dim 12 --dec-depth 1 --dec-heads 2 --batch 2 --lr 1e-3 --warmup 3 --clip 1 -j 1 --log-level warn"

"$V" pretrain $tiny -j 2 --steps 5 --out "$t/a" >"$t/out" 2>&1; check "short run (2 threads)" 0 $?
for f in checkpoint.ckpt model.safetensors preview.png; do
  [ -s "$t/a/$f" ] && echo "ok: wrote $f" || { echo "FAIL: no $f"; fails=$((fails + 1)); }
done
"$V" pretrain $tiny --steps 5 --out "$t/a" >"$t/out" 2>&1; check "existing checkpoint without --resume" 2 $?
contains "says to pass --resume" "$t/out" "resume"
"$V" pretrain $tiny --steps 6 --resume --out "$t/a" >"$t/out" 2>&1; check "resume with other settings is refused" 2 $?
contains "names the differing field" "$t/out" "steps=5"
"$V" pretrain --out "$t/b" --shards "$t/none" >"$t/out" 2>&1; check "--shards naming a missing folder" 3 $?
contains "names the folder" "$t/out" "cannot list the shard folder"
"$V" pretrain --synthetic 2 >"$t/out" 2>&1; check "--out is required" 2 $?
"$V" pretrain --out "$t/c" --synthetic 2 --crop 30 --patch 8 >"$t/out" 2>&1; check "crop not a multiple of patch" 2 $?
contains "names crop and patch" "$t/out" "patch 8 does not divide crop 30"
"$V" pretrain --out "$t/c" --synthetic 2 --target fancy >"$t/out" 2>&1; check "bad --target" 2 $?
"$V" pretrain --out "$t/x" --synthetic 2 --crop 1,32,32 --patch 1,8,8 --dim 24 --depth 1 --heads 2 \
  --dec-dim 12 --dec-depth 1 --dec-heads 2 --batch 2 --steps 3 --target plain --visible-weight 0.5 \
  -j 2 --log-json >"$t/out" 2>&1; check "2D radiograph crops with the recipe options" 0 $?
contains "JSON step lines" "$t/out" '"event":"pretrain.step"'

# SIGTERM mid-run, then --resume: the same bytes as an uninterrupted run
long="$tiny --steps 1500 --checkpoint-every 100"
"$V" pretrain $long --out "$t/full" >"$t/out" 2>&1; check "uninterrupted run" 0 $?
# The signal must land mid-run: a run that ends first is tried again, at most 3 times.
for attempt in 1 2 3; do
  rm -rf "$t/int"
  "$V" pretrain $long --out "$t/int" >"$t/out" 2>&1 &
  pid=$!
  for _ in $(seq 400); do [ -s "$t/int/checkpoint.ckpt" ] && break; sleep 0.02; done # past step 100
  kill -TERM $pid
  wait $pid; rc=$?
  [ $rc != 0 ] && break
done
check "SIGTERM stops the run mid-way with status 1" 1 $rc
contains "says it stopped" "$t/out" "stopped by a signal"
[ -s "$t/int/checkpoint.ckpt" ] && echo "ok: checkpoint written on SIGTERM" || { echo "FAIL: no checkpoint on SIGTERM"; fails=$((fails + 1)); }
"$V" pretrain $long --resume --log-level info --out "$t/int" >"$t/out" 2>&1; check "resume after SIGTERM" 0 $?
step=$(grep -o 'resuming .* at step [0-9]*' "$t/out" | grep -o '[0-9]*$')
[ -n "$step" ] && [ "$step" -gt 0 ] && [ "$step" -lt 1500 ] && echo "ok: the resumed run started at step $step of 1500: the signal landed mid-run" \
  || { echo "FAIL: the resumed run did not start mid-way (step '${step}')"; fails=$((fails + 1)); }
cmp "$t/full/model.safetensors" "$t/int/model.safetensors" && echo "ok: resumed model is byte-identical" || { echo "FAIL: resumed model differs"; fails=$((fails + 1)); }
cmp "$t/full/checkpoint.ckpt" "$t/int/checkpoint.ckpt" && echo "ok: resumed checkpoint is byte-identical" || { echo "FAIL: resumed checkpoint differs"; fails=$((fails + 1)); }

echo "$fails failed"
[ "$fails" -eq 0 ]
