/* test_shard_deflate — the shard writer's deflate step (io/shard/shard_chunks.c): a chunk's
 * bytes depend on its voxels and the level alone. Not on what the heap held where a compressor
 * was allocated (ISA-L 2.30, which the writer used once, read a stream field its init left
 * alone), not on what that compressor deflated before, not on other threads deflating at the
 * same time; and every stream inflates (zlib's own inflate) to its input. One digest line per
 * level is printed; oracle/test_shard_deflate_paths.sh compares it between a native run, one
 * under valgrind and ones under qemu, whose CPUs lack AVX-512 or more. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <zlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard_h5.h"
#include "synth.h"

enum { N_CHUNKS = 4, N_THREADS = 3 };
static const int levels[] = {1, 2, 3, 4};

/* Shuffled (planar) int16 chunks as the writer hands them over: body, another region, all
 * zeros (a compressor's repeated-byte path) and a small one. */
typedef struct chunks {
    uint8_t *in[N_CHUNKS];
    size_t n[N_CHUNKS];
} chunks;

static void chunk_from(const volume *v, int64_t z0, int64_t y0, int64_t x0, int64_t nz, int64_t ny,
                       int64_t nx, uint8_t *out) {
    const int16_t *vox = v->voxels;
    size_t n = (size_t)(nz * ny * nx), i = 0;
    for (int64_t z = 0; z < nz; z++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t x = 0; x < nx; x++, i++) {
                uint16_t u = (uint16_t)vox[((z0 + z) * v->n_rows + y0 + y) * v->n_cols + x0 + x];
                out[i] = (uint8_t)u;
                out[n + i] = (uint8_t)(u >> 8);
            }
}

static void make_chunks(chunks *c) {
    volume v;
    vs_error err;
    assert_int_equal(synth_ct(&v, 40, 128, 128, 5, "ct-deflate", &err), VS_OK);
    static const int64_t box[N_CHUNKS][6] = {{0, 32, 32, 32, 64, 64},
                                             {8, 0, 64, 32, 64, 64},
                                             {0, 0, 0, 32, 64, 64},
                                             {3, 50, 50, 6, 7, 9}};
    for (int k = 0; k < N_CHUNKS; k++) {
        c->n[k] = 2 * (size_t)(box[k][3] * box[k][4] * box[k][5]);
        c->in[k] = malloc(c->n[k]);
        assert_non_null(c->in[k]);
        if (k == 2)
            memset(c->in[k], 0, c->n[k]);
        else
            chunk_from(&v, box[k][0], box[k][1], box[k][2], box[k][3], box[k][4], box[k][5],
                       c->in[k]);
    }
    volume_free(&v);
}

/* Deflate chunk k and check that zlib inflates it back; the stream (caller frees), NULL when
 * either fails. No cmocka check here: the threads below call it too. */
static uint8_t *deflate_one(shard_deflater *z, const chunks *c, int k, size_t *len) {
    size_t cap = shard_deflate_bound(c->n[k]);
    uint8_t *out = malloc(cap), *back = malloc(c->n[k]);
    uLongf n_back = (uLongf)c->n[k];
    int ok = out && back && (*len = shard_deflate(z, c->in[k], c->n[k], out, cap)) > 0 &&
             uncompress(back, &n_back, out, (uLong)*len) == Z_OK && n_back == c->n[k] &&
             memcmp(back, c->in[k], c->n[k]) == 0;
    free(back);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

typedef struct streams {
    uint8_t *out[N_CHUNKS];
    size_t len[N_CHUNKS];
} streams;

static void streams_free(streams *s) {
    for (int k = 0; k < N_CHUNKS; k++)
        free(s->out[k]);
}

static int streams_equal(const streams *a, const streams *b) {
    for (int k = 0; k < N_CHUNKS; k++)
        if (a->len[k] != b->len[k] || memcmp(a->out[k], b->out[k], a->len[k]) != 0) return 0;
    return 1;
}

/* Every chunk with one compressor, starting at chunk `first` (so each follows another one);
 * 0 when a chunk fails to deflate or to inflate back. */
static int deflate_all(shard_deflater *z, const chunks *c, int first, streams *s) {
    int ok = 1;
    memset(s, 0, sizeof *s);
    for (int i = 0; i < N_CHUNKS; i++) {
        int k = (first + i) % N_CHUNKS;
        ok &= (s->out[k] = deflate_one(z, c, k, &s->len[k])) != NULL;
    }
    return ok;
}

/* Leave blocks of 64-124 KiB (a compressor's stream is about 80 KiB) holding the 16-bit value
 * `word` free in the heap, where the next allocations of that size land; the small guards
 * between them (freed by the caller later) keep them from merging. */
static void **dirty_heap(uint16_t word) {
    enum { N = 48 };
    void **guard = calloc(N, sizeof *guard);
    void *block[N];
    assert_non_null(guard);
    for (int i = 0; i < N; i++) {
        size_t n = ((size_t)64 + (size_t)(i % 16) * 4) * 1024;
        block[i] = malloc(n);
        guard[i] = malloc(64);
        assert_non_null(block[i]);
        assert_non_null(guard[i]);
        for (size_t j = 0; j < n / 2; j++)
            memcpy((uint8_t *)block[i] + 2 * j, &word, 2);
    }
    for (int i = 0; i < N; i++)
        free(block[i]);
    return guard;
}

static void guards_free(void **guard) {
    for (int i = 0; i < 48; i++)
        free(guard[i]);
    free(guard);
}

typedef struct worker_arg {
    const chunks *c;
    int level, first;
    streams s;
    int ok; /* every round deflated, inflated back and gave the first round's bytes */
} worker_arg;

/* A thread with its own compressors (allocated in its own malloc arena), as the writer's are. */
static void *worker(void *p) {
    worker_arg *a = p;
    a->ok = 1;
    for (int round = 0; round < 3; round++) {
        shard_deflater *z = shard_deflater_new(a->level);
        streams s = {0};
        a->ok &= z && deflate_all(z, a->c, a->first + round, &s);
        if (round == 0) {
            a->s = s;
        } else {
            a->ok &= streams_equal(&s, &a->s);
            streams_free(&s);
        }
        shard_deflater_free(z);
    }
    return NULL;
}

static uint64_t digest(const streams *s) {
    uint64_t h = 14695981039346656037ull;
    for (int k = 0; k < N_CHUNKS; k++)
        for (size_t i = 0; i < s->len[k]; i++)
            h = (h ^ s->out[k][i]) * 1099511628211ull;
    return h;
}

static void test_deflate_input_only(void **state) {
    (void)state;
    chunks c;
    make_chunks(&c);
    for (size_t li = 0; li < sizeof levels / sizeof *levels; li++) {
        int level = levels[li];
        /* the reference: a fresh compressor per chunk */
        streams ref;
        for (int k = 0; k < N_CHUNKS; k++) {
            shard_deflater *z = shard_deflater_new(level);
            assert_non_null(z);
            ref.out[k] = deflate_one(z, &c, k, &ref.len[k]);
            assert_non_null(ref.out[k]);
            shard_deflater_free(z);
        }
        /* what the heap held, and what the compressor deflated before */
        static const uint16_t words[] = {0x0009, 0x000c, 0x0001, 0xffff, 0x0000};
        for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
            void **guard = dirty_heap(words[w]);
            shard_deflater *z = shard_deflater_new(level);
            guards_free(guard);
            assert_non_null(z);
            streams s;
            assert_true(deflate_all(z, &c, (int)w, &s));
            if (!streams_equal(&s, &ref))
                fail_msg("level %d (%s): other bytes after the heap held 0x%04x", level,
                         shard_deflate_name(level), words[w]);
            streams_free(&s);
            shard_deflater_free(z);
        }
        /* threads deflating at once, each in its own order */
        pthread_t th[N_THREADS];
        worker_arg a[N_THREADS];
        for (int t = 0; t < N_THREADS; t++) {
            a[t] = (worker_arg){.c = &c, .level = level, .first = t};
            assert_int_equal(pthread_create(&th[t], NULL, worker, &a[t]), 0);
        }
        for (int t = 0; t < N_THREADS; t++) {
            assert_int_equal(pthread_join(th[t], NULL), 0);
            if (!a[t].ok || !streams_equal(&a[t].s, &ref))
                fail_msg("level %d (%s): thread %d wrote other bytes", level,
                         shard_deflate_name(level), t);
            streams_free(&a[t].s);
        }
        printf("deflate digest level %d %s: %016llx\n", level, shard_deflate_name(level),
               (unsigned long long)digest(&ref));
        streams_free(&ref);
    }
    for (int k = 0; k < N_CHUNKS; k++)
        free(c.in[k]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deflate_input_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
