/* bench_shard — shard write throughput and random crop reads, for bench/shards.sh.
 *   bench_shard gen RAW NZ NY NX            synthetic CT (int16) → raw file, for both sides
 *   bench_shard write DIR RAW NZ NY NX T C [L]  seal one shard (chunk C³, shuffle+deflate
 *                                           L (default: the writer's, 1; 0: none), fletcher32,
 * fsync) with T filter threads; prints the best of 3 {"seconds":…,"mb_s":…} bench_shard crops DIR N
 * EDGE DEPTH [MB [RT [W R]]]  N random EDGE³ crops (DEPTH>0: prefetch stream, 2 threads; MB:
 * decompressed-chunk cache, 0 none; RT: threads inflating one crop, default 1; W R: working set of
 * W volumes swapped every R crops, after a warm-up of W*R crops); prints
 * {"crops_s":…,"cpu_ms":…,"hit":…}: cpu_ms is process CPU per crop, hit the cache hit rate
 *   bench_shard writeset DIR RAW NZ NY NX T C K  K volumes in one shard, each the raw voxels
 *                                           + its index (distinct data, same compressibility) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "shard.h"
#include "synth.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_now(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec +
           (double)u.ru_stime.tv_sec + 1e-6 * (double)u.ru_stime.tv_usec;
}

static int fail(const vs_error *err) {
    fprintf(stderr, "bench_shard: %s\n", err->msg);
    return 1;
}

/* write/writeset's common arguments: the volume (geometry and keys from the generator,
 * voxels from RAW NZ NY NX at argv[3..6]) and the options (T filter threads, chunk C). */
static vs_status load_raw(char **argv, volume *v, shard_options *o, vs_error *err) {
    vs_status st = synth_ct(v, 1, 1, 1, 1, "bench-ct", err);
    if (st) return st;
    volume_free(v);
    if ((st = volume_alloc(v, atoll(argv[4]), atoll(argv[5]), atoll(argv[6]), VOL_INT16, 0, err)))
        return st;
    FILE *f = fopen(argv[3], "rb");
    size_t n = volume_n_voxels(v);
    int ok = f && fread(v->voxels, 2, n, f) == n;
    if (f) fclose(f);
    if (!ok) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read %zu voxels", argv[3], n);
    shard_options_default(o);
    o->threads = atoi(argv[7]);
    o->chunk[0] = o->chunk[1] = o->chunk[2] = atoi(argv[8]);
    return VS_OK;
}

int main(int argc, char **argv) {
    vs_error err;
    if (argc == 6 && strcmp(argv[1], "gen") == 0) {
        volume v;
        if (synth_ct(&v, atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), 1, "bench-ct", &err))
            return fail(&err);
        FILE *f = fopen(argv[2], "wb");
        size_t n = volume_n_voxels(&v);
        if (!f || fwrite(v.voxels, 2, n, f) != n || fclose(f) != 0) return 1;
        volume_free(&v);
        return 0;
    }
    if ((argc == 9 || argc == 10) && strcmp(argv[1], "write") == 0) {
        volume v;
        shard_options o;
        if (load_raw(argv, &v, &o, &err)) return fail(&err);
        size_t n = volume_n_voxels(&v);
        if (argc == 10) o.deflate_level = atoi(argv[9]);
        double best = 1e30; /* best of 3: the machine is shared */
        for (int rep = 0; rep < 3; rep++) {
            shard_writer *w = NULL;
            double t0 = now();
            if (shard_writer_open(argv[2], 1, &o, &w, &err) ||
                shard_writer_add(w, &v, NULL, NULL, &err) || shard_writer_seal(w, &err))
                return fail(&err);
            double s = now() - t0;
            if (s < best) best = s;
        }
        printf("{\"seconds\":%.3f,\"mb_s\":%.1f}\n", best, (double)n * 2 / 1e6 / best);
        volume_free(&v);
        return 0;
    }
    if (argc == 10 && strcmp(argv[1], "writeset") == 0) {
        volume v;
        shard_options o;
        if (load_raw(argv, &v, &o, &err)) return fail(&err);
        size_t n = volume_n_voxels(&v);
        shard_writer *w = NULL;
        if (shard_writer_open(argv[2], 1, &o, &w, &err)) return fail(&err);
        int16_t *vox = v.voxels;
        for (int k = 0; k < atoi(argv[9]); k++) {
            snprintf(v.series_key, sizeof v.series_key, "bench-ct-%d", k);
            if (k)
                for (size_t i = 0; i < n; i++)
                    vox[i]++;
            if (shard_writer_add(w, &v, NULL, NULL, &err)) return fail(&err);
        }
        if (shard_writer_seal(w, &err)) return fail(&err);
        volume_free(&v);
        return 0;
    }
    if (((argc >= 6 && argc <= 8) || argc == 10) && strcmp(argv[1], "crops") == 0) {
        int n = atoi(argv[3]), e = atoi(argv[4]), depth = atoi(argv[5]);
        int size[3] = {e, e, e};
        shard_working_set ws = {argc == 10 ? atoi(argv[8]) : 0, argc == 10 ? atoi(argv[9]) : 0};
        shard_set *s = NULL;
        if (shard_set_open(argv[2], NULL, &s, &err)) return fail(&err);
        if (argc >= 7 && shard_set_cache(s, (size_t)atoll(argv[6]) << 20, &err)) return fail(&err);
        if (argc >= 8) shard_set_read_threads(s, atoi(argv[7]));
        float *buf = malloc((size_t)e * e * e * sizeof *buf);
        shard_stream *st = NULL;
        if (shard_stream_open(s, 7, size, 0.0f, &ws, depth, depth ? 2 : 1, &st, &err))
            return fail(&err);
        /* the working set's first window is cold: run it through once before timing */
        for (long i = 0; i < (long)ws.volumes * ws.swap_every; i++)
            if (shard_stream_next(st, buf, NULL, &err)) return fail(&err);
        uint64_t h0, m0, h1, m1;
        shard_set_cache_stats(s, &h0, &m0);
        double best = 1e30, best_cpu = 0; /* best of 3 rounds of n crops */
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now(), c0 = cpu_now();
            for (int i = 0; i < n; i++)
                if (shard_stream_next(st, buf, NULL, &err)) return fail(&err);
            double secs = now() - t0;
            if (secs < best) best = secs, best_cpu = cpu_now() - c0;
        }
        shard_set_cache_stats(s, &h1, &m1);
        double hit = h1 + m1 > h0 + m0 ? (double)(h1 - h0) / (double)(h1 - h0 + m1 - m0) : 0;
        printf("{\"crops_s\":%.1f,\"cpu_ms\":%.2f,\"hit\":%.3f}\n", n / best, 1e3 * best_cpu / n,
               hit);
        shard_stream_close(st);
        shard_set_close(s);
        free(buf);
        return 0;
    }
    fprintf(stderr, "usage: bench_shard gen|write|writeset|crops ...\n");
    return 2;
}
