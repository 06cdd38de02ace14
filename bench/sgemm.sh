#!/usr/bin/env bash
# OpenBLAS cblas_sgemm GFLOP/s (vesalius's BLAS) vs numpy's matmul, at 1 and 2 threads
set -euo pipefail
b="$VESALIUS_BUILD/bench/bench_sgemm"
n=${N:-2048}
printf '%-8s %-8s %12s %12s %8s\n' threads size vesalius numpy ratio
head=""
for t in 1 2; do
  ours=$("$b" "$n" "$t" 5 | sed 's/.*"gflops":\([0-9.]*\).*/\1/')
  peer=$(OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t /usr/bin/python3 - "$n" <<'PY'
import sys, time, numpy as np
n = int(sys.argv[1]); rng = np.random.default_rng(1)
a = rng.random((n, n), dtype=np.float32) - 0.5; b = rng.random((n, n), dtype=np.float32) - 0.5
a @ b; best = 1e30
for _ in range(5):
    t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
print("%.2f" % (2.0 * n ** 3 / best / 1e9))
PY
)
  ratio=$(awk -v a="$ours" -v b="$peer" 'BEGIN{printf "%.2f", a/b}')
  printf '%-8s %-8s %12s %12s %8s\n' "$t" "$n" "$ours GF/s" "$peer GF/s" "${ratio}x"
  head="$head${head:+, }${ours} GF/s (${ratio}x numpy) at $t thread$([ "$t" = 1 ] || echo s)"
done
echo "sgemm: $head"
