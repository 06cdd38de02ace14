/* mae_data.c — the in-memory crop source and the augmentation. */
#include "mae_data.h"

#include <stdlib.h>
#include <string.h>

typedef struct vol_source {
    const volume *vols;
    int n;
    mae_aug aug;
} vol_source;

static float voxel_at(const volume *v, size_t i) {
    switch (v->dtype) {
    case VOL_INT16: return (float)((const int16_t *)v->voxels)[i];
    case VOL_UINT8: return (float)((const uint8_t *)v->voxels)[i];
    default: return ((const float *)v->voxels)[i];
    }
}

/* Swap n floats of a and b. */
static void swap_run(float *a, float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float t = a[i];
        a[i] = b[i], b[i] = t;
    }
}

void mae_augment(const mae_aug *aug, rng *r, const int crop[3], float *x) {
    int flip[3];
    for (int a = 0; a < 3; a++)
        flip[a] = rng_float(r) < aug->flip[a];
    float scale = 1.0f + aug->scale * (2.0f * rng_float(r) - 1.0f);
    float shift = aug->shift * (2.0f * rng_float(r) - 1.0f);
    size_t Z = (size_t)crop[0], Y = (size_t)crop[1], X = (size_t)crop[2];
    if (flip[0])
        for (size_t z = 0; z < Z / 2; z++)
            swap_run(x + z * Y * X, x + (Z - 1 - z) * Y * X, Y * X);
    if (flip[1])
        for (size_t z = 0; z < Z; z++)
            for (size_t y = 0; y < Y / 2; y++)
                swap_run(x + (z * Y + y) * X, x + (z * Y + Y - 1 - y) * X, X);
    if (flip[2])
        for (size_t row = 0; row < Z * Y; row++)
            for (size_t i = 0; i < X / 2; i++)
                swap_run(x + row * X + i, x + row * X + X - 1 - i, 1);
    for (size_t i = 0; i < Z * Y * X; i++)
        x[i] = x[i] * scale + shift;
}

static vs_status vol_fill(void *ctx, uint64_t n, rng *r, const int crop[3], float *dst,
                          vs_error *err) {
    (void)n; /* crop n is what r draws: a volume, a position, the augmentation */
    vol_source *s = ctx;
    int vi = (int)rng_below(r, (uint32_t)s->n);
    const volume *v = &s->vols[vi];
    int64_t dims[3] = {v->n_slices, v->n_rows, v->n_cols};
    int o[3];
    for (int a = 0; a < 3; a++) {
        if (dims[a] < crop[a])
            return VS_FAIL(err, VS_ERR_FORMAT,
                           "volume %d (%lld x %lld x %lld) is smaller than the %d x %d x %d crop",
                           vi, (long long)dims[0], (long long)dims[1], (long long)dims[2], crop[0],
                           crop[1], crop[2]);
        o[a] = (int)rng_below(r, (uint32_t)(dims[a] - crop[a] + 1));
    }
    for (int z = 0; z < crop[0]; z++)
        for (int y = 0; y < crop[1]; y++) {
            size_t row =
                ((size_t)(o[0] + z) * dims[1] + (size_t)(o[1] + y)) * dims[2] + (size_t)o[2];
            float *d = dst + ((size_t)z * crop[1] + y) * crop[2];
            for (int x = 0; x < crop[2]; x++)
                d[x] = voxel_at(v, row + (size_t)x);
        }
    mae_augment(&s->aug, r, crop, dst);
    return VS_OK;
}

void mae_crop_rng(rng *r, uint64_t seed, uint64_t n) {
    rng_seed(r, seed, (UINT64_C(1) << 62) | (n & ((UINT64_C(1) << 62) - 1)));
}

vs_status mae_source_batch(mae_source *src, uint64_t n0, rng *r, int B, const int crop[3],
                           float *out, vs_error *err) {
    size_t cv = (size_t)crop[0] * crop[1] * crop[2];
    for (int b = 0; b < B; b++) {
        vs_status st = src->fill(src->ctx, n0 + (uint64_t)b, r, crop, out + (size_t)b * cv, err);
        if (st != VS_OK) return st;
    }
    return VS_OK;
}

/* The in-memory source keeps no state of its own: crop n is what its rng draws. */
static vs_status vol_save(void *ctx, uint8_t *buf, size_t *len, vs_error *err) {
    (void)ctx, (void)buf, (void)err;
    *len = 0;
    return VS_OK;
}

static vs_status vol_load(void *ctx, const uint8_t *buf, size_t len, vs_error *err) {
    (void)ctx, (void)buf;
    if (len != 0)
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "the checkpoint's data-source state is not an in-memory source's");
    return VS_OK;
}

static void vol_close(void *ctx) { free(ctx); }

vs_status mae_source_volumes(mae_source *src, const volume *vols, int n, const mae_aug *aug,
                             vs_error *err) {
    memset(src, 0, sizeof *src);
    if (n < 1) return VS_FAIL(err, VS_ERR_CONFIG, "no volumes to train on");
    for (int a = 0; a < 3; a++)
        if (!(aug->flip[a] >= 0.0f && aug->flip[a] <= 1.0f))
            return VS_FAIL(err, VS_ERR_CONFIG, "flip probability must be in [0, 1]");
    if (!(aug->scale >= 0.0f && aug->scale < 1.0f) || !(aug->shift >= 0.0f))
        return VS_FAIL(err, VS_ERR_CONFIG, "intensity scale must be in [0, 1) and shift >= 0");
    vol_source *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the volume source");
    s->vols = vols, s->n = n, s->aug = *aug;
    src->ctx = s;
    src->name = "volumes";
    src->fill = vol_fill, src->save = vol_save, src->load = vol_load, src->close = vol_close;
    return VS_OK;
}

void mae_source_close(mae_source *src) {
    if (src->close && src->ctx) src->close(src->ctx);
    memset(src, 0, sizeof *src);
}
