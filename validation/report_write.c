/* report_write.c — the text buffer, the one number format, the definitions table, report.json
 * and the atomic save of the three report files. */
#include "report.h"
#include "report_text.h"
#include "fsdir.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- text buffer ----------------------------------------------------------------------- */

static void reserve(report_text *t, size_t more) {
    if (t->oom) return;
    if (t->n + more + 1 <= t->cap) return;
    size_t c = t->cap ? t->cap : 4096;
    while (c < t->n + more + 1)
        c *= 2;
    char *p = realloc(t->p, c);
    if (!p) {
        t->oom = 1;
        return;
    }
    t->p = p;
    t->cap = c;
}

void report_text_put(report_text *t, const char *s) {
    size_t n = strlen(s);
    reserve(t, n);
    if (t->oom) return;
    memcpy(t->p + t->n, s, n + 1);
    t->n += n;
}

void report_text_printf(report_text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->oom = 1;
        return;
    }
    reserve(t, (size_t)n);
    if (t->oom) return;
    va_start(ap, fmt);
    vsnprintf(t->p + t->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->n += (size_t)n;
}

/* Fixed-point with `decimals` digits; whatever the C locale, the separator is '.'. */
void report_text_fixed(report_text *t, double v, int decimals) {
    char buf[400]; /* %.10f of the largest double is 320 characters */
    snprintf(buf, sizeof buf, "%.*f", decimals, v);
    for (char *p = buf; *p; p++)
        if (*p != '-' && (*p < '0' || *p > '9')) *p = '.';
    if (strspn(buf, "-0.") == strlen(buf) && buf[0] == '-') memmove(buf, buf + 1, strlen(buf));
    report_text_put(t, buf);
}

void report_text_num(report_text *t, double v, int json) {
    if (!isfinite(v)) {
        report_text_put(t, json ? "null" : "n/a");
        return;
    }
    if (!json) {
        report_text_fixed(t, v, 3);
        return;
    }
    char buf[400]; /* %.10f of the largest double is 320 characters */
    snprintf(buf, sizeof buf, "%.10f", v);
    for (char *p = buf; *p; p++)
        if (*p != '-' && (*p < '0' || *p > '9')) *p = '.';
    size_t n = strlen(buf);
    while (n > 2 && buf[n - 1] == '0' && buf[n - 2] != '.')
        buf[--n] = '\0';
    if (strcmp(buf, "-0.0") == 0) memmove(buf, buf + 1, n);
    report_text_put(t, buf);
}

void report_text_free(report_text *t) {
    free(t->p);
    memset(t, 0, sizeof *t);
}

vs_status report_text_save(const report_text *t, const char *dir, const char *name, vs_error *err) {
    if (t->oom) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory writing %s", name);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return vs_write_file_atomic(path, t->p, t->n, err);
}

/* ---- definitions ----------------------------------------------------------------------- */

const report_def report_defs[] = {
    {"volume_score",
     "The volume-level score of a series is the probability on its volume row in the "
     "predictions; without a volume row it is the highest candidate probability in the series."},
    {"roc",
     "ROC curve: for every distinct volume score t, taken from the highest down, a series is "
     "called positive when its score is >= t; the point is (false-positive rate, true-positive "
     "rate). The first point (0, 0) has threshold +infinity (null in JSON). No point is dropped "
     "(scikit-learn's roc_curve with drop_intermediate=False)."},
    {"auc",
     "AUC: the Mann-Whitney U statistic divided by (positives x negatives): the probability that "
     "a random positive series scores above a random negative one, ties counting one half. "
     "Equal to the trapezoidal area under the ROC curve and to scikit-learn's roc_auc_score."},
    {"operating_point",
     "Sensitivity and specificity at a fixed threshold P: a series is called positive when its "
     "volume score is >= P."},
    {"brier", "Brier score: the mean over series of (volume score - label)^2."},
    {"reliability",
     "Reliability bins: ten equal-width bins of the volume score, [0, 0.1), ..., [0.9, 1.0]; per "
     "bin the number of series, their mean score and the observed fraction of positives. ECE is "
     "the count-weighted mean of |fraction positive - mean score| over bins."},
    {"hit",
     "Lesion hit (LUNA16): a candidate hits a lesion of the same series when its Euclidean "
     "distance to the lesion centre (LPS mm) is strictly less than the lesion's radius "
     "(diameter / 2). Several hits on one lesion count once, with the highest probability; a "
     "candidate hitting two lesions counts for both. A candidate that hits only lesions marked "
     "irrelevant is ignored (neither true nor false positive); irrelevant lesions are not counted. "
     "Every other candidate is a false positive."},
    {"froc",
     "FROC curve (LUNA16): for every distinct candidate probability t, from the highest down, "
     "sensitivity = relevant lesions whose best hit has probability >= t / all relevant lesions "
     "(missed lesions included), and false positives per scan = false-positive candidates with "
     "probability >= t / number of series. The curve starts at (0, 0)."},
    {"cpm",
     "CPM (LUNA16 competition performance metric): the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, "
     "4 and 8 false positives per scan, each read off the FROC curve by linear interpolation as "
     "numpy.interp does in LUNA16's noduleCADEvaluationLUNA16.py: between the last curve point "
     "at or below the FP rate and the next one, and held constant beyond the last point. This is "
     "not MONAI's or MetricsReloaded's 'FROC score', which differ in FP rates and matching."},
    {"ap",
     "AP at the LUNA16 hit criterion: candidates ranked by probability, true positives being the "
     "best hit of each relevant lesion and false positives as for FROC (duplicate and "
     "irrelevant hits left out); AP = sum over distinct thresholds of (R_k - R_k-1) x P_k, with "
     "recall R over all relevant lesions and precision P = TP / (TP + FP) above the threshold "
     "(scikit-learn's average_precision_score, recall scaled by detected / all lesions)."},
    {"bootstrap",
     "95% confidence interval: percentile bootstrap over test patients and seeds. Each resample "
     "draws the test patients (the labels' patient column, or each series when absent) with "
     "replacement, as many as there are, then (with two or more seeds) the seeds with "
     "replacement, as many as there are, all with one PCG32 stream seeded by the given seed; "
     "the statistic of the resample is the mean, over the drawn seeds, of the statistic over the "
     "drawn patients (a patient or seed drawn twice counts twice). The interval is the 2.5th to "
     "97.5th percentile (numpy's linear method) of the resamples where it is defined. The same "
     "resamples serve both arms, so the difference mae - scratch is paired."},
    {"seeds",
     "Per label budget, each arm is fitted once per seed (the same training patients, "
     "initialisation and crops in both arms). Per seed, the statistic over the test series; "
     "the point estimate is the mean over seeds, with the sample standard deviation (n - 1). "
     "Curves, operating points and calibration pool the seeds (every test series once per "
     "seed)."},
    {"sets",
     "The split's roles: test patients are never used for any choice and every number of this "
     "report is computed on them alone; dev patients are the only ones early stopping (and any "
     "threshold or recipe choice) may use: the dev operating point's threshold is the highest "
     "whose sensitivity over the dev series (all seeds of the headline budget) reaches the "
     "dev_sensitivity setting, then applied to the test series; training patients are never "
     "predicted."},
    {"shards_sha256",
     "Shard-set hash: SHA-256 of the lines '<sha256 of file>  <name>' (newline-terminated) for "
     "every *.h5 file directly in the shard folder, sorted by name bytewise, i.e. the output of "
     "(cd DIR && LC_ALL=C sha256sum $(LC_ALL=C ls *.h5)) | sha256sum."},
};
const size_t report_n_defs = sizeof report_defs / sizeof report_defs[0];

const char *report_definition(const char *metric) {
    for (size_t i = 0; i < report_n_defs; i++)
        if (strcmp(report_defs[i].metric, metric) == 0) return report_defs[i].text;
    return "";
}

/* ---- report.json ----------------------------------------------------------------------- */

static void jstr(report_text *t, const char *s) {
    report_text_put(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            report_text_printf(t, "\\%c", *p);
        else if (*p < 0x20)
            report_text_printf(t, "\\u%04x", *p);
        else
            report_text_printf(t, "%c", *p);
    }
    report_text_put(t, "\"");
}

static void jnum(report_text *t, double v) { report_text_num(t, v, 1); }

/* n rows of ncols numbers, column c read from cols[c] with a byte stride (arrays of structs
 * such as roc_point and froc_point, or parallel arrays): [[a,b,c],[a,b,c],...]. */
static void jrows(report_text *t, const double *const *cols, int ncols, size_t n, size_t stride) {
    report_text_put(t, "[");
    for (size_t i = 0; i < n; i++) {
        report_text_put(t, i ? ",[" : "[");
        for (int c = 0; c < ncols; c++) {
            if (c) report_text_put(t, ",");
            jnum(t, *(const double *)((const char *)cols[c] + i * stride));
        }
        report_text_put(t, "]");
    }
    report_text_put(t, "]");
}

static void jci(report_text *t, const report_ci *ci) {
    report_text_put(t, "{\"value\":");
    jnum(t, ci->value);
    report_text_put(t, ",\"ci95\":[");
    jnum(t, ci->lo);
    report_text_put(t, ",");
    jnum(t, ci->hi);
    report_text_printf(t, "],\"n_resamples_defined\":%zu}", ci->n_valid);
}

/* The paired difference mae - scratch: {"auc": CI, "cpm": CI}, or null. */
static void jdelta(report_text *t, int has, const report_ci *auc, const report_ci *cpm) {
    if (!has) {
        report_text_put(t, "null");
        return;
    }
    report_text_put(t, "{\"auc\":");
    jci(t, auc);
    report_text_put(t, ",\"cpm\":");
    jci(t, cpm);
    report_text_put(t, "}");
}

static void json_comparison(report_text *t, const report_results *res) {
    report_text_put(t, "  \"comparison\": {\n");
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        report_text_printf(t, "    \"%s\": ", report_arm_names[a]);
        if (!ar->present)
            report_text_put(t, "null");
        else {
            report_text_put(t, "{\"auc\":");
            jci(t, &ar->auc);
            report_text_put(t, ",\"cpm\":");
            jci(t, &ar->cpm);
            report_text_put(t, "}");
        }
        report_text_put(t, ",\n");
    }
    report_text_put(t, "    \"difference_mae_minus_scratch\": ");
    jdelta(t, res->has_delta, &res->delta_auc, &res->delta_cpm);
    report_text_put(t, "\n  },\n");
}

/* {PREFIX"threshold", "tp", "fn", "tn", "fp", "sensitivity", "specificity"} */
static void json_op(report_text *t, const roc_operating_point *op, const char *prefix) {
    report_text_printf(t, "{%s\"threshold\":", prefix);
    jnum(t, op->threshold);
    report_text_printf(t,
                       ",\"tp\":%.0f,\"fn\":%.0f,\"tn\":%.0f,\"fp\":%.0f,\"sensitivity\":", op->tp,
                       op->fn, op->tn, op->fp);
    jnum(t, op->sensitivity);
    report_text_put(t, ",\"specificity\":");
    jnum(t, op->specificity);
    report_text_put(t, "}");
}

static void json_volume(report_text *t, const report_arm_result *ar, const report_options *o) {
    report_text_put(t, "      \"volume\": {\n        \"auc\": ");
    jci(t, &ar->auc);
    report_text_put(t, ",\n        \"roc\": ");
    if (ar->n_roc) {
        const double *cols[3] = {&ar->roc[0].threshold, &ar->roc[0].fpr, &ar->roc[0].tpr};
        jrows(t, cols, 3, ar->n_roc, sizeof(roc_point));
    } else
        report_text_put(t, "[]");
    report_text_put(t, ",\n        \"operating_points\": [");
    for (int i = 0; i < o->n_ops; i++) {
        report_text_put(t, i ? "," : "");
        json_op(t, &ar->ops[i], "");
    }
    report_text_put(t, "],\n        \"dev_operating_point\": ");
    if (!ar->has_dev_op)
        report_text_put(t, "null");
    else {
        report_text text = {0};
        report_text_put(&text, "\"dev_sensitivity\":");
        report_text_num(&text, o->dev_sensitivity, 1);
        report_text_put(&text, ",");
        json_op(t, &ar->dev_op, text.p ? text.p : "");
        if (text.oom) t->oom = 1;
        report_text_free(&text);
    }
    report_text_put(t, ",\n        \"calibration\": {\"brier\":");
    jnum(t, ar->calib.brier);
    report_text_put(t, ",\"ece\":");
    jnum(t, ar->calib.ece);
    report_text_put(t, ",\"bins\":[");
    for (int b = 0; b < METRICS_RELIABILITY_BINS; b++) {
        const metrics_bin *bin = &ar->calib.bins[b];
        report_text_put(t, b ? ",{\"lo\":" : "{\"lo\":");
        jnum(t, bin->lo);
        report_text_put(t, ",\"hi\":");
        jnum(t, bin->hi);
        report_text_printf(t, ",\"count\":%zu,\"mean_score\":", bin->count);
        jnum(t, bin->mean_score);
        report_text_put(t, ",\"fraction_positive\":");
        jnum(t, bin->frac_pos);
        report_text_put(t, "}");
    }
    report_text_put(t, "]}\n      },\n");
}

static void json_lesion(report_text *t, const report_arm_result *ar) {
    report_text_put(t, "      \"lesion\": ");
    if (!ar->has_froc) {
        report_text_put(t, "null,\n");
        return;
    }
    const froc_match *m = &ar->match;
    report_text_printf(t,
                       "{\n        \"n_lesions\": %zu, \"n_detected\": %zu, \"n_false_positives\": "
                       "%zu, \"n_duplicate_hits\": %zu, \"n_irrelevant_hits\": %zu,\n"
                       "        \"cpm\": ",
                       m->n_lesions, m->n_detected, m->n_fp, m->n_duplicate_hits,
                       m->n_irrelevant_hits);
    jci(t, &ar->cpm);
    report_text_put(t, ",\n        \"cpm_sensitivities\": [");
    for (int i = 0; i < FROC_N_CPM; i++) {
        report_text_put(t, i ? ",{\"fps\":" : "{\"fps\":");
        jnum(t, froc_cpm_fps[i]);
        report_text_put(t, ",\"sensitivity\":");
        jnum(t, ar->cpm_sens[i]);
        report_text_put(t, "}");
    }
    report_text_put(t, "],\n        \"ap\": ");
    jci(t, &ar->ap);
    report_text_put(t, ",\n        \"froc\": ");
    const double *cols[3] = {&ar->froc[0].threshold, &ar->froc[0].fps, &ar->froc[0].sensitivity};
    jrows(t, cols, 3, ar->n_froc, sizeof(froc_point)); /* n_froc >= 1: the (0, 0) start */
    report_text_put(t, "\n      },\n");
}

static void json_folds(report_text *t, const report_arm_result *ar) {
    report_text_put(t, "      \"seeds\": {\"per_seed\": [");
    for (size_t f = 0; f < ar->n_folds; f++) {
        const report_fold *fo = &ar->folds[f];
        report_text_printf(t,
                           "%s\n        {\"seed\":%d,\"n_series\":%zu,\"n_positive\":%zu,"
                           "\"n_lesions\":%zu,\"auc\":",
                           f ? "," : "", fo->fold, fo->n_series, fo->n_pos, fo->n_lesions);
        jnum(t, fo->auc);
        report_text_put(t, ",\"cpm\":");
        jnum(t, fo->cpm);
        report_text_put(t, ",\"ap\":");
        jnum(t, fo->ap);
        report_text_put(t, "}");
    }
    report_text_put(t, "],\n        \"auc_mean\": ");
    jnum(t, ar->fold_auc_mean);
    report_text_put(t, ", \"auc_sd\": ");
    jnum(t, ar->fold_auc_sd);
    report_text_put(t, ", \"cpm_mean\": ");
    jnum(t, ar->fold_cpm_mean);
    report_text_put(t, ", \"cpm_sd\": ");
    jnum(t, ar->fold_cpm_sd);
    report_text_put(t, "}\n");
}

static void json_curves(report_text *t, const report_input *in) {
    report_text_put(t, "  \"training_curves\": [");
    for (size_t i = 0; i < in->n_curves; i++) {
        const report_curve *c = &in->curves[i];
        report_text_put(t, i ? ",\n    {\"name\":" : "\n    {\"name\":");
        jstr(t, c->name);
        report_text_printf(t, ",\"kind\":\"%s\",\"sha256\":\"%s\",\"points\":",
                           c->kind == REPORT_PRETRAIN ? "pretraining" : "finetuning", c->sha256);
        const double *cols[2] = {c->step, c->loss};
        jrows(t, cols, 2, c->n, sizeof(double));
        report_text_put(t, "}");
    }
    report_text_put(t, "\n  ],\n  \"previews\": [");
    for (size_t i = 0; i < in->n_previews; i++) {
        const report_preview *p = &in->previews[i];
        report_text_put(t, i ? ",\n    {\"name\":" : "\n    {\"name\":");
        jstr(t, p->name);
        report_text_printf(t, ",\"sha256\":\"%s\",\"width\":%u,\"height\":%u,\"bytes\":%zu}",
                           p->sha256, p->width, p->height, p->size);
    }
    report_text_put(t, "\n  ],\n  \"gallery\": [");
    for (size_t i = 0; i < in->n_gallery; i++) {
        const report_preview *p = &in->gallery[i];
        report_text_put(t, i ? ",\n    {\"caption\":" : "\n    {\"caption\":");
        jstr(t, p->name);
        report_text_printf(t, ",\"width\":%u,\"height\":%u,\"bytes\":%zu}", p->width, p->height,
                           p->size);
    }
    report_text_put(t, "\n  ],\n");
}

static void json_cases(report_text *t, const report_input *in) {
    report_text_put(t, "  \"cases\": [");
    int first = 1;
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm *ar = &in->arms[a];
        if (!ar->present) continue;
        for (size_t i = 0; i < in->n_series; i++) {
            const report_series *s = &in->series[i];
            report_text_printf(t,
                               "%s\n    {\"series\":\"%s\",\"patient\":\"%s\",\"seed\":%d,"
                               "\"arm\":\"%s\",\"label\":%d,\"score\":",
                               first ? "" : ",", s->key, s->patient, ar->fold[i],
                               report_arm_names[a], s->label);
            jnum(t, ar->score[i]);
            report_text_put(t, "}");
            first = 0;
        }
    }
    report_text_put(t, "\n  ],\n");
}

/* SHA-256 of the lines "arm,series,seed\n" in report order: one value names the fits read. */
static void splits_hash(const report_input *in, char hex[REPORT_SHA256_HEX]) {
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        if (!in->arms[a].present) continue;
        for (size_t i = 0; i < in->n_series; i++) {
            char line[256];
            int n = snprintf(line, sizeof line, "%s,%s,%d\n", report_arm_names[a],
                             in->series[i].key, in->arms[a].fold[i]);
            crypto_hash_sha256_update(&st, (const unsigned char *)line, (size_t)n);
        }
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, REPORT_SHA256_HEX, h, sizeof h);
}

static void json_provenance(report_text *t, const report_input *in, const report_results *res,
                            const report_provenance *p) {
    report_text_put(t, "  \"provenance\": {\n    \"vesalius_version\": ");
    jstr(t, p->vesalius_version);
    report_text_put(t, ",\n    \"git_revision\": ");
    jstr(t, p->git_revision);
    report_text_put(t, ",\n    \"libraries\": [");
    for (int i = 0; i < p->n_libs; i++) {
        report_text_put(t, i ? ",{\"name\":" : "{\"name\":");
        jstr(t, p->libs[i].name);
        report_text_put(t, ",\"version\":");
        jstr(t, p->libs[i].version);
        report_text_put(t, "}");
    }
    report_text_put(t, "],\n    \"cpu_model\": ");
    jstr(t, p->cpu_model ? p->cpu_model : "unknown");
    report_text_printf(t, ",\n    \"threads\": %d, \"blas_threads\": %d,\n", p->threads,
                       p->blas_threads);
    report_text_printf(t, "    \"seeds\": {\"bootstrap\": %" PRIu64, res->opt.seed);
    for (int i = 0; i < p->n_seeds; i++)
        report_text_printf(t, ", \"%s\": %" PRIu64, p->seeds[i].name, p->seeds[i].value);
    report_text_put(t, "},\n");
    report_text_put(t, "    \"inputs\": [");
    const char *study = NULL;
    for (size_t i = 0; i < in->n_files; i++) {
        report_text_put(t, i ? ",\n      {\"role\":" : "\n      {\"role\":");
        jstr(t, in->files[i].role);
        report_text_put(t, ",\"name\":");
        jstr(t, in->files[i].name);
        report_text_printf(t, ",\"sha256\":\"%s\"}", in->files[i].sha256);
        if (strcmp(in->files[i].role, "study") == 0) study = in->files[i].sha256;
    }
    report_text_put(t, "\n    ],\n    \"study_sha256\": ");
    if (study)
        report_text_printf(t, "\"%s\"", study);
    else
        report_text_put(t, "null");
    report_text_put(t, ",\n    \"labels_sha256\": ");
    for (size_t i = 0; i < in->n_files; i++)
        if (strcmp(in->files[i].role, "labels") == 0) {
            report_text_printf(t, "\"%s\"", in->files[i].sha256);
            break;
        }
    report_text_put(t, ",\n    \"shards\": ");
    if (p->have_shards)
        report_text_printf(t, "{\"sha256\":\"%s\",\"n_files\":%zu}", p->shards_sha256, p->n_shards);
    else
        report_text_put(t, "null");
    char sh[REPORT_SHA256_HEX];
    splits_hash(&res->view, sh);
    report_text_printf(t, ",\n    \"splits\": {\"assignment_sha256\":\"%s\",\"seeds\":[", sh);
    int first = 1;
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        for (size_t f = 0; ar->present && f < ar->n_folds; f++) {
            report_text_printf(t, "%s{\"arm\":\"%s\",\"seed\":%d,\"n_series\":%zu}",
                               first ? "" : ",", report_arm_names[a], ar->folds[f].fold,
                               ar->folds[f].n_series);
            first = 0;
        }
    }
    report_text_put(t, "]},\n    \"stage_settings\": {");
    for (int i = 0; i < p->n_stage_settings; i++) {
        const report_stage_settings *ss = &p->stage_settings[i];
        report_text_put(t, i ? ",\n      " : "\n      ");
        jstr(t, ss->stage);
        report_text_put(t, ": {");
        for (int k = 0; k < ss->n; k++) {
            report_text_put(t, k ? ", " : "");
            jstr(t, ss->key[k]);
            report_text_put(t, ": ");
            jstr(t, ss->value[k]);
        }
        report_text_put(t, "}");
    }
    report_text_put(t, p->n_stage_settings ? "\n    }\n  },\n" : "}\n  },\n");
}

static void json_budget_arm(report_text *t, const report_budget_arm *ba, int n_seeds) {
    if (!ba->present) {
        report_text_put(t, "null");
        return;
    }
    const char *names[2] = {"auc", "cpm"};
    const report_ci *ci[2] = {&ba->auc, &ba->cpm};
    const double *per[2] = {ba->auc_seed, ba->cpm_seed}, sd[2] = {ba->auc_sd, ba->cpm_sd};
    report_text_put(t, "{");
    for (int m = 0; m < 2; m++) {
        report_text_printf(t, "%s\"%s\":{\"mean\":", m ? "," : "", names[m]);
        jnum(t, ci[m]->value);
        report_text_put(t, ",\"sd\":");
        jnum(t, sd[m]);
        report_text_put(t, ",\"ci95\":[");
        jnum(t, ci[m]->lo);
        report_text_put(t, ",");
        jnum(t, ci[m]->hi);
        report_text_printf(t, "],\"n_resamples_defined\":%zu,\"per_seed\":[", ci[m]->n_valid);
        for (int k = 0; k < n_seeds; k++) {
            if (k) report_text_put(t, ",");
            jnum(t, per[m][k]);
        }
        report_text_put(t, "]}");
    }
    report_text_put(t, "}");
}

/* The protocol's table: per label budget, each arm's mean, sd, per-seed values and interval,
 * and the paired difference. */
static void json_budgets(report_text *t, const report_results *res) {
    report_text_put(t, "  \"seeds\": [");
    for (int k = 0; k < res->n_seeds; k++)
        report_text_printf(t, "%s%d", k ? "," : "", res->seeds[k]);
    report_text_put(t, "],\n  \"budgets\": [");
    for (size_t b = 0; b < res->n_budgets; b++) {
        const report_budget_row *row = &res->budgets[b];
        report_text_printf(t, "%s\n    {\"budget\": %d, \"mae\": ", b ? "," : "", row->budget);
        json_budget_arm(t, &row->arm[REPORT_ARM_MAE], res->n_seeds);
        report_text_put(t, ",\n     \"scratch\": ");
        json_budget_arm(t, &row->arm[REPORT_ARM_SCRATCH], res->n_seeds);
        report_text_put(t, ",\n     \"difference_mae_minus_scratch\": ");
        jdelta(t, row->has_delta, &row->delta_auc, &row->delta_cpm);
        report_text_put(t, "}");
    }
    report_text_put(t, "\n  ],\n");
}

void report_json(report_text *t, const report_input *raw, const report_results *res,
                 const report_provenance *prov, const char *start, const char *end) {
    const report_input *in = &res->view; /* the headline budget's test series x seeds */
    size_t n_seeds = res->n_seeds ? (size_t)res->n_seeds : 1;
    size_t n_pos = 0, n_rel = 0;
    for (size_t i = 0; i < in->n_series; i++)
        n_pos += in->series[i].label;
    for (size_t i = 0; i < in->n_lesions; i++)
        n_rel += !in->lesions[i].irrelevant;
    report_text_printf(t,
                       "{\n  \"schema\": \"vesalius.validation.report\",\n"
                       "  \"schema_version\": %d,\n",
                       REPORT_SCHEMA_VERSION);
    report_text_printf(t, "  \"headline_budget\": %d,\n", res->budget);
    json_comparison(t, res);
    json_budgets(t, res);
    report_text_printf(
        t,
        "  \"settings\": {\"bootstrap_resamples\": %u, \"bootstrap_seed\": %" PRIu64
        ", \"bootstrap_unit\": \"test patient and seed\", \"ci_method\": \"percentile\", "
        "\"reliability_bins\": %d, \"dev_sensitivity\": ",
        res->opt.n_bootstrap, res->opt.seed, METRICS_RELIABILITY_BINS);
    jnum(t, res->opt.dev_sensitivity);
    report_text_put(t, ", \"operating_points\": [");
    for (int i = 0; i < res->opt.n_ops; i++) {
        if (i) report_text_put(t, ",");
        jnum(t, res->opt.ops[i]);
    }
    report_text_put(t, "], \"cpm_fps\": [");
    for (int i = 0; i < FROC_N_CPM; i++) {
        if (i) report_text_put(t, ",");
        jnum(t, froc_cpm_fps[i]);
    }
    report_text_printf(t,
                       "]},\n  \"data\": {\"set\": \"test\", \"n_series\": %zu, \"n_patients\": "
                       "%u, \"n_positive\": %zu, \"n_negative\": %zu, \"n_lesions\": %zu, "
                       "\"n_irrelevant_lesions\": %zu, \"n_seeds\": %zu,\n    \"dev\": "
                       "{\"n_series\": %zu, \"n_patients\": %zu, \"use\": \"early stopping and "
                       "the dev operating point's threshold; no number of this report is "
                       "computed on it\"}},\n  \"arms\": {\n",
                       in->n_series / n_seeds, in->n_clusters, n_pos / n_seeds,
                       (in->n_series - n_pos) / n_seeds, n_rel / n_seeds,
                       (in->n_lesions - n_rel) / n_seeds, n_seeds, res->n_dev_series,
                       res->n_dev_patients);
    int first = 1;
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        if (!ar->present) continue;
        report_text_printf(t, "%s    \"%s\": {\n", first ? "" : ",\n", report_arm_names[a]);
        json_volume(t, ar, &res->opt);
        json_lesion(t, ar);
        json_folds(t, ar);
        report_text_put(t, "    }");
        first = 0;
    }
    report_text_put(t, "\n  },\n");
    json_curves(t, raw);
    json_cases(t, in);
    report_text_put(t, "  \"definitions\": {");
    for (size_t i = 0; i < report_n_defs; i++) {
        report_text_printf(t, "%s\n    \"%s\": ", i ? "," : "", report_defs[i].metric);
        jstr(t, report_defs[i].text);
    }
    report_text_put(t, "\n  },\n");
    json_provenance(t, raw, res, prov);
    /* The only line that differs between reruns: keep it last and on its own line. */
    report_text_put(t, "  \"run_time\": {\"start\": ");
    jstr(t, start);
    report_text_put(t, ", \"end\": ");
    jstr(t, end);
    report_text_put(t, "}\n}\n");
}

vs_status report_write(const char *dir, const report_input *in, const report_results *res,
                       const report_provenance *prov, const char *start, const char *end,
                       vs_error *err) {
    if (sodium_init() < 0) return VS_FAIL(err, VS_ERR_LIBRARY, "libsodium failed to initialise");
    report_text j = {0}, m = {0}, h = {0};
    report_json(&j, in, res, prov, start, end);
    report_md(&m, in, res, prov, start, end);
    report_html(&h, in, res, prov, start, end);
    /* report.json last: its presence means the other two are complete. */
    vs_status s = report_text_save(&m, dir, "report.md", err);
    if (s == VS_OK) s = report_text_save(&h, dir, "report.html", err);
    if (s == VS_OK) s = report_text_save(&j, dir, "report.json", err);
    report_text_free(&j);
    report_text_free(&m);
    report_text_free(&h);
    return s;
}
