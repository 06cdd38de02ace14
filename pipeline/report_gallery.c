/* report_gallery.c — the report's detection pictures (report_gallery.h): slices of the test
 * volumes through the strongest detections and the missed lesions, boxes drawn, as PNG (libpng)
 * kept in memory for report.html. */
#include "report_gallery.h"

#include "shard.h"
#include "volume.h"

#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIDE 256 /* pictures are upscaled (nearest) to at most this many pixels a side */

typedef struct pick {
    int arm;
    uint32_t scan; /* row of the view */
    double x, y, z, diameter, p;
    int kind; /* 0 true positive, 1 false positive, 2 missed lesion */
} pick;

static const char *const kind_name[3] = {"true positive", "false positive", "missed lesion"};
static const unsigned char kind_rgb[3][3] = {{40, 200, 60}, {230, 40, 40}, {250, 210, 0}};

/* The relevant lesion of scan s whose sphere holds (x, y, z) (LUNA16's hit), or -1. */
static long hit(const report_input *v, uint32_t s, double x, double y, double z) {
    for (size_t l = 0; l < v->n_lesions; l++) {
        const froc_lesion *le = &v->lesions[l];
        if (le->scan != s || le->irrelevant) continue;
        double dx = x - le->x, dy = y - le->y, dz = z - le->z, r = le->diameter / 2;
        if (dx * dx + dy * dy + dz * dz < r * r) return (long)l;
    }
    return -1;
}

static int by_p(const void *a, const void *b) {
    const pick *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return (x->scan > y->scan) - (x->scan < y->scan);
}

static int by_diameter(const void *a, const void *b) {
    const pick *x = a, *y = b;
    if (x->diameter != y->diameter) return x->diameter < y->diameter ? 1 : -1;
    return (x->scan > y->scan) - (x->scan < y->scan);
}

/* The pictures' subjects: per arm, its strongest candidates and its missed lesions, on the
 * rows of the first seed (rows 0 .. n_first). */
static size_t choose(const report_results *res, size_t n_first, int per_kind, pick *out) {
    const report_input *v = &res->view;
    size_t n = 0;
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm *ar = &v->arms[a];
        if (!ar->present) continue;
        size_t m = 0;
        pick *c = calloc(ar->n_cands + v->n_lesions + 1, sizeof *c);
        if (!c) return n;
        for (size_t i = 0; i < ar->n_cands; i++) {
            const froc_candidate *fc = &ar->cands[i];
            if (fc->scan >= n_first) continue;
            long l = hit(v, fc->scan, fc->x, fc->y, fc->z);
            c[m++] = (pick){a,     fc->scan,      fc->x,
                            fc->y, fc->z,         l >= 0 ? v->lesions[l].diameter : 10.0,
                            fc->p, l >= 0 ? 0 : 1};
        }
        qsort(c, m, sizeof *c, by_p);
        for (size_t i = 0; i < m && (int)i < per_kind; i++)
            out[n++] = c[i];
        m = 0;
        for (size_t l = 0; l < v->n_lesions; l++) {
            const froc_lesion *le = &v->lesions[l];
            if (le->scan >= n_first || le->irrelevant) continue;
            int found = 0;
            for (size_t i = 0; i < ar->n_cands && !found; i++)
                found = ar->cands[i].scan == le->scan &&
                        hit(v, le->scan, ar->cands[i].x, ar->cands[i].y, ar->cands[i].z) == (long)l;
            if (!found) c[m++] = (pick){a, le->scan, le->x, le->y, le->z, le->diameter, NAN, 2};
        }
        qsort(c, m, sizeof *c, by_diameter);
        for (size_t i = 0; i < m && (int)i < per_kind; i++)
            out[n++] = c[i];
        free(c);
    }
    return n;
}

static float voxel(const volume *v, size_t i) {
    switch (v->dtype) {
    case VOL_INT16: return ((const int16_t *)v->voxels)[i];
    case VOL_UINT8: return ((const uint8_t *)v->voxels)[i];
    default: return ((const float *)v->voxels)[i];
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef struct membuf {
    unsigned char *p;
    size_t n, cap;
    int oom;
} membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t len) {
    membuf *m = png_get_io_ptr(png);
    if (m->oom) return;
    if (m->n + len > m->cap) {
        size_t cap = m->cap ? m->cap : 8192;
        while (cap < m->n + len)
            cap *= 2;
        unsigned char *q = realloc(m->p, cap);
        if (!q) {
            m->oom = 1;
            return;
        }
        m->p = q, m->cap = cap;
    }
    memcpy(m->p + m->n, data, len);
    m->n += len;
}

static void mem_flush(png_structp png) { (void)png; }

static vs_status encode_rgb(const unsigned char *rgb, int w, int h, report_preview *out,
                            vs_error *err) {
    membuf m = {NULL, 0, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(m.p);
        return VS_FAIL(err, VS_ERR_LIBRARY, "libpng failed encoding a detection picture");
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (m.oom) {
        free(m.p);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for a detection picture");
    }
    out->png = m.p, out->size = m.n;
    out->width = (uint32_t)w, out->height = (uint32_t)h;
    return VS_OK;
}

/* The axial slice of v through pick k, windowed to its 1st..99th percentile, upscaled, with a
 * box of the pick's diameter in its kind's colour. */
static vs_status render(const volume *v, const pick *k, report_preview *out, vs_error *err) {
    double lps[3] = {k->x, k->y, k->z}, ijk[3];
    vs_status st = volume_lps_to_index(v, lps, ijk, err);
    if (st != VS_OK) return st;
    int64_t W = v->n_cols, H = v->n_rows;
    int64_t sl = (int64_t)llround(ijk[2]);
    sl = sl < 0 ? 0 : sl >= v->n_slices ? v->n_slices - 1 : sl;
    size_t base = (size_t)sl * (size_t)(W * H);
    float *vals = malloc((size_t)(W * H) * sizeof *vals), *sorted = NULL;
    if (!vals) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < W * H; i++)
        vals[i] = voxel(v, base + (size_t)i);
    sorted = malloc((size_t)(W * H) * sizeof *sorted);
    if (!sorted) {
        free(vals);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    memcpy(sorted, vals, (size_t)(W * H) * sizeof *sorted);
    qsort(sorted, (size_t)(W * H), sizeof *sorted, cmp_float);
    float lo = sorted[(size_t)((W * H - 1) * 0.01)], hi = sorted[(size_t)((W * H - 1) * 0.99)];
    free(sorted);
    if (!(hi > lo)) hi = lo + 1;
    int64_t big = W > H ? W : H;
    int s = big >= MAX_SIDE ? 1 : (int)(MAX_SIDE / big);
    int w = (int)(W * s), h = (int)(H * s);
    unsigned char *rgb = malloc((size_t)w * (size_t)h * 3);
    if (!rgb) {
        free(vals);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float g = (vals[(y / s) * W + x / s] - lo) / (hi - lo);
            unsigned char c = (unsigned char)(g <= 0 ? 0 : g >= 1 ? 255 : lrintf(g * 255));
            unsigned char *px = rgb + ((size_t)y * w + x) * 3;
            px[0] = px[1] = px[2] = c;
        }
    free(vals);
    /* the box: the pick's diameter (at least 3 voxels) in voxels of each in-plane axis */
    double rx = fmax(1.5, k->diameter / 2 / v->spacing[0]),
           ry = fmax(1.5, k->diameter / 2 / v->spacing[1]);
    int x0 = (int)lrint((ijk[0] - rx + 0.5) * s), x1 = (int)lrint((ijk[0] + rx + 0.5) * s);
    int y0 = (int)lrint((ijk[1] - ry + 0.5) * s), y1 = (int)lrint((ijk[1] + ry + 0.5) * s);
    const unsigned char *col = kind_rgb[k->kind];
    for (int t = 0; t < 2; t++) /* two pixels thick */
        for (int x = x0 - t; x <= x1 + t; x++)
            for (int e = 0; e < 2; e++) {
                int y = e ? y1 + t : y0 - t;
                if (x < 0 || x >= w || y < 0 || y >= h) continue;
                memcpy(rgb + ((size_t)y * w + x) * 3, col, 3);
            }
    for (int t = 0; t < 2; t++)
        for (int y = y0 - t; y <= y1 + t; y++)
            for (int e = 0; e < 2; e++) {
                int x = e ? x1 + t : x0 - t;
                if (x < 0 || x >= w || y < 0 || y >= h) continue;
                memcpy(rgb + ((size_t)y * w + x) * 3, col, 3);
            }
    st = encode_rgb(rgb, w, h, out, err);
    free(rgb);
    return st;
}

vs_status report_gallery_build(const char *shards, const report_results *res, int per_kind,
                               report_input *in, vs_error *err) {
    const report_input *v = &res->view;
    size_t n_seeds = res->n_seeds > 0 ? (size_t)res->n_seeds : 1;
    size_t n_first = v->n_series / n_seeds;
    pick *picks = calloc((size_t)(4 * per_kind) + 1, sizeof *picks);
    if (!picks) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    size_t n = choose(res, n_first, per_kind, picks);
    shard_set *set = NULL;
    vs_status st = n ? shard_set_open(shards, NULL, &set, err) : VS_OK;
    if (st == VS_OK && !(in->gallery = calloc(n + 1, sizeof *in->gallery)))
        st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == VS_OK && i < n; i++) {
        const pick *k = &picks[i];
        const char *key = v->series[k->scan].key;
        int idx = -1;
        for (int e = 0; e < shard_set_count(set) && idx < 0; e++)
            if (strcmp(shard_set_entry(set, e)->key, key) == 0) idx = e;
        if (idx < 0) continue; /* a series not in this shard folder: no picture */
        volume vol;
        memset(&vol, 0, sizeof vol);
        st = shard_set_read(set, idx, &vol, NULL, 0, err);
        report_preview *g = &in->gallery[in->n_gallery];
        if (st == VS_OK) st = render(&vol, k, g, err);
        volume_free(&vol);
        if (st != VS_OK) break;
        if (k->kind == 2)
            snprintf(g->name, sizeof g->name, "%s: %s, %.0f mm", report_arm_names[k->arm],
                     kind_name[k->kind], k->diameter);
        else
            snprintf(g->name, sizeof g->name, "%s: %s, p %.3f", report_arm_names[k->arm],
                     kind_name[k->kind], k->p);
        in->n_gallery++;
    }
    shard_set_close(set);
    free(picks);
    return st;
}
