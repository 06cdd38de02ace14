/* report_compute.c — every number of the report: pooled point estimates, paired bootstrap
 * CIs over patients, and per-fold results with their mean and standard deviation. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The bootstrap draws from its own stream so that adding another random use elsewhere never
 * shifts it. */
#define BOOTSTRAP_STREAM 0x626f6f74u /* "boot" */

/* Statistics of one arm under series weights w (NULL: plain analysis); NaN when undefined. */
typedef struct arm_stats {
    double auc, cpm, ap;
} arm_stats;

typedef struct arm_prep {
    const double *score;
    int *label;      /* (n_series) */
    uint32_t *order; /* (n_series) descending score */
    froc_match match;
    int has_froc;
} arm_prep;

static arm_stats stats_under(const report_input *in, const arm_prep *p, const double *w) {
    arm_stats st = {NAN, NAN, NAN};
    vs_error e;
    double v;
    if (roc_auc_ordered(p->score, p->label, w, p->order, in->n_series, &v, &e) == VS_OK) st.auc = v;
    if (p->has_froc && froc_cpm(&p->match, w, &v, NULL, &e) == VS_OK) st.cpm = v;
    if (p->has_froc && froc_ap(&p->match, w, &v, &e) == VS_OK) st.ap = v;
    return st;
}

static vs_status prepare_arm(const report_input *in, int a, arm_prep *p, vs_error *err) {
    const report_arm *ar = &in->arms[a];
    memset(p, 0, sizeof *p);
    p->score = ar->score;
    p->label = malloc(in->n_series * sizeof *p->label);
    if (!p->label) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < in->n_series; i++)
        p->label[i] = in->series[i].label;
    vs_status s = roc_order(ar->score, in->n_series, &p->order, err);
    if (s != VS_OK) return s;
    s = froc_match_build(in->lesions, in->n_lesions, ar->cands, ar->n_cands, in->n_series,
                         &p->match, err);
    p->has_froc = s == VS_OK && p->match.n_lesions > 0;
    return s;
}

static void free_prep(arm_prep *p) {
    free(p->label);
    free(p->order);
    froc_match_free(&p->match);
}

/* The 2.5% and 97.5% percentiles of the finite values among v[0..n). */
static void ci_from(double *v, size_t n, report_ci *ci) {
    size_t m = metrics_drop_nan(v, n);
    ci->n_valid = m;
    ci->lo = metrics_quantile(v, m, 0.025);
    ci->hi = metrics_quantile(v, m, 0.975);
}

/* Resample patients n_bootstrap times; the same draws serve both arms (paired), so the CI of
 * the difference accounts for their correlation. */
static vs_status bootstrap(const report_input *in, const arm_prep *prep, report_results *res,
                           vs_error *err) {
    uint32_t B = res->opt.n_bootstrap;
    size_t n_stats = REPORT_N_ARMS * 3 + 2;
    double *vals = malloc((size_t)B * n_stats * sizeof *vals);
    double *w = malloc(in->n_series * sizeof *w);
    uint32_t *count = malloc(in->n_clusters * sizeof *count);
    if (!vals || !w || !count) {
        free(vals);
        free(w);
        free(count);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %u bootstrap resamples", B);
    }
    rng r;
    rng_seed(&r, res->opt.seed, BOOTSTRAP_STREAM);
    for (uint32_t b = 0; b < B; b++) {
        metrics_bootstrap_draw(&r, in->n_clusters, count);
        for (size_t i = 0; i < in->n_series; i++)
            w[i] = count[in->series[i].cluster];
        arm_stats st[REPORT_N_ARMS];
        for (int a = 0; a < REPORT_N_ARMS; a++) {
            st[a] = (arm_stats){NAN, NAN, NAN};
            if (res->arms[a].present) st[a] = stats_under(in, &prep[a], w);
            vals[(size_t)(a * 3 + 0) * B + b] = st[a].auc;
            vals[(size_t)(a * 3 + 1) * B + b] = st[a].cpm;
            vals[(size_t)(a * 3 + 2) * B + b] = st[a].ap;
        }
        vals[(size_t)(REPORT_N_ARMS * 3) * B + b] = st[0].auc - st[1].auc;
        vals[(size_t)(REPORT_N_ARMS * 3 + 1) * B + b] = st[0].cpm - st[1].cpm;
    }
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        report_arm_result *ar = &res->arms[a];
        ci_from(vals + (size_t)(a * 3 + 0) * B, B, &ar->auc);
        ci_from(vals + (size_t)(a * 3 + 1) * B, B, &ar->cpm);
        ci_from(vals + (size_t)(a * 3 + 2) * B, B, &ar->ap);
    }
    ci_from(vals + (size_t)(REPORT_N_ARMS * 3) * B, B, &res->delta_auc);
    ci_from(vals + (size_t)(REPORT_N_ARMS * 3 + 1) * B, B, &res->delta_cpm);
    free(vals);
    free(w);
    free(count);
    return VS_OK;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Per-fold point estimates (series outside the fold get weight 0), then mean and sd. */
static vs_status folds(const report_input *in, int a, const arm_prep *p, report_arm_result *ar,
                       vs_error *err) {
    size_t n = in->n_series;
    int *ids = malloc(n * sizeof *ids);
    double *w = malloc(n * sizeof *w);
    if (!ids || !w) {
        free(ids);
        free(w);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    memcpy(ids, in->arms[a].fold, n * sizeof *ids);
    qsort(ids, n, sizeof *ids, cmp_int);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || ids[k - 1] != ids[i]) ids[k++] = ids[i];
    ar->folds = calloc(k, sizeof *ar->folds);
    double *aucs = malloc(k * sizeof *aucs), *cpms = malloc(k * sizeof *cpms);
    vs_status s = VS_OK;
    if (!ar->folds || !aucs || !cpms) {
        s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        goto done;
    }
    ar->n_folds = k;
    for (size_t f = 0; f < k; f++) {
        report_fold *fo = &ar->folds[f];
        fo->fold = ids[f];
        for (size_t i = 0; i < n; i++) {
            int in_fold = in->arms[a].fold[i] == ids[f];
            w[i] = in_fold ? 1.0 : 0.0;
            fo->n_series += in_fold;
            fo->n_pos += in_fold && in->series[i].label;
        }
        for (size_t l = 0; l < in->n_lesions; l++)
            fo->n_lesions += !in->lesions[l].irrelevant && w[in->lesions[l].scan] > 0;
        arm_stats st = stats_under(in, p, w);
        fo->auc = st.auc;
        fo->cpm = st.cpm;
        fo->ap = st.ap;
        aucs[f] = st.auc;
        cpms[f] = st.cpm;
    }
    metrics_mean_sd(aucs, k, &ar->fold_auc_mean, &ar->fold_auc_sd);
    metrics_mean_sd(cpms, k, &ar->fold_cpm_mean, &ar->fold_cpm_sd);
done:
    free(ids);
    free(w);
    free(aucs);
    free(cpms);
    return s;
}

/* Pooled point estimates and curves of one arm. Fails when AUC is undefined (one class). */
static vs_status pooled(const report_input *in, int a, arm_prep *p, const report_options *opt,
                        report_arm_result *ar, vs_error *err) {
    const double *score = in->arms[a].score;
    vs_status s = roc_curve(score, p->label, in->n_series, &ar->roc, &ar->n_roc, err);
    if (s == VS_OK)
        s = roc_auc_ordered(score, p->label, NULL, p->order, in->n_series, &ar->auc.value, err);
    for (int i = 0; s == VS_OK && i < opt->n_ops; i++)
        s = roc_operating(score, p->label, in->n_series, opt->ops[i], &ar->ops[i], err);
    if (s == VS_OK) s = metrics_calibrate(score, p->label, in->n_series, &ar->calib, err);
    if (s != VS_OK) return vs_error_prefix(err, "arm %s", report_arm_names[a]);
    ar->has_froc = p->has_froc;
    ar->cpm.value = ar->ap.value = NAN;
    if (p->has_froc) {
        s = froc_curve(&p->match, NULL, &ar->froc, &ar->n_froc, err);
        if (s == VS_OK) s = froc_cpm(&p->match, NULL, &ar->cpm.value, ar->cpm_sens, err);
        if (s == VS_OK) s = froc_ap(&p->match, NULL, &ar->ap.value, err);
    }
    ar->match = p->match;
    ar->match.events = NULL; /* the counts are kept; the events stay with the prep */
    return s;
}

vs_status report_compute(const report_input *in, const report_options *opt, report_results *res,
                         vs_error *err) {
    memset(res, 0, sizeof *res);
    res->opt = *opt;
    arm_prep prep[REPORT_N_ARMS];
    memset(prep, 0, sizeof prep);
    vs_status s = VS_OK;
    for (int a = 0; a < REPORT_N_ARMS && s == VS_OK; a++) {
        report_arm_result *ar = &res->arms[a];
        ar->auc.lo = ar->auc.hi = ar->cpm.lo = ar->cpm.hi = ar->ap.lo = ar->ap.hi = NAN;
        if (!in->arms[a].present) continue;
        ar->present = 1;
        s = prepare_arm(in, a, &prep[a], err);
        if (s == VS_OK) s = pooled(in, a, &prep[a], opt, ar, err);
        if (s == VS_OK) s = folds(in, a, &prep[a], ar, err);
    }
    res->has_delta = res->arms[0].present && res->arms[1].present;
    res->delta_auc.value = res->arms[0].auc.value - res->arms[1].auc.value;
    res->delta_cpm.value = res->arms[0].cpm.value - res->arms[1].cpm.value;
    res->delta_auc.lo = res->delta_auc.hi = res->delta_cpm.lo = res->delta_cpm.hi = NAN;
    if (!res->has_delta) res->delta_auc.value = res->delta_cpm.value = NAN;
    if (s == VS_OK && opt->n_bootstrap > 0) s = bootstrap(in, prep, res, err);
    for (int a = 0; a < REPORT_N_ARMS; a++)
        free_prep(&prep[a]);
    if (s != VS_OK) report_results_free(res);
    return s;
}

void report_results_free(report_results *res) {
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        free(res->arms[a].roc);
        free(res->arms[a].froc);
        free(res->arms[a].folds);
    }
    memset(res, 0, sizeof *res);
}
