/* dicom_assemble.c — one volume from its slices: order, geometry, decode, pixel rules.
 *
 * Invariants:
 *   1. Slices are ordered by s = IPP . (row x column cosines), never by InstanceNumber or path;
 *      ties are a reject (4D or duplicate images), so the order is total and input-independent.
 *   2. The slice step is (IPP_last - IPP_first) / (n - 1); with gantry tilt it is not along
 *      the normal and the affine carries the shear (volume.h allows it).
 *   3. Peak memory is the float32 working stack (plus the output stack when resampling) and
 *      one raw frame per thread; the int16 result is made in place.
 *   4. Files are loaded and decoded by dcm_options.threads threads, a file at a time per
 *      thread; the volume, its stats and the error reported do not depend on the count.
 */
#include "dicom_scan.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESAMPLE_GAP 4.0 /* slice steps; a larger gap is rejected even with resampling */

typedef struct pos_slice {
    slice_ref r;
    double s; /* position along the normal, mm */
    const double *ipp;
} pos_slice;

static int cmp_pos(const void *pa, const void *pb) {
    const pos_slice *a = pa, *b = pb;
    if (a->s != b->s) return a->s < b->s ? -1 : 1;
    if (a->r.file != b->r.file) return a->r.file < b->r.file ? -1 : 1;
    return (a->r.frame > b->r.frame) - (a->r.frame < b->r.frame);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void cross(const double *a, const double *b, double *out) {
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

static double norm3(const double *v) { return sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); }

/* The pixel rules of one frame (dicom.h): masking, sign, padding, MONOCHROME1, rescale. */
typedef struct pixel_rules {
    int bits_allocated, bits_stored, high_bit, pixel_rep, mono1, has_padding;
    int64_t padding;
    double slope, intercept;
} pixel_rules;

typedef struct pixel_stats {
    int int16_ok; /* every value so far is an integer in int16 range */
    int overflow; /* the direct int16 path met a value outside int16 */
    int64_t n_padding;
    double min; /* smallest non-padding value */
} pixel_stats;

/* raw: (n) samples of bits_allocated bits, native endian -> sv: (n) stored values after
 * BitsStored masking and PixelRepresentation sign extension. One loop per sample width. */
static void stored_values(const void *raw, size_t n, const pixel_rules *p, int64_t *sv) {
    const int shift = p->high_bit + 1 - p->bits_stored;
    const uint32_t mask = p->bits_stored >= 32 ? 0xFFFFFFFFu : (1u << p->bits_stored) - 1;
    const int64_t sign = p->pixel_rep ? (int64_t)1 << (p->bits_stored - 1) : 0;
    /* (u ^ sign) - sign sign-extends a masked value; with sign == 0 it is the identity. */
#define STORED_LOOP(T)                                                                             \
    for (size_t i = 0; i < n; i++)                                                                 \
        sv[i] = ((int64_t)((((const T *)raw)[i] >> shift) & mask) ^ sign) - sign;
    if (p->bits_allocated == 8) {
        STORED_LOOP(uint8_t)
    } else if (p->bits_allocated == 16) {
        STORED_LOOP(uint16_t)
    } else {
        STORED_LOOP(uint32_t)
    }
#undef STORED_LOOP
}

/* sv: (n) stored values -> out: (n) float32 under padding, MONOCHROME1 and rescale; NaN marks
 * padding. Integer slope and intercept take an exact integer path. */
static void rescale_values(const int64_t *sv, size_t n, const pixel_rules *p, float *out,
                           pixel_stats *st) {
    const int64_t mask = p->bits_stored >= 32 ? 0xFFFFFFFFll : ((int64_t)1 << p->bits_stored) - 1;
    const int64_t inv_base = p->pixel_rep ? -1 : mask; /* MONOCHROME1: base - v */
    const int inv = p->mono1;
    double lo = INFINITY, hi = -INFINITY;
    int integral = p->slope == floor(p->slope) && p->intercept == floor(p->intercept) &&
                   fabs(p->slope) < 65536 && fabs(p->intercept) < 1e9;
    if (integral) {
        const int64_t a = (int64_t)p->slope, b = (int64_t)p->intercept;
        int64_t ilo = INT64_MAX, ihi = INT64_MIN;
        for (size_t i = 0; i < n; i++) {
            int64_t v = inv ? inv_base - sv[i] : sv[i];
            int64_t y = v * a + b;
            ilo = y < ilo ? y : ilo;
            ihi = y > ihi ? y : ihi;
            out[i] = (float)y;
        }
        if (n) lo = (double)ilo, hi = (double)ihi;
    } else {
        for (size_t i = 0; i < n; i++) {
            int64_t v = inv ? inv_base - sv[i] : sv[i];
            double y = (double)v * p->slope + p->intercept;
            if (y != floor(y)) st->int16_ok = 0;
            lo = y < lo ? y : lo;
            hi = y > hi ? y : hi;
            out[i] = (float)y;
        }
    }
    if (p->has_padding) { /* padding is a stored value: find it again and take it out */
        lo = INFINITY;
        hi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            if (sv[i] == p->padding) {
                out[i] = NAN;
                st->n_padding++;
                continue;
            }
            lo = out[i] < lo ? out[i] : lo;
            hi = out[i] > hi ? out[i] : hi;
        }
        /* out[] is float: re-check exactness where the float path may have rounded */
        if (!integral)
            for (size_t i = 0; i < n && st->int16_ok; i++)
                if (out[i] == out[i] && out[i] != floorf(out[i])) st->int16_ok = 0;
    }
    if (lo < -32768.0 || hi > 32767.0) st->int16_ok = 0;
    if (lo < st->min) st->min = lo;
}

/* The direct path (see predict_int16): integer rescale straight into int16 voxels. */
static void rescale_values_i16(const int64_t *sv, size_t n, const pixel_rules *p, int16_t *out,
                               pixel_stats *st) {
    const int64_t mask = p->bits_stored >= 32 ? 0xFFFFFFFFll : ((int64_t)1 << p->bits_stored) - 1;
    const int64_t inv_base = p->pixel_rep ? -1 : mask;
    const int64_t a = (int64_t)p->slope, b = (int64_t)p->intercept;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        int64_t v = p->mono1 ? inv_base - sv[i] : sv[i];
        int64_t y = v * a + b;
        lo = y < lo ? y : lo;
        hi = y > hi ? y : hi;
        out[i] = (int16_t)y;
    }
    if (lo < -32768 || hi > 32767) st->overflow = 1;
}

static void rules_of(const dcm_header *h, const dcm_frame *fr, pixel_rules *p) {
    p->bits_allocated = h->bits_allocated;
    p->bits_stored = h->bits_stored;
    p->high_bit = h->high_bit;
    p->pixel_rep = h->pixel_rep;
    p->mono1 = strcmp(h->photometric, "MONOCHROME1") == 0;
    p->has_padding = h->has_padding;
    p->padding = h->padding;
    p->slope = fr->slope;
    p->intercept = fr->intercept;
}

/* Order the slices and work out the slice step; fills origin and step (LPS mm per index).
 * *n_out is the number of output slices (differs from n only when resampling). */
static vs_status order_slices(const dcm_options *opt, file_rec *files, pos_slice *ps, int32_t n,
                              double origin[3], double step[3], int32_t *n_out, int *resample,
                              vs_error *err) {
    const dcm_header *h0 = &files[ps[0].r.file].h;
    const dcm_frame *f0 = &h0->frame[ps[0].r.frame];
    double normal[3];
    cross(f0->iop, f0->iop + 3, normal);
    for (int32_t i = 0; i < n; i++) {
        const dcm_frame *fr = &files[ps[i].r.file].h.frame[ps[i].r.frame];
        ps[i].ipp = fr->ipp;
        ps[i].s = fr->ipp[0] * normal[0] + fr->ipp[1] * normal[1] + fr->ipp[2] * normal[2];
    }
    qsort(ps, (size_t)n, sizeof *ps, cmp_pos);
    memcpy(origin, ps[0].ipp, 3 * sizeof(double));
    *n_out = n;
    *resample = 0;
    if (n == 1) {
        double t = h0->spacing_between > 0   ? h0->spacing_between
                   : h0->slice_thickness > 0 ? h0->slice_thickness
                                             : 1.0;
        for (int c = 0; c < 3; c++)
            step[c] = normal[c] * t;
        return VS_OK;
    }
    double *d = malloc((size_t)(n - 1) * sizeof *d);
    if (!d) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i + 1 < n; i++)
        d[i] = ps[i + 1].s - ps[i].s;
    double dmin = d[0], dmax = d[0];
    for (int32_t i = 0; i + 1 < n; i++) {
        if (d[i] < dmin) dmin = d[i];
        if (d[i] > dmax) dmax = d[i];
    }
    qsort(d, (size_t)(n - 1), sizeof *d, cmp_double);
    double m = d[(n - 1) / 2];
    free(d);
    if (dmin < 1e-3)
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%d slices share a position along the normal (4D or "
                       "duplicate images)",
                       (int)n);
    double span = ps[n - 1].s - ps[0].s;
    /* Every slice must lie on the line from the first to the last (in-plane shifts are not a
     * volume). */
    for (int32_t i = 1; i + 1 < n; i++) {
        double t = (ps[i].s - ps[0].s) / span, dev[3];
        for (int c = 0; c < 3; c++)
            dev[c] = ps[i].ipp[c] - (ps[0].ipp[c] + t * (ps[n - 1].ipp[c] - ps[0].ipp[c]));
        if (norm3(dev) > 0.05 * m + 0.01)
            return VS_FAIL(err, VS_ERR_FORMAT, "slice positions are not on one line (%.3f mm off)",
                           norm3(dev));
    }
    double tol = opt->spacing_tolerance * m + 1e-3;
    if (dmax - m > tol || m - dmin > tol) {
        if (!opt->resample_uneven) {
            if (dmax > 1.5 * m)
                return VS_FAIL(err, VS_ERR_FORMAT,
                               "missing slices: a gap of %.3f mm where the "
                               "slice step is %.3f mm",
                               dmax, m);
            return VS_FAIL(err, VS_ERR_FORMAT, "uneven slice spacing: steps from %.3f to %.3f mm",
                           dmin, dmax);
        }
        /* Interpolating across more than a few missing slices would invent anatomy. */
        if (dmax > MAX_RESAMPLE_GAP * m)
            return VS_FAIL(err, VS_ERR_FORMAT,
                           "missing slices: a gap of %.3f mm is too large to "
                           "resample (slice step %.3f mm)",
                           dmax, m);
        *resample = 1;
        double k = floor(span / m + 0.5);
        if (k < 1 || k > 65535)
            return VS_FAIL(err, VS_ERR_FORMAT, "cannot resample %.3f mm in steps of %.3f mm", span,
                           m);
        *n_out = (int32_t)k + 1;
    }
    for (int c = 0; c < 3; c++)
        step[c] = (ps[n - 1].ipp[c] - ps[0].ipp[c]) / (*n_out - 1);
    return VS_OK;
}

/* The distinct files of the volume in slice order (file_of[j]) and the file of each slice
 * (slice_file[i], an index into file_of): enhanced objects hold many slices per file. */
static int32_t distinct_files(const pos_slice *ps, int32_t n, int32_t *file_of,
                              int32_t *slice_file) {
    int32_t n_files = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t found = -1;
        if (n_files > 0 && file_of[n_files - 1] == ps[i].r.file) found = n_files - 1;
        for (int32_t j = 0; found < 0 && j < n_files; j++)
            if (file_of[j] == ps[i].r.file) found = j;
        if (found < 0) {
            file_of[n_files] = ps[i].r.file;
            found = n_files++;
        }
        slice_file[i] = found;
    }
    return n_files;
}

/* Load file j of the volume (DCMTK parse of the checked header; pixels stay on disk). */
static vs_status load_one(const dcm_options *opt, const file_rec *r, dcm_file **out,
                          vs_error *err) {
    dcm_file *f = NULL;
    vs_error e;
    if (dcm_file_load(r->path, &opt->limits, &f, &e) != VS_OK)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s", e.msg);
    const dcm_file_facts *fa = dcm_file_get_facts(f);
    if ((int32_t)fa->rows != r->h.rows || (int32_t)fa->cols != r->h.cols ||
        (int32_t)fa->bits_allocated != r->h.bits_allocated) {
        dcm_file_free(f);
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: file changed since it was scanned", r->path);
    }
    *out = f;
    return VS_OK;
}

/* 16-bit stored samples straight to int16 voxels: masking, sign, MONOCHROME1 and an integer
 * rescale in one pass, in int32. Only on the direct path, where predict_int16 bounds what every
 * value the stored bits can hold becomes: nothing here overflows and no range is tracked. The
 * same arithmetic as stored_values + rescale_values_i16; slope 1 (most CT) skips the multiply. */
static void rescale_u16_i16(const uint16_t *raw, size_t n, const pixel_rules *p, int16_t *out) {
    const int shift = p->high_bit + 1 - p->bits_stored;
    const int32_t mask = (int32_t)((1u << p->bits_stored) - 1);
    const int32_t sign = p->pixel_rep ? (int32_t)1 << (p->bits_stored - 1) : 0;
    const int32_t a = (int32_t)p->slope, b = (int32_t)p->intercept;
    if (a == 1 && !p->mono1) {
        for (size_t i = 0; i < n; i++)
            out[i] = (int16_t)(((((int32_t)raw[i] >> shift) & mask) ^ sign) - sign + b);
        return;
    }
    const int32_t flip = p->mono1 ? -1 : 1, base = p->mono1 ? (p->pixel_rep ? -1 : mask) : 0;
    for (size_t i = 0; i < n; i++) {
        int32_t v = ((((int32_t)raw[i] >> shift) & mask) ^ sign) - sign;
        out[i] = (int16_t)((base + flip * v) * a + b);
    }
}

/* 1 when slice rules allow rescale_u16_i16: 16-bit samples rescaled into int16 on the direct
 * path, with int32 room to spare. */
static int fused_i16(const pixel_rules *p, int16_t *i16) {
    return i16 && p->bits_allocated == 16 && p->bits_stored <= 16 && fabs(p->slope) <= 65536 &&
           fabs(p->intercept) <= 65536;
}

/* What the threads of one decode share. Work is handed out by file, never by slice: the
 * frames of one file share its DCMTK object, which is not thread-safe. */
typedef struct decode_job {
    const dcm_options *opt;
    file_rec *files;
    const pos_slice *ps;
    int32_t n;
    dcm_series *v;
    const int32_t *file_of, *slice_file;
    const int32_t *first_slice, *next_slice; /* per file: its slices as a linked list */
    int32_t n_files;
    float *stack;
    int16_t *i16;
    size_t plane;
    int load; /* 1: load the files first (the first pass) */
    pthread_mutex_t mu;
    int32_t next_file;
    pixel_stats stats;   /* merged */
    int32_t failed_file; /* lowest file index that failed, or n_files */
    vs_status st;
    vs_error err;
} decode_job;

/* Load file j (first pass) and decode its slices with buffers raw (4 bytes a sample) and sv. */
static vs_status decode_file(decode_job *j, int32_t fj, void *raw, int64_t *sv, pixel_stats *stats,
                             vs_error *err) {
    if (j->load) {
        vs_status st = load_one(j->opt, &j->files[j->file_of[fj]], &j->v->files[fj], err);
        if (st) return st;
    }
    uint32_t fragment = 0;
    for (int32_t i = j->first_slice[fj]; i >= 0; i = j->next_slice[i]) {
        const file_rec *r = &j->files[j->ps[i].r.file];
        size_t bytes = j->plane * (size_t)(r->h.bits_allocated / 8);
        vs_error e;
        if (dcm_shim_decode_frame(j->v->files[fj], (uint32_t)j->ps[i].r.frame, &fragment, raw,
                                  bytes, &e) != VS_OK)
            return VS_FAIL(err, VS_ERR_FORMAT, "%s: %s", r->path, e.msg);
        pixel_rules rules;
        rules_of(&r->h, &r->h.frame[j->ps[i].r.frame], &rules);
        if (fused_i16(&rules, j->i16)) {
            rescale_u16_i16(raw, j->plane, &rules, j->i16 + (size_t)i * j->plane);
            continue;
        }
        stored_values(raw, j->plane, &rules, sv);
        if (j->i16)
            rescale_values_i16(sv, j->plane, &rules, j->i16 + (size_t)i * j->plane, stats);
        else
            rescale_values(sv, j->plane, &rules, j->stack + (size_t)i * j->plane, stats);
    }
    return VS_OK;
}

static void *decode_worker(void *arg) {
    decode_job *j = arg;
    pixel_stats stats = {1, 0, 0, INFINITY};
    void *raw = malloc(j->plane * 4);
    int64_t *sv = malloc(j->plane * sizeof *sv);
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int32_t fj = j->next_file < j->failed_file ? j->next_file++ : j->n_files;
        pthread_mutex_unlock(&j->mu);
        if (fj >= j->n_files) break;
        vs_error e;
        vs_status st = raw && sv ? decode_file(j, fj, raw, sv, &stats, &e)
                                 : VS_FAIL(&e, VS_ERR_NOMEM, "out of memory for a frame");
        if (st == VS_OK) continue;
        pthread_mutex_lock(&j->mu); /* the lowest failing file wins, whatever the timing */
        if (fj < j->failed_file) {
            j->failed_file = fj;
            j->st = st;
            j->err = e;
        }
        pthread_mutex_unlock(&j->mu);
    }
    free(raw);
    free(sv);
    pthread_mutex_lock(&j->mu); /* order-free merge: AND, OR, sum, min */
    j->stats.int16_ok &= stats.int16_ok;
    j->stats.overflow |= stats.overflow;
    j->stats.n_padding += stats.n_padding;
    if (stats.min < j->stats.min) j->stats.min = stats.min;
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Load (when load) and decode every slice into stack (n, rows, cols): float32, or int16 when
 * i16 is not NULL; files are shared out among opt->threads threads. The result, and the error
 * reported (that of the first failing file in slice order), do not depend on the threads. */
static vs_status decode_slices(const dcm_options *opt, file_rec *files, const pos_slice *ps,
                               int32_t n, dcm_series *v, const int32_t *file_of,
                               const int32_t *slice_file, int32_t n_files, int load, float *stack,
                               int16_t *i16, pixel_stats *stats, vs_error *err) {
    const dcm_header *h0 = &files[ps[0].r.file].h;
    int32_t *first = malloc((size_t)n_files * sizeof *first),
            *next = malloc((size_t)n * sizeof *next);
    if (!first || !next) {
        free(first);
        free(next);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    for (int32_t f = 0; f < n_files; f++)
        first[f] = -1;
    for (int32_t i = n - 1; i >= 0; i--) { /* each file's slices in slice order */
        next[i] = first[slice_file[i]];
        first[slice_file[i]] = i;
    }
    decode_job j = {.opt = opt,
                    .files = files,
                    .ps = ps,
                    .n = n,
                    .v = v,
                    .file_of = file_of,
                    .slice_file = slice_file,
                    .first_slice = first,
                    .next_slice = next,
                    .n_files = n_files,
                    .stack = stack,
                    .i16 = i16,
                    .plane = (size_t)h0->rows * (size_t)h0->cols,
                    .load = load,
                    .stats = {1, 0, 0, INFINITY},
                    .failed_file = n_files,
                    .st = VS_OK};
    if (load) v->n_files = n_files; /* files not loaded (after a failure) stay NULL */
    pthread_mutex_init(&j.mu, NULL);
    int want = opt->threads > 1 ? opt->threads - 1 : 0;
    if (want > n_files - 1) want = n_files - 1;
    if (want > DCM_MAX_THREADS - 1) want = DCM_MAX_THREADS - 1;
    pthread_t th[DCM_MAX_THREADS];
    int helpers = 0;
    while (helpers < want && pthread_create(&th[helpers], NULL, decode_worker, &j) == 0)
        helpers++;
    decode_worker(&j); /* the caller works too */
    for (int t = 0; t < helpers; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.mu);
    free(first);
    free(next);
    *stats = j.stats;
    if (j.st != VS_OK) *err = j.err;
    return j.st;
}

/* Linear interpolation along the slice positions: in (n, plane) -> out (n_out, plane). */
static void resample_stack(const float *in, const pos_slice *ps, int32_t n, float *out,
                           int32_t n_out, size_t plane) {
    double s0 = ps[0].s, span = ps[n - 1].s - ps[0].s;
    int32_t k = 0;
    for (int32_t j = 0; j < n_out; j++) {
        double sj = s0 + span * j / (n_out - 1);
        while (k + 2 < n && ps[k + 1].s <= sj)
            k++;
        double w = (sj - ps[k].s) / (ps[k + 1].s - ps[k].s);
        if (w < 0) w = 0;
        if (w > 1) w = 1;
        const float *a = in + (size_t)k * plane, *b = in + (size_t)(k + 1) * plane;
        float *o = out + (size_t)j * plane;
        for (size_t i = 0; i < plane; i++)
            o[i] = (float)((1 - w) * a[i] + w * b[i]);
    }
}

static void fill_geometry(volume *vol, const dcm_header *h0, const dcm_frame *f0, int projection,
                          const double origin[3], const double step[3]) {
    vol->spacing[0] = f0->spacing[1]; /* PixelSpacing: row spacing \ column spacing */
    vol->spacing[1] = f0->spacing[0];
    double d[3][3];
    if (projection) {
        memset(d, 0, sizeof d);
        d[0][0] = d[1][1] = d[2][2] = 1;
        memset(vol->origin, 0, sizeof vol->origin);
        vol->spacing[2] = h0->slice_thickness > 0 ? h0->slice_thickness : 1.0;
    } else {
        memcpy(d[0], f0->iop, 3 * sizeof(double));
        memcpy(d[1], f0->iop + 3, 3 * sizeof(double));
        double len = norm3(step);
        for (int c = 0; c < 3; c++)
            d[2][c] = step[c] / len;
        vol->spacing[2] = len;
        memcpy(vol->origin, origin, sizeof vol->origin);
    }
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            vol->direction[r * 3 + c] = d[c][r];
    volume_update_affine(vol);
    snprintf(vol->modality, sizeof vol->modality, "%s", h0->modality);
    snprintf(vol->body_part, sizeof vol->body_part, "%s", h0->body_part);
}

/* Padding voxels (NaN) become the smallest real value; int16 in place when exact. */
static vs_status finish_values(volume *vol, const pixel_stats *st, int allow_int16, vs_error *err) {
    uint64_t n = volume_n_voxels(vol);
    float *f = vol->voxels;
    if (st->n_padding) {
        float fill = st->min < INFINITY ? (float)st->min : 0.0f;
        for (uint64_t i = 0; i < n; i++)
            if (f[i] != f[i]) f[i] = fill;
    }
    if (!allow_int16 || !st->int16_ok) return VS_OK;
    int16_t *o = vol->voxels; /* o[i] (bytes 2i..2i+1) never overtakes f[i] (bytes 4i..) */
    for (uint64_t i = 0; i < n; i++)
        o[i] = (int16_t)f[i];
    void *shrunk = realloc(vol->voxels, (size_t)n * sizeof(int16_t));
    if (shrunk) vol->voxels = shrunk;
    vol->dtype = VOL_INT16;
    (void)err;
    return VS_OK;
}

/* True when every slice's rescale is integral, no padding is declared and every value the
 * stored bits can hold maps into int16: then voxels go straight to int16, with no float stack.
 * (A JPEG 2000 codestream may still disagree on signedness; rescale_values_i16 notices.) */
static int predict_int16(file_rec *files, const pos_slice *ps, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        const dcm_header *h = &files[ps[i].r.file].h;
        const dcm_frame *fr = &h->frame[ps[i].r.frame];
        if (h->has_padding || fr->slope != floor(fr->slope) ||
            fr->intercept != floor(fr->intercept) || fabs(fr->slope) > 65536 ||
            fabs(fr->intercept) > 65536 || h->bits_stored > 30)
            return 0;
        double lo = h->pixel_rep ? -ldexp(1, h->bits_stored - 1) : 0;
        double hi = h->pixel_rep ? ldexp(1, h->bits_stored - 1) - 1 : ldexp(1, h->bits_stored) - 1;
        double y0 = lo * fr->slope + fr->intercept, y1 = hi * fr->slope + fr->intercept;
        if (fmin(y0, y1) < -32768 || fmax(y0, y1) > 32767) return 0;
    }
    return 1;
}

vs_status dcm_assemble(const dcm_options *opt, file_rec *files, group *g, int index,
                       dcm_series **out, vs_error *err) {
    *out = NULL;
    int32_t n = g->n;
    pos_slice *ps = calloc((size_t)n, sizeof *ps);
    int32_t *slice_file = calloc((size_t)n, sizeof *slice_file);
    dcm_series *v = calloc(1, sizeof *v);
    float *stack = NULL;
    int32_t *file_of = NULL;
    int loaded = 0;
    vs_status st = VS_OK;
    if (!ps || !slice_file || !v) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < n; i++)
        ps[i].r = g->s[i];
    const file_rec *r0 = &files[g->s[0].file];
    int projection = r0->projection;
    double origin[3] = {0, 0, 0}, step[3] = {0, 0, 1};
    int32_t n_out = 1;
    int resample = 0;
    if (!projection) {
        st = order_slices(opt, files, ps, n, origin, step, &n_out, &resample, err);
        if (st) goto fail;
    }
    const dcm_header *h0 = &files[ps[0].r.file].h;
    const dcm_frame *f0 = &h0->frame[ps[0].r.frame];
    uint64_t vox = (uint64_t)n_out * (uint64_t)h0->rows * (uint64_t)h0->cols;
    if (vox > opt->max_volume_voxels) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "volume of %dx%dx%d voxels exceeds the limit", (int)n_out,
                     (int)h0->rows, (int)h0->cols);
        goto fail;
    }
    v->index = index;
    v->kind = r0->kind;
    if (h0->series_uid) snprintf(v->series_uid, sizeof v->series_uid, "%s", h0->series_uid);
    v->resampled = resample;
    file_of = malloc((size_t)n * sizeof *file_of);
    if (!file_of || !(v->files = calloc((size_t)n, sizeof *v->files))) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int32_t n_files = distinct_files(ps, n, file_of, slice_file);
    size_t plane = (size_t)h0->rows * (size_t)h0->cols;
    pixel_stats stats = {1, 0, 0, INFINITY};
    if (resample) {
        stack = malloc((size_t)n * plane * sizeof *stack);
        if (!stack) {
            st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %d slices", (int)n);
            goto fail;
        }
    }
    if (!resample && predict_int16(files, ps, n)) {
        st = volume_alloc(&v->vol, n_out, h0->rows, h0->cols, VOL_INT16, opt->max_volume_voxels,
                          err);
        if (st) goto fail;
        st = decode_slices(opt, files, ps, n, v, file_of, slice_file, n_files, 1, NULL,
                           v->vol.voxels, &stats, err);
        loaded = 1;
        if (st) goto fail;
        if (!stats.overflow) goto done;
        volume_free(&v->vol); /* the codestream disagreed with the header: the general path */
        stats = (pixel_stats){1, 0, 0, INFINITY};
    }
    st = volume_alloc(&v->vol, n_out, h0->rows, h0->cols, VOL_FLOAT32, opt->max_volume_voxels, err);
    if (st) goto fail;
    st = decode_slices(opt, files, ps, n, v, file_of, slice_file, n_files, !loaded,
                       resample ? stack : v->vol.voxels, NULL, &stats, err);
    if (st) goto fail;
    if (resample) {
        if (stats.n_padding) { /* fill padding before interpolating across it */
            for (size_t i = 0; i < (size_t)n * plane; i++)
                if (stack[i] != stack[i]) stack[i] = (float)stats.min;
            stats.n_padding = 0;
        }
        resample_stack(stack, ps, n, v->vol.voxels, n_out, plane);
    }
    st = finish_values(&v->vol, &stats, !resample, err);
    if (st) goto fail;
done:
    fill_geometry(&v->vol, h0, f0, projection, origin, step);
    snprintf(v->vol.units, sizeof v->vol.units, "%s",
             strcmp(h0->modality, "CT") == 0 ? "HU" : "arbitrary");
    free(stack);
    free(ps);
    free(slice_file);
    free(file_of);
    *out = v;
    return VS_OK;
fail:
    free(stack);
    free(ps);
    free(slice_file);
    free(file_of);
    dcm_series_free(v);
    return st;
}
