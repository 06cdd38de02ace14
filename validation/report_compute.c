/* report_compute.c — every number of the report, per label budget: the view of the test
 * series x seeds, per-seed statistics with their mean and standard deviation, pooled curves,
 * and paired bootstrap intervals over test patients and seeds (report.h). */
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
    const int *seed_of; /* (n_series) the seed of each view row */
    int *label;         /* (n_series) */
    uint32_t *order;    /* (n_series) descending score */
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
    p->seed_of = ar->fold;
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

/* Per-seed statistics under patient weights wp (NULL: all 1) and seed multiplicities ms: the
 * weighted mean over seeds of each statistic (NaN seeds left out). */
static arm_stats seed_mean_under(const report_input *v, const arm_prep *p, const double *wp,
                                 const uint32_t *ms, const int *seeds, int n_seeds, double *w) {
    arm_stats sum = {0, 0, 0};
    double cnt[3] = {0, 0, 0};
    for (int k = 0; k < n_seeds; k++) {
        if (!ms[k]) continue;
        for (size_t i = 0; i < v->n_series; i++)
            w[i] = p->seed_of[i] == seeds[k] ? (wp ? wp[i] : 1.0) : 0.0;
        arm_stats st = stats_under(v, p, w);
        double vals[3] = {st.auc, st.cpm, st.ap};
        double *acc[3] = {&sum.auc, &sum.cpm, &sum.ap};
        for (int j = 0; j < 3; j++)
            if (!isnan(vals[j])) *acc[j] += ms[k] * vals[j], cnt[j] += ms[k];
    }
    sum.auc = cnt[0] ? sum.auc / cnt[0] : NAN;
    sum.cpm = cnt[1] ? sum.cpm / cnt[1] : NAN;
    sum.ap = cnt[2] ? sum.ap / cnt[2] : NAN;
    return sum;
}

/* Resample test patients and seeds n_bootstrap times (each resample: n_clusters patient draws,
 * then, with two or more seeds, n_seeds seed draws, all rng_below from one stream); the
 * statistic of a resample is the mean over the drawn seeds of the per-seed statistic over the
 * drawn patients. The same draws serve both arms (paired), so the CI of the difference
 * accounts for their correlation. */
static vs_status bootstrap(const report_input *in, const arm_prep *prep, const int *seeds,
                           int n_seeds, report_results *res, vs_error *err) {
    uint32_t B = res->opt.n_bootstrap;
    size_t n_stats = REPORT_N_ARMS * 3 + 2;
    double *vals = malloc((size_t)B * n_stats * sizeof *vals);
    double *wp = malloc(in->n_series * sizeof *wp), *w = malloc(in->n_series * sizeof *w);
    uint32_t *count = malloc((in->n_clusters + 1) * sizeof *count);
    uint32_t ms[REPORT_MAX_SEEDS];
    if (!vals || !wp || !w || !count) {
        free(vals), free(wp), free(w), free(count);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %u bootstrap resamples", B);
    }
    rng r;
    rng_seed(&r, res->opt.seed, BOOTSTRAP_STREAM);
    for (uint32_t b = 0; b < B; b++) {
        metrics_bootstrap_draw(&r, in->n_clusters, count);
        for (size_t i = 0; i < in->n_series; i++)
            wp[i] = count[in->series[i].cluster];
        for (int k = 0; k < n_seeds; k++)
            ms[k] = n_seeds > 1 ? 0 : 1;
        for (int k = 0; n_seeds > 1 && k < n_seeds; k++)
            ms[rng_below(&r, (uint32_t)n_seeds)]++;
        arm_stats st[REPORT_N_ARMS];
        for (int a = 0; a < REPORT_N_ARMS; a++) {
            st[a] = (arm_stats){NAN, NAN, NAN};
            if (res->arms[a].present)
                st[a] = seed_mean_under(in, &prep[a], wp, ms, seeds, n_seeds, w);
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
    free(vals), free(wp), free(w), free(count);
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

static int cmp_int2(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The view of one budget: the series of `set` x the budget's seeds (seed-major), each arm's
 * scores and candidates from its run of that seed, lesions repeated per seed, patients
 * renumbered over the set. */
static vs_status build_view(const report_input *in, int budget, int set, const int *seeds,
                            int n_seeds, report_input *v, vs_error *err) {
    report_input_init(v);
    size_t n_sub = 0;
    long *sub_of = malloc((in->n_series + 1) * sizeof *sub_of);
    uint32_t *cl = malloc((in->n_clusters + 1) * sizeof *cl);
    if (!sub_of || !cl) {
        free(sub_of), free(cl);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    for (uint32_t c = 0; c < in->n_clusters; c++)
        cl[c] = UINT32_MAX;
    for (size_t i = 0; i < in->n_series; i++) {
        sub_of[i] = in->series[i].set == set ? (long)n_sub++ : -1;
        if (sub_of[i] >= 0 && cl[in->series[i].cluster] == UINT32_MAX)
            cl[in->series[i].cluster] = v->n_clusters++;
    }
    size_t n = n_sub * (size_t)n_seeds;
    v->n_series = n;
    v->series = calloc(n + 1, sizeof *v->series);
    vs_status st = v->series ? VS_OK : VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == VS_OK && i < in->n_series; i++) {
        if (sub_of[i] < 0) continue;
        for (int k = 0; k < n_seeds; k++) {
            report_series *s = &v->series[(size_t)k * n_sub + (size_t)sub_of[i]];
            *s = in->series[i];
            s->cluster = cl[in->series[i].cluster];
        }
    }
    size_t n_les = 0;
    for (size_t l = 0; l < in->n_lesions; l++)
        n_les += sub_of[in->lesions[l].scan] >= 0;
    if (st == VS_OK && !(v->lesions = calloc(n_les * (size_t)n_seeds + 1, sizeof *v->lesions)))
        st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int k = 0; st == VS_OK && k < n_seeds; k++)
        for (size_t l = 0; l < in->n_lesions; l++) {
            long j = sub_of[in->lesions[l].scan];
            if (j < 0) continue;
            froc_lesion le = in->lesions[l];
            le.scan = (uint32_t)((size_t)k * n_sub + (size_t)j);
            v->lesions[v->n_lesions++] = le;
        }
    for (size_t r = 0; st == VS_OK && r < in->n_runs; r++) {
        const report_run *ru = &in->runs[r];
        int k = 0;
        while (k < n_seeds && seeds[k] != ru->seed)
            k++;
        if (ru->budget != budget || k == n_seeds) continue;
        report_arm *va = &v->arms[ru->arm];
        if (!va->present) {
            va->fold = malloc((n + 1) * sizeof *va->fold);
            va->score = malloc((n + 1) * sizeof *va->score);
            va->has_volume_row = calloc(n + 1, sizeof *va->has_volume_row);
            if (!va->fold || !va->score || !va->has_volume_row) {
                st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
                break;
            }
            va->present = 1;
        }
        for (size_t i = 0; i < in->n_series; i++) {
            if (sub_of[i] < 0) continue;
            size_t row = (size_t)k * n_sub + (size_t)sub_of[i];
            va->fold[row] = ru->seed;
            va->score[row] = ru->a.score[i];
            va->has_volume_row[row] = ru->a.has_volume_row[i];
        }
        for (size_t c = 0; c < ru->a.n_cands; c++) {
            long j = sub_of[ru->a.cands[c].scan];
            if (j < 0) continue;
            froc_candidate fc = ru->a.cands[c];
            fc.scan = (uint32_t)((size_t)k * n_sub + (size_t)j);
            if (va->n_cands == va->cap_cands) {
                size_t cap = va->cap_cands ? 2 * va->cap_cands : 256;
                froc_candidate *p = realloc(va->cands, cap * sizeof *p);
                if (!p) {
                    st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
                    break;
                }
                va->cands = p, va->cap_cands = cap;
            }
            va->cands[va->n_cands++] = fc;
        }
    }
    free(sub_of), free(cl);
    if (st != VS_OK) report_input_free(v);
    return st;
}

/* Every number of one view (one budget): per-seed statistics, their mean as the point
 * estimate, pooled curves, and the bootstrap. */
static vs_status compute_view(const report_input *v, const report_options *opt, const int *seeds,
                              int n_seeds, report_results *res, vs_error *err) {
    memset(res, 0, sizeof *res);
    res->opt = *opt;
    arm_prep prep[REPORT_N_ARMS];
    memset(prep, 0, sizeof prep);
    vs_status s = VS_OK;
    for (int a = 0; a < REPORT_N_ARMS && s == VS_OK; a++) {
        report_arm_result *ar = &res->arms[a];
        ar->auc.lo = ar->auc.hi = ar->cpm.lo = ar->cpm.hi = ar->ap.lo = ar->ap.hi = NAN;
        if (!v->arms[a].present) continue;
        ar->present = 1;
        s = prepare_arm(v, a, &prep[a], err);
        if (s == VS_OK) s = pooled(v, a, &prep[a], opt, ar, err);
        if (s == VS_OK) s = folds(v, a, &prep[a], ar, err);
        if (s == VS_OK) { /* the point estimates: means over seeds */
            uint32_t ms[REPORT_MAX_SEEDS];
            double *w = malloc((v->n_series + 1) * sizeof *w);
            if (!w) {
                s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
                break;
            }
            for (int k = 0; k < n_seeds; k++)
                ms[k] = 1;
            arm_stats m = seed_mean_under(v, &prep[a], NULL, ms, seeds, n_seeds, w);
            free(w);
            ar->auc.value = m.auc, ar->cpm.value = ar->has_froc ? m.cpm : NAN;
            ar->ap.value = ar->has_froc ? m.ap : NAN;
        }
    }
    res->has_delta = res->arms[0].present && res->arms[1].present;
    res->delta_auc.value = res->arms[0].auc.value - res->arms[1].auc.value;
    res->delta_cpm.value = res->arms[0].cpm.value - res->arms[1].cpm.value;
    res->delta_auc.lo = res->delta_auc.hi = res->delta_cpm.lo = res->delta_cpm.hi = NAN;
    if (!res->has_delta) res->delta_auc.value = res->delta_cpm.value = NAN;
    if (s == VS_OK && opt->n_bootstrap > 0) s = bootstrap(v, prep, seeds, n_seeds, res, err);
    for (int a = 0; a < REPORT_N_ARMS; a++)
        free_prep(&prep[a]);
    return s;
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* The operating point chosen on dev: per arm, the highest threshold whose sensitivity over the
 * dev rows (series x seeds) reaches opt->dev_sensitivity, i.e. the ceil(target x positives)-th
 * highest positive score; then sensitivity and specificity at it on the test rows. */
static vs_status dev_operating_points(const report_input *dev, const report_input *test,
                                      const report_options *opt, report_results *res,
                                      vs_error *err) {
    int *label = malloc((test->n_series + 1) * sizeof *label);
    double *pos = malloc((dev->n_series + 1) * sizeof *pos);
    vs_status s = label && pos ? VS_OK : VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; s == VS_OK && i < test->n_series; i++)
        label[i] = test->series[i].label;
    for (int a = 0; s == VS_OK && a < REPORT_N_ARMS; a++) {
        report_arm_result *ar = &res->arms[a];
        if (!ar->present || !dev->arms[a].present) continue;
        size_t np = 0, nn = 0;
        for (size_t i = 0; i < dev->n_series; i++) {
            if (dev->series[i].label)
                pos[np++] = dev->arms[a].score[i];
            else
                nn++;
        }
        if (!np || !nn) continue;
        qsort(pos, np, sizeof *pos, cmp_desc);
        size_t k = (size_t)ceil(opt->dev_sensitivity * (double)np - 1e-9);
        k = k < 1 ? 1 : k > np ? np : k;
        s = roc_operating(test->arms[a].score, label, test->n_series, pos[k - 1], &ar->dev_op, err);
        ar->has_dev_op = s == VS_OK;
    }
    free(label), free(pos);
    return s;
}

static void budget_row(const report_results *r, int budget, report_budget_row *row) {
    memset(row, 0, sizeof *row);
    row->budget = budget;
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &r->arms[a];
        report_budget_arm *ba = &row->arm[a];
        if (!(ba->present = ar->present)) continue;
        ba->auc = ar->auc, ba->cpm = ar->cpm;
        ba->auc_sd = ar->fold_auc_sd, ba->cpm_sd = ar->fold_cpm_sd;
        for (size_t f = 0; f < ar->n_folds && f < REPORT_MAX_SEEDS; f++)
            ba->auc_seed[f] = ar->folds[f].auc, ba->cpm_seed[f] = ar->folds[f].cpm;
    }
    row->has_delta = r->has_delta;
    row->delta_auc = r->delta_auc, row->delta_cpm = r->delta_cpm;
}

vs_status report_compute(const report_input *in, const report_options *opt, report_results *res,
                         vs_error *err) {
    memset(res, 0, sizeof *res);
    res->opt = *opt;
    int budgets[REPORT_MAX_BUDGETS], nb = 0;
    for (size_t r = 0; r < in->n_runs; r++) {
        int b = in->runs[r].budget, k = 0;
        while (k < nb && budgets[k] != b)
            k++;
        if (k == nb) {
            if (nb == REPORT_MAX_BUDGETS)
                return VS_FAIL(err, VS_ERR_FORMAT, "more than %d label budgets",
                               REPORT_MAX_BUDGETS);
            budgets[nb++] = b;
        }
    }
    qsort(budgets, (size_t)nb, sizeof *budgets, cmp_int2);
    res->budgets = calloc((size_t)nb + 1, sizeof *res->budgets);
    if (!res->budgets) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    res->n_budgets = (size_t)nb;
    size_t n_pat[2] = {0, 0}, n_dev_series = 0;
    uint8_t *seen = calloc(in->n_clusters + 1, 1);
    if (!seen) {
        free(res->budgets);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    for (int set = 0; set < 2; set++) {
        memset(seen, 0, in->n_clusters + 1);
        for (size_t i = 0; i < in->n_series; i++)
            if (in->series[i].set == set && !seen[in->series[i].cluster]++) n_pat[set]++;
    }
    free(seen);
    for (size_t i = 0; i < in->n_series; i++)
        n_dev_series += in->series[i].set == REPORT_SET_DEV;
    vs_status s = VS_OK;
    for (int bi = 0; bi < nb && s == VS_OK; bi++) {
        int seeds[REPORT_MAX_SEEDS], ns = 0;
        for (size_t r = 0; r < in->n_runs; r++) {
            if (in->runs[r].budget != budgets[bi]) continue;
            int k = 0;
            while (k < ns && seeds[k] != in->runs[r].seed)
                k++;
            if (k < ns) continue;
            if (ns == REPORT_MAX_SEEDS) {
                s = VS_FAIL(err, VS_ERR_FORMAT, "more than %d seeds at budget %d", REPORT_MAX_SEEDS,
                            budgets[bi]);
                break;
            }
            seeds[ns++] = in->runs[r].seed;
        }
        if (s != VS_OK) break;
        qsort(seeds, (size_t)ns, sizeof *seeds, cmp_int2);
        report_input v;
        report_results r;
        memset(&r, 0, sizeof r);
        s = build_view(in, budgets[bi], REPORT_SET_TEST, seeds, ns, &v, err);
        if (s == VS_OK) {
            s = compute_view(&v, opt, seeds, ns, &r, err);
            if (s != VS_OK) {
                vs_error_prefix(err, "budget %d", budgets[bi]);
                report_results_free(&r);
                report_input_free(&v);
                break;
            }
        }
        if (s == VS_OK) budget_row(&r, budgets[bi], &res->budgets[bi]);
        if (s == VS_OK && bi == nb - 1 && n_dev_series) { /* the headline's dev-chosen threshold */
            report_input dv;
            s = build_view(in, budgets[bi], REPORT_SET_DEV, seeds, ns, &dv, err);
            if (s == VS_OK) s = dev_operating_points(&dv, &v, opt, &r, err);
            if (s == VS_OK) report_input_free(&dv);
            if (s != VS_OK) {
                report_results_free(&r);
                report_input_free(&v);
                break;
            }
        }
        if (s == VS_OK && bi == nb - 1) { /* the headline: the largest budget */
            report_budget_row *rows = res->budgets;
            *res = r;
            res->budgets = rows;
            res->n_budgets = (size_t)nb;
            res->budget = budgets[bi];
            res->n_seeds = ns;
            memcpy(res->seeds, seeds, sizeof(int) * (size_t)ns);
            res->view = v;
            res->n_test_patients = n_pat[REPORT_SET_TEST];
            res->n_dev_patients = n_pat[REPORT_SET_DEV];
            res->n_dev_series = n_dev_series;
        } else {
            report_results_free(&r);
            if (s == VS_OK) report_input_free(&v);
        }
    }
    if (s != VS_OK) report_results_free(res);
    return s;
}

void report_results_free(report_results *res) {
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        free(res->arms[a].roc);
        free(res->arms[a].froc);
        free(res->arms[a].folds);
    }
    free(res->budgets);
    report_input_free(&res->view);
    memset(res, 0, sizeof *res);
}
