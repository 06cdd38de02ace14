/* bench_shard — shard write throughput and random crop reads, for bench/shards.sh.
 *   bench_shard gen RAW NZ NY NX            synthetic CT (int16) → raw file, for both sides
 *   bench_shard write DIR RAW NZ NY NX T    seal one shard (chunk 64³, shuffle+deflate 4,
 *                                           fletcher32, fsync) with T filter threads;
 *                                           prints {"seconds":…,"mb_s":…}
 *   bench_shard crops DIR N EDGE DEPTH      N random EDGE³ crops (DEPTH>0: prefetch stream);
 *                                           prints {"crops_s":…} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shard.h"
#include "synth.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const vs_error *err) {
    fprintf(stderr, "bench_shard: %s\n", err->msg);
    return 1;
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
    if (argc == 8 && strcmp(argv[1], "write") == 0) {
        volume v;
        /* geometry and keys from the generator, voxels from the raw file */
        if (synth_ct(&v, 1, 1, 1, 1, "bench-ct", &err)) return fail(&err);
        volume_free(&v);
        if (volume_alloc(&v, atoll(argv[4]), atoll(argv[5]), atoll(argv[6]), VOL_INT16, 0, &err))
            return fail(&err);
        FILE *f = fopen(argv[3], "rb");
        size_t n = volume_n_voxels(&v);
        if (!f || fread(v.voxels, 2, n, f) != n) return 1;
        fclose(f);
        shard_options o;
        shard_options_default(&o);
        o.threads = atoi(argv[7]);
        shard_writer *w = NULL;
        double t0 = now();
        if (shard_writer_open(argv[2], 1, &o, &w, &err) ||
            shard_writer_add(w, &v, NULL, NULL, &err) || shard_writer_seal(w, &err))
            return fail(&err);
        double s = now() - t0;
        printf("{\"seconds\":%.3f,\"mb_s\":%.1f}\n", s, (double)n * 2 / 1e6 / s);
        volume_free(&v);
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "crops") == 0) {
        int n = atoi(argv[3]), e = atoi(argv[4]), depth = atoi(argv[5]);
        int size[3] = {e, e, e};
        shard_set *s = NULL;
        if (shard_set_open(argv[2], NULL, &s, &err)) return fail(&err);
        float *buf = malloc((size_t)e * e * e * sizeof *buf);
        shard_stream *st = NULL;
        if (shard_stream_open(s, 7, size, 0.0f, depth, depth ? 2 : 1, &st, &err)) return fail(&err);
        double t0 = now();
        for (int i = 0; i < n; i++)
            if (shard_stream_next(st, buf, NULL, &err)) return fail(&err);
        double secs = now() - t0;
        printf("{\"crops_s\":%.1f}\n", n / secs);
        shard_stream_close(st);
        shard_set_close(s);
        free(buf);
        return 0;
    }
    fprintf(stderr, "usage: bench_shard gen|write|crops ...\n");
    return 2;
}
