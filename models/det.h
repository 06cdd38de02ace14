/* det.h — the tumour detector: the MAE encoder (models/mae.h) run on every token of a crop,
 * followed by a head on the token grid (a point/centre detector, CenterNet-like). Per token:
 * an objectness logit, the lesion centre's offset inside the patch (z, y, x, in patch units,
 * [0, 1) when the centre lies in the patch) and the lesion size (log of diameter / 10 mm).
 *
 * Invariants:
 *   1. The encoder is mae_create_encoder's: the same parameter table as pretraining, so a
 *      pretraining checkpoint and a fresh initialisation go through the same code path.
 *   2. det_forward then det_backward ADD gradients (det_zero_grad clears them); with `probe`
 *      the encoder gets no gradient (and its backward is not run).
 *   3. The loss is focal (gamma > 0) or weighted BCE (gamma 0) on objectness summed over all
 *      tokens, plus reg_weight x squared error of offset and size on positive tokens, all
 *      divided by max(1, positives in the batch).
 *   4. A token is positive when a lesion centre lies in its patch widened by DET_MARGIN patches
 *      on every side (so a centre near a patch border has no ambiguous single owner; NMS keeps
 *      one): voxel v covers the continuous index [v - 0.5, v + 0.5), so token t of patch size
 *      P covers [t P - 0.5, t P + P - 0.5) and its offset target is (c + 0.5) / P - t.
 */
#ifndef VS_DET_H
#define VS_DET_H

#include <stddef.h>
#include <stdint.h>

#include "adamw.h"
#include "mae.h"
#include "mae_data.h"
#include "rng.h"
#include "status.h"
#include "volume.h"

#define DET_OUT 5 /* logit, offset z, y, x, log size */
#define DET_MARGIN 0.25

typedef struct det_config {
    mae_config enc;   /* encoder architecture; crop = training window, batch = crops per pass */
    int hidden;       /* head hidden width (GELU MLP); 0: a linear head */
    int probe;        /* 1: frozen encoder (linear probing); 0: full fine-tuning */
    float gamma;      /* focal exponent; 0: weighted BCE */
    float pos_weight; /* weight of positive tokens in the objectness loss */
    float reg_weight; /* weight of the offset and size regression */
    float window[2];  /* input intensities clipped to [lo, hi] and mapped to [0, 1]; lo == hi:
                         voxels as stored (what pretraining saw) */
} det_config;

/* 32^3 crops, 8^3 patches, width 96, depth 3, 3 heads; hidden 64; fine-tuning; focal 2. */
void det_config_default(det_config *c);
vs_status det_config_check(const det_config *c, vs_error *err);

/* A lesion in crop (or volume) voxel coordinates: continuous (z, y, x) = (slice, row, column). */
typedef struct det_lesion {
    double zyx[3];
    double diameter; /* mm */
} det_lesion;

typedef struct det det;

vs_status det_create(det **out, const det_config *cfg, vs_error *err);
void det_destroy(det *d);
const det_config *det_get_config(const det *d);
mae *det_encoder(det *d);
/* The head's parameters and gradients: W1 (H, D), b1 (H), W2 (5, H), b2 (5) when hidden > 0,
 * else W2 (5, D), b2 (5). */
size_t det_head_n_params(const det *d);
float *det_head_params(det *d);
float *det_head_grads(det *d);

/* Encoder: the MAE's initialisation; head: xavier-uniform weights, zero biases, and an
 * objectness bias of log(0.01 / 0.99) (a rare-positive prior, as RetinaNet). */
void det_init_weights(det *d, rng *r);
/* Copy the encoder weights of a pretraining checkpoint (models/mae_train.h). Refuses, naming
 * the first differing field, a checkpoint whose architecture differs from the detector's. */
vs_status det_load_mae(det *d, const char *mae_ckpt, vs_error *err);
/* Take the encoder architecture (patch, widths, depths, heads) and the crop of a pretraining
 * checkpoint into c, keeping c's batch and head settings. */
vs_status det_config_from_mae(det_config *c, const char *mae_ckpt, vs_error *err);

/* Targets (N, 5) of one crop for lesions in crop voxel coordinates (invariant 4): row t is
 * (1, offsets, log(diameter / 10)) for a token holding a centre (within the margin),
 * (0, 0, 0, 0, 0) else; lesions whose centre is outside the crop give none. When two centres
 * fall in one token the larger lesion wins. */
void det_make_targets(const det_config *c, const det_lesion *les, int n_les, float *tgt);

/* img (B, Sz, Sy, Sx); tgt (B, N, 5) or NULL (inference: *loss is 0). out: det_output. */
vs_status det_forward(det *d, const float *img, const float *tgt, float *loss, vs_error *err);
void det_backward(det *d); /* after det_forward with targets */
void det_zero_grad(det *d);
/* (B*N, 5) raw head outputs of the last forward: logit, offset z, y, x, log size. */
const float *det_output(const det *d);

/* Checkpoint: "VSDETCKP" | u32 version | configuration | encoder params | head params |
 * u64 FNV-1a; written atomically. det_load creates the detector from the file's config. */
vs_status det_save(const det *d, const char *path, vs_error *err);
vs_status det_load(det **out, const char *path, int batch, vs_error *err);

/* ---- training (det_train.c) ------------------------------------------------------------- */

/* A labeled volume: lesions in VOLUME voxel coordinates (z, y, x) = (slice, row, column), as
 * volume_lps_to_index gives them (reversed). */
typedef struct det_item {
    const volume *v;
    int n_lesions;
    const det_lesion *lesions;
} det_item;

typedef struct det_train_config {
    det_config det;
    mae_aug aug; /* the pretraining augmentations (flips move the lesions too) */
    adamw_config
        opt; /* the head's lr; encoder group g of depth + 2 gets lr x layer_decay^(depth + 1 - g) */
    double layer_decay;  /* 1: one lr everywhere */
    double lesion_share; /* share of crops centred (with jitter) on a lesion */
    long steps;
    int eval_every; /* steps between validation evaluations (0: none, keep the last) */
    int patience;   /* evaluations without improvement before stopping (0: never stop) */
    int val_crops;  /* fixed validation crops (rounded down to whole batches) */
    uint64_t seed;
} det_train_config;

void det_train_config_default(det_train_config *c);

/* Called after every update; val_loss is NaN except after an evaluation. */
typedef void (*det_log_fn)(void *ctx, long step, float loss, float val_loss, double lr);

typedef struct det_train_result {
    long steps_run, best_step; /* best_step: the evaluation whose weights were kept */
    float best_val_loss;       /* NaN without validation */
} det_train_result;

/* Train d (initialised by the caller: det_init_weights, then det_load_mae for the MAE arm) on
 * crops of train (rng seeded from c->seed: crops, augmentation), evaluating the loss on fixed
 * crops of val every eval_every steps; ends with the weights of the best evaluation. */
vs_status det_train(det *d, const det_train_config *c, const det_item *train, int n_train,
                    const det_item *val, int n_val, det_log_fn log, void *log_ctx,
                    det_train_result *res, vs_error *err);

/* ---- sliding-window inference (det_predict.c) --------------------------------------------- */

typedef struct det_candidate {
    double lps[3]; /* centre, LPS mm */
    double ijk[3]; /* centre, continuous (column, row, slice) index */
    float probability;
    float diameter; /* mm */
} det_candidate;

typedef struct det_predict_opts {
    int overlap;    /* overlap of neighbouring windows in tokens per axis (< window tokens) */
    float min_prob; /* candidates below this are dropped */
    int max_candidates;
    double nms_mm; /* a candidate within this distance (or within the radius of a stronger
                      one) of a stronger candidate is suppressed */
} det_predict_opts;

void det_predict_opts_default(det_predict_opts *o);

typedef struct det_result {
    int n;
    det_candidate *cand; /* sorted by probability, highest first */
    float score;         /* volume score: the highest merged token probability */
    int cells[3];        /* token grid over the volume (z, y, x) */
    float *heat;         /* (cells) merged objectness probability */
} det_result;
void det_result_free(det_result *r);

/* What runs on a batch of windows: win (B, Sz, Sy, Sx) -> out (B, N, 5) as det_output. */
typedef vs_status (*det_window_fn)(void *ctx, const float *win, int B, float *out, vs_error *err);

/* Slide windows of c->enc.crop voxels over v on the token grid of c->enc.patch (the last window of
 * an axis flush with the volume's end, a volume smaller than a window padded with its minimum), run
 * fn on batches of `batch` windows, average each token's outputs over the windows covering it
 * (weighted by a tent that favours window centres), keep local maxima above min_prob, suppress
 * neighbours, and map centres to LPS through volume_index_to_lps. */
vs_status det_predict_grid(const volume *v, const det_config *c, det_window_fn fn, void *ctx,
                           const det_predict_opts *o, det_result *res, vs_error *err);
/* det_predict_grid with the detector itself. */
vs_status det_predict(det *d, const volume *v, const det_predict_opts *o, det_result *res,
                      vs_error *err);

/* Voxel value i of v as float (any dtype). */
float det_voxel(const volume *v, size_t i);
/* The detector's input for a stored value x (the intensity window of c). */
static inline float det_input(const det_config *c, float x) {
    if (!(c->window[1] > c->window[0])) return x;
    x = x < c->window[0] ? c->window[0] : x > c->window[1] ? c->window[1] : x;
    return (x - c->window[0]) / (c->window[1] - c->window[0]);
}

#endif
