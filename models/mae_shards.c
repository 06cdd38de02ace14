/* mae_shards.c — the MAE's crop source over HDF5 shards (io/shard.h's prefetching stream).
 *
 * Crop n of the stream depends only on (seed, n), so the source's whole state is n: saved in
 * checkpoints, restored with shard_stream_seek. Augmentation (flips, scale, shift) draws from
 * the trainer's rng, whose state the checkpoint holds too. */
#include "mae_data.h"

#include "shard.h"

#include <stdlib.h>
#include <string.h>

typedef struct shard_source {
    shard_set *set;
    shard_stream *stream;
    int crop[3];
    mae_aug aug;
} shard_source;

static vs_status shards_fill(void *ctx, rng *r, int B, const int crop[3], float *out, vs_error *err) {
    shard_source *s = ctx;
    if (memcmp(crop, s->crop, sizeof s->crop) != 0)
        return VS_FAIL(err, VS_ERR_INTERNAL, "crop %dx%dx%d differs from the stream's %dx%dx%d", crop[0],
                       crop[1], crop[2], s->crop[0], s->crop[1], s->crop[2]);
    size_t cv = (size_t)crop[0] * crop[1] * crop[2];
    for (int b = 0; b < B; b++) {
        float *dst = out + (size_t)b * cv;
        shard_crop_info info;
        vs_status st = shard_stream_next(s->stream, dst, &info, err);
        if (st != VS_OK) return st;
        mae_augment(&s->aug, r, crop, dst);
    }
    return VS_OK;
}

static vs_status shards_save(void *ctx, uint8_t *buf, size_t *len, vs_error *err) {
    (void)err;
    uint64_t n = shard_stream_position(((shard_source *)ctx)->stream);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(n >> (8 * i));
    *len = 8;
    return VS_OK;
}

static vs_status shards_load(void *ctx, const uint8_t *buf, size_t len, vs_error *err) {
    if (len != 8) return VS_FAIL(err, VS_ERR_FORMAT, "the checkpoint's data-source state is not a shard source's");
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)buf[i] << (8 * i);
    return shard_stream_seek(((shard_source *)ctx)->stream, n, err);
}

static void shards_close(void *ctx) {
    shard_source *s = ctx;
    if (!s) return;
    shard_stream_close(s->stream);
    shard_set_close(s->set);
    free(s);
}

vs_status mae_source_shards(mae_source *src, const char *dir, const char *modality, uint64_t seed,
                            const int crop[3], const mae_aug *aug, int threads, vs_error *err) {
    memset(src, 0, sizeof *src);
    shard_source *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    memcpy(s->crop, crop, sizeof s->crop);
    s->aug = *aug;
    shard_filter filter = {modality, NULL, {0, 0, 0}};
    vs_status st = shard_set_open(dir, &filter, &s->set, err);
    if (st == VS_OK && shard_set_count(s->set) == 0)
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: no volumes%s%s to train on", dir, modality ? " of modality " : "",
                     modality ? modality : "");
    /* 512 MB of decompressed chunks: a cohort that fits turns most crops into copies
     * (io/shard_cache.c); crops are the same with or without it */
    if (st == VS_OK) st = shard_set_cache(s->set, (size_t)512 << 20, err);
    if (st == VS_OK)
        st = shard_stream_open(s->set, seed, crop, 0.0f, 4 * (threads > 0 ? threads : 1),
                               threads > 0 ? threads : 1, &s->stream, err);
    if (st != VS_OK) {
        shards_close(s);
        return st;
    }
    src->ctx = s;
    src->name = "shards";
    src->fill = shards_fill;
    src->save = shards_save;
    src->load = shards_load;
    src->close = shards_close;
    return VS_OK;
}
