/* prep.c — preprocessing steps (prep.h). Reorient, crop, intensity steps in C; resampling and
 * N4 through the ITK shim (io/prep/itk/itk_prep.cc). */
#include "prep.h"
#include "itk_shim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ------------------------------------------------------------------------- */

typedef enum item_kind { ITEM_FLAG, ITEM_PAIR, ITEM_TRIPLE, ITEM_NUMBER } item_kind;

static const struct {
    const char *name;
    item_kind kind;
    char sep; /* between the numbers of a pair/triple */
} items[] = {
    {"reorient", ITEM_FLAG, 0},    {"spacing", ITEM_TRIPLE, 'x'}, {"nearest", ITEM_FLAG, 0},
    {"ct-window", ITEM_PAIR, ':'}, {"n4", ITEM_FLAG, 0},          {"percentile", ITEM_PAIR, ':'},
    {"crop", ITEM_NUMBER, 0},      {"margin", ITEM_NUMBER, 0},
};

/* Parse n numbers separated by sep; 1 on success. */
static int parse_numbers(const char *s, int n, char sep, double *out) {
    for (int i = 0; i < n; i++) {
        char *end = NULL;
        out[i] = strtod(s, &end);
        if (end == s || !isfinite(out[i])) return 0;
        if (i + 1 < n) {
            if (*end != sep) return 0;
            s = end + 1;
        } else if (*end) {
            return 0;
        }
    }
    return 1;
}

static void set_item(prep_options *o, int which, const double *x) {
    switch (which) {
    case 0: o->reorient = 1; break;
    case 1: memcpy(o->spacing, x, 3 * sizeof *x); break;
    case 2: o->nearest = 1; break;
    case 3: o->ct_window = 1, o->window[0] = x[0], o->window[1] = x[1]; break;
    case 4: o->n4 = 1; break;
    case 5: o->percentile = 1, o->pct[0] = x[0], o->pct[1] = x[1]; break;
    case 6: o->crop = 1, o->crop_threshold = x[0]; break;
    case 7: o->crop_margin = (int)x[0]; break;
    }
}

static vs_status check_options(const prep_options *o, vs_error *err) {
    for (int a = 0; a < 3; a++)
        if (o->spacing[a] < 0 || o->spacing[a] > 100)
            return VS_FAIL(err, VS_ERR_CONFIG, "preprocessing spacing %g is outside 0..100 mm",
                           o->spacing[a]);
    if (o->ct_window && !(o->window[1] > o->window[0]))
        return VS_FAIL(err, VS_ERR_CONFIG, "ct-window wants LO:HI with LO < HI");
    if (o->percentile && !(o->pct[0] >= 0 && o->pct[1] <= 100 && o->pct[1] > o->pct[0]))
        return VS_FAIL(err, VS_ERR_CONFIG, "percentile wants LO:HI with 0 <= LO < HI <= 100");
    if (o->crop_margin < 0 || o->crop_margin > 1000)
        return VS_FAIL(err, VS_ERR_CONFIG, "margin %d is outside 0..1000", o->crop_margin);
    return VS_OK;
}

vs_status prep_parse(const char *spec, prep_options *o, vs_error *err) {
    memset(o, 0, sizeof *o);
    if (!spec || strcmp(spec, "none") == 0 || !spec[0]) return VS_OK;
    char buf[512];
    if (strlen(spec) >= sizeof buf)
        return VS_FAIL(err, VS_ERR_CONFIG, "preprocessing specification is too long");
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq) *eq = 0;
        int which = -1;
        for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
            if (strcmp(items[i].name, tok) == 0) which = (int)i;
        if (which < 0) return VS_FAIL(err, VS_ERR_CONFIG, "unknown preprocessing step '%s'", tok);
        static const int n_numbers[] = {
            [ITEM_FLAG] = 0, [ITEM_PAIR] = 2, [ITEM_TRIPLE] = 3, [ITEM_NUMBER] = 1};
        int n = n_numbers[items[which].kind];
        double x[3] = {0, 0, 0};
        if ((n == 0) != (eq == NULL) || (n > 0 && !parse_numbers(eq + 1, n, items[which].sep, x)))
            return VS_FAIL(err, VS_ERR_CONFIG, "preprocessing step '%s' has a bad value", tok);
        set_item(o, which, x);
    }
    return check_options(o, err);
}

int prep_is_none(const prep_options *o) {
    return !o->reorient && !o->spacing[0] && !o->spacing[1] && !o->spacing[2] && !o->ct_window &&
           !o->n4 && !o->percentile && !o->crop;
}

/* Append ",text" (or "text" at the start) to buf. */
static void append(char *buf, size_t cap, const char *fmt, double a, double b, double c) {
    size_t n = strlen(buf);
    if (n + 1 >= cap) return;
    if (n) buf[n++] = ',', buf[n] = 0;
    snprintf(buf + n, cap - n, fmt, a, b, c);
}

/* The description of the steps in `mask` (bit i = item i). */
static void describe_steps(const prep_options *o, unsigned mask, char *buf, size_t cap) {
    buf[0] = 0;
    if (mask & 1u) append(buf, cap, "reorient", 0, 0, 0);
    if (mask & 64u) append(buf, cap, "crop=%g", o->crop_threshold, 0, 0);
    if ((mask & 64u) && o->crop_margin) append(buf, cap, "margin=%g", o->crop_margin, 0, 0);
    if (mask & 16u) append(buf, cap, "n4", 0, 0, 0);
    if (mask & 2u)
        append(buf, cap, "spacing=%gx%gx%g", o->spacing[0], o->spacing[1], o->spacing[2]);
    if ((mask & 2u) && o->nearest) append(buf, cap, "nearest", 0, 0, 0);
    if (mask & 8u) append(buf, cap, "ct-window=%g:%g", o->window[0], o->window[1], 0);
    if (mask & 32u) append(buf, cap, "percentile=%g:%g", o->pct[0], o->pct[1], 0);
    if (!buf[0]) snprintf(buf, cap, "none");
}

static unsigned all_steps(const prep_options *o) {
    return (o->reorient ? 1u : 0) | (o->spacing[0] || o->spacing[1] || o->spacing[2] ? 2u : 0) |
           (o->ct_window ? 8u : 0) | (o->n4 ? 16u : 0) | (o->percentile ? 32u : 0) |
           (o->crop ? 64u : 0);
}

void prep_describe(const prep_options *o, char *buf, size_t cap) {
    describe_steps(o, all_steps(o), buf, cap);
}

/* ---- voxel helpers ------------------------------------------------------------------- */

static double get_voxel(const volume *v, size_t i) {
    switch (v->dtype) {
    case VOL_INT16: return ((const int16_t *)v->voxels)[i];
    case VOL_FLOAT32: return ((const float *)v->voxels)[i];
    case VOL_UINT8: return ((const uint8_t *)v->voxels)[i];
    }
    return 0;
}

/* Replace v's voxels and geometry by those of n (n's text fields are ignored). */
static void take_grid(volume *v, volume *n) {
    volume_free(v);
    v->voxels = n->voxels;
    v->dtype = n->dtype;
    v->n_slices = n->n_slices, v->n_rows = n->n_rows, v->n_cols = n->n_cols;
    memcpy(v->spacing, n->spacing, sizeof v->spacing);
    memcpy(v->origin, n->origin, sizeof v->origin);
    memcpy(v->direction, n->direction, sizeof v->direction);
    volume_update_affine(v);
    n->voxels = NULL;
}

/* A float32 copy of v's voxels (NULL when out of memory). */
static float *float_voxels(const volume *v) {
    size_t n = (size_t)volume_n_voxels(v);
    float *f = malloc(n * sizeof *f);
    if (f)
        for (size_t i = 0; i < n; i++)
            f[i] = (float)get_voxel(v, i);
    return f;
}

static void to_float(volume *v, float *f) {
    volume_free(v);
    v->voxels = f;
    v->dtype = VOL_FLOAT32;
}

/* ---- reorient ------------------------------------------------------------------------ */

static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};

vs_status prep_reorient(volume *v, vs_error *err) {
    /* p[c]: the LPS axis old index axis c is closest to, maximising the total alignment. */
    int best = 0;
    double best_score = -1;
    for (int k = 0; k < 6; k++) {
        double s = 0;
        for (int c = 0; c < 3; c++)
            s += fabs(v->direction[perms[k][c] * 3 + c]);
        if (s > best_score + 1e-12) best_score = s, best = k;
    }
    const int *p = perms[best];
    int64_t old_dim[3] = {v->n_cols, v->n_rows, v->n_slices};
    int64_t old_stride[3] = {1, v->n_cols, v->n_cols * v->n_rows};
    int src[3], flip[3];
    for (int c = 0; c < 3; c++)
        src[p[c]] = c;
    volume n;
    memset(&n, 0, sizeof n);
    int64_t start = 0, step[3], dim[3];
    double old_index[3];
    for (int r = 0; r < 3; r++) {
        int c = src[r];
        flip[r] = v->direction[r * 3 + c] < 0;
        dim[r] = old_dim[c];
        step[r] = flip[r] ? -old_stride[c] : old_stride[c];
        if (flip[r]) start += (old_dim[c] - 1) * old_stride[c];
        old_index[c] = flip[r] ? (double)(old_dim[c] - 1) : 0.0;
        n.spacing[r] = v->spacing[c];
        for (int row = 0; row < 3; row++)
            n.direction[row * 3 + r] = (flip[r] ? -1.0 : 1.0) * v->direction[row * 3 + c];
    }
    volume_index_to_lps(v, old_index, n.origin);
    vs_status st = volume_alloc(&n, dim[2], dim[1], dim[0], v->dtype, 0, err);
    if (st != VS_OK) return st;
    size_t es = vol_dtype_size(v->dtype);
    unsigned char *dst = n.voxels;
    const unsigned char *from = v->voxels;
    for (int64_t z = 0; z < dim[2]; z++)
        for (int64_t y = 0; y < dim[1]; y++) {
            int64_t off = start + z * step[2] + y * step[1];
            for (int64_t x = 0; x < dim[0]; x++, off += step[0], dst += es)
                memcpy(dst, from + (size_t)off * es, es);
        }
    take_grid(v, &n);
    return VS_OK;
}

/* ---- crop ---------------------------------------------------------------------------- */

vs_status prep_crop_foreground(volume *v, double threshold, int margin, vs_error *err) {
    int64_t dim[3] = {v->n_cols, v->n_rows, v->n_slices}, lo[3], hi[3];
    for (int a = 0; a < 3; a++)
        lo[a] = dim[a], hi[a] = -1;
    size_t i = 0;
    for (int64_t z = 0; z < dim[2]; z++)
        for (int64_t y = 0; y < dim[1]; y++)
            for (int64_t x = 0; x < dim[0]; x++, i++) {
                if (!(get_voxel(v, i) > threshold)) continue;
                int64_t at[3] = {x, y, z};
                for (int a = 0; a < 3; a++) {
                    if (at[a] < lo[a]) lo[a] = at[a];
                    if (at[a] > hi[a]) hi[a] = at[a];
                }
            }
    if (hi[0] < 0) return VS_OK; /* nothing above the threshold: keep the whole volume */
    for (int a = 0; a < 3; a++) {
        lo[a] = lo[a] - margin < 0 ? 0 : lo[a] - margin;
        hi[a] = hi[a] + margin >= dim[a] ? dim[a] - 1 : hi[a] + margin;
    }
    volume n;
    memset(&n, 0, sizeof n);
    vs_status st =
        volume_alloc(&n, hi[2] - lo[2] + 1, hi[1] - lo[1] + 1, hi[0] - lo[0] + 1, v->dtype, 0, err);
    if (st != VS_OK) return st;
    size_t es = vol_dtype_size(v->dtype), row = (size_t)n.n_cols * es;
    for (int64_t z = 0; z < n.n_slices; z++)
        for (int64_t y = 0; y < n.n_rows; y++)
            memcpy((unsigned char *)n.voxels + ((size_t)(z * n.n_rows + y)) * row,
                   (const unsigned char *)v->voxels +
                       ((size_t)(((z + lo[2]) * dim[1] + y + lo[1]) * dim[0] + lo[0])) * es,
                   row);
    double corner[3] = {(double)lo[0], (double)lo[1], (double)lo[2]};
    volume_index_to_lps(v, corner, n.origin);
    memcpy(n.spacing, v->spacing, sizeof n.spacing);
    memcpy(n.direction, v->direction, sizeof n.direction);
    take_grid(v, &n);
    return VS_OK;
}

/* ---- resample ------------------------------------------------------------------------ */

vs_status prep_resample(volume *v, const double spacing[3], int nearest, vs_error *err) {
    int64_t dim[3] = {v->n_cols, v->n_rows, v->n_slices}, size[3];
    double sp[3], origin[3];
    memcpy(origin, v->origin, sizeof origin);
    for (int a = 0; a < 3; a++) {
        /* An axis of one voxel (a radiograph's slice axis) or without a target is kept. */
        sp[a] = (dim[a] == 1 || spacing[a] <= 0) ? v->spacing[a] : spacing[a];
        double extent = (double)dim[a] * v->spacing[a];
        int64_t n = (int64_t)llround(extent / sp[a]);
        size[2 - a] = n < 1 ? 1 : n;
        /* Same outer edge at the low end: the first centre moves by (new - old) / 2. */
        for (int r = 0; r < 3; r++)
            origin[r] += 0.5 * (sp[a] - v->spacing[a]) * v->direction[r * 3 + a];
    }
    volume n;
    memset(&n, 0, sizeof n);
    vs_status st = itkshim_resample(v, size, sp, origin, v->direction, nearest, &n, err);
    if (st != VS_OK) return st;
    take_grid(v, &n);
    return VS_OK;
}

/* ---- intensities --------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

vs_status prep_percentile(const volume *v, double p, double *out, vs_error *err) {
    size_t n = (size_t)volume_n_voxels(v), stride = n > (1u << 24) ? n / (1u << 24) + 1 : 1;
    size_t m = (n + stride - 1) / stride;
    float *x = malloc(m * sizeof *x);
    if (!x) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate %zu floats for percentiles", m);
    for (size_t i = 0; i < m; i++)
        x[i] = (float)get_voxel(v, i * stride);
    qsort(x, m, sizeof *x, cmp_float);
    double pos = p / 100.0 * (double)(m - 1);
    size_t k = (size_t)floor(pos);
    double frac = pos - (double)k;
    *out = k + 1 < m ? x[k] + frac * ((double)x[k + 1] - x[k]) : x[m - 1];
    free(x);
    return VS_OK;
}

/* out = (clamp?(v) - lo) / (hi - lo), as float32. */
static vs_status scale(volume *v, double lo, double hi, int clamp, vs_error *err) {
    float *f = float_voxels(v);
    if (!f) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a float copy of the volume");
    size_t n = (size_t)volume_n_voxels(v);
    double inv = hi > lo ? 1.0 / (hi - lo) : 1.0;
    for (size_t i = 0; i < n; i++) {
        double x = f[i];
        if (clamp) x = x < lo ? lo : x > hi ? hi : x;
        f[i] = (float)((x - lo) * inv);
    }
    to_float(v, f);
    snprintf(v->units, sizeof v->units, "normalized");
    return VS_OK;
}

static vs_status n4(volume *v, vs_error *err) {
    size_t n = (size_t)volume_n_voxels(v);
    float *f = float_voxels(v);
    uint8_t *mask = malloc(n);
    if (!f || !mask) {
        free(f);
        free(mask);
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate N4 buffers");
    }
    /* Foreground: above the mean intensity (MR background is dark). */
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean += f[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        mask[i] = f[i] > mean;
    to_float(v, f);
    vs_status st = itkshim_n4(v, mask, 4, 3, 50, err);
    free(mask);
    return st;
}

/* ---- the pipeline -------------------------------------------------------------------- */

vs_status prep_apply(volume *v, const prep_options *o, char *applied, size_t cap, vs_error *err) {
    vs_status st = check_options(o, err);
    if (st != VS_OK) return st;
    if (prep_is_none(o)) {
        if (applied) snprintf(applied, cap, "none");
        return VS_OK;
    }
    /* Work on a copy so a failure leaves v unchanged. */
    volume w = *v;
    size_t bytes = (size_t)volume_n_voxels(v) * vol_dtype_size(v->dtype);
    if (!(w.voxels = malloc(bytes))) return VS_FAIL(err, VS_ERR_NOMEM, "cannot copy the volume");
    memcpy(w.voxels, v->voxels, bytes);
    int is_ct = strcmp(v->modality, "CT") == 0, is_mr = strcmp(v->modality, "MR") == 0;
    unsigned done = 0;
    if (st == VS_OK && o->reorient && (st = prep_reorient(&w, err)) == VS_OK) done |= 1u;
    if (st == VS_OK && o->crop &&
        (st = prep_crop_foreground(&w, o->crop_threshold, o->crop_margin, err)) == VS_OK)
        done |= 64u;
    if (st == VS_OK && o->n4 && is_mr && (st = n4(&w, err)) == VS_OK) done |= 16u;
    if (st == VS_OK && (all_steps(o) & 2u) &&
        (st = prep_resample(&w, o->spacing, o->nearest, err)) == VS_OK)
        done |= 2u;
    if (st == VS_OK && o->ct_window && is_ct &&
        (st = scale(&w, o->window[0], o->window[1], 1, err)) == VS_OK)
        done |= 8u;
    if (st == VS_OK && o->percentile && !is_ct) {
        double lo = 0, hi = 0;
        if ((st = prep_percentile(&w, o->pct[0], &lo, err)) == VS_OK &&
            (st = prep_percentile(&w, o->pct[1], &hi, err)) == VS_OK &&
            (st = scale(&w, lo, hi, 0, err)) == VS_OK)
            done |= 32u;
    }
    if (st != VS_OK) {
        volume_free(&w);
        return vs_error_prefix(err, "preprocessing series %s", v->series_key);
    }
    volume_free(v);
    *v = w;
    volume_update_affine(v);
    if (applied) describe_steps(o, done, applied, cap);
    return VS_OK;
}
