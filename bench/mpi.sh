#!/usr/bin/env bash
# Data-parallel pretraining under mpirun: the default MAE at one global batch as 1x1, 2x1 and 1x2 ranks x threads (samples/s, gradient-sum time); ingest as 1 process and 3 ranks
# The default model (96^3 crops, patch 16, dim 192, depth 6) on synthetic volumes, global batch
# 8 as 2 micro-batches of 4 in every configuration (so each does the same arithmetic per
# sample): 1 process x 1 thread, 2 ranks x 1 thread (mpirun --bind-to none), 1 process x 2
# threads. STEPS (default 12) logged steps after 2 warm-up steps, median samples/s and median
# gradient-sum time per update (2x1 only); ROUNDS (default 3) interleaved rounds, the median of
# the rounds' medians kept. On a 2-core machine this measures the overhead of ranks against
# threads, not a speed-up: floors, 2x1 within 15% of 1x2's samples/s and the gradient sum under
# 5% of a 2x1 step. The machine may be shared: the load average is printed before and after.
# Ingest: a demo cohort (INGEST_SERIES, default 16 CT and MR series of 128x128 x 40-64 slices,
# 2 radiographs, standard preprocessing) into fresh folders by 1 process x 1 thread (its
# producer thread and writer overlap) and by 3 ranks x 1 thread under mpirun (rank 0 writes,
# 2 workers produce), interleaved over ROUNDS, median wall time (mpirun's start-up included)
# and volumes/s; the shards of both are checked byte-identical. PARTS (default "pretrain
# ingest") chooses what runs.
set -euo pipefail
V="$VESALIUS_BUILD/vesalius"
steps=${STEPS:-12}
rounds=${ROUNDS:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
command -v mpirun >/dev/null || { echo "bench mpi: mpirun is not installed (openmpi-bin)" >&2; exit 3; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
model="--synthetic 4 --batch 4 --accum 2 --steps $((steps + 2)) --warmup 2 --log-every 1 --log-json --checkpoint-every 0 --seed 5"
run() { # NAME: one run, its JSON log in $t/NAME.log
  rm -rf "$t/out"
  case $1 in
    1x1) "$V" pretrain $model -j 1 --out "$t/out" 2>"$t/$1.log" ;;
    2x1) mpirun --oversubscribe --bind-to none -np 2 "$V" pretrain $model -j 1 --out "$t/out" 2>"$t/$1.log" ;;
    1x2) "$V" pretrain $model -j 2 --out "$t/out" 2>"$t/$1.log" ;;
  esac
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
field() { grep '"pretrain.step"' "$2" | tail -n +3 | sed -n "s/.*\"$1\":\"\([0-9.e+-]*\)\".*/\1/p"; }
parts=${PARTS:-pretrain ingest}
echo "load before: $(uptime | sed 's/.*load average/load average/')"
headline=""
if [[ " $parts " == *" ingest "* ]]; then
  nser=${INGEST_SERIES:-16}
  "$V" demo-cohort --out "$t/cohort" --unlabeled "$nser" --labeled 0 --radiographs 2 --matrix 128 --slices 40:64 --seed 3 >/dev/null 2>&1
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$t/site.key" && chmod 600 "$t/site.key"
  for r in $(seq "$rounds"); do
    order="1 3"; [ $((r % 2)) = 0 ] && order="3 1"
    for n in $order; do
      rm -rf "$t/ing$n"; cat "$t"/cohort/dicom/*/*/* >/dev/null; sync
      t0=$EPOCHREALTIME
      if [ "$n" = 1 ]; then "$V" ingest "$t/cohort/dicom" --out "$t/ing1" --key "$t/site.key" -j 1 2>"$t/ing1.log"
      else mpirun --oversubscribe --bind-to none -np 3 "$V" ingest "$t/cohort/dicom" --out "$t/ing3" --key "$t/site.key" -j 1 2>"$t/ing3.log"; fi
      awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f\n", b - a}' >>"$t/ing$n.s"
    done
    for f in "$t"/ing1/shards/*.h5; do cmp -s "$f" "$t/ing3/shards/$(basename "$f")" || { echo "bench mpi: 3-rank shards differ from one process's" >&2; exit 1; }; done
  done
  nvol=$(sqlite3 "$t/ing1/catalog.sqlite" "SELECT count(*) FROM volumes")
  mb=$(du -sm "$t/cohort/dicom" | cut -f1)
  i1=$(median <"$t/ing1.s"); i3=$(median <"$t/ing3.s")
  printf '%-16s %8s %10s\n' ingest wall_s volumes/s
  printf '%-16s %8.2f %10.2f\n' "1 process" "$i1" "$(awk -v n="$nvol" -v s="$i1" 'BEGIN{print n / s}')"
  printf '%-16s %8.2f %10.2f\n' "3 ranks" "$i3" "$(awk -v n="$nvol" -v s="$i3" 'BEGIN{print n / s}')"
  headline="ingest of $nvol volumes ($mb MB of DICOM): 3 ranks ${i3} s = $(awk -v a="$i1" -v b="$i3" 'BEGIN{printf "%.2f", a / b}')x one process's speed (${i1} s), shards identical"
fi
if [[ " $parts " != *" pretrain "* ]]; then
  echo "load after: $(uptime | sed 's/.*load average/load average/')"
  echo "mpi: $headline"
  exit 0
fi
for r in $(seq "$rounds"); do
  order="1x1 2x1 1x2"; [ $((r % 2)) = 0 ] && order="1x2 2x1 1x1"
  for c in $order; do
    run "$c"
    field samples_per_s "$t/$c.log" | median >>"$t/$c.sps"
    field reduce_ms "$t/$c.log" | median >>"$t/$c.red"
  done
done
params=$(sed -n 's/.*"pretraining \([0-9]*\) parameters.*/\1/p' "$t/1x1.log" | head -1)
printf '%-8s %10s %12s %12s\n' config samples/s step_ms sum_ms
for c in 1x1 2x1 1x2; do
  sps=$(median <"$t/$c.sps"); red=$(median <"$t/$c.red")
  printf '%-8s %10.2f %12.1f %12.2f\n' "$c" "$sps" "$(awk -v s="$sps" 'BEGIN{print 8000 / s}')" "$red"
done
s21=$(median <"$t/2x1.sps"); s12=$(median <"$t/1x2.sps"); s11=$(median <"$t/1x1.sps"); red=$(median <"$t/2x1.red")
ratio=$(awk -v a="$s21" -v b="$s12" 'BEGIN{printf "%.3f", a / b}')
frac=$(awk -v r="$red" -v s="$s21" 'BEGIN{printf "%.2f", 100 * r / (8000 / s)}')
echo "gradient: $params parameters, $((params * 4 / 1048576)) MiB summed per update (each rank moves 2(R-1)/R of it)"
echo "load after: $(uptime | sed 's/.*load average/load average/')"
awk -v r="$ratio" 'BEGIN{exit !(r >= 0.85)}' && echo "floor: 2x1 within 15% of 1x2: ok" || echo "floor: 2x1 within 15% of 1x2: MISSED"
awk -v f="$frac" 'BEGIN{exit !(f < 5)}' && echo "floor: gradient sum under 5% of a step: ok" || echo "floor: gradient sum under 5% of a step: MISSED"
echo "mpi: 2 ranks x 1 thread $s21 samples/s = ${ratio}x 1 rank x 2 threads ($s12; 1x1 $s11); gradient sum ${red} ms = ${frac}% of a 2-rank step${headline:+; $headline}"
