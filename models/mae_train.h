/* mae_train.h — the pretraining loop: batches from a mae_source, masks, forward, backward,
 * AdamW; logging; checkpoints that resume bit-exactly; the safetensors export; data-parallel
 * over a process group (io/base group.h).
 *
 * Checkpoint file (little-endian), written atomically (temp file, fsync, rename, fsync dir):
 *   "VSMAECKP" | u32 version (2) | u32 n_fields | n_fields x (f64 config value)
 *   | i64 step | i32 threads | i32 ranks | u32 source-state length | source state
 *   | u64 n_params | params (f32) | first moments (f32) | second moments (f32)
 *   | u64 FNV-1a of every preceding byte
 * The config fields are the rows of one table (mae_train.c), so a mismatch names the field.
 * (Version 1 had a 16-byte rng state after the step and no rank count; it is read for its
 * weights, never resumed: its crops were drawn from one sequential stream.)
 *
 * Update s (0-based) is the mean over accum micro-batches of batch crops: micro-batch a holds
 * crops n = (s * accum + a) * batch + b, b < batch, and crop n (its volume, position,
 * augmentation and mask) depends only on (seed, n) (mae_data.h, mae_crop_rng).
 *
 * Invariants:
 *   1. A run's crops and masks are a function of the seed and the step; with the parameters
 *      and moments, the step is the whole state of a run.
 *   2. Stop after k steps, load the checkpoint, continue: the same losses and final
 *      parameters, bit for bit, as an uninterrupted run at the same thread and rank counts.
 *   3. A checkpoint whose configuration differs from the run's is refused with a message that
 *      names the first differing field; a truncated or corrupted one is refused too.
 *   4. Over a group of R ranks, rank r runs micro-batches r*accum/R .. (r+1)*accum/R - 1 (accum
 *      must be a multiple of R), adds its gradients in micro-batch order, and the group sums
 *      the ranks' gradients in rank order (vs_group sum_f32): the global batch, its crops and
 *      the update's loss (the micro-batch losses summed in micro-batch order) are those of a
 *      one-process run, and every rank holds the same parameters after every update. R = 1 is
 *      the one-process run, bit for bit.
 *   5. Over a group, every rank stops at the same step (a signal on any rank stops all) and
 *      fails at the same step (a failure on any rank is every rank's, with its message); rank 0
 *      alone writes checkpoints and alone reads them (the others receive its bytes).
 */
#ifndef VS_MAE_TRAIN_H
#define VS_MAE_TRAIN_H

#include <signal.h>
#include <stdio.h>
#include <stdint.h>

#include "adamw.h"
#include "group.h"
#include "mae.h"
#include "mae_data.h"
#include "status.h"

typedef struct mae_train_config {
    mae_config model;
    adamw_config opt;
    mae_aug aug;
    int accum;  /* micro-batches per update */
    long steps; /* updates in the whole run */
    uint64_t seed;
    /* not part of the checkpointed configuration: */
    long ckpt_every;       /* 0: only at the end and on a signal */
    long log_every;        /* JSON/human log line every N steps (0: never) */
    const vs_group *group; /* the data-parallel ranks (NULL: one process) */
} mae_train_config;

void mae_train_config_default(mae_train_config *c);
/* Ranges, and accum a multiple of the group's size (VS_ERR_CONFIG naming both). */
vs_status mae_train_config_check(const mae_train_config *c, vs_error *err);

typedef struct mae_trainer mae_trainer;

/* A fresh run: weights initialised from the seed, zero moments, step 0. */
vs_status mae_trainer_create(mae_trainer **out, const mae_train_config *cfg, mae_source *src,
                             vs_error *err);
void mae_trainer_destroy(mae_trainer *t);
mae *mae_trainer_model(mae_trainer *t);
long mae_trainer_step(const mae_trainer *t);
/* Seconds spent summing gradients over the group, and the updates that did (0 on one rank). */
void mae_trainer_reduce_time(const mae_trainer *t, double *seconds, long *updates);

/* Run updates until step == until (<= cfg.steps). losses (optional) receives the mean loss of
 * update s at losses[s]. Saves ckpt_path (when not NULL) every ckpt_every steps and at the end.
 * When *stop becomes non-zero (a signal; on any rank), saves and returns VS_ERR_INTERRUPTED.
 * Every rank of the group calls it with the same arguments. */
vs_status mae_trainer_run(mae_trainer *t, long until, float *losses, const char *ckpt_path,
                          volatile sig_atomic_t *stop, vs_error *err);

/* Write / read the checkpoint (see the file comment); every rank calls them, rank 0 alone
 * touches the file. Loading checks the configuration against the trainer's and restores step,
 * parameters, moments and the source's settings; it warns when the checkpoint was written at
 * another thread or rank count (the run goes on, no longer bit-identical to an uninterrupted
 * one). */
vs_status mae_trainer_save(mae_trainer *t, const char *path, vs_error *err);
vs_status mae_trainer_load(mae_trainer *t, const char *path, vs_error *err);

/* Read a checkpoint for another model (the detector): *cfg receives its configuration; when
 * params is not NULL, the n parameters (n must equal the file's count) after the checksum of
 * the whole file is verified. VS_ERR_FORMAT naming the file when it is not a valid checkpoint. */
vs_status mae_checkpoint_read(const char *path, mae_train_config *cfg, float *params, size_t n,
                              vs_error *err);

/* The parameters as safetensors (F32, the twin's state_dict names and shapes, including its
 * fixed position-embedding buffers "pos" and "dec_pos"), written atomically. */
vs_status mae_export_safetensors(const mae *m, const char *path, vs_error *err);

/* Mid-slice preview PNG of one crop: input | masked input | reconstruction, side by side,
 * 8-bit grey windowed to the input's range, of sample 0 of batch (B, Sz, Sy, Sx) with
 * ids_keep (B, K). Runs a forward pass (overwrites the kept activations; no gradient). */
vs_status mae_preview_png(mae *m, const float *batch, const int32_t *ids_keep, const char *path,
                          vs_error *err);

/* A FILE with a running FNV-1a 64 of every byte written or read through it (checkpoints):
 * start with h = 0xcbf29ce484222325 and ok = 1; ok becomes 0 at the first short I/O. */
typedef struct mae_hfile {
    FILE *f;
    uint64_t h;
    int ok;
} mae_hfile;
void mae_hfile_put(mae_hfile *w, const void *p, size_t n);
void mae_hfile_get(mae_hfile *r, void *p, size_t n);

/* Atomic file write helpers shared by the writers above: open path.tmp, then commit
 * (fflush, fsync, rename, fsync of the directory) or abort (remove the temp file). */
vs_status mae_file_commit(FILE *f, const char *tmp, const char *path, vs_error *err);
/* End a checksummed file written through w: append the checksum, then commit it (or remove
 * tmp and fail naming it when any write failed). */
vs_status mae_hfile_finish(mae_hfile *w, const char *tmp, const char *path, vs_error *err);

#endif
