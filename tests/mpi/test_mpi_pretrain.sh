#!/usr/bin/env bash
# test_mpi_pretrain — data-parallel pretraining under mpirun (models/mae_train.h invariants 4
# and 5): 1 rank under mpirun is the plain run byte for byte; 2 and 3 ranks, each twice, give
# identical checkpoints and models; 2 and 3 ranks against 1 process: the same step-1 loss,
# later losses within a relative 2e-5 (they add the same micro-batch gradients in another
# order: measured equal to the log's 6 decimals over 30 steps, with parameters apart by up to
# 7e-5 at the end); the checkpoint records the rank count; kill -9 of one
# rank after a checkpoint ends every rank, and --resume then equals the uninterrupted run;
# resuming at another rank count works with a warning; SIGTERM stops every rank at one step
# with a checkpoint; an accumulation the ranks cannot split is refused before anything is
# written; and on ingested shards (each rank's crops through the stream's plan) 2 ranks repeat
# and start from the one-process loss.
set -u
. "$(dirname "$0")/mpi_env.sh"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
tiny="--synthetic 3 --crop 16,16,16 --patch 4 --dim 24 --depth 1 --heads 2 --dec-dim 12 --dec-depth 1 --dec-heads 2 --batch 2 --lr 1e-3 --warmup 3 --clip 1 -j 1 --accum 6"
short="$tiny --steps 30 --log-every 1 --log-json"

"$V" pretrain $short --out "$t/p" 2>"$t/p.log"; check "one process" 0 $?
$M -np 1 "$V" pretrain $short --out "$t/m1" 2>"$t/m1.log"; check "1 rank under mpirun" 0 $?
for f in checkpoint.ckpt model.safetensors preview.png; do same "1 rank = the plain run: $f" "$t/p/$f" "$t/m1/$f"; done
for n in 2 3; do
  for rep in a b; do
    $M -np $n "$V" pretrain $short --out "$t/r$n$rep" 2>"$t/r$n$rep.log"; check "$n ranks, run $rep" 0 $?
  done
  same "$n ranks twice: the same checkpoint" "$t/r${n}a/checkpoint.ckpt" "$t/r${n}b/checkpoint.ckpt"
  same "$n ranks twice: the same model" "$t/r${n}a/model.safetensors" "$t/r${n}b/model.safetensors"
  [ "$(ckpt_field "$t/r${n}a/checkpoint.ckpt" ranks)" = $n ] && echo "ok: the checkpoint records $n ranks" || { echo "FAIL: rank count not recorded"; fails=$((fails + 1)); }
done
[ "$(grep -c '"pretrain.step"' "$t/r2a.log")" = 30 ] && echo "ok: rank 0 alone logs the steps" || { echo "FAIL: step lines"; fails=$((fails + 1)); }
/usr/bin/python3 - "$t/p.log" "$t/r2a.log" "$t/r3a.log" <<'PY' || fails=$((fails + 1))
import json, sys
def losses(p):
    return [json.loads(l)["loss"] for l in open(p) if '"pretrain.step"' in l]
one = losses(sys.argv[1])
ok = True
for path, n in ((sys.argv[2], 2), (sys.argv[3], 3)):
    many = losses(path)
    worst = max(abs(float(a) - float(b)) / abs(float(a)) for a, b in zip(one[1:], many[1:]))
    print("%d ranks: step-1 loss %s (one process %s), worst later relative difference %.2e" % (n, many[0], one[0], worst))
    if len(many) != len(one) or many[0] != one[0] or worst > 2e-5:
        ok = False
print("ok: losses of 2 and 3 ranks match one process" if ok else "FAIL: losses differ")
sys.exit(0 if ok else 1)
PY

# freeze DIR PID: once DIR holds a checkpoint, stop every rank of the mpirun PID (SIGSTOP, into
# $ranks) so that the signal the caller sends next lands mid-run however loaded the machine is
# (the 800 steps take about 2 s, and a starved shell once saw the first checkpoint only after the
# last step); fails the test when the run had already finished
freeze() {
  for _ in $(seq 3000); do [ -s "$1/checkpoint.ckpt" ] && break; sleep 0.01; done
  ranks=$(pgrep -P "$2" -f pretrain)
  [ -n "$ranks" ] && kill -STOP $ranks
  local at; at=$(ckpt_field "$1/checkpoint.ckpt" step 2>/dev/null)
  if [ -n "$ranks" ] && [ -n "$at" ] && [ "$at" -lt 800 ]; then echo "ok: ranks frozen mid-run (checkpoint at step $at)"
  else echo "FAIL: the run was not caught mid-run (ranks '$ranks', checkpoint step '$at')"; fails=$((fails + 1)); fi
}

# kill -9 one rank after a checkpoint: every rank ends (no hang), the checkpoint resumes
long="$tiny --steps 800 --checkpoint-every 25 --log-level warn"
$M -np 2 "$V" pretrain $long --out "$t/full" 2>/dev/null; check "uninterrupted 2-rank run" 0 $?
$M -np 2 "$V" pretrain $long --out "$t/kill" >"$t/kill.log" 2>&1 & pid=$!
freeze "$t/kill" $pid
victim=$(echo "$ranks" | tail -1)
if [ -z "$victim" ]; then echo "FAIL: no rank to kill"; fails=$((fails + 1)); else kill -9 "$victim"; fi
kill -CONT $ranks 2>/dev/null
timeout 60 tail --pid=$pid -f /dev/null; wait $pid; rc=$?
[ $rc != 0 ] && echo "ok: the job ends when a rank is killed (exit $rc)" || { echo "FAIL: the job finished before the kill"; fails=$((fails + 1)); }
none_left "no rank left running" "$t/kill"
step=$(ckpt_field "$t/kill/checkpoint.ckpt" step)
[ "$step" -ge 25 ] && [ "$step" -lt 800 ] && echo "ok: killed mid-run (checkpoint at step $step)" || { echo "FAIL: checkpoint at step $step"; fails=$((fails + 1)); }
$M -np 2 "$V" pretrain $long --out "$t/kill" --resume 2>"$t/resume.log"; check "resume after kill -9" 0 $?
same "resumed = uninterrupted: checkpoint" "$t/full/checkpoint.ckpt" "$t/kill/checkpoint.ckpt"
same "resumed = uninterrupted: model" "$t/full/model.safetensors" "$t/kill/model.safetensors"

# SIGTERM to the job, as SLURM's scancel sends it (to mpirun and to every rank; mpirun alone
# forwards it to frozen ranks only after a SIGCONT and more than a second): every rank stops at
# the same step, with a checkpoint; resume on 3 ranks
$M -np 2 "$V" pretrain $long --out "$t/term" >"$t/term.log" 2>&1 & pid=$!
freeze "$t/term" $pid
kill -TERM $pid $ranks; kill -CONT $ranks 2>/dev/null; wait $pid; rc=$?
check "SIGTERM stops the job" 1 $rc
contains "every rank stopped at one step" "$t/term.log" "stopped by a signal at step"
step=$(ckpt_field "$t/term/checkpoint.ckpt" step)
[ "$step" -lt 800 ] && echo "ok: the checkpoint is of the stopped step ($step)" || { echo "FAIL: checkpoint at step $step"; fails=$((fails + 1)); }
$M -np 3 "$V" pretrain $long --out "$t/term" --resume --log-level info >"$t/r3.log" 2>&1; check "resume on 3 ranks" 0 $?
contains "warns of the other rank count" "$t/r3.log" "written by 2 ranks and resumes on 3"
[ "$(ckpt_field "$t/term/checkpoint.ckpt" step)" = 800 ] && echo "ok: finished on 3 ranks" || { echo "FAIL: not finished"; fails=$((fails + 1)); }

# an accumulation 4 ranks cannot split (6): refused, nothing written
$M -np 4 "$V" pretrain $tiny --steps 3 --out "$t/bad" >"$t/bad.log" 2>&1; check "accumulation 6 on 4 ranks" 2 $?
contains "says why" "$t/bad.log" "4 ranks cannot split an accumulation of 6 micro-batches"
[ "$(grep -c 'cannot split' "$t/bad.log")" = 1 ] && echo "ok: said once (rank 0)" || { echo "FAIL: said $(grep -c 'cannot split' "$t/bad.log") times"; fails=$((fails + 1)); }
[ ! -e "$t/bad" ] && echo "ok: nothing written" || { echo "FAIL: $t/bad exists"; fails=$((fails + 1)); }

# shards: each rank reads its own crops ahead (the stream's plan)
"$V" demo-cohort --out "$t/c" --unlabeled 4 --labeled 0 --radiographs 0 --matrix 40 --slices 14:20 --seed 3 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
"$V" ingest "$t/c/dicom" --out "$t/o" --key "$t/k" 2>/dev/null; check "ingest" 0 $?
sh="--shards $t/o --crop 8,16,16 --patch 8 --dim 24 --depth 1 --heads 2 --dec-dim 12 --dec-depth 1 --dec-heads 2 --batch 2 --accum 4 --working-set 2 --swap-every 4 --steps 12 --log-every 1 --log-json -j 1"
"$V" pretrain $sh --out "$t/s1" 2>"$t/s1.log"; check "shards, one process" 0 $?
for rep in a b; do $M -np 2 "$V" pretrain $sh --out "$t/s2$rep" 2>"$t/s2$rep.log"; check "shards, 2 ranks, run $rep" 0 $?; done
same "shards, 2 ranks twice: the same checkpoint" "$t/s2a/checkpoint.ckpt" "$t/s2b/checkpoint.ckpt"
l1=$(grep -m1 '"pretrain.step"' "$t/s1.log" | sed 's/.*"loss":"\([^"]*\)".*/\1/')
l2=$(grep -m1 '"pretrain.step"' "$t/s2a.log" | sed 's/.*"loss":"\([^"]*\)".*/\1/')
[ -n "$l1" ] && [ "$l1" = "$l2" ] && echo "ok: shards, step-1 loss of 2 ranks = one process ($l1)" || { echo "FAIL: step-1 loss $l2, one process $l1"; fails=$((fails + 1)); }

echo "$fails failed"
[ "$fails" -eq 0 ]
