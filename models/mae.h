/* mae.h — the masked autoencoder: a ViT encoder over the visible patches of a crop and a small
 * decoder that reconstructs the hidden ones (He et al. 2021), for 3D volumes and 2D images.
 *
 * The architecture is exactly the PyTorch twin's (../shared/reference/mae3d_ref.py; its
 * docstring is the specification) with crop and patch sizes per axis (z, y, x), so a 2D
 * radiograph is a crop of 1 x 224 x 224 in patches of 1 x 16 x 16. Two recipe options go
 * beyond the twin and default to it: plain (unnormalised) targets, and a loss weight on the
 * visible tokens.
 *
 * Invariants:
 *   1. Parameters live in one float array carved into named tensors by a fixed table (the
 *      twin's state_dict names and shapes); gradients use the same layout, and so do the
 *      optimizer moments (models/adamw.h), so an update is one loop over n_params floats.
 *   2. Only the K visible patches are embedded and only the rows that carry loss are projected
 *      by the prediction head; this is the same function as the twin's, with less work.
 *   3. mae_forward then mae_backward ADD the gradient of the returned loss into the gradient
 *      array (mae_zero_grad clears it), so accumulation over micro-batches is two calls.
 *   4. The same parameters, image, kept indices and thread count give the same bits.
 */
#ifndef VS_MAE_H
#define VS_MAE_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "status.h"

typedef struct mae_config {
    int crop[3];                       /* crop size in voxels, (z, y, x) */
    int patch[3];                      /* patch size in voxels, (z, y, x); each divides crop */
    int dim, depth, heads;             /* encoder width D, blocks, heads */
    int dec_dim, dec_depth, dec_heads; /* decoder width Dd, blocks, heads */
    int mlp_ratio;
    double mask_ratio; /* keep int(N * (1 - mask_ratio)) tokens, as the twin */
    int norm_pix;      /* 1: per-patch normalised targets (twin); 0: plain voxels */
    float vis_weight;  /* loss weight of visible tokens (0: masked tokens only, as the twin) */
    int batch;         /* crops per forward pass (micro-batch) */
} mae_config;

/* The twin's defaults: 96^3 crops, 16^3 patches, 192 x 6 x 3 encoder, 128 x 2 x 4 decoder. */
void mae_config_default(mae_config *c);
/* Check sizes and divisibility; one clear message naming the bad field. */
vs_status mae_config_check(const mae_config *c, vs_error *err);
int mae_n_tokens(const mae_config *c);     /* N */
int mae_n_keep(const mae_config *c);       /* K */
int mae_patch_voxels(const mae_config *c); /* PV */
size_t mae_crop_voxels(const mae_config *c);
/* Analytic matmul FLOPs of one training sample as this implementation computes it (forward,
 * backward: 2 M N K per GEMM; the patch embedding has no input gradient). */
double mae_train_flops_per_sample(const mae_config *c);

typedef struct mae_tensor {
    char name[48]; /* the twin's state_dict name, e.g. "blocks.0.attn.qkv.weight" */
    int ndim;
    int shape[3];
    size_t offset; /* in floats, into parameters / gradients / moments */
    size_t size;   /* in floats */
    int no_decay;  /* a norm, a bias or the mask token (AdamW option) */
} mae_tensor;

typedef struct mae mae;

vs_status mae_create(mae **out, const mae_config *cfg, vs_error *err);
void mae_destroy(mae *m);
const mae_config *mae_get_config(const mae *m);

size_t mae_n_params(const mae *m);
float *mae_params(mae *m);
float *mae_grads(mae *m);
int mae_n_tensors(const mae *m);
const mae_tensor *mae_tensor_at(const mae *m, int i);
const mae_tensor *mae_tensor_find(const mae *m, const char *name);
/* Bytes of activation and activation-gradient buffers (one arena). */
size_t mae_activation_bytes(const mae *m);

/* The twin's initialisation: xavier-uniform Linear weights, zero biases, LayerNorm (1, 0),
 * mask token N(0, 0.02). */
void mae_init_weights(mae *m, rng *r);
/* Fixed sin-cos position embedding, (N, dim) for decoder 0 and (N, dec_dim) for decoder 1. */
const float *mae_pos_embed(const mae *m, int decoder);

/* Random masking as the twin: argsort of uniform noise per sample, keep the first K.
 * ids_keep (B, K) token indices in z, y, x order of the patch grid. */
vs_status mae_sample_mask(const mae *m, rng *r, int32_t *ids_keep, vs_error *err);
/* The mask of one sample, ids_keep (K): the draws mae_sample_mask makes for each row. */
vs_status mae_sample_mask_row(const mae *m, rng *r, int32_t *ids_keep, vs_error *err);

/* img (B, Sz, Sy, Sx) float32; ids_keep (B, K). Returns the loss; keeps what backward needs
 * (img must stay valid until mae_backward). Fails only on out-of-range indices. */
vs_status mae_forward(mae *m, const float *img, const int32_t *ids_keep, float *loss,
                      vs_error *err);
void mae_backward(mae *m);
void mae_zero_grad(mae *m);

/* Encoder-only use (the detector, models/det.h): the same parameter table (so a pretraining
 * checkpoint loads as is) but activations for all N tokens and none for the decoder; only
 * mae_encode_forward / mae_encode_backward may run on it.
 * img (B, Sz, Sy, Sx): *feat = (B*N, D) token features after the encoder's final norm, in
 * z, y, x order of the patch grid (valid until the next call). backward ADDS the encoder's
 * weight gradients from dfeat (B*N, D), the gradient at *feat. */
vs_status mae_create_encoder(mae **out, const mae_config *cfg, vs_error *err);
vs_status mae_encode_forward(mae *m, const float *img, const float **feat, vs_error *err);
void mae_encode_backward(mae *m, const float *dfeat);

/* After mae_forward: recon (B, Sz, Sy, Sx) = visible patches from img and masked patches from
 * the prediction (de-normalised by the patch's own mean and std when norm_pix); masked
 * (B, Sz, Sy, Sx) = img with masked patches set to fill. Either may be NULL. */
void mae_reconstruct(const mae *m, const float *img, float *recon, float *masked, float fill);

#endif
