/* report.h — `vesalius validate`'s engine: read predictions, labels, training logs and
 * previews in the documented forms (validation/FORMATS.md), compute every metric per label
 * budget over the fits' seeds with paired bootstrap confidence intervals, and write report.json
 * (schema in validation/REPORT_SCHEMA.md), report.md and a self-contained report.html.
 *
 * The protocol (issue #15): every prediction row names its fit: arm (mae, scratch), label
 * budget (training patients), run seed, and the split role of its series (test, dev). The
 * report is computed on the TEST series only; dev predictions, when given, are counted and
 * never enter a number. Per budget, the series x seeds form a "view": per seed the statistic
 * over the test series, the point estimate is their mean (sd with n - 1), and the 95% interval
 * a percentile bootstrap that resamples test patients and seeds together (the same draws for
 * both arms: the difference mae - scratch is paired). Curves (ROC, FROC), operating points and
 * calibration pool the seeds of the headline budget (the largest).
 *
 * Invariants:
 *   1. Only pseudonymous keys pass from the inputs to the reports: series and patient keys
 *      (checked against the key alphabet), numbers, and the labels the operator gives curves
 *      and previews. Extra input columns and log messages are never copied.
 *   2. Apart from the single "run_time" line, report.json depends only on the inputs' bytes,
 *      the options and the provenance passed in: the same inputs give the same bytes.
 *      Numbers are printed by one locale-independent formatter.
 *   3. Input order does not matter: series are sorted by key, candidates are matched per scan.
 *   4. Reports are written to a temporary name and renamed, so a failed run leaves any
 *      earlier report intact.
 */
#ifndef VS_REPORT_H
#define VS_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "froc.h"
#include "metrics.h"
#include "roc.h"
#include "status.h"

#define REPORT_SCHEMA_VERSION 2
#define REPORT_KEY_MAX 64    /* series / patient key length */
#define REPORT_NAME_MAX 64   /* curve and preview labels */
#define REPORT_MAX_OPS 16    /* operating points */
#define REPORT_SHA256_HEX 65 /* 64 hex digits + NUL */
#define REPORT_MAX_SEEDS 100
#define REPORT_MAX_BUDGETS 64

typedef enum report_set { REPORT_SET_TEST = 0, REPORT_SET_DEV = 1 } report_set;

typedef enum report_arm_id { REPORT_ARM_MAE = 0, REPORT_ARM_SCRATCH, REPORT_N_ARMS } report_arm_id;
extern const char *const report_arm_names[REPORT_N_ARMS]; /* "mae", "scratch" */

typedef struct report_series {
    char key[REPORT_KEY_MAX + 1];
    char patient[REPORT_KEY_MAX + 1]; /* bootstrap cluster; the series key when not given */
    uint32_t cluster;                 /* index of the patient, 0..n_clusters */
    int label;                        /* volume-level label, 0 or 1 */
    int set;                          /* report_set from the predictions; -1 until read */
} report_series;

typedef struct report_arm {
    int present;
    int *fold;             /* (n_series) run seed of each series (in a view: of each series x
                              seed row), -1 until read */
    double *score;         /* (n_series) volume-level score */
    int *has_volume_row;   /* (n_series) 1 when a row gave the volume score explicitly */
    froc_candidate *cands; /* (n_cands) candidate lesions; scan = series index */
    size_t n_cands, cap_cands;
} report_arm;

typedef enum report_curve_kind { REPORT_PRETRAIN = 0, REPORT_FINETUNE } report_curve_kind;

typedef struct report_curve {
    char name[REPORT_NAME_MAX + 1];
    report_curve_kind kind;
    char sha256[REPORT_SHA256_HEX];
    size_t n;
    double *step, *loss; /* (n) in file order */
} report_curve;

typedef struct report_preview {
    char name[REPORT_NAME_MAX + 1];
    char sha256[REPORT_SHA256_HEX];
    uint32_t width, height;
    unsigned char *png;
    size_t size;
} report_preview;

typedef struct report_file {
    char role[16];  /* "labels", "predictions", "study" */
    char name[128]; /* base name only: reports never hold the operator's folder layout */
    char sha256[REPORT_SHA256_HEX];
} report_file;

/* The predictions of one fit (arm, budget, seed), over the labeled series. */
typedef struct report_run {
    int arm, budget, seed;
    report_arm a;
} report_run;

/* Everything validate reads. Create with report_input_init, free with report_input_free. */
typedef struct report_input {
    report_series *series;
    size_t n_series;
    uint32_t n_clusters;
    froc_lesion *lesions; /* scan = series index */
    size_t n_lesions;
    report_arm arms[REPORT_N_ARMS]; /* a view's arms (report_compute builds views) */
    report_run *runs;               /* what the predictions hold */
    size_t n_runs, cap_runs;
    report_curve *curves;
    size_t n_curves;
    report_preview *previews;
    size_t n_previews;
    report_preview *gallery; /* detection pictures (pipeline/report_gallery.h): caption, PNG */
    size_t n_gallery;
    report_file *files;
    size_t n_files;
} report_input;

/* A seed used upstream (pretraining, fine-tuning, splits), recorded for the reader. */
typedef struct report_seed {
    char name[REPORT_NAME_MAX + 1];
    uint64_t value;
} report_seed;

typedef struct report_lib {
    char name[32];
    char version[128];
} report_lib;

/* The resolved settings one stage ran with (its settings.json), for the provenance. */
typedef struct report_stage_settings {
    char stage[REPORT_NAME_MAX + 1];
    int n;
    char *const *key, *const *value;
} report_stage_settings;

/* Filled by the command (pipeline/), so validation/ needs nothing above it. */
typedef struct report_provenance {
    const char *vesalius_version;
    const char *git_revision;
    const report_lib *libs;
    int n_libs;
    const report_seed *seeds; /* besides the bootstrap seed, which comes from the options */
    int n_seeds;
    const char *cpu_model;
    int threads;      /* --threads as given; 0: default */
    int blas_threads; /* OpenBLAS's thread count */
    int have_shards;
    char shards_sha256[REPORT_SHA256_HEX];
    size_t n_shards;
    const report_stage_settings *stage_settings; /* in the order given */
    int n_stage_settings;
} report_provenance;

typedef struct report_options {
    double dev_sensitivity; /* the dev-chosen threshold reaches this sensitivity on dev */
    uint32_t n_bootstrap;   /* resamples; 0 disables the CIs */
    uint64_t seed;
    double ops[REPORT_MAX_OPS];
    int n_ops;
} report_options;

typedef struct report_ci {
    double value;   /* point estimate; NaN when undefined */
    double lo, hi;  /* 95% percentile bootstrap interval; NaN when undefined */
    size_t n_valid; /* resamples where the statistic was defined */
} report_ci;

typedef struct report_fold {
    int fold;
    size_t n_series, n_pos, n_lesions;
    double auc, cpm, ap; /* NaN when undefined in this fold */
} report_fold;

typedef struct report_arm_result {
    int present;
    int has_froc; /* 0 when the labels hold no relevant lesion */
    roc_point *roc;
    size_t n_roc;
    report_ci auc, cpm, ap;
    double cpm_sens[FROC_N_CPM];
    froc_point *froc;
    size_t n_froc;
    froc_match match;
    roc_operating_point ops[REPORT_MAX_OPS];
    metrics_calibration calib;
    report_fold *folds;
    size_t n_folds;
    int has_dev_op;             /* dev series of both classes were predicted */
    roc_operating_point dev_op; /* on the test series, at the threshold chosen on dev */
    double fold_auc_mean, fold_auc_sd, fold_cpm_mean, fold_cpm_sd;
} report_arm_result;

/* One label budget's row of the protocol's table. */
typedef struct report_budget_arm {
    int present;
    report_ci auc, cpm; /* mean over seeds; interval over patients and seeds */
    double auc_sd, cpm_sd;
    double auc_seed[REPORT_MAX_SEEDS], cpm_seed[REPORT_MAX_SEEDS];
} report_budget_arm;

typedef struct report_budget_row {
    int budget;
    report_budget_arm arm[REPORT_N_ARMS];
    int has_delta;
    report_ci delta_auc, delta_cpm;
} report_budget_row;

typedef struct report_results {
    report_arm_result arms[REPORT_N_ARMS];
    int has_delta;                  /* both arms present */
    report_ci delta_auc, delta_cpm; /* mae minus scratch, paired resamples */
    report_options opt;
    /* the protocol: every budget (ascending); the arms above are the headline budget's */
    int budget; /* the headline budget (the largest) */
    int n_seeds, seeds[REPORT_MAX_SEEDS];
    report_budget_row *budgets;
    size_t n_budgets;
    size_t n_dev_series, n_test_patients, n_dev_patients;
    report_input view; /* the headline budget's test series x seeds (report_compute fills) */
} report_results;

void report_input_init(report_input *in);
void report_input_free(report_input *in);

/* Inputs (formats in validation/FORMATS.md). Each fails with the file and line named. */
vs_status report_read_labels(report_input *in, const char *path, vs_error *err);
vs_status report_read_predictions(report_input *in, const char *path, vs_error *err);
/* name may be NULL: the log's "component" field, else "log N", names the curve. */
vs_status report_read_train_log(report_input *in, const char *name, const char *path,
                                vs_error *err);
vs_status report_read_preview(report_input *in, const char *name, const char *path, vs_error *err);
/* Record a file's base name and SHA-256 under role (e.g. the study file). */
vs_status report_add_file(report_input *in, const char *role, const char *path, vs_error *err);
/* Check that every labeled series has a prediction in every fit, with one set (test or dev)
 * across fits, that some series are test series, and that both arms (when present) have the
 * same seeds per budget. */
vs_status report_inputs_check(report_input *in, vs_error *err);

/* SHA-256 of a file's bytes, and of a shard set: sha256 over the lines
 * "<sha256 of file>  <name>\n" of every *.h5 file directly in dir, sorted by name (bytes),
 * i.e. what `(cd DIR && LC_ALL=C sha256sum $(LC_ALL=C ls *.h5)) | sha256sum` prints. */
vs_status report_sha256_file(const char *path, char hex[REPORT_SHA256_HEX], vs_error *err);
vs_status report_sha256_shards(const char *dir, char hex[REPORT_SHA256_HEX], size_t *n_files,
                               vs_error *err);

vs_status report_compute(const report_input *in, const report_options *opt, report_results *res,
                         vs_error *err);
void report_results_free(report_results *res);

/* Write DIR/report.json, report.md and report.html. start/end are ISO 8601 UTC strings. */
vs_status report_write(const char *dir, const report_input *in, const report_results *res,
                       const report_provenance *prov, const char *start, const char *end,
                       vs_error *err);

#endif
