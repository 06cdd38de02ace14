/* study.h — every setting of a study, in one table per section, and the study file.
 *
 * A study file (YAML) has the sections of the tables below; `vesalius run` gives each stage its
 * settings, and each stage command (ingest, pretrain, finetune, validate) takes the same
 * settings from `--study FILE` and from its command-line options. A setting is ONE ROW of one
 * table here: the row declares the member of the section struct, its default (written as on
 * the command line), its range, its option name and the stages whose result depends on it.
 * Nothing else has to change for a new key to be read from study files and options, checked,
 * recorded, hashed by the runner and listed by `--help`; the code that uses it reads
 * `s->SECTION.NAME`. (studies/example.yaml documents every key; test_study checks it does.)
 *
 * Adding a key, e.g. a finetune option `warmup_steps` read by both fine-tuning arms:
 *   X(finetune, warmup_steps, INT, "20", 0, 1e9, NULL, NULL, ST_FINETUNE, "warm-up steps")
 * to STUDY_KEYS_FINETUNE, then use s->finetune.warmup_steps in the stage that reads it.
 *
 * Row: X(section, name, kind, default, lo, hi, choices, flag, readers, help)
 *   kind     BOOL (int), INT (int), I64 (int64_t), DBL (double), ENUM (int: index in choices),
 *            INT3 (int[3]), DBL2 / DBL3 (double[2] / [3]), TEXT (char *), PATH (char *, relative
 *            to the study file), FILE (char *: an input file or folder, recorded by content),
 *            KEY (char *: the site key file, recorded by a keyed fingerprint, never the key),
 *            TEXTS / PATHS (study_list), DBLS (study_dbls), INTS (study_ints: whole numbers)
 *   default  the value when the key is absent, as text ("" none, NULL: the key is required)
 *   lo, hi   every number must lie in [lo, hi] (TEXT: its length)
 *   choices  ENUM only: "a|b|c"
 *   flag     the command-line option: NULL --NAME with '-' for '_'; "-" none; else --FLAG.
 *            Lists take a comma-separated value; a repeated list option appends. Booleans take
 *            --FLAG, --FLAG=false or --no-FLAG.
 *   readers  ST_* bits: the stages whose result depends on the key (what the runner hashes,
 *            what each stage records and which options each stage command accepts)
 *
 * Invariants:
 *   1. After study_load / study_check return VS_OK every value lies in its row's range and the
 *      cross-key rules (study_check) hold.
 *   2. study_load of the same bytes gives the same struct (no clock, no environment); a value
 *      parses the same from a study file, an option or a default (one parser per kind).
 *   3. study_resolve of equal settings gives equal text, whether they came from a study file,
 *      options or defaults: that text is what stages record and the runner hashes.
 */
#ifndef VS_STUDY_H
#define VS_STUDY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

/* The stages of a study (pipeline/runner.c), as reader bits. */
enum {
    ST_INGEST = 1u << 0,
    ST_SPLIT = 1u << 1,
    ST_PRETRAIN = 1u << 2,
    ST_FT_MAE = 1u << 3,
    ST_FT_SCRATCH = 1u << 4,
    ST_VALIDATE = 1u << 5,
    /* Not a stage: how a PACS is reached and when (io/pacs), read by `vesalius ingest` for its
     * pacs:// sources and by `vesalius send`. What is pulled does not depend on these keys, so
     * no stage records them and the runner does not hash them: a changed timeout or window
     * neither reruns ingest nor makes it refuse its folder. */
    ST_PACS = 1u << 6,
};
#define ST_FINETUNE (ST_FT_MAE | ST_FT_SCRATCH)

typedef enum { STUDY_MISSING_REJECT = 0, STUDY_MISSING_RESAMPLE = 1 } study_missing_policy;
typedef enum { STUDY_PREP_NONE = 0, STUDY_PREP_STANDARD = 1 } study_prep_mode;
typedef enum { STUDY_INTERP_LINEAR = 0, STUDY_INTERP_NEAREST = 1 } study_interpolation;
typedef enum { STUDY_TARGET_NORMALIZED = 0, STUDY_TARGET_PLAIN = 1 } study_target;
typedef enum {
    STUDY_LABELS_POINTS = 0,
    STUDY_LABELS_MASKS = 1,
    STUDY_LABELS_VOLUME = 2
} study_label_format;
typedef enum { STUDY_TUNE_FINETUNE = 0, STUDY_TUNE_PROBE = 1 } study_tune_mode;
typedef enum { STUDY_LOSS_FOCAL = 0, STUDY_LOSS_BCE = 1 } study_det_loss;

/* clang-format off */
/* Top-level keys (no section in the file). */
#define STUDY_KEYS_TOP(X) \
    X(top, name, TEXT, NULL, 1, 64, NULL, "-", 0, "the study's name (report titles)") \
    X(top, output, PATH, NULL, 0, 0, NULL, "-", 0, "output folder: everything the study writes goes below it") \
    X(top, seed, I64, "1", 0, 9007199254740991.0, NULL, NULL, ST_SPLIT | ST_PRETRAIN | ST_FINETUNE | ST_VALIDATE, "every random choice derives from it") \
    X(top, threads, INT, "0", 0, 1024, NULL, "-", ST_PRETRAIN | ST_FINETUNE, "worker threads, 0: all cores (the global -j overrides)")

/* The ingest stage: de-identification, sources, preprocessing, shards. */
#define STUDY_KEYS_DEID(X) \
    X(deid, key_file, KEY, "", 0, 0, NULL, "key", ST_INGEST | ST_SPLIT | ST_FINETUNE, "site key for pseudonyms and date shifts (created 0600 on first use)") \
    X(deid, linkage, PATH, "", 0, 0, NULL, NULL, ST_INGEST, "honest-broker linkage table original -> pseudonym (SQLite, 0600)") \
    X(deid, retain_safe_private, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "keep private elements on the safe list") \
    X(deid, retain_uids, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "keep UIDs") \
    X(deid, retain_device_identity, BOOL, "false", 0, 1, NULL, "retain-device-id", ST_INGEST, "keep device identity") \
    X(deid, retain_institution_identity, BOOL, "false", 0, 1, NULL, "retain-institution-id", ST_INGEST, "keep institution identity") \
    X(deid, retain_patient_characteristics, BOOL, "false", 0, 1, NULL, "retain-patient-chars", ST_INGEST, "keep age, sex, size, weight") \
    X(deid, retain_long_full_dates, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "keep dates and times") \
    X(deid, retain_long_modified_dates, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "shift dates by a keyed per-patient offset") \
    X(deid, clean_descriptors, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "keep descriptions, identifiers scrubbed") \
    X(deid, clean_structured_content, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "keep structured content, cleaned") \
    X(deid, clean_graphics, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "keep graphics and overlays, text cleaned") \
    X(deid, accept_burned_in, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "accept images that may carry burned-in text (flagged)")

#define STUDY_KEYS_INGEST(X) \
    X(ingest, sources, PATHS, "", 0, 0, NULL, "-", ST_INGEST, "files, folders, DICOMDIRs and pacs://AET@host:port URLs (command line: SRC...)") \
    X(ingest, max_voxels, I64, "2147483648", 1, 1099511627776.0, NULL, NULL, ST_INGEST, "reject images and volumes above this many voxels") \
    X(ingest, missing_slices, ENUM, "reject", 0, 1, "reject|resample", NULL, ST_INGEST, "series with missing slices or uneven spacing") \
    X(ingest, keep_localizers, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "also store localizer images")

#define STUDY_KEYS_PREPROCESS(X) \
    X(preprocess, mode, ENUM, "standard", 0, 1, "none|standard", "preprocess", ST_INGEST, "none keeps native voxels untouched") \
    X(preprocess, reorient, BOOL, "true", 0, 1, NULL, NULL, ST_INGEST, "to the canonical LPS orientation") \
    X(preprocess, spacing, DBL3, "0,0,0", 0, 100, NULL, NULL, ST_INGEST, "target (column, row, slice) mm; 0 keeps native") \
    X(preprocess, interpolation, ENUM, "linear", 0, 1, "linear|nearest", NULL, ST_INGEST, "resampling interpolation") \
    X(preprocess, ct_window, DBL2, "-1000,1000", -32768, 32767, NULL, NULL, ST_INGEST, "CT: clip to this HU window, then scale to [0, 1]") \
    X(preprocess, n4, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "MR: N4 bias-field correction") \
    X(preprocess, mr_percentiles, DBL2, "1,99", 0, 100, NULL, NULL, ST_INGEST, "non-CT: percentile normalisation") \
    X(preprocess, foreground_crop, BOOL, "false", 0, 1, NULL, NULL, ST_INGEST, "crop to the box of voxels above crop_threshold") \
    X(preprocess, crop_threshold, DBL, "0", -1e9, 1e9, NULL, NULL, ST_INGEST, "foreground: voxels above this value") \
    X(preprocess, crop_margin, INT, "0", 0, 4096, NULL, NULL, ST_INGEST, "foreground crop margin in voxels")

#define STUDY_KEYS_SHARDS(X) \
    X(shards, max_mb, I64, "1024", 1, 1048576, NULL, "shard-mb", ST_INGEST, "close a shard above this many MiB") \
    X(shards, chunk, INT3, "32,32,32", 1, 4096, NULL, NULL, ST_INGEST, "HDF5 chunk (slice, row, column)") \
    X(shards, deflate, INT, "1", 0, 9, NULL, NULL, ST_INGEST, "zlib level 0-9 after byte shuffle (libdeflate)")

/* The pretrain stage; the encoder's shape and the augmentations are read by fine-tuning too
 * (the scratch arm builds the pretrained encoder's architecture; the mae arm reads it from the
 * checkpoint). */
/* Pulling from a PACS (pacs:// sources; io/pacs/pacs.h). */
#define STUDY_KEYS_PACS(X) \
    X(pacs, calling_aet, TEXT, "VESALIUS", 1, 16, NULL, "pacs-calling-aet", ST_PACS, "our AE title, known to the PACS") \
    X(pacs, retrieve, ENUM, "get", 0, 1, "get|move", "pacs-retrieve", ST_PACS, "get: C-GET (one association, no inbound port); move: C-MOVE to our own receiver") \
    X(pacs, move_port, INT, "11112", 1, 65535, NULL, "pacs-move-port", ST_PACS, "our C-STORE receiver's port (retrieve: move)") \
    X(pacs, move_aet, TEXT, "", 0, 16, NULL, "pacs-move-aet", ST_PACS, "the C-MOVE destination's AE title (empty: calling_aet)") \
    X(pacs, lookback_days, INT, "7", 0, 36500, NULL, "pacs-lookback-days", ST_PACS, "nightly runs list studies from the watermark less this many days") \
    X(pacs, window, TEXT, "", 0, 11, NULL, "pacs-window", ST_PACS, "HH:MM-HH:MM: retrieve only then (may wrap midnight); empty: any time") \
    X(pacs, max_series, INT, "0", 0, 1e8, NULL, "pacs-max-series", ST_PACS, "series retrieved per run (0: no limit)") \
    X(pacs, max_instances, I64, "0", 0, 1e15, NULL, "pacs-max-instances", ST_PACS, "instances retrieved per run (0: no limit)") \
    X(pacs, max_mb, I64, "0", 0, 1e12, NULL, "pacs-max-mb", ST_PACS, "MiB retrieved per run (0: no limit)") \
    X(pacs, connect_timeout, INT, "10", 1, 3600, NULL, "pacs-connect-timeout", ST_PACS, "seconds to open a TCP connection") \
    X(pacs, acse_timeout, INT, "30", 1, 3600, NULL, "pacs-acse-timeout", ST_PACS, "seconds to wait for an association") \
    X(pacs, dimse_timeout, INT, "60", 1, 86400, NULL, "pacs-dimse-timeout", ST_PACS, "seconds to wait for each DIMSE message") \
    X(pacs, retries, INT, "3", 0, 100, NULL, "pacs-retries", ST_PACS, "retries of a connection and of a partial series") \
    X(pacs, backoff, DBL, "5", 0, 3600, NULL, "pacs-backoff", ST_PACS, "seconds before the first retry, doubled after each") \
    X(pacs, spool, PATH, "", 0, 0, NULL, "pacs-spool", ST_PACS, "empty: a series in memory; else a 0700 folder of unnamed files") \
    X(pacs, tls_ca, PATH, "", 0, 0, NULL, "pacs-tls-ca", ST_PACS, "PEM certificates to trust; set: DICOM over TLS") \
    X(pacs, tls_cert, PATH, "", 0, 0, NULL, "pacs-tls-cert", ST_PACS, "our PEM certificate (when the peer wants one)") \
    X(pacs, tls_key, PATH, "", 0, 0, NULL, "pacs-tls-key", ST_PACS, "its PEM private key")

#define STUDY_KEYS_PRETRAIN(X) \
    X(pretrain, modalities, TEXTS, "", 0, 0, NULL, "modality", ST_PRETRAIN, "the modality whose volumes feed the model (CT, MR, DX...); all when empty") \
    X(pretrain, include_test, BOOL, "false", 0, 1, NULL, NULL, ST_PRETRAIN, "also pretrain on the volumes of the split's test patients (default: they are left out)") \
    X(pretrain, crop, INT3, "64,64,64", 1, 4096, NULL, NULL, ST_PRETRAIN | ST_FT_SCRATCH, "(z, y, x) voxels; the detector needs multiples of 8 (16 or more)") \
    X(pretrain, patch, INT3, "8,8,8", 1, 4096, NULL, NULL, ST_PRETRAIN | ST_FT_SCRATCH, "(z, y, x) voxels; must divide crop; the detector takes 4,4,4 or 8,8,8") \
    X(pretrain, dim, INT, "192", 6, 8192, NULL, NULL, ST_PRETRAIN | ST_FT_SCRATCH, "encoder width") \
    X(pretrain, depth, INT, "6", 1, 64, NULL, NULL, ST_PRETRAIN | ST_FT_SCRATCH, "encoder blocks") \
    X(pretrain, heads, INT, "3", 1, 256, NULL, NULL, ST_PRETRAIN | ST_FT_SCRATCH, "encoder attention heads") \
    X(pretrain, mlp_ratio, INT, "4", 1, 16, NULL, NULL, ST_PRETRAIN | ST_FT_SCRATCH, "MLP width / model width") \
    X(pretrain, dec_dim, INT, "128", 6, 8192, NULL, NULL, ST_PRETRAIN, "decoder width") \
    X(pretrain, dec_depth, INT, "2", 1, 64, NULL, NULL, ST_PRETRAIN, "decoder blocks") \
    X(pretrain, dec_heads, INT, "4", 1, 256, NULL, NULL, ST_PRETRAIN, "decoder attention heads") \
    X(pretrain, mask_ratio, DBL, "0.75", 0.01, 0.99, NULL, NULL, ST_PRETRAIN, "fraction of patches hidden") \
    X(pretrain, batch, INT, "8", 1, 4096, NULL, NULL, ST_PRETRAIN, "crops per step") \
    X(pretrain, steps, INT, "1000", 1, 1e9, NULL, NULL, ST_PRETRAIN, "optimizer steps (the cosine schedule ends here)") \
    X(pretrain, warmup_steps, INT, "100", 0, 1e9, NULL, "warmup", ST_PRETRAIN, "linear warm-up steps") \
    X(pretrain, accumulate, INT, "1", 1, 1024, NULL, "accum", ST_PRETRAIN, "gradient accumulation steps") \
    X(pretrain, checkpoint_every, INT, "100", 0, 1e9, NULL, NULL, ST_PRETRAIN, "steps between checkpoints (0: only at the end)") \
    X(pretrain, log_every, INT, "10", 0, 1e9, NULL, NULL, ST_PRETRAIN, "steps between log lines (the report's curve)") \
    X(pretrain, lr, DBL, "0.00015", 1e-12, 1, NULL, NULL, ST_PRETRAIN, "peak learning rate") \
    X(pretrain, min_lr, DBL, "0", 0, 1, NULL, NULL, ST_PRETRAIN, "learning rate at the end of the cosine") \
    X(pretrain, weight_decay, DBL, "0.05", 0, 0.999, NULL, NULL, ST_PRETRAIN, "AdamW weight decay") \
    X(pretrain, clip, DBL, "0", 0, 1e6, NULL, NULL, ST_PRETRAIN, "global-norm gradient clipping (0: off)") \
    X(pretrain, decay_norms_and_biases, BOOL, "true", 0, 1, NULL, "decay-norms", ST_PRETRAIN, "weight decay on every parameter, as the twin") \
    X(pretrain, target, ENUM, "normalized", 0, 1, "normalized|plain", NULL, ST_PRETRAIN, "per-patch normalised targets (the twin) or plain voxels") \
    X(pretrain, visible_loss_weight, DBL, "0", 0, 100, NULL, "visible-weight", ST_PRETRAIN, "loss weight of visible patches (0: the twin)") \
    X(pretrain, flips, BOOL, "true", 0, 1, NULL, "flip", ST_PRETRAIN | ST_FINETUNE, "augmentation: random flips (p 0.5 per axis)") \
    X(pretrain, intensity_scale, DBL, "0.1", 0, 1, NULL, "scale", ST_PRETRAIN | ST_FINETUNE, "augmentation: random scale in [1-s, 1+s]") \
    X(pretrain, intensity_shift, DBL, "0.1", 0, 1, NULL, "shift", ST_PRETRAIN | ST_FINETUNE, "augmentation: random shift in [-s, s]") \
    X(pretrain, working_set, INT, "8", 0, 4096, NULL, NULL, ST_PRETRAIN, "crops come from W volumes at a time (0: any volume)") \
    X(pretrain, swap_every, INT, "256", 1, 1073741824, NULL, NULL, ST_PRETRAIN, "one volume of the working set swapped every R crops") \
    X(pretrain, chunk_cache_mb, INT, "0", 0, 1048576, NULL, "chunk-cache", ST_PRETRAIN, "inflated chunks kept (0: auto, W+1 of the largest volumes)")

/* Stages that run across processes (pretrain; pipeline/dist.h), as `vesalius run` starts them. */
#define STUDY_KEYS_DISTRIBUTED(X) \
    X(distributed, launcher, TEXTS, "", 0, 0, NULL, "-", 0, "how `vesalius run` starts the ranks of a stage that scales, given -n RANKS after it: [mpirun], [srun], [mpiexec]...") \
    X(distributed, ranks, INT, "1", 1, 1048576, NULL, "-", ST_PRETRAIN, "processes of a stage that scales (pretrain, whose result depends on it, and the finetune stages, whose results do not; 1: one process); under a launcher, the ones it started")

/* The fine-tuning stages (both arms). */
#define STUDY_KEYS_LABELS(X) \
    X(labels, format, ENUM, "points", 0, 2, "points|masks|volume", "-", ST_SPLIT | ST_FINETUNE, "what labels.file holds (command line: --labels, --masks)") \
    X(labels, file, FILE, "", 0, 0, NULL, "-", ST_SPLIT | ST_FINETUNE, "labels under ORIGINAL SeriesInstanceUIDs: a CSV or a folder of masks") \
    X(labels, volumes, FILE, "", 0, 0, NULL, "volume-labels", ST_SPLIT | ST_FINETUNE, "seriesuid,label (0/1): every labeled volume, negatives included")

#define STUDY_KEYS_FINETUNE(X) \
    X(finetune, dev_share, DBL, "0.2", 0, 0.99, NULL, NULL, ST_SPLIT, "share of the labeled patients in the development set (per class, rounded half up)") \
    X(finetune, test_share, DBL, "0.5", 0, 0.99, NULL, NULL, ST_SPLIT, "share of the labeled patients in the held-out test set (per class, rounded half up)") \
    X(finetune, mode, ENUM, "finetune", 0, 1, "finetune|probe", NULL, ST_FINETUNE, "the whole encoder (layer-wise lr decay) or a frozen one") \
    X(finetune, budgets, INTS, "10,20,40", 0, 1e6, NULL, NULL, ST_FINETUNE, "label budgets: training patients per fit, nested subsets of the train role (0: all of them)") \
    X(finetune, seeds, INT, "3", 1, 100, NULL, NULL, ST_FINETUNE, "fits per budget and arm, each with its own subset order, initialisation and crops") \
    X(finetune, members, INT, "1", 1, 16, NULL, NULL, ST_FINETUNE, "detectors per fit, trained on the fit's volumes from their own seeds; the fit predicts with the mean of their probabilities (members x the time)") \
    X(finetune, steps, INT, "2000", 1, 1e9, NULL, NULL, ST_FINETUNE, "optimizer steps per fit") \
    X(finetune, batch, INT, "8", 1, 4096, NULL, NULL, ST_FINETUNE, "crops per step") \
    X(finetune, lr, DBL, "0.001", 1e-12, 1, NULL, NULL, ST_FT_MAE, "peak learning rate of the mae arm (its head; the encoder by layer_decay)") \
    X(finetune, layer_decay, DBL, "0.75", 0.01, 1, NULL, NULL, ST_FT_MAE, "mae arm: encoder block g gets lr x decay^(depth + 1 - g)") \
    X(finetune, scratch_lr, DBL, "0.001", 1e-12, 1, NULL, NULL, ST_FT_SCRATCH, "peak learning rate of the scratch arm (one lr everywhere: no layer decay)") \
    X(finetune, lesion_share, DBL, "0.5", 0, 1, NULL, NULL, ST_FINETUNE, "share of crops centred on a lesion") \
    X(finetune, eval_every, INT, "0", 0, 1e9, NULL, NULL, ST_FINETUNE, "steps between evaluations on the dev patients for early stopping (0: none, keep the last weights)") \
    X(finetune, patience, INT, "5", 0, 1000000, NULL, NULL, ST_FINETUNE, "validations without improvement before stopping (0: never)") \
    X(finetune, loss, ENUM, "focal", 0, 1, "focal|bce", NULL, ST_FINETUNE, "objectness loss") \
    X(finetune, focal_gamma, DBL, "2", 0, 10, NULL, "gamma", ST_FINETUNE, "focal exponent") \
    X(finetune, width, INT, "16", 1, 256, NULL, NULL, ST_FINETUNE, "convolution width w: stem w, 2w; decoder 4w, 2w, w") \
    X(finetune, hard_share, DBL, "0.25", 0, 1, NULL, NULL, ST_FINETUNE, "share of crops on mined false positives (out of lesion_share)") \
    X(finetune, mine_every, INT, "300", 0, 1e9, NULL, NULL, ST_FINETUNE, "steps between hard-negative mining passes, from a third of the steps (0: none)") \
    X(finetune, mine_top, INT, "8", 1, 1000, NULL, NULL, ST_FINETUNE, "false positives kept per training volume and pass") \
    X(finetune, zoom, DBL, "0", 0, 1, NULL, NULL, ST_FINETUNE, "training crops resampled at a zoom from [1 / (1 + zoom), 1 + zoom], log-uniform (0: none)") \
    X(finetune, rotate, DBL, "0", 0, 180, NULL, NULL, ST_FINETUNE, "training crops turned in the row-column plane (of voxels) by up to this many degrees (0: none)") \
    X(finetune, hard_weighted, BOOL, "false", 0, 1, NULL, NULL, ST_FINETUNE, "draw a mined false positive in proportion to its probability (false: uniformly)") \
    X(finetune, test_flips, BOOL, "false", 0, 1, NULL, NULL, ST_FINETUNE, "predict also on the 7 mirrored volumes and average (8x the time)") \
    X(finetune, window, DBL2, "0,0", -1e9, 1e9, NULL, NULL, ST_FINETUNE, "intensities clipped to LO,HI and mapped to [0, 1] (equal: as stored)") \
    X(finetune, scratch_baseline, BOOL, "true", 0, 1, NULL, "-", 0, "also train the same detector from scratch (stage finetune-scratch)")

#define STUDY_KEYS_VALIDATE(X) \
    X(validate, bootstrap, INT, "1000", 0, 1000000, NULL, NULL, ST_VALIDATE, "bootstrap resamples over patients (0: no CIs)") \
    X(validate, dev_sensitivity, DBL, "0.9", 0.01, 1, NULL, NULL, ST_VALIDATE, "the operating threshold chosen on the dev series: the highest reaching this sensitivity there") \
    X(validate, operating_points, DBLS, "0.5", 0, 1, NULL, "operating-point", ST_VALIDATE, "thresholds for sensitivity and specificity")

/* The key prefix of each section's rows (a new section adds its line). */
#define STUDY_PREFIX_top ""
#define STUDY_PREFIX_deid "deid."
#define STUDY_PREFIX_ingest "ingest."
#define STUDY_PREFIX_preprocess "preprocess."
#define STUDY_PREFIX_shards "shards."
#define STUDY_PREFIX_pacs "pacs."
#define STUDY_PREFIX_pretrain "pretrain."
#define STUDY_PREFIX_distributed "distributed."
#define STUDY_PREFIX_labels "labels."
#define STUDY_PREFIX_finetune "finetune."
#define STUDY_PREFIX_validate "validate."

#define STUDY_KEYS(X) \
    STUDY_KEYS_TOP(X) STUDY_KEYS_DEID(X) STUDY_KEYS_INGEST(X) STUDY_KEYS_PREPROCESS(X) \
    STUDY_KEYS_SHARDS(X) STUDY_KEYS_PACS(X) STUDY_KEYS_PRETRAIN(X) STUDY_KEYS_DISTRIBUTED(X) STUDY_KEYS_LABELS(X) STUDY_KEYS_FINETUNE(X) \
    STUDY_KEYS_VALIDATE(X)
/* clang-format on */

typedef struct study_list {
    char **v;
    unsigned n;
} study_list;

typedef struct study_dbls {
    double *v;
    unsigned n;
} study_dbls;

typedef struct study_ints {
    int *v;
    unsigned n;
} study_ints;

/* The section structs, one member per row. */
#define STUDY_C_BOOL(n) int n;
#define STUDY_C_INT(n) int n;
#define STUDY_C_I64(n) int64_t n;
#define STUDY_C_DBL(n) double n;
#define STUDY_C_ENUM(n) int n;
#define STUDY_C_INT3(n) int n[3];
#define STUDY_C_DBL2(n) double n[2];
#define STUDY_C_DBL3(n) double n[3];
#define STUDY_C_TEXT(n) char *n;
#define STUDY_C_PATH(n) char *n;
#define STUDY_C_FILE(n) char *n;
#define STUDY_C_KEY(n) char *n;
#define STUDY_C_TEXTS(n) study_list n;
#define STUDY_C_PATHS(n) study_list n;
#define STUDY_C_DBLS(n) study_dbls n;
#define STUDY_C_INTS(n) study_ints n;
#define STUDY_MEMBER(sec, name, kind, ...) STUDY_C_##kind(name)

typedef struct study_top {
    STUDY_KEYS_TOP(STUDY_MEMBER)
} study_top;
typedef struct study_deid {
    STUDY_KEYS_DEID(STUDY_MEMBER)
} study_deid;
typedef struct study_ingest {
    STUDY_KEYS_INGEST(STUDY_MEMBER)
} study_ingest;
typedef struct study_preprocess {
    STUDY_KEYS_PREPROCESS(STUDY_MEMBER)
} study_preprocess;
typedef struct study_shards {
    STUDY_KEYS_SHARDS(STUDY_MEMBER)
} study_shards;
typedef struct study_pacs {
    STUDY_KEYS_PACS(STUDY_MEMBER)
} study_pacs;
typedef struct study_pretrain {
    STUDY_KEYS_PRETRAIN(STUDY_MEMBER)
} study_pretrain;
typedef struct study_distributed {
    STUDY_KEYS_DISTRIBUTED(STUDY_MEMBER)
} study_distributed;
typedef struct study_labels {
    STUDY_KEYS_LABELS(STUDY_MEMBER)
} study_labels;
typedef struct study_finetune {
    STUDY_KEYS_FINETUNE(STUDY_MEMBER)
} study_finetune;
typedef struct study_validate {
    STUDY_KEYS_VALIDATE(STUDY_MEMBER)
} study_validate;

/* One index per row: STUDY_KEY_pretrain_lr is the row of pretrain.lr. */
#define STUDY_INDEX(sec, name, ...) STUDY_KEY_##sec##_##name,
enum { STUDY_KEYS(STUDY_INDEX) STUDY_N_KEYS };

typedef enum { STUDY_FROM_DEFAULT = 0, STUDY_FROM_FILE = 1, STUDY_FROM_OPTION = 2 } study_origin;

typedef struct study {
    study_top top;
    study_deid deid;
    study_ingest ingest;
    study_preprocess preprocess;
    study_shards shards;
    study_pacs pacs;
    study_pretrain pretrain;
    study_distributed distributed;
    study_labels labels;
    study_finetune finetune;
    study_validate validate;
    char *path;                         /* the study file, or NULL (defaults and options) */
    unsigned char origin[STUDY_N_KEYS]; /* study_origin of each value, for messages */
    int line[STUDY_N_KEYS];             /* its line in the study file (STUDY_FROM_FILE) */
} study;

typedef enum {
    STUDY_BOOL,
    STUDY_INT,
    STUDY_I64,
    STUDY_DBL,
    STUDY_ENUM,
    STUDY_INT3,
    STUDY_DBL2,
    STUDY_DBL3,
    STUDY_TEXT,
    STUDY_PATH,
    STUDY_FILE,
    STUDY_KEY,
    STUDY_TEXTS,
    STUDY_PATHS,
    STUDY_DBLS,
    STUDY_INTS
} study_kind;

typedef struct study_setting {
    const char *key; /* "pretrain.lr"; a top-level key is "seed" */
    study_kind kind;
    size_t offset;   /* of the member in struct study */
    const char *def; /* the default as text; NULL: required in a study file */
    double lo, hi;
    const char *choices; /* ENUM: "a|b|c" */
    const char *flag;    /* see the file comment */
    unsigned readers;    /* ST_* bits */
    const char *help;
} study_setting;

/* The rows, in table order (studies/study_table.c: data only, no YAML, so the lean front can
 * list a command's options from it). */
extern const study_setting study_settings[STUDY_N_KEYS];

/* The row of a key path ("pretrain.lr", "seed"), or NULL. */
const study_setting *study_setting_find(const char *key);
/* The option name of a row ("" when it has none), without the leading "--". */
const char *study_setting_flag(const study_setting *row, char *buf, size_t cap);
/* `--help` lines for the options of the settings read by any of the stages in `readers`. */
void study_print_options(FILE *f, unsigned readers);

/* ---- study files and options (studies/study.c) --------------------------------------------- */

/* Every default: a command run without --study. */
vs_status study_defaults(study **out, vs_error *err);
/* Load, apply defaults, resolve relative paths against the file's folder, check (invariant 1).
 * *out is NULL on failure and err says "FILE:LINE: key 'a.b': reason". */
vs_status study_load(const char *path, study **out, vs_error *err);
void study_free(study *s);
/* Set one key from its text as an option gives it (a list appends when `append`); the value
 * is checked against its row (not the cross-key rules: study_check). */
vs_status study_set(study *s, const study_setting *row, const char *text, int append,
                    vs_error *err);
/* Set a list key to items[0..n) (no splitting at commas: e.g. paths from the command line). */
vs_status study_set_list(study *s, const study_setting *row, const char *const *items, int n,
                         vs_error *err);
/* The cross-key rules and every range; messages name the file and line, or the option. */
vs_status study_check(const study *s, vs_error *err);
/* Line (1-based) of the key path "section.key" in the YAML file, or 0 when absent. */
int study_key_line(const char *path, const char *key_path);

/* ---- resolved settings (studies/study_resolve.c) --------------------------------------------- */

/* Key/value text pairs: a stage's resolved settings, or a record read back. */
typedef struct study_kv {
    int n;
    char *key[STUDY_N_KEYS + 16];
    char *value[STUDY_N_KEYS + 16];
} study_kv;

/* The settings a stage reads (rows whose readers hold `stage`), in table order, each as its
 * canonical text: numbers as %.17g, lists comma-separated, a FILE as "sha256:HEX" of its
 * content (a folder: of its sorted files' names and contents), the KEY as
 * "keyed-sha256:HEX" (a hash of a keyed pseudonym of a constant: it changes with the key and
 * reveals nothing of it) or "absent". Invariant 3. */
vs_status study_resolve(const study *s, unsigned stage, study_kv *out, vs_error *err);
/* One row's canonical text, as study_resolve gives it; free() *text. */
vs_status study_value(const study *s, const study_setting *row, char **text, vs_error *err);
void study_kv_free(study_kv *kv);
/* Write `{"schema": "vesalius.settings/1", "stage": STAGE, "settings": {...}}` (one key per
 * line, in kv order) durably to path. */
vs_status study_settings_write(const char *path, const char *stage, const study_kv *kv,
                               vs_error *err);
/* The text study_settings_write writes; free() it. NULL when out of memory. */
char *study_settings_text(const char *stage, const study_kv *kv);
/* Read the "NAME": {...} block (one "key": "value" per line, as written above) of a file. */
vs_status study_kv_read(const char *path, const char *block, study_kv *out, vs_error *err);
/* The same from text already in memory. */
vs_status study_kv_parse(const char *text, const char *block, study_kv *out, vs_error *err);
/* "key: old -> new" for each key that differs, "key: added" / "removed", joined by "; " into
 * buf (file contents shown as "content changed"); returns the number of differences. */
int study_kv_diff(const study_kv *old, const study_kv *now, char *buf, size_t cap);

#endif
