/* det_predict.c — sliding-window inference over whole volumes (det.h): windows on the cell
 * grid, outputs averaged per cell (and over flips), local maxima, non-maximum suppression, LPS
 * centres; ensembles of detectors (their probabilities averaged). */
#include "det.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float det_voxel(const volume *v, size_t i) {
    switch (v->dtype) {
    case VOL_INT16: return ((const int16_t *)v->voxels)[i];
    case VOL_UINT8: return ((const uint8_t *)v->voxels)[i];
    default: return ((const float *)v->voxels)[i];
    }
}

void det_predict_opts_default(det_predict_opts *o) {
    o->min_prob = 0.01f;
    o->max_candidates = 50;
    o->nms_mm = 6.0;
    o->flips = 0;
}

void det_result_free(det_result *r) {
    free(r->cand);
    free(r->heat);
    memset(r, 0, sizeof *r);
}

/* Window starts (in tokens) along one axis of `cells` tokens: every `stride`, the last one
 * flush with the end; one window at 0 when the axis is shorter than the window. */
static int window_starts(int cells, int w, int stride, int *starts) {
    int n = 0;
    for (int s = 0;; s += stride) {
        int t = s + w >= cells ? (cells - w > 0 ? cells - w : 0) : s;
        if (n == 0 || starts[n - 1] != t) starts[n++] = t;
        if (s + w >= cells) break;
    }
    return n;
}

/* Copy the window whose first voxel is v0 (z, y, x) into out (Sz, Sy, Sx), padding outside,
 * mirrored along axis a when bit a of flip is set. */
static void window_copy(const volume *v, const det_config *c, const int64_t v0[3], float pad,
                        int flip, float *out) {
    const int *crop = c->enc.crop;
    int64_t dims[3] = {v->n_slices, v->n_rows, v->n_cols};
    for (int z = 0; z < crop[0]; z++)
        for (int y = 0; y < crop[1]; y++) {
            int oz = flip & 1 ? crop[0] - 1 - z : z, oy = flip & 2 ? crop[1] - 1 - y : y;
            float *o = out + ((size_t)oz * crop[1] + oy) * crop[2];
            int64_t vz = v0[0] + z, vy = v0[1] + y;
            for (int x = 0; x < crop[2]; x++) {
                int64_t vx = v0[2] + x;
                o[flip & 4 ? crop[2] - 1 - x : x] =
                    det_input(c, (vz < dims[0] && vy < dims[1] && vx < dims[2])
                                     ? det_voxel(v, (size_t)((vz * dims[1] + vy) * dims[2] + vx))
                                     : pad);
            }
        }
}

static int cand_cmp(const void *a, const void *b) {
    const det_candidate *x = a, *y = b;
    if (x->probability != y->probability) return x->probability > y->probability ? -1 : 1;
    for (int i = 2; i >= 0; i--) /* ties: by position, a total order */
        if (x->ijk[i] != y->ijk[i]) return x->ijk[i] < y->ijk[i] ? -1 : 1;
    return 0;
}

/* Local maxima of heat over the 26-neighbourhood (ties go to the lower index), as candidates. */
static vs_status local_maxima(const volume *v, const int cells[3], const float *heat,
                              const double *acc, const float min_prob, det_candidate **out,
                              int *n_out, vs_error *err) {
    size_t nc = (size_t)cells[0] * cells[1] * cells[2], n = 0, cap = 64;
    det_candidate *c = malloc(cap * sizeof *c);
    if (!c) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate candidates");
    for (size_t i = 0; i < nc; i++) {
        float p = heat[i];
        if (p < min_prob) continue;
        int t[3] = {(int)(i / ((size_t)cells[1] * cells[2])), (int)((i / cells[2]) % cells[1]),
                    (int)(i % cells[2])};
        int is_max = 1;
        for (int dz = -1; dz <= 1 && is_max; dz++)
            for (int dy = -1; dy <= 1 && is_max; dy++)
                for (int dx = -1; dx <= 1 && is_max; dx++) {
                    int q[3] = {t[0] + dz, t[1] + dy, t[2] + dx};
                    if ((!dz && !dy && !dx) || q[0] < 0 || q[1] < 0 || q[2] < 0 ||
                        q[0] >= cells[0] || q[1] >= cells[1] || q[2] >= cells[2])
                        continue;
                    size_t j = ((size_t)q[0] * cells[1] + q[1]) * cells[2] + q[2];
                    if (heat[j] > p || (heat[j] == p && j < i)) is_max = 0;
                }
        if (!is_max) continue;
        if (n == cap) {
            det_candidate *nc2 = realloc(c, 2 * cap * sizeof *c);
            if (!nc2) {
                free(c);
                return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate candidates");
            }
            c = nc2, cap *= 2;
        }
        const double *a = acc + i * DET_OUT; /* means: prob, offsets z, y, x, log size */
        double zyx[3];
        for (int k = 0; k < 3; k++) {
            double off = a[1 + k] < -0.5 ? -0.5 : a[1 + k] > 1.5 ? 1.5 : a[1 + k];
            zyx[k] = (t[k] + off) * DET_STRIDE - 0.5;
        }
        det_candidate *d = &c[n++];
        d->ijk[0] = zyx[2], d->ijk[1] = zyx[1], d->ijk[2] = zyx[0];
        volume_index_to_lps(v, d->ijk, d->lps);
        d->probability = p;
        double ls = a[4] < -5.0 ? -5.0 : a[4] > 5.0 ? 5.0 : a[4];
        d->diameter = (float)(10.0 * exp(ls));
    }
    *out = c;
    *n_out = (int)n;
    return VS_OK;
}

static void nms(det_candidate *c, int *n, const det_predict_opts *o) {
    qsort(c, (size_t)*n, sizeof *c, cand_cmp);
    int kept = 0;
    for (int i = 0; i < *n && kept < o->max_candidates; i++) {
        int suppressed = 0;
        for (int j = 0; j < kept && !suppressed; j++) {
            double d2 = 0.0;
            for (int a = 0; a < 3; a++)
                d2 += (c[i].lps[a] - c[j].lps[a]) * (c[i].lps[a] - c[j].lps[a]);
            double r = o->nms_mm > c[j].diameter / 2.0 ? o->nms_mm : c[j].diameter / 2.0;
            suppressed = d2 < r * r;
        }
        if (!suppressed) c[kept++] = c[i];
    }
    *n = kept;
}

vs_status det_predict_grid(const volume *v, const det_config *c, det_window_fn fn, void *ctx,
                           const det_predict_opts *o, det_result *res, vs_error *err) {
    const int *crop = c->enc.crop, batch = c->enc.batch;
    memset(res, 0, sizeof *res);
    int64_t dims[3] = {v->n_slices, v->n_rows, v->n_cols};
    int W[3], *starts[3] = {NULL, NULL, NULL}, ns[3];
    size_t nvox = (size_t)volume_n_voxels(v);
    if (nvox == 0) return VS_FAIL(err, VS_ERR_FORMAT, "volume %s is empty", v->series_key);
    for (int a = 0; a < 3; a++) {
        res->cells[a] = (int)((dims[a] + DET_STRIDE - 1) / DET_STRIDE);
        W[a] = crop[a] / DET_STRIDE;
    }
    size_t nc = (size_t)res->cells[0] * res->cells[1] * res->cells[2];
    size_t N = (size_t)W[0] * W[1] * W[2], cv = (size_t)crop[0] * crop[1] * crop[2];
    double *acc = calloc(nc * DET_OUT, sizeof *acc);
    double *wsum = calloc(nc, sizeof *wsum);
    float *win = malloc((size_t)batch * cv * sizeof *win);
    float *outb = malloc((size_t)batch * N * DET_OUT * sizeof *outb);
    int(*pos)[4] = malloc((size_t)batch * sizeof *pos);
    res->heat = malloc(nc * sizeof *res->heat);
    vs_status st = VS_OK;
    if (!acc || !wsum || !win || !outb || !pos || !res->heat) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate sliding-window buffers");
        goto done;
    }
    for (int a = 0; a < 3; a++) {
        starts[a] = malloc(((size_t)res->cells[a] + 1) * sizeof(int));
        if (!starts[a]) {
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate window starts");
            goto done;
        }
        int step = 3 * W[a] / 4; /* a quarter overlap: the tent blends the seams with up to
                                    1.5x fewer windows per axis than half overlap */
        ns[a] = window_starts(res->cells[a], W[a], step > 0 ? step : 1, starts[a]);
    }
    float pad = det_voxel(v, 0);
    for (size_t i = 1; i < nvox; i++)
        pad = fminf(pad, det_voxel(v, i));
    int n_flip = o->flips ? 8 : 1, n_job = ns[0] * ns[1] * ns[2] * n_flip;
    for (int j0 = 0; j0 < n_job && st == VS_OK; j0 += batch) {
        int nb = n_job - j0 < batch ? n_job - j0 : batch;
        for (int b = 0; b < batch; b++) { /* a short last batch repeats its last window */
            int j = j0 + (b < nb ? b : nb - 1), w = j / n_flip, flip = j % n_flip;
            int s[3] = {starts[0][w / (ns[1] * ns[2])], starts[1][(w / ns[2]) % ns[1]],
                        starts[2][w % ns[2]]};
            int64_t v0[3] = {(int64_t)s[0] * DET_STRIDE, (int64_t)s[1] * DET_STRIDE,
                             (int64_t)s[2] * DET_STRIDE};
            memcpy(pos[b], s, sizeof s);
            pos[b][3] = flip;
            window_copy(v, c, v0, pad, flip, win + (size_t)b * cv);
        }
        st = fn(ctx, win, batch, outb, err);
        for (int b = 0; st == VS_OK && b < nb; b++) {
            int flip = pos[b][3];
            for (size_t t = 0; t < N; t++) {
                int tz = (int)(t / ((size_t)W[1] * W[2])), ty = (int)((t / W[2]) % W[1]),
                    tx = (int)(t % W[2]);
                int cz = pos[b][0] + tz, cy = pos[b][1] + ty, cx = pos[b][2] + tx;
                if (cz >= res->cells[0] || cy >= res->cells[1] || cx >= res->cells[2]) continue;
                size_t c = ((size_t)cz * res->cells[1] + cy) * res->cells[2] + cx;
                /* the network saw this cell at the mirrored place of a flipped window */
                int fz = flip & 1 ? W[0] - 1 - tz : tz, fy = flip & 2 ? W[1] - 1 - ty : ty,
                    fx = flip & 4 ? W[2] - 1 - tx : tx;
                size_t ft = ((size_t)fz * W[1] + fy) * W[2] + fx;
                const float *ob = outb + (size_t)b * DET_OUT * N;
                /* tent weight: a cell sees more context the further it is from the edges */
                double w = (double)(tz + 1 < W[0] - tz ? tz + 1 : W[0] - tz) *
                           (ty + 1 < W[1] - ty ? ty + 1 : W[1] - ty) *
                           (tx + 1 < W[2] - tx ? tx + 1 : W[2] - tx);
                acc[c * DET_OUT] += w / (1.0 + exp(-(double)ob[ft]));
                for (int k = 1; k < 4; k++) { /* an offset mirrors inside its cell */
                    double off = ob[(size_t)k * N + ft];
                    acc[c * DET_OUT + k] += w * (flip & (1 << (k - 1)) ? 1.0 - off : off);
                }
                acc[c * DET_OUT + 4] += w * ob[4 * N + ft];
                wsum[c] += w;
            }
        }
    }
    if (st != VS_OK) goto done;
    res->score = 0.0f;
    for (size_t c = 0; c < nc; c++) {
        for (int k = 0; k < DET_OUT; k++)
            acc[c * DET_OUT + k] /= wsum[c] > 0.0 ? wsum[c] : 1.0;
        res->heat[c] = (float)acc[c * DET_OUT];
        if (res->heat[c] > res->score) res->score = res->heat[c];
    }
    st = local_maxima(v, res->cells, res->heat, acc, o->min_prob, &res->cand, &res->n, err);
    if (st == VS_OK) nms(res->cand, &res->n, o);
done:
    for (int a = 0; a < 3; a++)
        free(starts[a]);
    free(acc), free(wsum), free(win), free(outb), free(pos);
    if (st != VS_OK) det_result_free(res);
    return st;
}

static vs_status det_window(void *ctx, const float *win, int B, float *out, vs_error *err) {
    det *d = ctx;
    const det_config *c = det_get_config(d);
    if (B != c->enc.batch)
        return VS_FAIL(err, VS_ERR_INTERNAL, "window batch %d != detector batch %d", B,
                       c->enc.batch);
    float loss;
    vs_status st = det_forward(d, win, NULL, &loss, err);
    if (st != VS_OK) return st;
    int g[3];
    size_t cells = det_cells(c, g);
    memcpy(out, det_output(d), (size_t)B * DET_OUT * cells * sizeof(float));
    return VS_OK;
}

vs_status det_predict(det *d, const volume *v, const det_predict_opts *o, det_result *res,
                      vs_error *err) {
    return det_predict_grid(v, det_get_config(d), det_window, d, o, res, err);
}

typedef struct ensemble {
    det *const *d;
    int n;
    size_t cells; /* per window */
    float *sum;   /* (B, DET_OUT, cells): probabilities, then offsets and log sizes */
} ensemble;

/* Every member on the same windows: the mean of their probabilities, returned as its logit so
 * that det_predict_grid's sigmoid gives it back, and the mean of their offsets and sizes. */
static vs_status ensemble_window(void *ctx, const float *win, int B, float *out, vs_error *err) {
    ensemble *e = ctx;
    size_t cells = e->cells;
    memset(e->sum, 0, (size_t)B * DET_OUT * cells * sizeof *e->sum);
    for (int m = 0; m < e->n; m++) {
        vs_status st = det_window(e->d[m], win, B, out, err);
        if (st != VS_OK) return st;
        for (int b = 0; b < B; b++) {
            size_t w = (size_t)b * DET_OUT * cells; /* channel 0: the objectness logit */
            for (size_t t = 0; t < cells; t++)
                e->sum[w + t] += 1.0f / (1.0f + expf(-out[w + t]));
            for (size_t t = cells; t < DET_OUT * cells; t++)
                e->sum[w + t] += out[w + t];
        }
    }
    float inv = 1.0f / (float)e->n;
    for (int b = 0; b < B; b++) {
        size_t w = (size_t)b * DET_OUT * cells;
        for (size_t t = 0; t < cells; t++) { /* the logit of the mean, kept finite */
            float p = e->sum[w + t] * inv;
            p = p < 1e-7f ? 1e-7f : p > 1.0f - 1e-7f ? 1.0f - 1e-7f : p;
            out[w + t] = logf(p / (1.0f - p));
        }
        for (size_t t = cells; t < DET_OUT * cells; t++)
            out[w + t] = e->sum[w + t] * inv;
    }
    return VS_OK;
}

int det_same_shape(const det *a, const det *b) {
    const det_config *x = det_get_config(a), *y = det_get_config(b);
    return !memcmp(x->enc.crop, y->enc.crop, sizeof x->enc.crop) &&
           !memcmp(x->enc.patch, y->enc.patch, sizeof x->enc.patch) &&
           x->enc.batch == y->enc.batch && x->window[0] == y->window[0] &&
           x->window[1] == y->window[1];
}

vs_status det_predict_ensemble(det *const *d, int n, const volume *v, const det_predict_opts *o,
                               det_result *res, vs_error *err) {
    memset(res, 0, sizeof *res);
    if (n < 1) return VS_FAIL(err, VS_ERR_INTERNAL, "an ensemble needs a member");
    if (n == 1) return det_predict(d[0], v, o, res, err);
    for (int m = 1; m < n; m++)
        if (!det_same_shape(d[m], d[0]))
            return VS_FAIL(err, VS_ERR_FORMAT,
                           "ensemble member %d has another crop, patch, batch or window than "
                           "member 0",
                           m);
    const det_config *c = det_get_config(d[0]);
    int g[3];
    ensemble e = {d, n, det_cells(c, g), NULL};
    e.sum = malloc((size_t)c->enc.batch * DET_OUT * e.cells * sizeof *e.sum);
    if (!e.sum) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the ensemble's outputs");
    vs_status st = det_predict_grid(v, c, ensemble_window, &e, o, res, err);
    free(e.sum);
    return st;
}
