/* det.c — the detector of det.h: encoder + convolutional stem and decoder + CenterNet head,
 * its targets and loss, and checkpoints. */
#include "det.h"

#include "mae_train.h"
#include "nn.h"
#include "nn3d.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DET_BETA 4.0        /* CenterNet's penalty reduction of negatives near a centre */
#define DET_SIZE_WEIGHT 0.1 /* of reg_weight, for log size (CenterNet's 0.1) */

/* conv3 (no bias: the norm removes it) -> InstanceNorm (affine) -> leaky ReLU. */
typedef struct blk {
    nn_conv3d_shape sh;
    size_t w, g, b; /* offsets of weight (Co, Ci, 27), gamma (Co), beta (Co) in the head */
    size_t O;       /* output voxels per channel */
    float *c, *n, *a, *mean, *rstd; /* conv out, norm out, activation (B, Co, O); (B, Co) */
} blk;

enum { B_A1, B_A2, B_B1, B_D1, B_D2, N_BLK };

struct det {
    det_config cfg;
    mae *enc;
    int B, N, D, ups; /* batch, tokens, width, 1: tokens (stride 8) upsampled to stride 4 */
    int n4[3], n8[3]; /* grids at stride 4 and 8 */
    int c1, c2, p, e1, e2;
    size_t G2, G4, GT; /* voxels per channel at stride 2, stride 4, on the token grid */
    size_t n_head;
    float *head, *ghead;
    blk blk[N_BLK];
    nn_conv3d_shape hsh; /* the 1x1x1 head */
    size_t hw, hb, pw, pb;
    float *scratch;
    const float *img, *feat, *tgt;
    float *tp, *t, *cat1, *cat2, *out; /* forward */
    float *dout, *dd2, *dcat2, *dd1, *dcat1, *dt, *dtp, *dfeat, *da2, *da2x, *db1, *da1;
};

void det_config_default(det_config *c) {
    memset(c, 0, sizeof *c);
    mae_config_default(&c->enc);
    for (int a = 0; a < 3; a++)
        c->enc.crop[a] = 32, c->enc.patch[a] = 8;
    c->enc.dim = 96, c->enc.depth = 3, c->enc.heads = 3;
    c->enc.dec_dim = 64, c->enc.dec_depth = 1, c->enc.dec_heads = 2;
    c->enc.batch = 4;
    c->stem[0] = 16, c->stem[1] = 32;
    c->dec[0] = 64, c->dec[1] = 32, c->dec[2] = 16;
    c->gamma = 2.0f;
    c->reg_weight = 1.0f;
}

size_t det_cells(const det_config *c, int cells[3]) {
    for (int a = 0; a < 3; a++)
        cells[a] = c->enc.crop[a] / DET_STRIDE;
    return (size_t)cells[0] * cells[1] * cells[2];
}

vs_status det_config_check(const det_config *c, vs_error *err) {
    vs_status st = mae_config_check(&c->enc, err);
    if (st != VS_OK) return st;
    const int *P = c->enc.patch, *S = c->enc.crop;
    if (!(P[0] == P[1] && P[1] == P[2] && (P[0] == 4 || P[0] == 8)))
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "the detector needs cubic patches of 4 or 8 voxels, not %dx%dx%d", P[0],
                       P[1], P[2]);
    for (int a = 0; a < 3; a++)
        if (!(S[a] % 8 == 0 && S[a] >= 16))
            return VS_FAIL(err, VS_ERR_CONFIG,
                           "the detector needs a crop of multiples of 8 voxels (16 or more) on "
                           "every axis, not %dx%dx%d",
                           S[0], S[1], S[2]);
    for (int i = 0; i < 2; i++)
        if (c->stem[i] < 1 || c->stem[i] > 1024)
            return VS_FAIL(err, VS_ERR_CONFIG, "stem widths must be 1..1024");
    for (int i = 0; i < 3; i++)
        if (c->dec[i] < 1 || c->dec[i] > 1024)
            return VS_FAIL(err, VS_ERR_CONFIG, "decoder widths must be 1..1024");
    if (c->probe != 0 && c->probe != 1) return VS_FAIL(err, VS_ERR_CONFIG, "probe must be 0 or 1");
    if (!(c->gamma >= 0.0f && c->gamma <= 10.0f))
        return VS_FAIL(err, VS_ERR_CONFIG, "focal gamma must be in [0, 10]");
    if (!(isfinite(c->window[0]) && isfinite(c->window[1]) && c->window[1] >= c->window[0]))
        return VS_FAIL(err, VS_ERR_CONFIG, "the intensity window must be LO <= HI");
    if (!(c->reg_weight >= 0.0f && c->reg_weight <= 1e3f))
        return VS_FAIL(err, VS_ERR_CONFIG, "regression weight must be in [0, 1000]");
    return VS_OK;
}

/* ------------------------------------------------------------------------------ create */
static float *falloc(size_t n, int *ok) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = 0;
    return p;
}

/* A block reading (B, Ci, n) into (B, Co, O); parameters appended at *off. */
static void blk_plan(blk *k, int B, int Ci, int Co, int s, const int n[3], size_t *off) {
    memset(k, 0, sizeof *k);
    k->sh.B = B, k->sh.Ci = Ci, k->sh.Co = Co, k->sh.k = 3, k->sh.s = s;
    for (int a = 0; a < 3; a++)
        k->sh.n[a] = n[a];
    k->O = nn_conv3d_out_voxels(&k->sh);
    k->w = *off, *off += (size_t)Co * Ci * 27;
    k->g = *off, *off += (size_t)Co;
    k->b = *off, *off += (size_t)Co;
}

static int blk_alloc(blk *k) {
    int ok = 1;
    size_t n = (size_t)k->sh.B * k->sh.Co * k->O;
    k->c = falloc(n, &ok), k->n = falloc(n, &ok), k->a = falloc(n, &ok);
    k->mean = falloc((size_t)k->sh.B * k->sh.Co, &ok);
    k->rstd = falloc((size_t)k->sh.B * k->sh.Co, &ok);
    return ok;
}

static void blk_free(blk *k) { free(k->c), free(k->n), free(k->a), free(k->mean), free(k->rstd); }

vs_status det_create(det **out, const det_config *cfg, vs_error *err) {
    *out = NULL;
    vs_status st = det_config_check(cfg, err);
    if (st != VS_OK) return st;
    det *d = calloc(1, sizeof *d);
    if (!d) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the detector");
    d->cfg = *cfg;
    st = mae_create_encoder(&d->enc, &cfg->enc, err);
    if (st != VS_OK) {
        free(d);
        return st;
    }
    const int *S = cfg->enc.crop;
    int P = cfg->enc.patch[0], B = cfg->enc.batch;
    d->B = B, d->N = mae_n_tokens(&cfg->enc), d->D = cfg->enc.dim;
    d->c1 = cfg->stem[0], d->c2 = cfg->stem[1];
    d->p = cfg->dec[0], d->e1 = cfg->dec[1], d->e2 = cfg->dec[2];
    d->ups = P == 8 ? 1 : 0;
    int s2[3], s4[3];
    for (int a = 0; a < 3; a++)
        s2[a] = S[a] / 2, s4[a] = S[a] / 4, d->n4[a] = s4[a], d->n8[a] = S[a] / 8;
    d->G2 = (size_t)s2[0] * s2[1] * s2[2], d->G4 = (size_t)s4[0] * s4[1] * s4[2];
    d->GT = (size_t)d->N;
    size_t off = 0;
    blk_plan(&d->blk[B_A1], B, 1, d->c1, 2, S, &off);
    blk_plan(&d->blk[B_A2], B, d->c1, d->c1, 1, s2, &off);
    blk_plan(&d->blk[B_B1], B, d->c1, d->c2, 2, s2, &off);
    d->pw = off, off += (size_t)d->p * d->D;
    d->pb = off, off += (size_t)d->p;
    blk_plan(&d->blk[B_D1], B, d->p + d->c2, d->e1, 1, s4, &off);
    blk_plan(&d->blk[B_D2], B, d->e1 + d->c1, d->e2, 1, s2, &off);
    memset(&d->hsh, 0, sizeof d->hsh);
    d->hsh.B = B, d->hsh.Ci = d->e2, d->hsh.Co = DET_OUT, d->hsh.k = 1, d->hsh.s = 1;
    for (int a = 0; a < 3; a++)
        d->hsh.n[a] = s2[a];
    d->hw = off, off += (size_t)DET_OUT * d->e2;
    d->hb = off, off += DET_OUT;
    d->n_head = off;
    size_t scratch = nn_conv3d_scratch(&d->hsh, nn_threads());
    for (int i = 0; i < N_BLK; i++) {
        size_t s = nn_conv3d_scratch(&d->blk[i].sh, nn_threads());
        if (s == 0) scratch = 0;
        if (scratch && s > scratch) scratch = s;
    }
    int ok = scratch > 0;
    if (!ok) {
        det_destroy(d);
        return VS_FAIL(err, VS_ERR_CONFIG, "the detector's convolutions cannot take crop %dx%dx%d",
                       S[0], S[1], S[2]);
    }
    d->head = falloc(d->n_head, &ok), d->ghead = falloc(d->n_head, &ok);
    d->scratch = falloc(scratch, &ok);
    for (int i = 0; i < N_BLK; i++)
        ok &= blk_alloc(&d->blk[i]);
    size_t BN = (size_t)B * d->N;
    d->tp = falloc(BN * d->p, &ok), d->t = falloc(BN * d->p, &ok);
    d->cat1 = falloc((size_t)B * (d->p + d->c2) * d->G4, &ok);
    d->cat2 = falloc((size_t)B * (d->e1 + d->c1) * d->G2, &ok);
    d->out = falloc((size_t)B * DET_OUT * d->G2, &ok);
    d->dout = falloc((size_t)B * DET_OUT * d->G2, &ok);
    d->dd2 = falloc((size_t)B * d->e2 * d->G2, &ok);
    d->dcat2 = falloc((size_t)B * (d->e1 + d->c1) * d->G2, &ok);
    d->dd1 = falloc((size_t)B * d->e1 * d->G4, &ok);
    d->dcat1 = falloc((size_t)B * (d->p + d->c2) * d->G4, &ok);
    d->dt = falloc(BN * d->p, &ok), d->dtp = falloc(BN * d->p, &ok);
    d->dfeat = falloc(BN * d->D, &ok);
    d->da2 = falloc((size_t)B * d->c1 * d->G2, &ok);
    d->da2x = falloc((size_t)B * d->c1 * d->G2, &ok);
    d->db1 = falloc((size_t)B * d->c2 * d->G4, &ok);
    d->da1 = falloc((size_t)B * d->c1 * d->G2, &ok);
    if (!ok) {
        det_destroy(d);
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the detector for batch %d", B);
    }
    *out = d;
    return VS_OK;
}

void det_destroy(det *d) {
    if (!d) return;
    mae_destroy(d->enc);
    for (int i = 0; i < N_BLK; i++)
        blk_free(&d->blk[i]);
    float *bufs[] = {d->head, d->ghead, d->scratch, d->tp,    d->t,   d->cat1,  d->cat2,
                     d->out,  d->dout,  d->dd2,     d->dcat2, d->dd1, d->dcat1, d->dt,
                     d->dtp,  d->dfeat, d->da2,     d->da2x,  d->db1, d->da1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(d);
}

const det_config *det_get_config(const det *d) { return &d->cfg; }
mae *det_encoder(det *d) { return d->enc; }
size_t det_head_n_params(const det *d) { return d->n_head; }
float *det_head_params(det *d) { return d->head; }
float *det_head_grads(det *d) { return d->ghead; }
const float *det_output(const det *d) { return d->out; }

static void uniform_init(float *w, size_t n, double bound, rng *r) {
    for (size_t j = 0; j < n; j++)
        w[j] = (float)((2.0 * rng_double(r) - 1.0) * bound);
}

void det_init_weights(det *d, rng *r) {
    mae_init_weights(d->enc, r);
    memset(d->head, 0, d->n_head * sizeof(float));
    for (int i = 0; i < N_BLK; i++) {
        const blk *k = &d->blk[i];
        size_t fan_in = (size_t)k->sh.Ci * 27;
        uniform_init(d->head + k->w, (size_t)k->sh.Co * fan_in, 1.0 / sqrt((double)fan_in), r);
        for (int c = 0; c < k->sh.Co; c++)
            d->head[k->g + c] = 1.0f;
    }
    uniform_init(d->head + d->pw, (size_t)d->p * d->D, sqrt(6.0 / (d->p + d->D)), r);
    uniform_init(d->head + d->hw, (size_t)DET_OUT * d->e2, 1.0 / sqrt((double)d->e2), r);
    d->head[d->hb] = (float)log(0.01 / 0.99);
}

/* ---------------------------------------------------------------------------- targets */
void det_lesion_radius(det_lesion *l, const volume *v) {
    for (int a = 0; a < 3; a++) /* spacing is (column, row, slice) */
        l->radius[a] = v->spacing[2 - a] > 0.0 ? l->diameter / 2.0 / v->spacing[2 - a] : 0.0;
}

void det_make_targets(const det_config *c, const det_lesion *les, int n_les, float *tgt) {
    int G[3];
    size_t nc = det_cells(c, G);
    memset(tgt, 0, nc * DET_TGT * sizeof *tgt);
    float *heat = tgt, *centre = tgt + nc, *off = tgt + 2 * nc, *size = tgt + 5 * nc;
    for (int l = 0; l < n_les; l++) {
        const det_lesion *e = &les[l];
        if (!(e->diameter > 0.0)) continue;
        double sig[3], u[3];
        int lo[3], hi[3], cell[3], inside = 1;
        for (int a = 0; a < 3; a++) {
            sig[a] = e->radius[a] / 2.0 > 1.0 ? e->radius[a] / 2.0 : 1.0;
            u[a] = (e->zyx[a] + 0.5) / DET_STRIDE; /* in cells */
            cell[a] = (int)floor(u[a]);
            if (u[a] < 0.0 || u[a] >= G[a]) inside = 0;
            double reach = 3.0 * sig[a] / DET_STRIDE;
            lo[a] = (int)floor(u[a] - reach), hi[a] = (int)ceil(u[a] + reach);
            lo[a] = lo[a] < 0 ? 0 : lo[a], hi[a] = hi[a] > G[a] - 1 ? G[a] - 1 : hi[a];
        }
        for (int z = lo[0]; z <= hi[0]; z++)
            for (int y = lo[1]; y <= hi[1]; y++)
                for (int x = lo[2]; x <= hi[2]; x++) {
                    int q[3] = {z, y, x};
                    double s = 0.0;
                    for (int a = 0; a < 3; a++) {
                        double dv = (q[a] * DET_STRIDE + 0.5 * (DET_STRIDE - 1)) - e->zyx[a];
                        s += dv * dv / (sig[a] * sig[a]);
                    }
                    size_t i = ((size_t)z * G[1] + y) * G[2] + x;
                    float h = (float)exp(-0.5 * s);
                    if (h > heat[i]) heat[i] = h;
                }
        if (!inside) continue;
        size_t i = ((size_t)cell[0] * G[1] + cell[1]) * G[2] + cell[2];
        float ls = (float)log(e->diameter / 10.0);
        if (centre[i] > 0.5f && size[i] >= ls) continue; /* a larger lesion keeps the cell */
        heat[i] = 1.0f, centre[i] = 1.0f, size[i] = ls;
        for (int a = 0; a < 3; a++)
            off[(size_t)a * nc + i] = (float)(u[a] - cell[a]);
    }
}

/* ------------------------------------------------------------------------ forward/loss */
static void blk_forward(det *d, blk *k, const float *inp) {
    nn_conv3d_forward(k->c, inp, d->head + k->w, NULL, d->scratch, &k->sh);
    nn_instnorm3d_forward(k->n, k->mean, k->rstd, k->c, d->head + k->g, d->head + k->b, k->sh.B,
                          k->sh.Co, k->O);
    nn_leaky_relu_forward(k->a, k->n, (size_t)k->sh.B * k->sh.Co * k->O, NN_LEAKY_SLOPE);
}

/* da: gradient at the block's output (overwritten as scratch); dinp overwritten (NULL skips). */
static void blk_backward(det *d, blk *k, const float *inp, float *da, float *dinp) {
    size_t n = (size_t)k->sh.B * k->sh.Co * k->O;
    nn_leaky_relu_backward(da, da, k->n, n, NN_LEAKY_SLOPE);
    nn_instnorm3d_backward(da, d->ghead + k->g, d->ghead + k->b, da, k->c, d->head + k->g, k->mean,
                           k->rstd, k->sh.B, k->sh.Co, k->O);
    nn_conv3d_backward(dinp, d->ghead + k->w, NULL, da, inp, d->head + k->w, d->scratch, &k->sh);
}

/* (B*N, p) rows -> (B, p, N) channels, and back. */
static void to_channels(float *out, const float *rows, int B, int N, int p) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < N; t++)
            for (int c = 0; c < p; c++)
                out[((size_t)b * p + c) * N + t] = rows[((size_t)b * N + t) * p + c];
}
static void to_rows(float *out, const float *ch, int B, int N, int p) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < p; c++)
            for (int t = 0; t < N; t++)
                out[((size_t)b * N + t) * p + c] = ch[((size_t)b * p + c) * N + t];
}

static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

/* The loss of d->out against d->tgt (invariant 4); fills d->dout. */
static float head_loss(det *d) {
    const det_config *c = &d->cfg;
    size_t G = d->G2;
    double ncen = 0.0;
    for (int b = 0; b < d->B; b++) {
        const float *cen = d->tgt + ((size_t)b * DET_TGT + 1) * G;
        for (size_t i = 0; i < G; i++)
            ncen += cen[i] > 0.5f;
    }
    double den = ncen > 0.0 ? ncen : 1.0, al = c->gamma, total = 0.0;
    memset(d->dout, 0, (size_t)d->B * DET_OUT * G * sizeof(float));
    for (int b = 0; b < d->B; b++) {
        const float *tg = d->tgt + (size_t)b * DET_TGT * G, *o = d->out + (size_t)b * DET_OUT * G;
        float *g = d->dout + (size_t)b * DET_OUT * G;
        for (size_t i = 0; i < G; i++) {
            double x = o[i], p = 1.0 / (1.0 + exp(-x)), lp = log_sigmoid(x), l1p = log_sigmoid(-x);
            if (tg[G + i] > 0.5f) {
                double q = pow(1.0 - p, al);
                total += -q * lp;
                g[i] = (float)((al * q * p * lp - q * (1.0 - p)) / den);
                for (int a = 0; a < 4; a++) {
                    size_t j = (size_t)(1 + a) * G + i;
                    double w = c->reg_weight * (a == 3 ? DET_SIZE_WEIGHT : 1.0);
                    double e = (double)o[j] - tg[(size_t)(2 + a) * G + i];
                    total += w * fabs(e);
                    g[j] = (float)(w * (e > 0 ? 1.0 : e < 0 ? -1.0 : 0.0) / den);
                }
            } else {
                double y = tg[i], wn = pow(1.0 - y, DET_BETA), q = pow(p, al);
                total += -wn * q * l1p;
                g[i] = (float)(wn * q * (p - al * (1.0 - p) * l1p) / den);
            }
        }
    }
    return (float)(total / den);
}

/* Nearest x2 of (B, C, n) written as part `at` of a (B, Ctot, 2n) concatenation. */
static void up_into(float *cat, size_t at, size_t ctot, const float *inp, int B, int C,
                    const int n[3]) {
    size_t Nn = (size_t)n[0] * n[1] * n[2], N2 = 8 * Nn;
    for (int b = 0; b < B; b++)
        nn_upsample3d_forward(cat + (size_t)b * ctot * N2 + at * N2, inp + (size_t)b * C * Nn, 1, C,
                              n[0], n[1], n[2]);
}
static void up_back(float *dinp, const float *dcat, size_t at, size_t ctot, int B, int C,
                    const int n[3]) {
    size_t Nn = (size_t)n[0] * n[1] * n[2], N2 = 8 * Nn;
    for (int b = 0; b < B; b++)
        nn_upsample3d_backward(dinp + (size_t)b * C * Nn, dcat + (size_t)b * ctot * N2 + at * N2, 1,
                               C, n[0], n[1], n[2]);
}
/* Copy (B, C, N) into / out of part `at` of a (B, Ctot, N) concatenation. */
static void part_in(float *cat, size_t at, size_t ctot, const float *x, int B, int C, size_t N) {
    for (int b = 0; b < B; b++)
        memcpy(cat + ((size_t)b * ctot + at) * N, x + (size_t)b * C * N, (size_t)C * N * sizeof *x);
}
static void part_out(float *x, const float *cat, size_t at, size_t ctot, int B, int C, size_t N) {
    for (int b = 0; b < B; b++)
        memcpy(x + (size_t)b * C * N, cat + ((size_t)b * ctot + at) * N, (size_t)C * N * sizeof *x);
}

vs_status det_forward(det *d, const float *img, const float *tgt, float *loss, vs_error *err) {
    vs_status st = mae_encode_forward(d->enc, img, &d->feat, err);
    if (st != VS_OK) return st;
    int B = d->B;
    d->img = img;
    blk_forward(d, &d->blk[B_A1], img);
    blk_forward(d, &d->blk[B_A2], d->blk[B_A1].a);
    blk_forward(d, &d->blk[B_B1], d->blk[B_A2].a);
    nn_linear_forward(d->tp, d->feat, d->head + d->pw, d->head + d->pb, B * d->N, d->D, d->p);
    to_channels(d->t, d->tp, B, d->N, d->p);
    size_t ct1 = (size_t)d->p + d->c2, ct2 = (size_t)d->e1 + d->c1;
    if (d->ups)
        up_into(d->cat1, 0, ct1, d->t, B, d->p, d->n8);
    else
        part_in(d->cat1, 0, ct1, d->t, B, d->p, d->G4);
    part_in(d->cat1, (size_t)d->p, ct1, d->blk[B_B1].a, B, d->c2, d->G4);
    blk_forward(d, &d->blk[B_D1], d->cat1);
    up_into(d->cat2, 0, ct2, d->blk[B_D1].a, B, d->e1, d->n4);
    part_in(d->cat2, (size_t)d->e1, ct2, d->blk[B_A2].a, B, d->c1, d->G2);
    blk_forward(d, &d->blk[B_D2], d->cat2);
    nn_conv3d_forward(d->out, d->blk[B_D2].a, d->head + d->hw, d->head + d->hb, d->scratch,
                      &d->hsh);
    d->tgt = tgt;
    *loss = tgt ? head_loss(d) : 0.0f;
    return VS_OK;
}

void det_backward(det *d) {
    int B = d->B;
    size_t ct1 = (size_t)d->p + d->c2, ct2 = (size_t)d->e1 + d->c1;
    nn_conv3d_backward(d->dd2, d->ghead + d->hw, d->ghead + d->hb, d->dout, d->blk[B_D2].a,
                       d->head + d->hw, d->scratch, &d->hsh);
    blk_backward(d, &d->blk[B_D2], d->cat2, d->dd2, d->dcat2);
    up_back(d->dd1, d->dcat2, 0, ct2, B, d->e1, d->n4);
    part_out(d->da2x, d->dcat2, (size_t)d->e1, ct2, B, d->c1, d->G2);
    blk_backward(d, &d->blk[B_D1], d->cat1, d->dd1, d->dcat1);
    if (d->ups)
        up_back(d->dt, d->dcat1, 0, ct1, B, d->p, d->n8);
    else
        part_out(d->dt, d->dcat1, 0, ct1, B, d->p, d->G4);
    part_out(d->db1, d->dcat1, (size_t)d->p, ct1, B, d->c2, d->G4);
    to_rows(d->dtp, d->dt, B, d->N, d->p);
    float *dfeat = d->cfg.probe ? NULL : d->dfeat;
    nn_linear_backward(dfeat, d->ghead + d->pw, d->ghead + d->pb, d->dtp, d->feat, d->head + d->pw,
                       B * d->N, d->D, d->p);
    blk_backward(d, &d->blk[B_B1], d->blk[B_A2].a, d->db1, d->da2);
    nn_residual_forward(d->da2, d->da2, d->da2x, (size_t)B * d->c1 * d->G2);
    blk_backward(d, &d->blk[B_A2], d->blk[B_A1].a, d->da2, d->da1);
    blk_backward(d, &d->blk[B_A1], d->img, d->da1, NULL);
    if (dfeat) mae_encode_backward(d->enc, dfeat);
}

void det_zero_grad(det *d) {
    mae_zero_grad(d->enc);
    memset(d->ghead, 0, d->n_head * sizeof(float));
}

/* ------------------------------------------------------------------------- checkpoints */
/* The architecture fields a pretraining checkpoint must share with the detector. */
typedef struct arch_field {
    const char *name;
    size_t off; /* into mae_config, an int */
} arch_field;
#define AF(name, member)                                                                           \
    { name, offsetof(mae_config, member) }
static const arch_field arch_fields[] = {
    AF("patch_z", patch[0]),    AF("patch_y", patch[1]),
    AF("patch_x", patch[2]),    AF("dim", dim),
    AF("depth", depth),         AF("heads", heads),
    AF("mlp_ratio", mlp_ratio), AF("dec_dim", dec_dim),
    AF("dec_depth", dec_depth), AF("dec_heads", dec_heads),
};
#define N_ARCH ((int)(sizeof arch_fields / sizeof arch_fields[0]))

static int arch_int(const mae_config *c, int i) {
    return *(const int *)((const char *)c + arch_fields[i].off);
}

vs_status det_load_mae(det *d, const char *mae_ckpt, vs_error *err) {
    mae_train_config pc;
    vs_status st = mae_checkpoint_read(mae_ckpt, &pc, NULL, 0, err);
    if (st != VS_OK) return st;
    for (int i = 0; i < N_ARCH; i++)
        if (arch_int(&pc.model, i) != arch_int(&d->cfg.enc, i))
            return VS_FAIL(err, VS_ERR_CONFIG,
                           "pretraining checkpoint %s has %s=%d but the detector has %s=%d: the "
                           "encoder architectures must match",
                           mae_ckpt, arch_fields[i].name, arch_int(&pc.model, i),
                           arch_fields[i].name, arch_int(&d->cfg.enc, i));
    return mae_checkpoint_read(mae_ckpt, &pc, mae_params(d->enc), mae_n_params(d->enc), err);
}

vs_status det_config_from_mae(det_config *c, const char *mae_ckpt, vs_error *err) {
    mae_train_config pc;
    vs_status st = mae_checkpoint_read(mae_ckpt, &pc, NULL, 0, err);
    if (st != VS_OK) return st;
    for (int i = 0; i < N_ARCH; i++)
        *(int *)((char *)&c->enc + arch_fields[i].off) = arch_int(&pc.model, i);
    memcpy(c->enc.crop, pc.model.crop, sizeof c->enc.crop); /* the window pretraining saw */
    c->enc.mask_ratio = pc.model.mask_ratio, c->enc.norm_pix = pc.model.norm_pix;
    c->enc.vis_weight = pc.model.vis_weight;
    return VS_OK;
}

/* The detector's own configuration, stored as doubles in this order. */
typedef struct cfg_row {
    const char *name;
    size_t off;
    int is_float; /* 0 int, 1 float, 2 double */
} cfg_row;
#define CI(name, member)                                                                           \
    { name, offsetof(det_config, member), 0 }
#define CF(name, member)                                                                           \
    { name, offsetof(det_config, member), 1 }
static const cfg_row cfg_rows[] = {
    CI("crop_z", enc.crop[0]),
    CI("crop_y", enc.crop[1]),
    CI("crop_x", enc.crop[2]),
    CI("patch_z", enc.patch[0]),
    CI("patch_y", enc.patch[1]),
    CI("patch_x", enc.patch[2]),
    CI("dim", enc.dim),
    CI("depth", enc.depth),
    CI("heads", enc.heads),
    CI("dec_dim", enc.dec_dim),
    CI("dec_depth", enc.dec_depth),
    CI("dec_heads", enc.dec_heads),
    CI("mlp_ratio", enc.mlp_ratio),
    {"mask_ratio", offsetof(det_config, enc.mask_ratio), 2},
    CI("norm_pix", enc.norm_pix),
    CF("vis_weight", enc.vis_weight),
    CI("stem_1", stem[0]),
    CI("stem_2", stem[1]),
    CI("dec_p", dec[0]),
    CI("dec_1", dec[1]),
    CI("dec_2", dec[2]),
    CI("probe", probe),
    CF("gamma", gamma),
    CF("reg_weight", reg_weight),
    CF("window_lo", window[0]),
    CF("window_hi", window[1]),
};
#define N_ROWS ((int)(sizeof cfg_rows / sizeof cfg_rows[0]))
#define DET_MAGIC "VSDETCKP"
#define DET_VERSION 2u

vs_status det_save(const det *d, const char *path, vs_error *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return VS_FAIL(err, VS_ERR_IO, "checkpoint path is too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    mae_hfile w = {f, 0xcbf29ce484222325ULL, 1};
    uint32_t version = DET_VERSION, nr = N_ROWS;
    mae_hfile_put(&w, DET_MAGIC, 8);
    mae_hfile_put(&w, &version, 4);
    mae_hfile_put(&w, &nr, 4);
    for (int i = 0; i < N_ROWS; i++) {
        const char *p = (const char *)&d->cfg + cfg_rows[i].off;
        double v = cfg_rows[i].is_float == 0   ? *(const int *)p
                   : cfg_rows[i].is_float == 1 ? *(const float *)p
                                               : *(const double *)p;
        mae_hfile_put(&w, &v, 8);
    }
    mae *enc = d->enc;
    uint64_t ne = mae_n_params(enc), nh = d->n_head;
    mae_hfile_put(&w, &ne, 8);
    mae_hfile_put(&w, &nh, 8);
    mae_hfile_put(&w, mae_params(enc), ne * sizeof(float));
    mae_hfile_put(&w, d->head, nh * sizeof(float));
    return mae_hfile_finish(&w, tmp, path, err);
}

vs_status det_load(det **out, const char *path, int batch, vs_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return VS_FAIL(err, VS_ERR_IO, "cannot open detector checkpoint %s: %s", path,
                       strerror(errno));
    mae_hfile r = {f, 0xcbf29ce484222325ULL, 1};
    char magic[8];
    uint32_t version = 0, nr = 0;
    uint64_t ne = 0, nh = 0, h_file = 0;
    det *d = NULL;
    vs_status st = VS_OK;
    mae_hfile_get(&r, magic, 8);
    mae_hfile_get(&r, &version, 4);
    mae_hfile_get(&r, &nr, 4);
    if (!r.ok || memcmp(magic, DET_MAGIC, 8) != 0 || version != DET_VERSION || nr != N_ROWS) {
        st = VS_FAIL(err, VS_ERR_FORMAT,
                     "%s is not a vesalius detector checkpoint of version %u (an older detector "
                     "must be trained again)",
                     path, DET_VERSION);
        goto fail;
    }
    det_config c;
    det_config_default(&c);
    for (int i = 0; i < N_ROWS; i++) {
        double v = 0.0;
        mae_hfile_get(&r, &v, 8);
        char *p = (char *)&c + cfg_rows[i].off;
        if (cfg_rows[i].is_float == 0)
            *(int *)p = (int)v;
        else if (cfg_rows[i].is_float == 1)
            *(float *)p = (float)v;
        else
            *(double *)p = v;
    }
    c.enc.batch = batch;
    if (r.ok) st = det_create(&d, &c, err);
    if (st != VS_OK) {
        vs_error_prefix(err, "%s", path);
        goto fail;
    }
    mae_hfile_get(&r, &ne, 8);
    mae_hfile_get(&r, &nh, 8);
    if (!r.ok || ne != mae_n_params(d->enc) || nh != d->n_head) {
        st = VS_FAIL(
            err, VS_ERR_FORMAT,
            "%s: truncated checkpoint or parameter counts that do not match its configuration",
            path);
        goto fail;
    }
    mae_hfile_get(&r, mae_params(d->enc), ne * sizeof(float));
    mae_hfile_get(&r, d->head, nh * sizeof(float));
    uint64_t h = r.h;
    if (r.ok && fread(&h_file, 8, 1, f) != 1) r.ok = 0;
    if (!r.ok || h != h_file) {
        st = VS_FAIL(err, VS_ERR_FORMAT,
                     "%s: truncated or corrupt detector checkpoint (checksum mismatch)", path);
        goto fail;
    }
    fclose(f);
    *out = d;
    return VS_OK;
fail:
    det_destroy(d);
    fclose(f);
    return st;
}
