#!/usr/bin/env bash
# test_mpi_run — `vesalius run` starts the stages that scale (ingest, pretrain, finetune-mae and
# finetune-scratch) under the study's launcher (distributed: {launcher, ranks}) and every other
# stage as one process (pipeline/runner.c stage_ranks): the study's ingest on 2 ranks writes the
# shards of a one-process ingest by hand; its pretrain equals `mpirun -n 2
# vesalius pretrain` by hand, byte for byte, and records 2 ranks; a rerun has nothing to do; the
# rank count is not one of the finetune stages' settings (at 3 ranks finetune-scratch is up to
# date); kill -9 of the runner mid-pretrain ends the ranks (the launcher gets SIGTERM), and the
# rerun resumes to the same bytes as the uninterrupted run; ranks without a launcher, or an
# accumulation the ranks cannot split, are refused before the stage starts; and `vesalius run`
# under mpirun itself is refused, pointing at the study's launcher.
set -u
. "$(dirname "$0")/mpi_env.sh"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
. "$(dirname "$0")/../cli/tiny_study.sh"
# the tiny study on 2 ranks of 1 thread, long enough to be killed between checkpoints: the ranks
# hear of the runner's kill only through mpirun's SIGTERM, and on a fresh machine, with OpenBLAS
# on the CPU's own kernels, 400 steps were over by then in three attempts out of three (here the
# ranks stopped at step 1061 of 1500: 3000 leaves room for a machine twice as fast)
steps=3000
spread() { # spread DIR LAUNCHER ACCUM
  study "$1"
  /usr/bin/python3 - "$1/study.yaml" "$2" "$3" "$steps" <<'PY'
import sys
p, launcher, accum, steps = sys.argv[1:]
t = open(p).read().replace("threads: 2\n", "threads: 1\n").replace("  steps: 40\n", "  steps: %s\n" % steps)
t = t.replace("  checkpoint_every: 10\n", "  checkpoint_every: 10\n  accumulate: %s\n" % accum)
open(p, "w").write(t + "distributed:\n  launcher: %s\n  ranks: 2\n" % launcher)
PY
}
stages="--stages ingest,split,pretrain"

# refusals: no launcher (refused at ingest, the first stage that scales), then an accumulation of
# 3 for 2 ranks (ingest runs on the ranks, pretrain is refused)
spread "$t/a" "[]" 2
"$V" run "$t/a/study.yaml" $stages >"$t/out" 2>&1; check "ranks without a launcher" 2 $?
contains "names the keys" "$t/out" "key 'distributed.ranks' is 2 but 'distributed.launcher' is empty"
[ ! -e "$t/a/out/pretrain" ] && echo "ok: pretrain not started" || { echo "FAIL: pretrain started"; fails=$((fails + 1)); }
spread "$t/a" "[mpirun, --oversubscribe, --bind-to, none]" 3
"$V" run "$t/a/study.yaml" $stages >"$t/out" 2>&1; check "accumulate 3 on 2 ranks" 2 $?
contains "says why" "$t/out" "2 ranks cannot split pretrain.accumulate 3"
[ ! -e "$t/a/out/pretrain" ] && echo "ok: pretrain not started" || { echo "FAIL: pretrain started"; fails=$((fails + 1)); }

# the study on 2 ranks: ingest, pretrain and the finetune stages through the launcher
spread "$t/a" "[mpirun, --oversubscribe, --bind-to, none]" 2
S=$t/a/study.yaml O=$t/a/out
"$V" run "$S" $stages --dry-run >"$t/plan" 2>&1; check "dry run" 0 $?
contains "the plan names the launcher" "$t/plan" "(on 2 ranks through mpirun)"
"$V" run "$S" $stages >"$t/run.log" 2>&1; check "the study on 2 ranks" 0 $?
contains "ingest ran on 2 ranks" "$t/run.log" "ingest: running on 2 ranks through mpirun"
contains "pretrain ran on 2 ranks" "$t/run.log" "pretrain: running on 2 ranks through mpirun"
"$V" ingest --study="$S" --out="$t/hand-ingest" --threads=1 >/dev/null 2>&1; check "ingest by hand, one process" 0 $?
n=0; for f in "$O"/ingest/shards/*.h5; do same "the study's ingest on 2 ranks = one process: $(basename "$f")" "$f" "$t/hand-ingest/shards/$(basename "$f")"; n=$((n + 1)); done
[ "$n" -gt 0 ] && echo "ok: $n shards compared" || { echo "FAIL: no shard in $O/ingest/shards"; fails=$((fails + 1)); }
[ "$(ckpt_field "$O/pretrain/checkpoint.ckpt" ranks)" = 2 ] && echo "ok: the checkpoint records 2 ranks" || { echo "FAIL: ranks $(ckpt_field "$O/pretrain/checkpoint.ckpt" ranks)"; fails=$((fails + 1)); }
contains "settings.json records 2 ranks" "$O/pretrain/settings.json" '"distributed.ranks": "2"'
$M -n 2 "$V" pretrain --study="$S" --shards="$O/ingest" --split="$O/split/splits.csv" --out="$t/hand" --threads=1 2>"$t/hand.log"; check "by hand under mpirun" 0 $?
for f in checkpoint.ckpt model.safetensors preview.png pool.json settings.json; do same "the study's pretrain = by hand: $f" "$O/pretrain/$f" "$t/hand/$f"; done
"$V" run "$S" $stages >/dev/null 2>&1; check "nothing changed: exit 5" 5 $?
# the finetune stages run on the launcher too, and the rank count is not one of their settings:
# at 3 ranks the plan reruns pretrain (and finetune-mae, which consumes it), not finetune-scratch
"$V" run "$S" --stages finetune-mae,finetune-scratch >"$t/ft.log" 2>&1; check "the finetune stages on 2 ranks" 0 $?
contains "finetune-mae ran on 2 ranks" "$t/ft.log" "finetune-mae: running on 2 ranks through mpirun"
contains "finetune-scratch ran on 2 ranks" "$t/ft.log" "finetune-scratch: running on 2 ranks through mpirun"
sed -i 's/^  ranks: 2$/  ranks: 3/' "$S"
"$V" run "$S" --stages pretrain,finetune-mae,finetune-scratch --dry-run >"$t/plan3" 2>&1; check "dry run at 3 ranks" 0 $?
contains "pretrain reruns at 3 ranks" "$t/plan3" "^pretrain  *run: distributed.ranks"
contains "finetune-mae after it, on 3 ranks" "$t/plan3" "^finetune-mae  *run: .*(on 3 ranks through mpirun)"
contains "finetune-scratch up to date at 3 ranks" "$t/plan3" "^finetune-scratch  *up to date: skip"
sed -i 's/^  ranks: 3$/  ranks: 2/' "$S"
"$V" pretrain --study="$S" --shards="$O/ingest" --out="$t/one" >"$t/out" 2>&1; check "2 ranks in the study, 1 process started" 2 $?
contains "says so" "$t/out" "key 'distributed.ranks' is 2, but this pretrain runs as 1 process"

# kill -9 of the runner while pretrain runs on 2 ranks: no rank left, the rerun resumes
killed=0
for attempt in 1 2 3; do
  spread "$t/b$attempt" "[mpirun, --oversubscribe, --bind-to, none]" 2
  B=$t/b$attempt
  "$V" run "$B/study.yaml" $stages >"$t/b.log" 2>&1 & pid=$!
  for _ in $(seq 6000); do [ -s "$B/out/pretrain/checkpoint.ckpt" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  # the launcher got SIGTERM: its ranks finish their step, write a checkpoint and end
  for _ in $(seq 600); do pgrep -f -- "$B/out" >/dev/null || break; sleep 0.1; done
  none_left "attempt $attempt: no rank left after the runner's kill" "$B/out"
  step=$(ckpt_field "$B/out/pretrain/checkpoint.ckpt" step 2>/dev/null || echo none)
  [ ! -e "$B/out/stages/pretrain.json" ] && [ "$step" != none ] && [ "$step" -lt "$steps" ] && { killed=1; break; }
  echo "note: attempt $attempt: the kill did not land mid-pretrain (checkpoint step $step); again"
done
if [ $killed = 1 ]; then
  echo "ok: killed mid-pretrain (checkpoint at step $step)"
  "$V" run "$B/study.yaml" $stages >"$t/b2.log" 2>&1; check "rerun after kill -9" 0 $?
  contains "pretrain resumed" "$B/out/logs/pretrain.jsonl" "resuming"
  for f in checkpoint.ckpt model.safetensors; do same "resumed = uninterrupted: $f" "$O/pretrain/$f" "$B/out/pretrain/$f"; done
else
  echo "FAIL: the kill never landed mid-pretrain"; fails=$((fails + 1))
fi

# the runner itself under a launcher of 2
$M -n 2 "$V" run "$S" $stages >"$t/out" 2>&1; check "vesalius run under mpirun -n 2" 2 $?
contains "points at the study's launcher" "$t/out" "vesalius run starts the ranks of the stages that scale itself"
[ "$(grep -c 'starts the ranks' "$t/out")" = 1 ] && echo "ok: said once" || { echo "FAIL: said $(grep -c 'starts the ranks' "$t/out") times"; fails=$((fails + 1)); }

echo "$fails failed"
[ "$fails" -eq 0 ]
