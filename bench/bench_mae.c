/* bench_mae — training throughput of the C MAE on one fixed batch (fresh masks every step),
 * the measurement bench/mae.sh compares with the PyTorch twin.
 * Usage: bench_mae THREADS [STEPS WARMUP BATCH SIZE PATCH] -> one JSON line. */
#include "adamw.h"
#include "bench_time.h"
#include "mae.h"
#include "nn.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_mae THREADS [STEPS WARMUP BATCH SIZE PATCH]\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    int steps = argc > 2 ? atoi(argv[2]) : 20, warmup = argc > 3 ? atoi(argv[3]) : 3;
    mae_config cfg;
    mae_config_default(&cfg);
    if (argc > 4) cfg.batch = atoi(argv[4]);
    for (int a = 0; a < 3; a++) {
        if (argc > 5) cfg.crop[a] = atoi(argv[5]);
        if (argc > 6) cfg.patch[a] = atoi(argv[6]);
    }
    if (threads < 1 || steps < 1 || warmup < 0) {
        fprintf(stderr, "bench_mae: bad arguments\n");
        return 2;
    }
    nn_set_threads(threads);
    vs_error err;
    mae *m = NULL;
    if (mae_create(&m, &cfg, &err) != VS_OK) {
        fprintf(stderr, "bench_mae: %s\n", err.msg);
        return 1;
    }
    rng r;
    rng_seed(&r, 0, 0);
    mae_init_weights(m, &r);
    adamw_config oc;
    adamw_config_default(&oc);
    adamw_segment seg = {0, mae_n_params(m), 0};
    adamw opt;
    size_t nvox = mae_crop_voxels(&cfg) * (size_t)cfg.batch;
    float *img = malloc(nvox * sizeof *img);
    int32_t *ids = malloc((size_t)cfg.batch * mae_n_keep(&cfg) * sizeof *ids);
    double *times = malloc((size_t)steps * sizeof *times);
    double *cpu = malloc((size_t)steps * sizeof *cpu);
    if (!img || !ids || !times || !cpu ||
        adamw_init(&opt, &oc, mae_n_params(m), &seg, 1, &err) != VS_OK) {
        fprintf(stderr, "bench_mae: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nvox; i++)
        img[i] = (float)rng_normal(&r);
    float loss = 0.0f;
    for (int s = 0; s < warmup + steps; s++) {
        double t = progress_now(), c0 = bench_cpu_now();
        mae_sample_mask(m, &r, ids, &err);
        mae_zero_grad(m);
        mae_forward(m, img, ids, &loss, &err);
        mae_backward(m);
        adamw_update(&opt, mae_params(m), mae_grads(m), 1, 0, NULL);
        if (s >= warmup) {
            times[s - warmup] = progress_now() - t;
            cpu[s - warmup] = bench_cpu_now() - c0;
        }
    }
    double med = bench_median(times, steps), cpu_med = bench_median(cpu, steps);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double flops = mae_train_flops_per_sample(&cfg);
    size_t state = 4 * mae_n_params(m) * sizeof(float); /* params, grads, two moments */
    size_t acts = mae_activation_bytes(m) + nvox * sizeof(float);
    printf("{\"threads\":%d,\"batch\":%d,\"size\":%d,\"patch\":%d,\"params\":%zu,"
           "\"step_s_median\":%.5f,\"samples_per_s\":%.3f,\"flops_per_sample\":%.0f,"
           "\"gflops_per_s\":%.2f,\"state_bytes\":%zu,\"activation_bytes\":%zu,"
           "\"peak_rss_bytes\":%ld,\"cpu_s_median\":%.5f,\"samples_per_cpu_s\":%.3f,"
           "\"loss\":%.5f}\n",
           threads, cfg.batch, cfg.crop[2], cfg.patch[2], mae_n_params(m), med, cfg.batch / med,
           flops, flops * cfg.batch / med / 1e9, state, acts, ru.ru_maxrss * 1024L, cpu_med,
           cfg.batch / cpu_med, loss);
    adamw_free(&opt);
    mae_destroy(m);
    free(img), free(ids), free(times), free(cpu);
    return 0;
}
