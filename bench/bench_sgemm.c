/* bench_sgemm — cblas_sgemm throughput (GFLOP/s) for an n x n x n product at the current
 * OpenBLAS thread count. Used by bench/run sgemm and as the peak for bench/run mae.
 * Usage: bench_sgemm N THREADS REPEATS  -> prints one JSON line. */
#include "blas.h"
#include "progress.h"
#include "rng.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench_sgemm N THREADS REPEATS\n");
        return 2;
    }
    int n = atoi(argv[1]), threads = atoi(argv[2]), reps = atoi(argv[3]);
    if (n < 1 || n > 16384 || threads < 1 || reps < 1) {
        fprintf(stderr, "bench_sgemm: bad arguments\n");
        return 2;
    }
    blas_set_threads(threads);
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        return 1;
    }
    rng r;
    rng_seed(&r, 1, 0);
    for (size_t i = 0; i < nn; i++) {
        a[i] = rng_float(&r) - 0.5f;
        b[i] = rng_float(&r) - 0.5f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = progress_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        double dt = progress_now() - t0;
        if (dt < best) best = dt;
    }
    double gflops = 2.0 * (double)n * (double)n * (double)n / best / 1e9;
    printf("{\"n\":%d,\"threads\":%d,\"seconds\":%.6f,\"gflops\":%.2f}\n", n, threads, best,
           gflops);
    free(a);
    free(b);
    free(c);
    return 0;
}
