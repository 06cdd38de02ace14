/* test_shard_sample — the working-set sampler (shard_sample.c) and the crop stream over it:
 * windows against the definition written out naively (concatenated seeded permutations, a
 * window of W sliding by one every R crops), pure in (seed, n) whatever the order of calls;
 * the stream gives the same crops with 3 prefetch threads as synchronously and after seeks;
 * every volume is visited within (N + W - 1) * R crops; the chunk cache hits far more often
 * under the sampler than under uniform draws over an archive bigger than the cache, and
 * crops are bit-identical with and without the cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shard.h"
#include "synth.h"

#define N_VOLS 12
#define VOL_Z 24
#define VOL_Y 64
#define VOL_X 64

static char g_root[256];
static const int g_crop[3] = {8, 24, 24};
#define CROP_FLOATS (8 * 24 * 24)

/* e_k by the definition: permutation q = Fisher-Yates with rng_seed(seed + SALT, q). */
static int naive_entry(uint64_t seed, int n_vol, uint64_t k) {
    uint32_t perm[64];
    for (int v = 0; v < n_vol; v++)
        perm[v] = (uint32_t)v;
    rng r;
    rng_seed(&r, seed + 0x9E3779B97F4A7C15ull, k / (uint64_t)n_vol);
    rng_shuffle_u32(&r, perm, (uint32_t)n_vol);
    return (int)perm[k % (uint64_t)n_vol];
}

static void test_windows_follow_the_definition(void **state) {
    (void)state;
    enum { N = 11, W = 3, R = 5 };
    shard_working_set ws = {W, R};
    shard_sampler *a = NULL, *b = NULL;
    vs_error err;
    assert_int_equal(shard_sampler_create(N, 42, &ws, &a, &err), VS_OK);
    assert_int_equal(shard_sampler_create(N, 42, &ws, &b, &err), VS_OK);
    int win[W], other[W];
    uint64_t total = 4 * N * R; /* four epochs */
    for (uint64_t n = 0; n < total; n++) {
        assert_int_equal(shard_sampler_window(a, n, win), W);
        for (int j = 0; j < W; j++) /* window of phase n / R: e_k .. e_{k+W-1} */
            assert_int_equal(win[j], naive_entry(42, N, n / R + (uint64_t)j));
        /* the same window asked out of order, from a sampler whose cache saw other epochs */
        uint64_t m = (n * 7919u) % total;
        assert_int_equal(shard_sampler_window(b, m, other), W);
        for (int j = 0; j < W; j++)
            assert_int_equal(other[j], naive_entry(42, N, m / R + (uint64_t)j));
    }
    /* every volume enters exactly once per epoch of N phases */
    for (int q = 0; q < 4; q++) {
        int seen[N] = {0};
        for (int k = 0; k < N; k++) { /* e_k is the first volume of phase k's window */
            assert_int_equal(shard_sampler_window(a, (uint64_t)(q * N + k) * R, win), W);
            seen[win[0]]++;
        }
        for (int v = 0; v < N; v++)
            assert_int_equal(seen[v], 1);
    }
    /* another seed, another order */
    shard_sampler *c = NULL;
    assert_int_equal(shard_sampler_create(N, 43, &ws, &c, &err), VS_OK);
    int differ = 0;
    for (uint64_t k = 0; k < N; k++) {
        shard_sampler_window(a, k * R, win);
        shard_sampler_window(c, k * R, other);
        differ += win[0] != other[0];
    }
    assert_true(differ > 0);
    shard_sampler_destroy(a);
    shard_sampler_destroy(b);
    shard_sampler_destroy(c);
    /* no working set: W = 0, or W >= N; bad options are refused */
    shard_working_set none = {0, 0}, all = {N, 4}, bad_r = {3, 0},
                      big = {SHARD_WORKING_SET_MAX + 1, 1};
    assert_int_equal(shard_sampler_create(N, 1, &none, &a, &err), VS_OK);
    assert_int_equal(shard_sampler_window(a, 9, win), 0);
    shard_sampler_destroy(a);
    assert_int_equal(shard_sampler_create(N, 1, &all, &a, &err), VS_OK);
    assert_int_equal(shard_sampler_window(a, 9, win), 0);
    shard_sampler_destroy(a);
    assert_int_equal(shard_sampler_create(N, 1, &bad_r, &a, &err), VS_ERR_USAGE);
    assert_int_equal(shard_sampler_create(N, 1, &big, &a, &err), VS_ERR_USAGE);
    assert_int_equal(shard_sampler_create(0, 1, &bad_r, &a, &err), VS_ERR_USAGE);
}

/* N_VOLS CT volumes in two shards, chunks 8x16x16 (48 per volume). */
static void write_archive(const char *dir) {
    mkdir(dir, 0700);
    shard_options o;
    shard_options_default(&o);
    o.chunk[0] = 8, o.chunk[1] = 16, o.chunk[2] = 16;
    vs_error err;
    for (int sh = 0; sh < 2; sh++) {
        shard_writer *w = NULL;
        assert_int_equal(shard_writer_open(dir, (uint64_t)sh + 1, &o, &w, &err), VS_OK);
        for (int i = sh * N_VOLS / 2; i < (sh + 1) * N_VOLS / 2; i++) {
            volume v;
            char key[32];
            snprintf(key, sizeof key, "ct-%02d", i);
            assert_int_equal(synth_ct(&v, VOL_Z, VOL_Y, VOL_X, (uint64_t)i + 1, key, &err), VS_OK);
            if (shard_writer_add(w, &v, NULL, NULL, &err) != VS_OK) fail_msg("%s", err.msg);
            volume_free(&v);
        }
        assert_int_equal(shard_writer_seal(w, &err), VS_OK);
    }
}

static shard_set *open_set(size_t cache) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/archive", g_root);
    shard_set *s = NULL;
    vs_error err;
    if (shard_set_open(dir, NULL, &s, &err) != VS_OK) fail_msg("%s", err.msg);
    assert_int_equal(shard_set_count(s), N_VOLS);
    assert_int_equal(shard_set_cache(s, cache, &err), VS_OK);
    return s;
}

/* n crops of the stream over s (depth 0: synchronous), from position `from`. */
static void crops_of(shard_set *s, const shard_working_set *ws, int depth, int threads,
                     uint64_t from, int n, float *out, shard_crop_info *info) {
    shard_stream *st = NULL;
    vs_error err;
    assert_int_equal(shard_stream_open(s, 77, g_crop, -1.0f, ws, depth, threads, &st, &err), VS_OK);
    if (from) assert_int_equal(shard_stream_seek(st, from, &err), VS_OK);
    for (int i = 0; i < n; i++)
        if (shard_stream_next(st, out + (size_t)i * CROP_FLOATS, &info[i], &err) != VS_OK)
            fail_msg("%s", err.msg);
    shard_stream_close(st);
}

static void test_stream_is_pure_in_n(void **state) {
    (void)state;
    enum { W = 3, R = 16, N_CROPS = (N_VOLS + W - 1) * R };
    shard_working_set ws = {W, R};
    float *a = malloc((size_t)N_CROPS * CROP_FLOATS * sizeof *a);
    float *b = malloc((size_t)N_CROPS * CROP_FLOATS * sizeof *b);
    shard_crop_info ia[N_CROPS], ib[N_CROPS];
    shard_set *s1 = open_set(0), *s2 = open_set(0), *s3 = open_set(0);
    crops_of(s1, &ws, 0, 1, 0, N_CROPS, a, ia); /* synchronous */
    crops_of(s2, &ws, 6, 3, 0, N_CROPS, b, ib); /* 3 prefetch threads */
    assert_memory_equal(ia, ib, sizeof ia);
    assert_memory_equal(a, b, (size_t)N_CROPS * CROP_FLOATS * sizeof *a);
    /* crop n comes from the window of n, and is shard_set_crop_from with rng (77, n) */
    shard_sampler *smp = NULL;
    vs_error err;
    assert_int_equal(shard_sampler_create(N_VOLS, 77, &ws, &smp, &err), VS_OK);
    float *c = malloc(CROP_FLOATS * sizeof *c);
    int visits[N_VOLS] = {0};
    for (int n = 0; n < N_CROPS; n++) {
        int win[W], in = 0;
        assert_int_equal(shard_sampler_window(smp, (uint64_t)n, win), W);
        for (int j = 0; j < W; j++)
            in |= win[j] == ia[n].volume;
        assert_true(in);
        visits[ia[n].volume]++;
        if (n % 23 == 0) {
            rng r;
            rng_seed(&r, 77, (uint64_t)n);
            shard_crop_info ic;
            assert_int_equal(shard_set_crop_from(s3, &r, win, W, g_crop, -1.0f, c, &ic, &err),
                             VS_OK);
            assert_memory_equal(&ic, &ia[n], sizeof ic);
            assert_memory_equal(c, a + (size_t)n * CROP_FLOATS, CROP_FLOATS * sizeof *c);
        }
    }
    /* every volume visited within (N + W - 1) * R crops (invariant 2 of io/shard/shard_sample.c) */
    for (int v = 0; v < N_VOLS; v++) {
        print_message("volume %d: %d crops\n", v, visits[v]);
        assert_true(visits[v] > 0);
    }
    /* a resumed stream (seek forward, then back) gives the same crops */
    enum { FROM = 101, M = 40 };
    crops_of(s2, &ws, 4, 2, FROM, M, b, ib);
    assert_memory_equal(ib, &ia[FROM], M * sizeof *ib);
    assert_memory_equal(b, a + (size_t)FROM * CROP_FLOATS, (size_t)M * CROP_FLOATS * sizeof *b);
    shard_sampler_destroy(smp);
    shard_set_close(s1), shard_set_close(s2), shard_set_close(s3);
    free(a), free(b), free(c);
}

/* A rank's plan (runs of `take` crops every `every`, from `first`) hands out exactly the
 * crops of those numbers in the plain stream, with prefetch threads or without; seeking to the
 * start of a later run resumes the plan there. */
static void test_stream_plan(void **state) {
    (void)state;
    enum { W = 3, R = 8, FIRST = 6, TAKE = 4, EVERY = 12, N = 60, K = 16 };
    shard_working_set ws = {W, R};
    float *a = malloc((size_t)N * CROP_FLOATS * sizeof *a);
    float *b = malloc((size_t)K * CROP_FLOATS * sizeof *b);
    shard_crop_info ia[N], ib;
    shard_set *s1 = open_set(0), *s2 = open_set(0);
    crops_of(s1, &ws, 0, 1, 0, N, a, ia); /* crops 0 .. N-1 */
    for (int threads = 0; threads <= 3; threads += 3) {
        shard_stream *st = NULL;
        vs_error err;
        assert_int_equal(shard_stream_open(s2, 77, g_crop, -1.0f, &ws, threads ? 6 : 0,
                                           threads ? threads : 1, &st, &err),
                         VS_OK);
        assert_int_equal(shard_stream_plan(st, FIRST, TAKE, EVERY, &err), VS_OK);
        for (int k = 0; k < K; k++) {
            uint64_t n = FIRST + (uint64_t)(k / TAKE) * EVERY + (uint64_t)(k % TAKE);
            assert_int_equal(shard_stream_position(st), n);
            assert_int_equal(shard_stream_next(st, b + (size_t)k * CROP_FLOATS, &ib, &err), VS_OK);
            assert_memory_equal(&ib, &ia[n], sizeof ib);
            assert_memory_equal(b + (size_t)k * CROP_FLOATS, a + n * CROP_FLOATS,
                                CROP_FLOATS * sizeof *b);
        }
        /* resume at the run that starts at crop 30: 30, 31, 32, 33, 42, ... */
        assert_int_equal(shard_stream_seek(st, 30, &err), VS_OK);
        for (int k = 0; k < 6; k++) {
            uint64_t n = 30 + (uint64_t)(k / TAKE) * EVERY + (uint64_t)(k % TAKE);
            assert_int_equal(shard_stream_next(st, b, &ib, &err), VS_OK);
            assert_memory_equal(&ib, &ia[n], sizeof ib);
            assert_memory_equal(b, a + n * CROP_FLOATS, CROP_FLOATS * sizeof *b);
        }
        assert_int_equal(shard_stream_plan(st, 0, 5, 4, &err), VS_ERR_INTERNAL); /* take > every */
        shard_stream_close(st);
    }
    shard_set_close(s1), shard_set_close(s2);
    free(a), free(b);
}

/* Over an archive of 12 volumes and a cache of W+1 of them, the sampler's crops hit the cache
 * most of the time, uniform draws rarely; the crops are the same with and without the cache. */
static void test_cache_hits_under_working_set(void **state) {
    (void)state;
    enum { W = 3, R = 32, N_CROPS = (N_VOLS + W) * R };
    size_t vol_bytes = (size_t)VOL_Z * VOL_Y * VOL_X * 2, cache = (W + 1) * vol_bytes;
    shard_working_set ws = {W, R}, uniform = {0, 0};
    float *a = malloc((size_t)N_CROPS * CROP_FLOATS * sizeof *a);
    float *b = malloc((size_t)N_CROPS * CROP_FLOATS * sizeof *b);
    shard_crop_info ia[N_CROPS], ib[N_CROPS];
    shard_set *plain = open_set(0), *cached = open_set(cache), *cached_u = open_set(cache);
    crops_of(plain, &ws, 0, 1, 0, N_CROPS, a, ia);
    crops_of(cached, &ws, 0, 1, 0, N_CROPS, b, ib);
    assert_memory_equal(ia, ib, sizeof ia);
    assert_memory_equal(a, b, (size_t)N_CROPS * CROP_FLOATS * sizeof *a);
    crops_of(cached_u, &uniform, 0, 1, 0, N_CROPS, b, ib);
    uint64_t h, m, hu, mu;
    shard_set_cache_stats(cached, &h, &m);
    shard_set_cache_stats(cached_u, &hu, &mu);
    double rate = (double)h / (double)(h + m), rate_u = (double)hu / (double)(hu + mu);
    print_message("chunk cache hit rate: working set %.3f (%llu misses), uniform %.3f\n", rate,
                  (unsigned long long)m, rate_u);
    /* R crops per visit touch ~10 of a volume's 48 chunks each: at best 1 - 48/320 hit */
    assert_true(rate > 0.8);
    assert_true(rate > rate_u + 0.3);
    /* no chunk inflated twice in a visit: misses at most 48 for each of the N_CROPS/R + W - 1
     * volumes the windows held */
    assert_true(m <= (uint64_t)(N_CROPS / R + W - 1) * 48);
    shard_set_close(plain), shard_set_close(cached), shard_set_close(cached_u);
    free(a), free(b);
}

static int setup(void **state) {
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/archive", g_root);
    write_archive(dir);
    return 0;
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/vs_test_shard_sample_XXXXXX");
    if (!mkdtemp(g_root)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_follow_the_definition),
        cmocka_unit_test(test_stream_is_pure_in_n),
        cmocka_unit_test(test_stream_plan),
        cmocka_unit_test(test_cache_hits_under_working_set),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) return 1;
    return rc;
}
