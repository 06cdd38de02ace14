/* det.h — the tumour detector: the MAE's ViT encoder (models/mae.h) for context, a small
 * convolutional stem for detail, and a UNETR-like convolutional decoder that joins them into a
 * dense CenterNet head (Zhou et al. 2019) at half the input resolution.
 *
 *   x (B, 1, S)           S = crop (z, y, x); S/2, S/4, S/8 below are per axis
 *   a1 = blk(x, s2)       (B, c1, S/2)     blk = conv3 -> InstanceNorm -> leaky ReLU
 *   a2 = blk(a1)          (B, c1, S/2)
 *   b1 = blk(a2, s2)      (B, c2, S/4)
 *   t  = W_p vit(x)       (B, p, S/P)      the encoder's tokens, projected (P = patch)
 *   d1 = blk([up(t), b1])  (B, e1, S/4)    up = nearest x2 for P = 8 (none for P = 4)
 *   d2 = blk([up(d1), a2]) (B, e2, S/2)
 *   out = conv1(d2)       (B, 5, S/2)      per cell: logit, offset z, y, x, log size
 *
 * A cell c (per axis) covers voxels 2c and 2c + 1; its centre is the continuous index 2c + 0.5.
 *
 * Invariants:
 *   1. The encoder is mae_create_encoder's: the same parameter table as pretraining, so a
 *      pretraining checkpoint and a fresh initialisation go through the same code path. Every
 *      other parameter (stem, projection, decoder, head) is the "head": one float array.
 *   2. det_forward then det_backward ADD gradients (det_zero_grad clears them); with `probe`
 *      the encoder gets no gradient (and its backward is not run).
 *   3. Targets (det_make_targets) per cell: a Gaussian heat in [0, 1] around every lesion centre
 *      (sigma = radius / 2 in voxels, at least 1 voxel, per axis), exactly 1 at the cell holding
 *      the centre, which also carries the centre's offset in cells and log(diameter / 10 mm).
 *   4. The loss is CenterNet's: penalty-reduced focal loss on the heat (alpha = gamma, beta = 4)
 *      plus reg_weight x L1 of offsets and log size at centre cells, all divided by
 *      max(1, centre cells in the batch).
 *   5. The same parameters, input and thread count give the same bits (nn.h, nn3d.h).
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
#define DET_TGT 6 /* heat, centre flag, offset z, y, x, log size */
#define DET_STRIDE 2

typedef struct det_config {
    mae_config enc;   /* encoder architecture; crop = training window, batch = crops per pass */
    int stem[2];      /* conv channels at stride 2 (c1) and 4 (c2) */
    int dec[3];       /* token projection p, decoder channels at stride 4 (e1) and 2 (e2) */
    int probe;        /* 1: frozen encoder; 0: full fine-tuning */
    float gamma;      /* focal exponent alpha */
    float reg_weight; /* weight of the offset and size L1 */
    float window[2];  /* input intensities clipped to [lo, hi] and mapped to [0, 1]; lo == hi:
                         voxels as stored (what pretraining saw) */
} det_config;

/* 32^3 crops, 8^3 patches, width 96, depth 3, 3 heads; stem 16, 32; decoder 64, 32, 16;
 * fine-tuning; focal 2; regression weight 1. */
void det_config_default(det_config *c);
vs_status det_config_check(const det_config *c, vs_error *err);
/* Cells of the head's output for a crop: crop / DET_STRIDE per axis into cells (z, y, x); returns
 * their product. */
size_t det_cells(const det_config *c, int cells[3]);

/* A lesion in crop (or volume) voxel coordinates: continuous (z, y, x) = (slice, row, column);
 * its radius in voxels along each axis (diameter / 2 / spacing). */
typedef struct det_lesion {
    double zyx[3];
    double diameter;  /* mm */
    double radius[3]; /* voxels, (z, y, x) */
} det_lesion;

/* Fill l->radius from l->diameter and v's spacing. */
void det_lesion_radius(det_lesion *l, const volume *v);

typedef struct det det;

vs_status det_create(det **out, const det_config *cfg, vs_error *err);
void det_destroy(det *d);
const det_config *det_get_config(const det *d);
mae *det_encoder(det *d);
/* Every parameter besides the encoder's (stem, projection, decoder, head), and its gradient. */
size_t det_head_n_params(const det *d);
float *det_head_params(det *d);
float *det_head_grads(det *d);

/* Encoder: the MAE's initialisation; convolutions: PyTorch's default (uniform, bound
 * 1 / sqrt(fan in)); norms (1, 0); projection xavier; head logit bias log(0.01 / 0.99). */
void det_init_weights(det *d, rng *r);
/* Copy the encoder weights of a pretraining checkpoint (models/mae_train.h). Refuses, naming
 * the first differing field, a checkpoint whose architecture differs from the detector's. */
vs_status det_load_mae(det *d, const char *mae_ckpt, vs_error *err);
/* Take the encoder architecture (patch, widths, depths, heads) and the crop of a pretraining
 * checkpoint into c, keeping c's batch and head settings. */
vs_status det_config_from_mae(det_config *c, const char *mae_ckpt, vs_error *err);

/* Targets (DET_TGT, cells) of one crop for lesions in crop voxel coordinates (invariant 3);
 * lesions whose centre is outside the crop add heat but no centre cell. When two centres
 * fall in one cell the larger lesion keeps it. */
void det_make_targets(const det_config *c, const det_lesion *les, int n_les, float *tgt);

/* img (B, Sz, Sy, Sx); tgt (B, DET_TGT, cells) or NULL (inference: *loss is 0). */
vs_status det_forward(det *d, const float *img, const float *tgt, float *loss, vs_error *err);
void det_backward(det *d); /* after det_forward with targets */
void det_zero_grad(det *d);
/* (B, DET_OUT, cells) raw head outputs of the last forward: logit, offset z, y, x, log size. */
const float *det_output(const det *d);

/* Checkpoint: "VSDETCKP" | u32 version | configuration | encoder params | head params |
 * u64 FNV-1a; written atomically. det_load creates the detector from the file's config. */
vs_status det_save(const det *d, const char *path, vs_error *err);
vs_status det_load(det **out, const char *path, int batch, vs_error *err);

/* ---- sliding-window inference (det_predict.c) --------------------------------------------- */

typedef struct det_candidate {
    double lps[3]; /* centre, LPS mm */
    double ijk[3]; /* centre, continuous (column, row, slice) index */
    float probability;
    float diameter; /* mm */
} det_candidate;

typedef struct det_predict_opts {
    float min_prob; /* candidates below this are dropped */
    int max_candidates;
    double nms_mm; /* a candidate within this distance (or within the radius of a stronger
                      one) of a stronger candidate is suppressed */
    int flips;     /* test-time augmentation: also average the flipped volume along every axis
                      subset (0: none, 1: the 7 other flips) */
} det_predict_opts;

void det_predict_opts_default(det_predict_opts *o);

typedef struct det_result {
    int n;
    det_candidate *cand; /* sorted by probability, highest first */
    float score;         /* volume score: the highest cell probability */
    int cells[3];        /* cell grid over the volume (z, y, x), DET_STRIDE voxels a cell */
    float *heat;         /* (cells) probability */
} det_result;
void det_result_free(det_result *r);

/* What runs on a batch of windows: win (B, Sz, Sy, Sx) -> out (B, DET_OUT, cells) as
 * det_output. */
typedef vs_status (*det_window_fn)(void *ctx, const float *win, int B, float *out, vs_error *err);

/* Slide windows of c->enc.crop voxels over v every 3/4 window (the last window of an axis
 * flush with the volume's end, a volume smaller than a window padded with its minimum), run fn
 * on batches of `batch` windows, average each cell's outputs over the windows covering it
 * (weighted by a tent that favours window centres), keep local maxima above min_prob,
 * suppress neighbours, and map centres to LPS through volume_index_to_lps. */
vs_status det_predict_grid(const volume *v, const det_config *c, det_window_fn fn, void *ctx,
                           const det_predict_opts *o, det_result *res, vs_error *err);
/* det_predict_grid with the detector itself. */
vs_status det_predict(det *d, const volume *v, const det_predict_opts *o, det_result *res,
                      vs_error *err);

/* The ensemble of n detectors (the same crop, patch, batch and window): every window through
 * each, the cell's probability the mean of theirs (offsets and sizes too); n = 1 is det_predict,
 * bit for bit. */
vs_status det_predict_ensemble(det *const *d, int n, const volume *v, const det_predict_opts *o,
                               det_result *res, vs_error *err);
/* 1 when a and b can be members of one ensemble (the same crop, patch, batch and window). */
int det_same_shape(const det *a, const det *b);

/* Voxel value i of v as float (any dtype). */
float det_voxel(const volume *v, size_t i);
/* The detector's input for a stored value x (the intensity window of c). */
static inline float det_input(const det_config *c, float x) {
    if (!(c->window[1] > c->window[0])) return x;
    x = x < c->window[0] ? c->window[0] : x > c->window[1] ? c->window[1] : x;
    return (x - c->window[0]) / (c->window[1] - c->window[0]);
}

/* ---- training (det_train.c) ------------------------------------------------------------- */

/* A labeled volume: lesions in VOLUME voxel coordinates (z, y, x) = (slice, row, column), as
 * volume_lps_to_index gives them (reversed), radius from the volume's spacing. */
typedef struct det_item {
    const volume *v;
    int n_lesions;
    const det_lesion *lesions;
} det_item;

typedef struct det_train_config {
    det_config det;
    mae_aug aug;   /* the pretraining augmentations (flips move the lesions too) */
    double zoom;   /* crops resampled at a zoom drawn log-uniformly from [1 / (1 + zoom), 1 + zoom]
                      (0: none) */
    double rotate; /* crops turned in the row-column plane of voxels by up to this many degrees
                      (0: none) */
    adamw_config
        opt; /* the head's lr; encoder group g of depth + 2 gets lr x layer_decay^(depth + 1 - g) */
    double layer_decay;  /* 1: one lr everywhere */
    double lesion_share; /* share of crops centred (with jitter) on a lesion */
    double hard_share;   /* share of crops centred on mined false positives, once mined, taken
                            out of lesion_share */
    int mine_every;      /* steps between hard-negative mining passes (0: none); the first
                            pass runs after a third of the steps */
    int mine_top;        /* strongest false positives kept per training volume */
    int hard_weighted;   /* 1: a mined negative is drawn in proportion to its probability; 0:
                            uniformly */
    long steps;
    int eval_every; /* steps between validation evaluations (0: none, keep the last) */
    int patience;   /* evaluations without improvement before stopping (0: never stop) */
    int val_crops;  /* fixed validation crops (rounded down to whole batches) */
    uint64_t seed;
} det_train_config;

void det_train_config_default(det_train_config *c);
/* The first of n non-decreasing running sums cum above u (the last when none is): with u uniform
 * in [0, cum[n - 1]), index i comes in proportion to its weight cum[i] - cum[i - 1]. */
int det_pick_cumulative(const double *cum, int n, double u);
/* One training crop of item from start (z, y, x) as det_train makes it, with c's augmentations
 * drawn from r when augment: img (crop voxels) and tgt (DET_TGT, cells). */
vs_status det_train_crop(const det_train_config *c, const det_item *item, const int64_t start[3],
                         int augment, rng *r, float *img, float *tgt, vs_error *err);

/* Called after every update; val_loss is NaN except after an evaluation. */
typedef void (*det_log_fn)(void *ctx, long step, float loss, float val_loss, double lr);

typedef struct det_train_result {
    long steps_run, best_step; /* best_step: the evaluation whose weights were kept */
    float best_val_loss;       /* NaN without validation */
    int mined;                 /* false positives in the last mining pass */
} det_train_result;

/* Train d (initialised by the caller: det_init_weights, then det_load_mae for the MAE arm) on
 * crops of train (rng seeded from c->seed: crops, augmentation, mining), evaluating the loss on
 * fixed crops of val every eval_every steps; ends with the weights of the best evaluation. */
vs_status det_train(det *d, const det_train_config *c, const det_item *train, int n_train,
                    const det_item *val, int n_val, det_log_fn log, void *log_ctx,
                    det_train_result *res, vs_error *err);

#endif
