/* mae_shards.c — the MAE's crop source over HDF5 shards (shard.h's prefetching stream).
 *
 * Crop n of the stream depends only on (seed, n) and the working set (W, R); the stream reads
 * ahead along the trainer's plan (the crops of this rank). The augmentation draws from the
 * crop's own rng. The saved state is W and R, which a resumed run must share. */
#include "mae_data.h"

#include "le.h"
#include "shard.h"

#include <stdlib.h>
#include <string.h>

typedef struct shard_source {
    shard_set *set;
    shard_stream *stream;
    int crop[3];
    mae_aug aug;
    shard_working_set ws;
} shard_source;

#define STATE_BYTES 16 /* W, R as little-endian uint64 */

void mae_sampling_default(mae_sampling *s) {
    s->working_set = 8;
    s->swap_every = 256;
    s->cache_mb = 0;
}

static vs_status shards_fill(void *ctx, uint64_t n, rng *r, const int crop[3], float *dst,
                             vs_error *err) {
    shard_source *s = ctx;
    if (memcmp(crop, s->crop, sizeof s->crop) != 0)
        return VS_FAIL(err, VS_ERR_INTERNAL, "crop %dx%dx%d differs from the stream's %dx%dx%d",
                       crop[0], crop[1], crop[2], s->crop[0], s->crop[1], s->crop[2]);
    vs_status st = VS_OK;
    if (shard_stream_position(s->stream) != n) st = shard_stream_seek(s->stream, n, err);
    shard_crop_info info;
    if (st == VS_OK) st = shard_stream_next(s->stream, dst, &info, err);
    if (st == VS_OK) mae_augment(&s->aug, r, crop, dst);
    return st;
}

static vs_status shards_plan(void *ctx, uint64_t first, uint64_t take, uint64_t every,
                             vs_error *err) {
    shard_source *s = ctx;
    return shard_stream_plan(s->stream, first, take, every, err);
}

static vs_status shards_save(void *ctx, uint8_t *buf, size_t *len, vs_error *err) {
    (void)err;
    shard_source *s = ctx;
    le_put_u64(buf, (uint64_t)s->ws.volumes);
    le_put_u64(buf + 8, (uint64_t)s->ws.swap_every);
    *len = STATE_BYTES;
    return VS_OK;
}

static vs_status shards_load(void *ctx, const uint8_t *buf, size_t len, vs_error *err) {
    shard_source *s = ctx;
    if (len != STATE_BYTES)
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "the checkpoint's data-source state is not a shard source's");
    uint64_t w = le_get_u64(buf), r = le_get_u64(buf + 8);
    if (w != (uint64_t)s->ws.volumes || (w && r != (uint64_t)s->ws.swap_every))
        return VS_FAIL(
            err, VS_ERR_USAGE,
            "the checkpoint was trained with --working-set %llu --swap-every %llu; resume "
            "it with the same (now %d and %d) or start a new run",
            (unsigned long long)w, (unsigned long long)r, s->ws.volumes, s->ws.swap_every);
    return VS_OK;
}

static void shards_close(void *ctx) {
    shard_source *s = ctx;
    if (!s) return;
    shard_stream_close(s->stream);
    shard_set_close(s->set);
    free(s);
}

/* The cache the sampling asks for: cache_mb, or W+1 of the largest volumes (512..4096 MB) with
 * a working set, or 512 MB without one (a cohort that fits turns most crops into copies). */
static size_t cache_bytes(const shard_set *set, const shard_working_set *ws, int cache_mb) {
    if (cache_mb > 0) return (size_t)cache_mb << 20;
    size_t lo = (size_t)512 << 20, hi = (size_t)4096 << 20, largest = 0;
    if (ws->volumes == 0) return lo;
    for (int i = 0; i < shard_set_count(set); i++) {
        const shard_entry *e = shard_set_entry(set, i);
        size_t b = (size_t)e->shape[0] * (size_t)e->shape[1] * (size_t)e->shape[2] *
                   vol_dtype_size(e->dtype);
        if (b > largest) largest = b;
    }
    size_t want = largest * (size_t)(ws->volumes + 1);
    return want < lo ? lo : want > hi ? hi : want;
}

vs_status mae_source_shards(mae_source *src, const char *dir, const shard_filter *filter,
                            uint64_t seed, const int crop[3], const mae_aug *aug,
                            const mae_sampling *smp, int threads, vs_error *err) {
    memset(src, 0, sizeof *src);
    mae_sampling dflt;
    if (!smp) mae_sampling_default(&dflt), smp = &dflt;
    shard_source *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    memcpy(s->crop, crop, sizeof s->crop);
    s->aug = *aug;
    s->ws = (shard_working_set){smp->working_set, smp->swap_every};
    const char *modality =
        filter && filter->modality && filter->modality[0] ? filter->modality : NULL;
    vs_status st = shard_set_open(dir, filter, &s->set, err);
    if (st == VS_OK && shard_set_count(s->set) == 0)
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: no volumes%s%s%s to train on", dir,
                     modality ? " of modality " : "", modality ? modality : "",
                     filter && filter->n_exclude ? " outside the test patients'" : "");
    if (st == VS_OK) st = shard_set_cache(s->set, cache_bytes(s->set, &s->ws, smp->cache_mb), err);
    if (st == VS_OK)
        st = shard_stream_open(s->set, seed, crop, 0.0f, &s->ws, 4 * (threads > 0 ? threads : 1),
                               threads > 0 ? threads : 1, &s->stream, err);
    if (st != VS_OK) {
        shards_close(s);
        return st;
    }
    src->ctx = s;
    src->name = "shards";
    src->fill = shards_fill;
    src->plan = shards_plan;
    src->save = shards_save;
    src->load = shards_load;
    src->close = shards_close;
    return VS_OK;
}
