/* adamw.c — the optimizer of adamw.h. */
#include "adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void adamw_config_default(adamw_config *c) {
    memset(c, 0, sizeof *c);
    c->lr = 1.5e-4;
    c->min_lr = 0.0;
    c->beta1 = 0.9, c->beta2 = 0.95, c->eps = 1e-8, c->weight_decay = 0.05;
    c->decay_all = 1;
}

vs_status adamw_config_check(const adamw_config *c, vs_error *err) {
    if (!(c->lr > 0.0 && c->lr < 10.0))
        return VS_FAIL(err, VS_ERR_CONFIG, "learning rate must be in (0, 10), not %g", c->lr);
    if (!(c->min_lr >= 0.0 && c->min_lr <= c->lr))
        return VS_FAIL(err, VS_ERR_CONFIG, "minimum learning rate must be in [0, lr], not %g",
                       c->min_lr);
    if (!(c->beta1 >= 0.0 && c->beta1 < 1.0 && c->beta2 >= 0.0 && c->beta2 < 1.0))
        return VS_FAIL(err, VS_ERR_CONFIG, "AdamW betas must be in [0, 1)");
    if (!(c->eps > 0.0) || !(c->weight_decay >= 0.0 && c->weight_decay < 1.0))
        return VS_FAIL(err, VS_ERR_CONFIG, "AdamW eps must be > 0 and weight decay in [0, 1)");
    if (c->warmup_steps < 0 || c->total_steps < 0)
        return VS_FAIL(err, VS_ERR_CONFIG, "warmup and total steps must be >= 0");
    if (!(c->clip >= 0.0)) return VS_FAIL(err, VS_ERR_CONFIG, "clip norm must be >= 0");
    return VS_OK;
}

vs_status adamw_init(adamw *o, const adamw_config *cfg, size_t n, const adamw_segment *segs,
                     int n_segs, vs_error *err) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->m = calloc(n ? n : 1, sizeof(float));
    o->v = calloc(n ? n : 1, sizeof(float));
    o->segs = calloc((size_t)(n_segs > 0 ? n_segs : 1), sizeof *segs);
    if (!o->m || !o->v || !o->segs) {
        adamw_free(o);
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate AdamW moments for %zu parameters", n);
    }
    if (n_segs > 0) memcpy(o->segs, segs, (size_t)n_segs * sizeof *segs);
    o->n_segs = n_segs;
    return VS_OK;
}

void adamw_free(adamw *o) {
    free(o->m), free(o->v), free(o->segs);
    o->m = o->v = NULL, o->segs = NULL;
}

double adamw_lr(const adamw_config *c, long step) {
    if (c->warmup_steps > 0 && step < c->warmup_steps)
        return c->lr * (double)(step + 1) / (double)c->warmup_steps;
    if (c->total_steps <= c->warmup_steps) return c->lr;
    double t = (double)(step - c->warmup_steps) / (double)(c->total_steps - c->warmup_steps);
    if (t > 1.0) t = 1.0;
    return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(M_PI * t));
}

#define ADAMW_CHUNK 65536

double adamw_grad_norm(const float *g, size_t n) {
    /* fixed chunks summed in index order: independent of the thread count */
    long long n_chunks = (long long)((n + ADAMW_CHUNK - 1) / ADAMW_CHUNK);
    double *part = calloc((size_t)(n_chunks > 0 ? n_chunks : 1), sizeof *part);
    double total = 0.0;
    if (!part) { /* no memory for partial sums: one serial pass, same order */
        for (size_t i = 0; i < n; i++)
            total += (double)g[i] * g[i];
        return sqrt(total);
    }
#pragma omp parallel for schedule(static)
    for (long long c = 0; c < n_chunks; c++) {
        size_t lo = (size_t)c * ADAMW_CHUNK, hi = lo + ADAMW_CHUNK < n ? lo + ADAMW_CHUNK : n;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++)
            s += (double)g[i] * g[i];
        part[c] = s;
    }
    for (long long c = 0; c < n_chunks; c++)
        total += part[c];
    free(part);
    return sqrt(total);
}

/* torch 1.13 _single_tensor_adamw, element by element, in float with double scalars cast as
 * torch casts them. */
static void adamw_segment_update(adamw *o, float *p_, const float *g_, size_t lo, size_t hi,
                                 float gscale, float decay, float step_size, float bc2_sqrt) {
    float b1 = (float)o->cfg.beta1, b2 = (float)o->cfg.beta2, eps = (float)o->cfg.eps;
    float one_b1 = (float)(1.0 - o->cfg.beta1), one_b2 = (float)(1.0 - o->cfg.beta2);
    /* distinct arrays: restrict lets the loop vectorise (sqrt and divide included) */
    float *restrict p = p_ + lo, *restrict mm = o->m + lo, *restrict vv = o->v + lo;
    const float *restrict g = g_ + lo;
    long long n = (long long)(hi - lo);
#pragma omp parallel for simd schedule(static)
    for (long long i = 0; i < n; i++) {
        float gi = g[i] * gscale;
        float pi = p[i] * decay;
        float m = mm[i] * b1 + gi * one_b1;
        float v = vv[i] * b2 + one_b2 * gi * gi;
        mm[i] = m, vv[i] = v;
        float denom = sqrtf(v) / bc2_sqrt + eps;
        p[i] = pi + (-step_size) * (m / denom);
    }
}

double adamw_update(adamw *o, float *params, const float *grads, int accum, int want_norm,
                    double *lr_out) {
    double lr = adamw_lr(&o->cfg, o->step);
    double inv_accum = 1.0 / (accum > 0 ? accum : 1);
    double norm = -1.0;
    if (want_norm || o->cfg.clip > 0.0) norm = adamw_grad_norm(grads, o->n) * inv_accum;
    double scale = inv_accum;
    if (o->cfg.clip > 0.0 && norm > o->cfg.clip) scale *= o->cfg.clip / (norm + 1e-6);
    o->step++;
    double bc1 = 1.0 - pow(o->cfg.beta1, (double)o->step);
    double bc2 = 1.0 - pow(o->cfg.beta2, (double)o->step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float decay = (float)(1.0 - lr * o->cfg.weight_decay);
    for (int s = 0; s < o->n_segs; s++) {
        const adamw_segment *sg = &o->segs[s];
        float d = (sg->no_decay && !o->cfg.decay_all) ? 1.0f : decay;
        adamw_segment_update(o, params, grads, sg->offset, sg->offset + sg->size, (float)scale, d,
                             step_size, bc2_sqrt);
    }
    if (lr_out) *lr_out = lr;
    return norm;
}
