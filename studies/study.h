/* study.h — one YAML file describes a whole study: sources, de-identification, preprocessing,
 * shards, pretraining, labels, fine-tuning, validation, seeds, threads and the output folder.
 *
 * Parsed with libcyaml (YAML mapped onto these structs by a schema); unknown keys, wrong
 * types and out-of-range values are refused with one line naming the file, the line and the
 * key. Keys left out take the defaults documented in studies/example.yaml. Relative paths
 * are resolved against the folder holding the study file.
 *
 * Invariants:
 *   1. After study_load returns VS_OK every field holds a value inside its documented range.
 *   2. study_load of the same bytes gives the same struct (no clock, no environment).
 */
#ifndef VS_STUDY_H
#define VS_STUDY_H

#include <stdint.h>

#include "status.h"

typedef enum { STUDY_MISSING_REJECT = 0, STUDY_MISSING_RESAMPLE = 1 } study_missing_policy;
typedef enum { STUDY_PREP_NONE = 0, STUDY_PREP_STANDARD = 1 } study_prep_mode;
typedef enum { STUDY_TARGET_NORMALIZED = 0, STUDY_TARGET_PLAIN = 1 } study_target;
typedef enum { STUDY_LABELS_POINTS = 0, STUDY_LABELS_MASKS = 1, STUDY_LABELS_VOLUME = 2 } study_label_format;
typedef enum { STUDY_TUNE_FINETUNE = 0, STUDY_TUNE_PROBE = 1 } study_tune_mode;
typedef enum { STUDY_LOSS_FOCAL = 0, STUDY_LOSS_BCE = 1 } study_det_loss;

typedef struct study_deid {
    char *key_file;              /* site key (created 0600 on first use) */
    char *linkage;               /* optional honest-broker linkage table (SQLite), or NULL */
    int retain_safe_private;
    int retain_uids;
    int retain_device_identity;
    int retain_institution_identity;
    int retain_patient_characteristics;
    int retain_long_full_dates;
    int retain_long_modified_dates;
    int clean_descriptors;
    int clean_structured_content;
    int clean_graphics;
    int accept_burned_in;
} study_deid;

typedef struct study_ingest {
    char **sources;              /* files, folders, DICOMDIRs */
    unsigned sources_count;
    int64_t max_voxels;          /* per image; larger ones are rejected before allocation */
    study_missing_policy missing_slices;
} study_ingest;

typedef struct study_preprocess {
    study_prep_mode mode;        /* none keeps native voxels untouched */
    int reorient;                /* to the canonical LPS orientation */
    double spacing[3];           /* target (column, row, slice) mm; 0 keeps native */
    double ct_window[2];         /* HU clip before scaling to [0, 1] */
    int n4;                      /* MR N4 bias-field correction */
    double mr_percentiles[2];    /* MR percentile normalisation */
    int foreground_crop;
} study_preprocess;

typedef struct study_shards {
    int64_t max_mb;              /* close a shard above this size */
    int chunk[3];                /* (slice, row, column) chunk edge */
    int deflate;                 /* zlib level 0-9 */
} study_shards;

typedef struct study_pretrain {
    char **modalities;           /* which volumes feed the model ("CT", "MR", "DX", ...) */
    unsigned modalities_count;
    int crop[3];                 /* (z, y, x) voxels */
    int patch[3];                /* (z, y, x) voxels */
    int dim, depth, heads;
    int dec_dim, dec_depth, dec_heads;
    int mlp_ratio;
    double mask_ratio;
    int batch, steps, warmup_steps, accumulate, checkpoint_every;
    double lr, min_lr, weight_decay, clip;
    int decay_norms_and_biases;  /* 1: weight decay on every parameter, as the twin does */
    study_target target;         /* normalized (twin) or plain per-patch targets */
    double visible_loss_weight;  /* 0: masked patches only (twin) */
    int flips;                   /* augmentation */
    double intensity_scale, intensity_shift;
    int working_set;             /* crops come from W volumes at a time (0: any volume) */
    int swap_every;              /* one volume of the working set swapped every R crops */
    int chunk_cache_mb;          /* inflated chunks kept (0: auto, W+1 of the largest volumes) */
} study_pretrain;

typedef struct study_labels {
    study_label_format format;
    char *file;                  /* CSV (points, volume) or a folder of masks; NULL: none */
    char *volumes;               /* CSV seriesuid,label (0/1): the labeled set incl. negatives */
} study_labels;

typedef struct study_finetune {
    study_tune_mode mode;
    int folds;
    int steps, batch;
    double lr, layer_decay, lesion_share, val_fraction;
    int patience;                /* early stopping, in evaluations */
    study_det_loss loss;
    double focal_gamma, pos_weight;
    int scratch_baseline;        /* also train the same detector from scratch */
    int eval_every;              /* steps between validation evaluations (early stopping) */
} study_finetune;

typedef struct study_validate {
    int bootstrap;
    double *operating_points;    /* probability thresholds */
    unsigned operating_points_count;
} study_validate;

typedef struct study {
    char *name;
    char *output;                /* output folder */
    int64_t seed;
    int threads;
    study_deid deid;
    study_ingest ingest;
    study_preprocess preprocess;
    study_shards shards;
    study_pretrain pretrain;
    study_labels labels;
    study_finetune finetune;
    study_validate validate;
    char *path;                  /* the study file as given (not from YAML) */
} study;

/* Load, apply defaults, resolve relative paths, check ranges. *out is NULL on failure and
 * err says "FILE:LINE: key 'a.b': reason". */
vs_status study_load(const char *path, study **out, vs_error *err);
void study_free(study *s);

/* Line (1-based) of the key path "section.key" in the YAML file, or 0 when absent. */
int study_key_line(const char *path, const char *key_path);

#endif
