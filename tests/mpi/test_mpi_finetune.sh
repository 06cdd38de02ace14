#!/usr/bin/env bash
# test_mpi_finetune — `vesalius finetune` across ranks (pipeline/cmd_finetune.c): fit i of the
# fit order on rank i mod N, rank 0 merging. On a tiny cohort with budgets 2,4 x 2 seeds (4
# fits: 2 ranks own 2 each, 3 ranks own 2, 1 and 1), 2 and 3 ranks under mpirun give every
# output file byte for byte as one process does, in both arms; the job-array path (--fit I
# for every fit, then --merge) does too; a fit that fails on rank 1 (its training log's name
# taken by a folder) ends every rank with the same exit code, names the rank and the fit,
# leaves no rank running and no merged file; --fit under ranks is refused.
set -u
. "$(dirname "$0")/mpi_env.sh"
TOOL=${1:?det_cohort}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$TOOL" "$t" 16 2>"$t/out"; check "cohort written" 0 $?
arch="--crop 16 --patch 4 --dim 32 --depth 2 --heads 2"
"$V" pretrain --synthetic 3 $arch --dec-dim 16 --dec-depth 1 --dec-heads 2 --batch 2 --steps 5 \
  --target plain -j 1 --log-level warn --out "$t/mae" >"$t/out" 2>&1; check "pretraining" 0 $?
lab="--labels $t/annotations.csv --volume-labels $t/volumes.csv --key $t/site.key"
"$V" split --shards "$t/shards" $lab --seed 5 --test-share 0.25 --dev-share 0.125 --out "$t/split" \
  --log-level warn; check "split" 0 $?
common="--shards $t/shards $lab --split $t/split/splits.csv --budgets 2,4 --seeds 2 --seed 5 \
  --steps 20 --batch 4 --eval-every 10 --patience 3 --loss bce --mine-every 10 -j 1 --log-level warn"
arm_mae="--init $t/mae/checkpoint.ckpt"
arm_scratch="$arch --width 8"
# same_dir NAME ONE OTHER: OTHER holds every file of ONE (and no other but extra parts), same bytes
same_dir() {
  local f n=0
  for f in $(ls "$2"); do same "$1: $f" "$2/$f" "$3/$f"; n=$((n + 1)); done
  [ "$n" -ge 14 ] && echo "ok: $1: $n files" || { echo "FAIL: $1: only $n files in $2"; fails=$((fails + 1)); }
  local extra; extra=$(cd "$3" && ls | grep -v -e '^predictions-.*-b[0-9]*-s[0-9]*\.' -e '^fits-' -e '^settings-' | while read -r g; do [ -e "$2/$g" ] || echo "$g"; done)
  [ -z "$extra" ] && echo "ok: $1: no other files" || { echo "FAIL: $1: other files: $extra"; fails=$((fails + 1)); }
}
for arm in mae scratch; do
  eval "opts=\$arm_$arm"
  "$V" finetune $common $opts --out "$t/$arm-1" 2>"$t/out"; check "$arm: one process" 0 $?
  for n in 2 3; do
    $M -n $n "$V" finetune $common $opts --out "$t/$arm-$n" 2>"$t/out"; check "$arm: $n ranks" 0 $?
    same_dir "$arm: $n ranks = one process" "$t/$arm-1" "$t/$arm-$n"
  done
done
[ "$(grep -c ',,,,' "$t/mae-1/predictions-mae.csv")" = 24 ] && echo "ok: 4 fits x 6 dev and test volumes" || { echo "FAIL: volume rows"; fails=$((fails + 1)); }

# a SLURM job array without MPI: each fit alone (in reverse order, as tasks may end), then the merge
for i in 3 2 1 0; do "$V" finetune $common $arm_mae --fit $i --out "$t/array" 2>"$t/out"; check "--fit $i" 0 $?; done
[ ! -e "$t/array/predictions-mae.csv" ] && echo "ok: --fit writes no merged file" || { echo "FAIL: --fit wrote the merged predictions"; fails=$((fails + 1)); }
"$V" finetune $common $arm_mae --fit 4 --out "$t/x" >"$t/out" 2>&1; check "--fit beyond the fits" 2 $?
contains "says how many" "$t/out" "there are 4 fits"
"$V" finetune $common $arm_mae --merge --steps 21 --out "$t/array" >"$t/out" 2>&1; check "--merge with other settings" 2 $?
contains "names the fit" "$t/out" "fit mae-b2-s0 ran with other settings"
"$V" finetune $common $arm_mae --merge --out "$t/array" 2>"$t/out"; check "--merge" 0 $?
same_dir "--fit 0..3 and --merge = one process" "$t/mae-1" "$t/array"
mkdir -p "$t/half" && cp "$t/array/"*mae-b2-s0* "$t/half/"
"$V" finetune $common $arm_mae --merge --out "$t/half" >"$t/out" 2>&1; check "--merge with a fit missing" 2 $?
contains "names the missing fit" "$t/out" "fit mae-b2-s1 has not run"
$M -n 2 "$V" finetune $common $arm_mae --fit 1 --out "$t/x" >"$t/out" 2>&1; check "--fit under 2 ranks" 2 $?
contains "says why" "$t/out" "run as one process"

# a fit that fails on rank 1 (fit 1 of 4 under 2 and 3 ranks): mpirun's exit code is the
# failure's, no rank is left, the rank and the fit are named once, and no merged file is there;
# then, each rank's exit code recorded by a wrapper that exits 0 (else mpirun ends the others
# as soon as one exits non-zero, before they can record theirs), every rank returns the same
for n in 2 3; do
  F=$t/fail$n
  mkdir -p "$F/train-mae-b2-s1.jsonl"
  $M -n $n "$V" finetune $common $arm_mae --out "$F" >"$t/out" 2>&1; check "$n ranks, fit 1 failing: exit 3" 3 $?
  none_left "$n ranks: no rank left" "$F"
  contains "$n ranks: names the rank and the fit" "$t/out" "rank 1: fit mae-b2-s1: cannot create"
  [ "$(grep -c "mae-b2-s1: cannot create" "$t/out")" = 1 ] && echo "ok: $n ranks: said once" || { echo "FAIL: $n ranks: said $(grep -c "mae-b2-s1: cannot create" "$t/out") times"; fails=$((fails + 1)); }
  [ ! -e "$F/predictions-mae.csv" ] && [ ! -e "$F/settings.json" ] && echo "ok: $n ranks: no merged file" || { echo "FAIL: $n ranks: merged files after a failure"; fails=$((fails + 1)); }
  $M -n $n sh -c '"$0" "$@"; echo "$?" >"'"$F"'/rc.$OMPI_COMM_WORLD_RANK"' \
    "$V" finetune $common $arm_mae --out "$F" >"$t/out" 2>&1; check "$n ranks under the wrapper" 0 $?
  none_left "$n ranks, wrapped: no rank left" "$F"
  rcs=$(cat "$F"/rc.* 2>/dev/null | sort | uniq -c | awk '{print $1 "x" $2}')
  [ "$rcs" = "${n}x3" ] && echo "ok: $n ranks: every rank exits 3" || { echo "FAIL: $n ranks: exit codes '$rcs'"; fails=$((fails + 1)); }
done

echo "$fails failed"
[ "$fails" -eq 0 ]
