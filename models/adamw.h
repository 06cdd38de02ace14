/* adamw.h — AdamW with warmup + cosine learning rate, global-norm clipping and gradient
 * accumulation, over a flat parameter array (the layout of models/mae.h).
 *
 * Invariants:
 *   1. The first and second moments are one array each with the parameters' layout; together
 *      with `step` they are the whole optimizer state (what a checkpoint saves).
 *   2. One update is torch.optim.AdamW's arithmetic (torch 1.13, single-tensor path), in the
 *      same order, so the twin's losses are reproduced to float rounding.
 *   3. Weight decay applies to every parameter (as the twin) unless decay_all is 0, when the
 *      segments flagged no_decay (norms, biases, the mask token) are skipped.
 *   4. The gradient norm is reduced in a fixed order: same bits at a fixed thread count.
 */
#ifndef VS_ADAMW_H
#define VS_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct adamw_config {
    double lr;         /* peak learning rate */
    double min_lr;     /* cosine floor */
    long warmup_steps; /* linear warmup from lr / warmup_steps */
    long total_steps;  /* cosine ends here; 0: constant lr after warmup */
    double beta1, beta2, eps, weight_decay;
    int decay_all; /* 1: decay every parameter (twin); 0: skip norms, biases, mask token */
    double clip;   /* max global gradient norm; 0: no clipping */
} adamw_config;

typedef struct adamw_segment {
    size_t offset, size;
    int no_decay;
} adamw_segment;

typedef struct adamw {
    adamw_config cfg;
    size_t n;
    float *m, *v; /* (n) moments, the parameters' layout */
    long step;    /* updates done */
    adamw_segment *segs;
    int n_segs;
} adamw;

/* The twin's optimiser: lr 1.5e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.05 on all. */
void adamw_config_default(adamw_config *c);
vs_status adamw_config_check(const adamw_config *c, vs_error *err);

/* Zeroed moments for n parameters split into segments (copied). */
vs_status adamw_init(adamw *o, const adamw_config *cfg, size_t n, const adamw_segment *segs,
                     int n_segs, vs_error *err);
void adamw_free(adamw *o);

/* Learning rate of update number `step` (0-based): linear warmup, then cosine to min_lr. */
double adamw_lr(const adamw_config *c, long step);
/* L2 norm of g (n), reduced in double in a fixed order. */
double adamw_grad_norm(const float *g, size_t n);

/* One update from the gradient SUM of `accum` micro-batches: scales by 1/accum, clips the
 * global norm, steps. Returns the (averaged, unclipped) gradient norm, or -1 when it was not
 * needed (no clipping and want_norm 0: one pass over the gradients saved); *lr_out gets the lr. */
double adamw_update(adamw *o, float *params, const float *grads, int accum, int want_norm,
                    double *lr_out);

#endif
