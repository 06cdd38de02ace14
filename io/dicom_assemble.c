/* dicom_assemble.c — one volume from its slices: order, geometry, decode, pixel rules.
 *
 * Invariants:
 *   1. Slices are ordered by s = IPP . (row x column cosines), never by InstanceNumber or path;
 *      ties are a reject (4D or duplicate images), so the order is total and input-independent.
 *   2. The slice step is (IPP_last - IPP_first) / (n - 1); with gantry tilt it is not along
 *      the normal and the affine carries the shear (volume.h allows it).
 *   3. Peak memory is the float32 working stack (plus the output stack when resampling) and
 *      one raw frame; the int16 result is made in place.
 */
#include "dicom_scan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    int64_t n_padding;
    double min; /* smallest non-padding value */
} pixel_stats;

/* raw: (rows*cols) samples of bits_allocated bits, native endian -> out: (rows*cols) float32,
 * NaN where the stored value is the padding value. */
static void convert_frame(const void *raw, size_t n, const pixel_rules *p, float *out,
                          pixel_stats *st) {
    const int shift = p->high_bit + 1 - p->bits_stored;
    const uint32_t mask = p->bits_stored >= 32 ? 0xFFFFFFFFu : (1u << p->bits_stored) - 1;
    const uint32_t sign = 1u << (p->bits_stored - 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = p->bits_allocated == 8    ? ((const uint8_t *)raw)[i]
                     : p->bits_allocated == 16 ? ((const uint16_t *)raw)[i]
                                               : ((const uint32_t *)raw)[i];
        u = (u >> shift) & mask;
        int64_t v = u;
        if (p->pixel_rep && (u & sign)) v -= (int64_t)mask + 1;
        if (p->has_padding && v == p->padding) {
            out[i] = NAN;
            st->n_padding++;
            continue;
        }
        if (p->mono1) v = p->pixel_rep ? -1 - v : (int64_t)mask - v;
        double y = (double)v * p->slope + p->intercept;
        if (st->int16_ok && (y < -32768.0 || y > 32767.0 || y != floor(y))) st->int16_ok = 0;
        if (y < st->min) st->min = y;
        out[i] = (float)y;
    }
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
        *resample = 1;
        double k = floor(span / m + 0.5);
        if (k < 1 || k > 65535)
            return VS_FAIL(err, VS_ERR_FORMAT,
                           "cannot resample %.3f mm in "
                           "steps of %.3f mm",
                           span, m);
        *n_out = (int32_t)k + 1;
    }
    for (int c = 0; c < 3; c++)
        step[c] = (ps[n - 1].ipp[c] - ps[0].ipp[c]) / (*n_out - 1);
    return VS_OK;
}

/* Load every distinct file of the volume once, in slice order; fills slice_file[i]. */
static vs_status load_files(const dcm_options *opt, file_rec *files, const pos_slice *ps, int32_t n,
                            dcm_series *v, int32_t *slice_file, vs_error *err) {
    v->files = calloc((size_t)n, sizeof *v->files);
    if (!v->files) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    int32_t *file_of = malloc((size_t)n * sizeof *file_of);
    if (!file_of) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    vs_status st = VS_OK;
    for (int32_t i = 0; i < n && !st; i++) {
        int32_t found = -1;
        /* Enhanced objects hold many slices per file; single-frame ones one each. */
        if (i > 0 && file_of[v->n_files - 1] == ps[i].r.file) found = v->n_files - 1;
        for (int32_t j = 0; found < 0 && j < v->n_files; j++)
            if (file_of[j] == ps[i].r.file) found = j;
        if (found < 0) {
            file_rec *r = &files[ps[i].r.file];
            dcmfile *f = NULL;
            vs_error e;
            if (dcmfile_load(r->path, &opt->limits, &f, &e) != VS_OK) {
                st = VS_FAIL(err, VS_ERR_FORMAT, "%s", e.msg);
                break;
            }
            const dcmfile_facts *fa = dcmfile_get_facts(f);
            if ((int32_t)fa->rows != r->h.rows || (int32_t)fa->cols != r->h.cols ||
                (int32_t)fa->bits_allocated != r->h.bits_allocated) {
                dcmfile_free(f);
                st = VS_FAIL(err, VS_ERR_FORMAT, "%s: file changed since it was scanned", r->path);
                break;
            }
            file_of[v->n_files] = ps[i].r.file;
            v->files[v->n_files++] = f;
            found = v->n_files - 1;
        }
        slice_file[i] = found;
    }
    free(file_of);
    return st;
}

/* Decode every slice into stack (n, rows, cols) float32 under the pixel rules. */
static vs_status decode_slices(file_rec *files, const pos_slice *ps, int32_t n, dcm_series *v,
                               const int32_t *slice_file, float *stack, pixel_stats *stats,
                               vs_error *err) {
    const dcm_header *h0 = &files[ps[0].r.file].h;
    size_t plane = (size_t)h0->rows * (size_t)h0->cols;
    size_t max_bytes = plane * 4;
    void *raw = malloc(max_bytes);
    if (!raw) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for a frame");
    vs_status st = VS_OK;
    uint32_t fragment = 0;
    int32_t last_file = -1;
    for (int32_t i = 0; i < n; i++) {
        const file_rec *r = &files[ps[i].r.file];
        size_t bytes = plane * (size_t)(r->h.bits_allocated / 8);
        if (slice_file[i] != last_file) fragment = 0;
        last_file = slice_file[i];
        vs_error e;
        int is_signed = -1;
        if (dcmshim_decode_frame(v->files[slice_file[i]], (uint32_t)ps[i].r.frame, &fragment, raw,
                                 bytes, &is_signed, &e) != VS_OK) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "%s: %s", r->path, e.msg);
            break;
        }
        pixel_rules rules;
        rules_of(&r->h, &r->h.frame[ps[i].r.frame], &rules);
        if (is_signed >= 0) rules.pixel_rep = is_signed;
        convert_frame(raw, plane, &rules, stack + (size_t)i * plane, stats);
    }
    free(raw);
    return st;
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

vs_status dcm_assemble(const dcm_options *opt, file_rec *files, group *g, int index,
                       dcm_series **out, vs_error *err) {
    *out = NULL;
    int32_t n = g->n;
    pos_slice *ps = calloc((size_t)n, sizeof *ps);
    int32_t *slice_file = calloc((size_t)n, sizeof *slice_file);
    dcm_series *v = calloc(1, sizeof *v);
    float *stack = NULL;
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
    v->resampled = resample;
    st = load_files(opt, files, ps, n, v, slice_file, err);
    if (st) goto fail;
    size_t plane = (size_t)h0->rows * (size_t)h0->cols;
    pixel_stats stats = {1, 0, INFINITY};
    if (resample) {
        stack = malloc((size_t)n * plane * sizeof *stack);
        if (!stack) {
            st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %d slices", (int)n);
            goto fail;
        }
    }
    st = volume_alloc(&v->vol, n_out, h0->rows, h0->cols, VOL_FLOAT32, opt->max_volume_voxels, err);
    if (st) goto fail;
    st = decode_slices(files, ps, n, v, slice_file, resample ? stack : v->vol.voxels, &stats, err);
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
    fill_geometry(&v->vol, h0, f0, projection, origin, step);
    snprintf(v->vol.units, sizeof v->vol.units, "%s",
             strcmp(h0->modality, "CT") == 0 ? "HU" : "arbitrary");
    free(stack);
    free(ps);
    free(slice_file);
    *out = v;
    return VS_OK;
fail:
    free(stack);
    free(ps);
    free(slice_file);
    dcm_series_free(v);
    return st;
}
