/* shard_stream.c — a crop stream with prefetch threads. Crop n is shard_set_crop_from with an
 * rng seeded (seed, n) and the working set's window of crop n (io/shard/shard_sample.c), so the
 * sequence depends neither on timing nor on the thread count nor on where a run resumed. The
 * stream hands out the crops of its plan: the k-th is crop number first + (k / take) * every +
 * k % take (take = every = 1: every crop in turn), so a data-parallel rank prefetches its own.
 *
 * Invariants:
 *   1. consumed <= claimed <= consumed + depth (k indices): a producer claims k (the next
 *      unclaimed) only when its slot k % depth is free, and sets ready[slot] = k + 1 when done.
 *   2. The consumer takes k = `consumed` only when ready[consumed % depth] == consumed + 1,
 *      then frees the slot (ready = 0).
 */
#include "shard.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_MAX_THREADS 16

struct shard_stream {
    shard_set *set;
    shard_sampler *sampler; /* NULL: uniform over every volume */
    uint64_t seed;
    uint64_t first, take, every; /* the plan: k-th crop handed out is crop_number(k) */
    int size[3];
    float pad;
    int depth; /* 0: no thread, crops made on demand */
    size_t n_floats;
    float *buf; /* (depth, Sz, Sy, Sx) */
    shard_crop_info *info;
    vs_status *status;
    vs_error *errs;
    uint64_t *ready;
    uint64_t claimed, consumed;
    int stop, n_threads, running;
    pthread_t threads[STREAM_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static uint64_t crop_number(const shard_stream *st, uint64_t k) {
    return st->first + (k / st->take) * st->every + k % st->take;
}

static vs_status make_crop(shard_stream *st, uint64_t k, float *out, shard_crop_info *info,
                           vs_error *err) {
    uint64_t n = crop_number(st, k);
    rng r;
    rng_seed(&r, st->seed, n);
    int window[SHARD_WORKING_SET_MAX];
    int w = st->sampler ? shard_sampler_window(st->sampler, n, window) : 0;
    return shard_set_crop_from(st->set, &r, w ? window : NULL, w, st->size, st->pad, out, info,
                               err);
}

static void *producer(void *arg) {
    shard_stream *st = arg;
    pthread_mutex_lock(&st->mu);
    while (!st->stop) {
        if (st->claimed - st->consumed >= (uint64_t)st->depth) {
            pthread_cond_wait(&st->cv, &st->mu);
            continue;
        }
        uint64_t n = st->claimed++;
        size_t slot = (size_t)(n % (uint64_t)st->depth);
        pthread_mutex_unlock(&st->mu);
        vs_status s =
            make_crop(st, n, st->buf + slot * st->n_floats, &st->info[slot], &st->errs[slot]);
        pthread_mutex_lock(&st->mu);
        st->status[slot] = s;
        st->ready[slot] = n + 1;
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static vs_status start(shard_stream *st, vs_error *err) {
    if (st->depth == 0) return VS_OK;
    st->stop = 0;
    memset(st->ready, 0, (size_t)st->depth * sizeof *st->ready);
    for (int t = 0; t < st->n_threads; t++) {
        if (pthread_create(&st->threads[t], NULL, producer, st) != 0) break;
        st->running++;
    }
    /* Fewer threads than asked give the same crops, only slower. */
    if (!st->running) return VS_FAIL(err, VS_ERR_ENV, "cannot start the crop prefetch thread");
    return VS_OK;
}

static void halt(shard_stream *st) {
    if (!st->running) return;
    pthread_mutex_lock(&st->mu);
    st->stop = 1;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    for (int t = 0; t < st->running; t++)
        pthread_join(st->threads[t], NULL);
    st->running = 0;
}

vs_status shard_stream_open(shard_set *s, uint64_t seed, const int size[3], float pad_value,
                            const shard_working_set *ws, int depth, int threads, shard_stream **out,
                            vs_error *err) {
    *out = NULL;
    if (depth < 0 || depth > 1024)
        return VS_FAIL(err, VS_ERR_USAGE, "prefetch depth %d is outside 0..1024", depth);
    if (threads < 1 || threads > STREAM_MAX_THREADS)
        return VS_FAIL(err, VS_ERR_USAGE, "prefetch threads %d is outside 1..%d", threads,
                       STREAM_MAX_THREADS);
    for (int a = 0; a < 3; a++)
        if (size[a] < 1 || size[a] > 4096)
            return VS_FAIL(err, VS_ERR_USAGE, "crop edge %d is outside 1..4096", size[a]);
    shard_stream *st = calloc(1, sizeof *st);
    if (!st) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a crop stream");
    st->set = s;
    st->seed = seed;
    st->take = st->every = 1;
    memcpy(st->size, size, sizeof st->size);
    st->pad = pad_value;
    st->depth = depth;
    st->n_threads = threads;
    st->n_floats = (size_t)size[0] * (size_t)size[1] * (size_t)size[2];
    int slots = depth ? depth : 1;
    st->buf = malloc((size_t)slots * st->n_floats * sizeof *st->buf);
    st->info = calloc((size_t)slots, sizeof *st->info);
    st->status = calloc((size_t)slots, sizeof *st->status);
    st->errs = calloc((size_t)slots, sizeof *st->errs);
    st->ready = calloc((size_t)slots, sizeof *st->ready);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    vs_status rc = VS_OK;
    if (!st->buf || !st->info || !st->status || !st->errs || !st->ready)
        rc = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate %d prefetched crops", slots);
    if (rc == VS_OK && ws && ws->volumes > 0)
        rc = shard_sampler_create(shard_set_count(s), seed, ws, &st->sampler, err);
    if (rc == VS_OK) rc = start(st, err);
    if (rc != VS_OK) {
        shard_stream_close(st);
        return rc;
    }
    *out = st;
    return VS_OK;
}

vs_status shard_stream_next(shard_stream *st, float *out, shard_crop_info *info, vs_error *err) {
    if (st->depth == 0) {
        vs_status s = make_crop(st, st->consumed, out, info, err);
        if (s == VS_OK) st->consumed++;
        return s;
    }
    size_t slot = (size_t)(st->consumed % (uint64_t)st->depth);
    pthread_mutex_lock(&st->mu);
    while (st->ready[slot] != st->consumed + 1)
        pthread_cond_wait(&st->cv, &st->mu);
    vs_status s = st->status[slot];
    pthread_mutex_unlock(&st->mu);
    if (s != VS_OK) { /* the crop stays unconsumed: the next call reports it again */
        const vs_error *e = &st->errs[slot];
        return vs_error_set(err, s, e->src_file, e->src_line, "%s", e->msg);
    }
    memcpy(out, st->buf + slot * st->n_floats, st->n_floats * sizeof *out);
    if (info) *info = st->info[slot];
    pthread_mutex_lock(&st->mu);
    st->ready[slot] = 0;
    st->consumed++;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return VS_OK;
}

uint64_t shard_stream_position(const shard_stream *st) { return crop_number(st, st->consumed); }

vs_status shard_stream_plan(shard_stream *st, uint64_t first, uint64_t take, uint64_t every,
                            vs_error *err) {
    if (take < 1 || every < take)
        return VS_FAIL(err, VS_ERR_INTERNAL,
                       "crop plan of %llu every %llu: need 1 <= take <= every",
                       (unsigned long long)take, (unsigned long long)every);
    halt(st);
    st->first = first, st->take = take, st->every = every;
    st->claimed = st->consumed = 0;
    return start(st, err);
}

vs_status shard_stream_seek(shard_stream *st, uint64_t n, vs_error *err) {
    return shard_stream_plan(st, n, st->take, st->every, err);
}

void shard_stream_close(shard_stream *st) {
    if (!st) return;
    halt(st);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st->buf);
    free(st->info);
    free(st->status);
    free(st->errs);
    free(st->ready);
    shard_sampler_destroy(st->sampler);
    free(st);
}
