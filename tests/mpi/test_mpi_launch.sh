#!/usr/bin/env bash
# test_mpi_launch — how vesalius meets a launcher (pipeline/dist.h): processes that cannot see
# each other are an environment error on each (exit 3) before anything is written, whether
# srun gave them no MPI wire-up or a launcher of another MPI started them (here: MPICH's PMI
# variables, under which Open MPI starts alone); --distributed off runs one process whatever
# the environment says; a command that runs as one process refuses a launcher of several
# (exit 2, said by rank 0 alone) and runs under --distributed off; a bad --distributed value is
# a usage error.
set -u
. "$(dirname "$0")/mpi_env.sh"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
tiny="--synthetic 2 --crop 8,8,8 --patch 4 --dim 12 --depth 1 --heads 2 --dec-dim 12 --dec-depth 1 --dec-heads 2 --batch 2 --steps 2 -j 1"

SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=1 "$V" pretrain $tiny --out "$t/srun" >"$t/out" 2>&1; check "srun without MPI wire-up" 3 $?
contains "says they cannot see each other" "$t/out" "srun started 2 processes but gave them no MPI wire-up"
contains "says how to launch" "$t/out" "srun --mpi=pmix"
[ ! -e "$t/srun" ] && echo "ok: nothing written" || { echo "FAIL: $t/srun written"; fails=$((fails + 1)); }

PMI_SIZE=2 PMI_RANK=0 "$V" pretrain $tiny --out "$t/pmi" >"$t/out" 2>&1; check "a launcher of another MPI" 3 $?
contains "says MPI sees one" "$t/out" "PMI started 2 processes, but MPI sees 1: they do not see each other"
[ ! -e "$t/pmi" ] && echo "ok: nothing written" || { echo "FAIL: $t/pmi written"; fails=$((fails + 1)); }
PMI_SIZE=2 PMI_RANK=0 "$V" --distributed off pretrain $tiny --out "$t/off" >"$t/out" 2>&1; check "--distributed off: one process" 0 $?
"$V" pretrain $tiny --out "$t/plain" >/dev/null 2>&1; check "no launcher" 0 $?
same "--distributed off = no launcher" "$t/off/checkpoint.ckpt" "$t/plain/checkpoint.ckpt"
SLURM_STEP_NUM_TASKS=1 SLURM_PROCID=0 "$V" pretrain $tiny --out "$t/srun1" >/dev/null 2>&1; check "srun -n 1 without wire-up: one process" 0 $?

"$V" demo-cohort --out "$t/c" --unlabeled 1 --labeled 0 --radiographs 0 --matrix 16 --slices 4:4 --seed 1 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
$M -np 2 "$V" inspect "$t/c/dicom" >"$t/out" 2>&1; check "a one-process command under 2 ranks" 2 $?
contains "says it runs as one process" "$t/out" "vesalius inspect runs as one process, but mpirun (Open MPI) started 2"
[ "$(grep -c 'runs as one process' "$t/out")" = 1 ] && echo "ok: said once" || { echo "FAIL: said $(grep -c 'runs as one process' "$t/out") times"; fails=$((fails + 1)); }
$M -np 2 "$V" --distributed off inspect "$t/c/dicom" >"$t/out" 2>&1; check "--distributed off: 2 independent copies" 0 $?
[ "$(grep -c '^files:' "$t/out")" = 2 ] && echo "ok: each copy ran" || { echo "FAIL: copies' output:"; head "$t/out"; fails=$((fails + 1)); }
"$V" pretrain $tiny --distributed maybe --out "$t/x" >"$t/out" 2>&1; check "--distributed maybe" 2 $?
contains "names the values" "$t/out" "--distributed wants auto or off"

echo "$fails failed"
[ "$fails" -eq 0 ]
