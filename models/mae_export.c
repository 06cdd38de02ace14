/* mae_export.c — safetensors export of the MAE and reconstruction preview PNGs. */
#include "mae_train.h"

#include <errno.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ safetensors */
typedef struct st_entry {
    char name[48];
    int ndim;
    int shape[3];
    const float *data;
    size_t size;
} st_entry;

/* Append to a growing string; returns 0 when out of memory. */
static int sb_add(char **s, size_t *len, size_t *cap, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*s + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0) return 0;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return 1;
        }
        size_t nc = *cap * 2 + (size_t)n;
        char *ns = realloc(*s, nc);
        if (!ns) return 0;
        *s = ns, *cap = nc;
    }
}

vs_status mae_export_safetensors(const mae *m, const char *path, vs_error *err) {
    const mae_config *c = mae_get_config(m);
    int nt = mae_n_tensors(m), N = mae_n_tokens(c);
    st_entry *e = calloc((size_t)nt + 2, sizeof *e);
    size_t cap = 4096, len = 0;
    char *js = malloc(cap);
    if (!e || !js) {
        free(e), free(js);
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot build the safetensors header");
    }
    const float *params = mae_params((mae *)m); /* read only */
    for (int i = 0; i < nt; i++) {
        const mae_tensor *t = mae_tensor_at(m, i);
        snprintf(e[i].name, sizeof e[i].name, "%s", t->name);
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof t->shape);
        e[i].data = params + t->offset;
        e[i].size = t->size;
    }
    /* the twin's persistent buffers, so load_state_dict(strict=True) accepts the file */
    e[nt] = (st_entry){"pos", 3, {1, N, c->dim}, mae_pos_embed(m, 0), (size_t)N * c->dim};
    e[nt + 1] =
        (st_entry){"dec_pos", 3, {1, N, c->dec_dim}, mae_pos_embed(m, 1), (size_t)N * c->dec_dim};
    int ok = sb_add(
        &js, &len, &cap,
        "{\"__metadata__\":{\"format\":\"pt\",\"producer\":\"vesalius\","
        "\"crop\":\"%d,%d,%d\",\"patch\":\"%d,%d,%d\",\"dim\":\"%d\",\"depth\":\"%d\","
        "\"heads\":\"%d\",\"dec_dim\":\"%d\",\"dec_depth\":\"%d\",\"dec_heads\":\"%d\","
        "\"mlp_ratio\":\"%d\",\"mask_ratio\":\"%g\",\"norm_pix\":\"%d\",\"vis_weight\":\"%g\"}",
        c->crop[0], c->crop[1], c->crop[2], c->patch[0], c->patch[1], c->patch[2], c->dim, c->depth,
        c->heads, c->dec_dim, c->dec_depth, c->dec_heads, c->mlp_ratio, c->mask_ratio, c->norm_pix,
        c->vis_weight);
    size_t off = 0;
    for (int i = 0; ok && i < nt + 2; i++) {
        ok = sb_add(&js, &len, &cap, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", e[i].name);
        for (int d = 0; ok && d < e[i].ndim; d++)
            ok = sb_add(&js, &len, &cap, "%s%d", d ? "," : "", e[i].shape[d]);
        ok = ok &&
             sb_add(&js, &len, &cap, "],\"data_offsets\":[%zu,%zu]}", off, off + 4 * e[i].size);
        off += 4 * e[i].size;
    }
    ok = ok && sb_add(&js, &len, &cap, "}");
    while (ok && len % 8)
        ok = sb_add(&js, &len, &cap, " "); /* data starts 8-byte aligned */
    vs_status st = VS_OK;
    char tmp[4096];
    FILE *f = NULL;
    if (!ok) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot build the safetensors header");
        goto done;
    }
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        st = VS_FAIL(err, VS_ERR_IO, "export path is too long: %s", path);
        goto done;
    }
    f = fopen(tmp, "wb");
    if (!f) {
        st = VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto done;
    }
    uint64_t hlen = len;
    int wok = fwrite(&hlen, 8, 1, f) == 1 && fwrite(js, 1, len, f) == len;
    for (int i = 0; wok && i < nt + 2; i++)
        wok = fwrite(e[i].data, 4, e[i].size, f) == e[i].size;
    if (!wok) {
        st = VS_FAIL(err, VS_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        fclose(f);
        remove(tmp);
        goto done;
    }
    st = mae_file_commit(f, tmp, path, err);
done:
    free(e), free(js);
    return st;
}

/* ---------------------------------------------------------------------------- previews */
static vs_status write_gray_png(const char *path, const uint8_t *pix, int w, int h, vs_error *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return VS_FAIL(err, VS_ERR_IO, "preview path is too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        fclose(f);
        remove(tmp);
        return VS_FAIL(err, VS_ERR_LIBRARY, "libpng failed writing %s", path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_bytep)(pix + (size_t)y * w));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return mae_file_commit(f, tmp, path, err);
}

vs_status mae_preview_png(mae *m, const float *batch, const int32_t *ids_keep, const char *path,
                          vs_error *err) {
    const mae_config *c = mae_get_config(m);
    size_t crop = mae_crop_voxels(c), total = crop * (size_t)c->batch;
    int Sy = c->crop[1], Sx = c->crop[2], z = c->crop[0] / 2;
    float *recon = malloc(total * sizeof *recon), *masked = malloc(total * sizeof *masked);
    uint8_t *pix = malloc((size_t)3 * Sx * Sy);
    vs_status st = VS_OK;
    if (!recon || !masked || !pix) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the preview");
        goto done;
    }
    float loss;
    st = mae_forward(m, batch, ids_keep, &loss, err);
    if (st != VS_OK) goto done;
    const float *in = batch + (size_t)z * Sy * Sx; /* sample 0, mid slice */
    float lo = in[0], hi = in[0];
    for (size_t i = 0; i < (size_t)Sy * Sx; i++)
        lo = in[i] < lo ? in[i] : lo, hi = in[i] > hi ? in[i] : hi;
    mae_reconstruct(m, batch, recon, masked, lo);
    const float *panels[3] = {in, masked + (size_t)z * Sy * Sx, recon + (size_t)z * Sy * Sx};
    float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
    for (int p = 0; p < 3; p++)
        for (int y = 0; y < Sy; y++)
            for (int x = 0; x < Sx; x++) {
                float v = (panels[p][(size_t)y * Sx + x] - lo) * scale;
                v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
                pix[(size_t)y * 3 * Sx + (size_t)p * Sx + x] = (uint8_t)(v + 0.5f);
            }
    st = write_gray_png(path, pix, 3 * Sx, Sy, err);
done:
    free(recon), free(masked), free(pix);
    return st;
}
