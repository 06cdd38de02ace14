#!/usr/bin/env bash
# C 3D convolution stack (models/nn3d.h) vs the same stack in PyTorch: training steps at 1 and 2 threads
# The stack is tests/conv_stack.h and the twin's Stack (tests/fixtures/nn3d_twin.py): batch 8 of
# 32^3 one-channel crops -> conv3 s2 (1->16) IN LReLU -> conv3 (16->16) IN LReLU -> conv3 s2
# (16->32) IN LReLU -> upsample x2 -> conv3 (48->16, after a concat with the 16-channel map) IN
# LReLU -> conv1 (16->4); loss sum(y^2) / 2; forward and backward. ROUNDS (5) interleaved rounds
# per thread count, the side going first alternating; each run reports the median of STEPS (10)
# steps after WARMUP (2); the figure is the median over the rounds (wall time; CPU time of all
# threads beside it, which a loaded machine disturbs less). Both sides run with
# OMP_WAIT_POLICY=${WAIT:-passive} (spinning threads on a shared machine steal from the other
# side). The load average is printed before and after: other work may be running.
# DEPTH=1 (with e.g. SIZE=128) times the same stack on radiographs stored as one-slice volumes:
# batch of 1 x SIZE x SIZE, strides and upsampling (1, 2, 2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin="$VESALIUS_BUILD/bench/bench_conv"
twin="$root/tests/fixtures/nn3d_twin.py"
[ -x "$bin" ] || { echo "bench conv: $bin not built; run 'make' first" >&2; exit 3; }
/usr/bin/python3 -c "import torch" 2>/dev/null ||
  { echo "bench conv: python3-torch is missing (it is in the Makefile's PACKAGES)" >&2; exit 3; }
rounds=${ROUNDS:-5} steps=${STEPS:-10} warmup=${WARMUP:-2} batch=${BATCH:-8} size=${SIZE:-32}
depth=${DEPTH:-$size}
export OMP_WAIT_POLICY=${WAIT:-passive}
num() { sed -n "s/.*\"$1\": *\([0-9.e+-]*\).*/\1/p"; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
load0=$(load)
echo "load average before: $load0; batch $batch of ${depth}x${size}x${size}, $rounds rounds of $steps steps, OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
echo "$(/usr/bin/python3 "$twin" --bench --threads 1 --steps 1 --warmup 0 --batch 1 --size 8 |
  sed 's/.*"torch": "\([^"]*\)".*"mkldnn": \([a-z]*\).*/twin: torch \1, oneDNN (mkldnn) \2/')"
printf '%-8s %11s %11s %11s %11s %8s %11s %11s %8s\n' threads C_s/step twin_s/step C_samp/s \
  twin_samp/s C_speed C_cpu_s twin_cpu_s C_cpu
head=""
for t in 1 2; do
  c_runs="" p_runs="" c_cpu="" p_cpu=""
  for round in $(seq "$rounds"); do
    for side in $([ $((round % 2)) = 1 ] && echo "c twin" || echo "twin c"); do
      if [ "$side" = c ]; then
        out=$("$bin" "$t" "$steps" "$warmup" "$batch" "$size" "$depth")
        c_runs="$c_runs $(echo "$out" | num step_s_median)" c_cpu="$c_cpu $(echo "$out" | num cpu_s_median)"
      else
        out=$(/usr/bin/python3 "$twin" --bench --threads "$t" --steps "$steps" --warmup "$warmup" \
              --batch "$batch" --size "$size" --depth "$depth")
        p_runs="$p_runs $(echo "$out" | num step_s_median)" p_cpu="$p_cpu $(echo "$out" | num cpu_s_median)"
      fi
    done
  done
  med() { echo "$1" | tr ' ' '\n' | grep . | median; }
  c=$(med "$c_runs") p=$(med "$p_runs") cc=$(med "$c_cpu") pc=$(med "$p_cpu")
  ratio=$(awk -v a="$p" -v b="$c" 'BEGIN{printf "%.2f", a / b}')
  cpu_ratio=$(awk -v a="$pc" -v b="$cc" 'BEGIN{printf "%.2f", a / b}')
  csps=$(awk -v b="$batch" -v s="$c" 'BEGIN{printf "%.1f", b / s}')
  psps=$(awk -v b="$batch" -v s="$p" 'BEGIN{printf "%.1f", b / s}')
  printf '%-8s %11.4f %11.4f %11s %11s %7sx %11.4f %11.4f %7sx\n' "$t" "$c" "$p" "$csps" "$psps" \
    "$ratio" "$cc" "$pc" "$cpu_ratio"
  echo "         (wall per round, C:$c_runs; twin:$p_runs)"
  head="$head${head:+; }$csps samples/s = ${ratio}x PyTorch at $t thread$([ "$t" = 1 ] || echo s) (CPU ${cpu_ratio}x)"
done
echo "load average after: $(load)"
echo "C_speed = twin time / C time (> 1: C faster); C_cpu the same for CPU seconds per step, all threads"
echo "conv (${depth}x${size}x${size}): C $head; load $load0 before"
