/* mae_shards.c — pretraining crops from shards (mae_shards.h). */
#include "mae_shards.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct shard_source {
    shard_set *set;
    shard_stream *stream;
    mae_shards_config cfg;
    char dir[4200];
    mae_aug aug;
} shard_source;

#define SHARD_SOURCE_MAGIC 0x53485244u /* "SHRD" */

/* dir/shards when it exists (an ingest output folder), else dir. */
static void shard_dir(const char *dir, char *out, size_t cap) {
    struct stat st;
    snprintf(out, cap, "%s/shards", dir);
    if (stat(out, &st) != 0 || !S_ISDIR(st.st_mode)) snprintf(out, cap, "%s", dir);
}

/* Flip axes and scale/shift one (Z, Y, X) crop in place. */
static void augment(float *c, const int n[3], const int flip[3], float scale, float shift) {
    for (int z = 0; z < n[0]; z++)
        for (int y = 0; y < n[1]; y++) {
            float *row = c + ((size_t)z * n[1] + y) * n[2];
            if (flip[2])
                for (int x = 0; x < n[2] / 2; x++) {
                    float t = row[x];
                    row[x] = row[n[2] - 1 - x];
                    row[n[2] - 1 - x] = t;
                }
        }
    size_t plane = (size_t)n[1] * n[2], line = (size_t)n[2];
    if (flip[1])
        for (int z = 0; z < n[0]; z++)
            for (int y = 0; y < n[1] / 2; y++) {
                float *a = c + z * plane + y * line, *b = c + z * plane + (n[1] - 1 - y) * line;
                for (size_t x = 0; x < line; x++) {
                    float t = a[x];
                    a[x] = b[x];
                    b[x] = t;
                }
            }
    if (flip[0])
        for (int z = 0; z < n[0] / 2; z++) {
            float *a = c + z * plane, *b = c + (n[0] - 1 - z) * plane;
            for (size_t i = 0; i < plane; i++) {
                float t = a[i];
                a[i] = b[i];
                b[i] = t;
            }
        }
    size_t total = plane * (size_t)n[0];
    for (size_t i = 0; i < total; i++)
        c[i] = c[i] * scale + shift;
}

static vs_status sh_fill(void *ctx, rng *r, int B, const int crop[3], float *out, vs_error *err) {
    shard_source *s = ctx;
    for (int a = 0; a < 3; a++)
        if (crop[a] != s->cfg.crop[a])
            return VS_FAIL(err, VS_ERR_CONFIG,
                           "the shard source makes %dx%dx%d crops, not %dx%dx%d", s->cfg.crop[0],
                           s->cfg.crop[1], s->cfg.crop[2], crop[0], crop[1], crop[2]);
    size_t cv = (size_t)crop[0] * crop[1] * crop[2];
    for (int b = 0; b < B; b++) {
        float *dst = out + (size_t)b * cv;
        vs_status st = shard_stream_next(s->stream, dst, NULL, err);
        if (st != VS_OK) return st;
        int flip[3];
        for (int a = 0; a < 3; a++)
            flip[a] = rng_float(r) < s->aug.flip[a];
        float scale = 1.0f + s->aug.scale * (2.0f * rng_float(r) - 1.0f);
        float shift = s->aug.shift * (2.0f * rng_float(r) - 1.0f);
        augment(dst, crop, flip, scale, shift);
    }
    return VS_OK;
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* State: magic, seed, position (little-endian). */
static vs_status sh_save(void *ctx, uint8_t *buf, size_t *len, vs_error *err) {
    (void)err;
    shard_source *s = ctx;
    put_u64(buf, SHARD_SOURCE_MAGIC);
    put_u64(buf + 8, s->cfg.seed);
    put_u64(buf + 16, shard_stream_position(s->stream));
    *len = 24;
    return VS_OK;
}

static vs_status sh_load(void *ctx, const uint8_t *buf, size_t len, vs_error *err) {
    shard_source *s = ctx;
    if (len != 24 || get_u64(buf) != SHARD_SOURCE_MAGIC)
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "the checkpoint's data-source state is not a shard source's");
    if (get_u64(buf + 8) != s->cfg.seed)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "the checkpoint's shard stream seed differs from this run's");
    return shard_stream_seek(s->stream, get_u64(buf + 16), err);
}

static void sh_close(void *ctx) {
    shard_source *s = ctx;
    shard_stream_close(s->stream);
    shard_set_close(s->set);
    free(s);
}

vs_status mae_source_shards(mae_source *src, const mae_shards_config *cfg, const mae_aug *aug,
                            vs_error *err) {
    memset(src, 0, sizeof *src);
    shard_source *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the shard source");
    s->cfg = *cfg;
    s->aug = *aug;
    shard_dir(cfg->dir, s->dir, sizeof s->dir);
    s->cfg.dir = s->dir;
    vs_status st = shard_set_open(s->dir, &cfg->filter, &s->set, err);
    if (st == VS_OK && shard_set_n_shards(s->set) == 0)
        st = VS_FAIL(err, VS_ERR_ENV, "%s: no readable shards here (run vesalius ingest first)",
                     s->dir);
    else if (st == VS_OK && shard_set_count(s->set) == 0)
        st = VS_FAIL(err, VS_ERR_CONFIG, "%s: no volume in the shards matches the filter", s->dir);
    if (st == VS_OK) st = shard_set_cache(s->set, cfg->cache_bytes, err);
    if (st == VS_OK)
        st = shard_stream_open(s->set, cfg->seed, cfg->crop, cfg->pad_value, cfg->prefetch,
                               cfg->threads < 1 ? 1 : cfg->threads, &s->stream, err);
    if (st != VS_OK) {
        shard_set_close(s->set);
        free(s);
        return st;
    }
    src->ctx = s;
    src->name = "shards";
    src->fill = sh_fill, src->save = sh_save, src->load = sh_load, src->close = sh_close;
    return VS_OK;
}

vs_status mae_shards_preview_crop(const mae_shards_config *cfg, volume *out, vs_error *err) {
    memset(out, 0, sizeof *out);
    char dir[4200];
    shard_dir(cfg->dir, dir, sizeof dir);
    shard_set *set = NULL;
    vs_status st = shard_set_open(dir, &cfg->filter, &set, err);
    if (st != VS_OK) return st;
    if (shard_set_count(set) == 0) st = VS_FAIL(err, VS_ERR_CONFIG, "%s: no volume matches", dir);
    if (st == VS_OK)
        st = volume_alloc(out, cfg->crop[0], cfg->crop[1], cfg->crop[2], VOL_FLOAT32, 0, err);
    rng r;
    rng_seed(&r, cfg->seed, 0x7072657669657775ULL); /* a stream the training crops never use */
    shard_crop_info info;
    if (st == VS_OK)
        st = shard_set_crop(set, &r, cfg->crop, cfg->pad_value, out->voxels, &info, err);
    if (st == VS_OK) {
        for (int a = 0; a < 3; a++)
            out->spacing[a] = 1.0, out->direction[a * 3 + a] = 1.0;
        volume_update_affine(out);
        snprintf(out->modality, sizeof out->modality, "%s",
                 shard_set_entry(set, info.volume)->modality);
    } else {
        volume_free(out);
    }
    shard_set_close(set);
    return st;
}
