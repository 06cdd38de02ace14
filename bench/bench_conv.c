/* bench_conv — training-step time of a small 3D U-Net stage in C (tests/conv_stack.h over
 * models/nn3d.h), the measurement bench/conv.sh compares with the same stack in PyTorch
 * (tests/fixtures/nn3d_twin.py --bench): forward, loss sum(y^2) / 2, backward, on one fixed batch.
 * Usage: bench_conv THREADS [STEPS WARMUP BATCH SIZE DEPTH] -> one JSON line (medians over
 * STEPS). Crops are DEPTH x SIZE x SIZE (DEPTH default SIZE; 1: the radiograph stack). */
#include "bench_time.h"
#include "conv_stack.h"
#include "nn.h"
#include "progress.h"
#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_conv THREADS [STEPS WARMUP BATCH SIZE DEPTH]\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    int steps = argc > 2 ? atoi(argv[2]) : 10, warmup = argc > 3 ? atoi(argv[3]) : 2;
    int B = argc > 4 ? atoi(argv[4]) : 8, S = argc > 5 ? atoi(argv[5]) : 32;
    int Z = argc > 6 ? atoi(argv[6]) : S;
    if (threads < 1 || threads > 256 || steps < 1 || steps > 100000 || warmup < 0) {
        fprintf(stderr, "bench_conv: bad arguments\n");
        return 2;
    }
    nn_set_threads(threads);
    conv_stack st;
    if (conv_stack_init(&st, B, Z, S, 16, 32, threads, 0) != 0) {
        fprintf(stderr, "bench_conv: batch %d of %dx%dx%d crops: bad size or out of memory\n", B, Z,
                S, S);
        return 1;
    }
    size_t nx = (size_t)B * Z * S * S;
    float *x = malloc(nx * sizeof *x);
    double *wall = malloc((size_t)steps * sizeof *wall), *cpu = malloc((size_t)steps * sizeof *cpu);
    if (!x || !wall || !cpu) {
        fprintf(stderr, "bench_conv: out of memory\n");
        return 1;
    }
    rng r;
    rng_seed(&r, 1, 0);
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)rng_normal(&r);
    double loss = 0.0;
    for (int s = 0; s < warmup + steps; s++) {
        double t = progress_now(), c = bench_cpu_now();
        loss = conv_stack_step(&st, x);
        if (s >= warmup)
            wall[s - warmup] = progress_now() - t, cpu[s - warmup] = bench_cpu_now() - c;
    }
    double med = bench_median(wall, steps), cpu_med = bench_median(cpu, steps);
    printf("{\"threads\":%d,\"batch\":%d,\"depth\":%d,\"size\":%d,\"params\":%zu,"
           "\"step_s_median\":%.5f,\"samples_per_s\":%.3f,\"gflops_per_s\":%.2f,"
           "\"cpu_s_median\":%.5f,\"loss\":%.6e}\n",
           threads, B, Z, S, st.n_params, med, B / med, conv_stack_flops(&st) / med / 1e9, cpu_med,
           loss);
    conv_stack_free(&st);
    free(x), free(wall), free(cpu);
    return 0;
}
