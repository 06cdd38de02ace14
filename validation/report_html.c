/* report_html.c — report.html (one self-contained file: inline CSS, inline SVG plots, previews
 * as base64 PNG) and report.md. Every number goes through report_text_num / _fixed. */
#include "report.h"
#include "report_text.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char *const arm_color[REPORT_N_ARMS] = {"#1f77b4", "#d62728"};
static const char *const arm_title[REPORT_N_ARMS] = {"fine-tuned from MAE", "from scratch"};
static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                      "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
#define N_PALETTE (sizeof palette / sizeof palette[0])
#define MAX_PLOT_POINTS 2000 /* longer polylines are thinned (report.json keeps every point) */

/* ---- SVG plots ------------------------------------------------------------------------- */

enum { PW = 460, PH = 340, ML = 64, MR = 16, MT = 34, MB = 52 };

typedef struct plot {
    report_text *t;
    double x0, x1, y0, y1;
    int logx;       /* log2 x axis */
    int legend_low; /* legend in the lower right corner (curves that rise to the top left) */
    int no_yticks;  /* categories, not values, on the y axis */
} plot;

static double px(const plot *p, double x) {
    if (p->logx) {
        x = x < p->x0 ? p->x0 : x;
        return ML + (log2(x) - log2(p->x0)) / (log2(p->x1) - log2(p->x0)) * (PW - ML - MR);
    }
    return ML + (x - p->x0) / (p->x1 - p->x0) * (PW - ML - MR);
}

static double py(const plot *p, double y) {
    return PH - MB - (y - p->y0) / (p->y1 - p->y0) * (PH - MT - MB);
}

static void coord(report_text *t, double v) { report_text_fixed(t, v, 2); }

static void text_at(report_text *t, double x, double y, const char *anchor, const char *extra,
                    const char *s) {
    report_text_put(t, "<text x=\"");
    coord(t, x);
    report_text_put(t, "\" y=\"");
    coord(t, y);
    report_text_printf(t, "\" text-anchor=\"%s\"%s>%s</text>", anchor, extra, s);
}

static void tick_label(report_text *t, double v, char *buf, size_t n) {
    (void)t;
    if (fabs(v - round(v)) < 1e-9)
        snprintf(buf, n, "%.0f", v);
    else if (fabs(v) >= 0.1)
        snprintf(buf, n, "%.2g", v);
    else
        snprintf(buf, n, "%.3g", v);
    for (char *c = buf; *c; c++)
        if (*c == ',') *c = '.';
}

static void plot_begin(plot *p, const char *id, const char *title, const char *xl, const char *yl) {
    report_text *t = p->t;
    report_text_printf(t,
                       "<svg id=\"%s\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" "
                       "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">"
                       "<title>%s</title><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>",
                       id, PW, PH, PW, PH, title, PW, PH);
    text_at(t, PW / 2.0, 20, "middle", " font-weight=\"bold\"", title);
    text_at(t, (ML + PW - MR) / 2.0, PH - 12, "middle", "", xl);
    report_text_printf(t,
                       "<text x=\"16\" y=\"%d\" text-anchor=\"middle\" "
                       "transform=\"rotate(-90 16 %d)\">%s</text>",
                       (PH - MB + MT) / 2, (PH - MB + MT) / 2, yl);
    char lab[32];
    /* x ticks: powers of two on a log axis, five steps otherwise */
    for (int i = 0; i <= 8; i++) {
        double v = p->logx ? p->x0 * pow(2.0, i) : p->x0 + (p->x1 - p->x0) * i / 5.0;
        if ((p->logx && v > p->x1 * 1.0000001) || (!p->logx && i > 5)) break;
        double x = px(p, v);
        report_text_put(t, "<line class=\"grid\" x1=\"");
        coord(t, x);
        report_text_printf(t, "\" y1=\"%d\" x2=\"", MT);
        coord(t, x);
        report_text_printf(t, "\" y2=\"%d\"/>", PH - MB);
        if (p->logx && v < 1)
            snprintf(lab, sizeof lab, "1/%.0f", 1.0 / v);
        else
            tick_label(t, v, lab, sizeof lab);
        text_at(t, x, PH - MB + 16, "middle", " class=\"tick\"", lab);
    }
    for (int i = 0; i <= 5 && !p->no_yticks; i++) {
        double v = p->y0 + (p->y1 - p->y0) * i / 5.0, y = py(p, v);
        report_text_printf(t, "<line class=\"grid\" x1=\"%d\" y1=\"", ML);
        coord(t, y);
        report_text_printf(t, "\" x2=\"%d\" y2=\"", PW - MR);
        coord(t, y);
        report_text_put(t, "\"/>");
        tick_label(t, v, lab, sizeof lab);
        text_at(t, ML - 6, y + 4, "end", " class=\"tick\"", lab);
    }
    report_text_printf(t, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>",
                       ML, MT, PW - ML - MR, PH - MT - MB);
}

/* A polyline through n points read with a byte stride (so arrays of structs plot directly). */
static void plot_line(plot *p, const double *xs, const double *ys, size_t n, size_t stride,
                      const char *color, const char *dash) {
    if (n == 0) return;
    size_t step = n > MAX_PLOT_POINTS ? (n + MAX_PLOT_POINTS - 1) / MAX_PLOT_POINTS : 1;
    report_text_printf(p->t,
                       "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" "
                       "stroke-width=\"2\"%s%s%s points=\"",
                       color, dash ? " stroke-dasharray=\"" : "", dash ? dash : "",
                       dash ? "\"" : "");
    double last_x = NAN, last_y = NAN;
    for (size_t i = 0; i < n; i += step) {
        double x = *(const double *)((const char *)xs + i * stride);
        double y = *(const double *)((const char *)ys + i * stride);
        if (!isfinite(x) || !isfinite(y)) continue;
        int stop = 0;
        if (x > p->x1) { /* the curve leaves the plot on the right: end it at the edge */
            if (isfinite(last_x) && last_x < p->x1)
                y = last_y + (y - last_y) * (p->x1 - last_x) / (x - last_x);
            else if (isfinite(last_x))
                break;
            x = p->x1, stop = 1;
        }
        last_x = x, last_y = y;
        coord(p->t, px(p, x));
        report_text_put(p->t, ",");
        coord(p->t, py(p, y));
        report_text_put(p->t, " ");
        if (stop) break;
        if (i + step >= n && i != n - 1) i = n - 1 - step; /* always end on the last point */
    }
    report_text_put(p->t, "\"/>");
}

static void plot_dot(plot *p, double x, double y, const char *color) {
    report_text_put(p->t, "<circle cx=\"");
    coord(p->t, px(p, x));
    report_text_put(p->t, "\" cy=\"");
    coord(p->t, py(p, y));
    report_text_printf(p->t, "\" r=\"3.5\" fill=\"%s\"/>", color);
}

static void plot_end(plot *p, const char *const *names, const char *const *colors, int n) {
    for (int i = 0; i < n; i++) {
        double y = p->legend_low ? PH - MB - 10 - 16.0 * (n - 1 - i) : MT + 14 + 16.0 * i;
        report_text_printf(p->t, "<rect x=\"%d\" y=\"", PW - MR - 150);
        coord(p->t, y - 9);
        report_text_printf(p->t, "\" width=\"12\" height=\"10\" fill=\"%s\"/>", colors[i]);
        text_at(p->t, PW - MR - 134, y, "start", " class=\"tick\"", names[i]);
    }
    report_text_put(p->t, "</svg>\n");
}

/* Legend entries for the arms present. */
static int arm_legend(const report_results *res, const char **names, const char **colors) {
    int n = 0;
    for (int a = 0; a < REPORT_N_ARMS; a++)
        if (res->arms[a].present) {
            names[n] = arm_title[a];
            colors[n++] = arm_color[a];
        }
    return n;
}

static void svg_roc(report_text *t, const report_results *res) {
    plot p = {t, 0, 1, 0, 1, 0, 1, 0};
    plot_begin(&p, "plot-roc", "ROC (volume level)", "1 - specificity", "sensitivity");
    static const double diag[2] = {0, 1};
    plot_line(&p, diag, diag, 2, sizeof(double), "#999", "4 4");
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        if (ar->present)
            plot_line(&p, &ar->roc[0].fpr, &ar->roc[0].tpr, ar->n_roc, sizeof(roc_point),
                      arm_color[a], NULL);
    }
    const char *names[REPORT_N_ARMS], *colors[REPORT_N_ARMS];
    plot_end(&p, names, colors, arm_legend(res, names, colors));
}

static void svg_froc(report_text *t, const report_results *res) {
    plot p = {t, 1.0 / 8, 8, 0, 1, 1, 1, 0}; /* the CPM range; longer curves end at the edge */
    plot_begin(&p, "plot-froc", "FROC (lesion level, LUNA16)", "false positives per scan (log)",
               "sensitivity");
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        if (!ar->present || !ar->has_froc) continue;
        plot_line(&p, &ar->froc[0].fps, &ar->froc[0].sensitivity, ar->n_froc, sizeof(froc_point),
                  arm_color[a], NULL);
        for (int i = 0; i < FROC_N_CPM; i++)
            plot_dot(&p, froc_cpm_fps[i], ar->cpm_sens[i], arm_color[a]);
    }
    const char *names[REPORT_N_ARMS], *colors[REPORT_N_ARMS];
    plot_end(&p, names, colors, arm_legend(res, names, colors));
}

static void svg_calibration(report_text *t, const report_results *res) {
    plot p = {t, 0, 1, 0, 1, 0, 1, 0};
    plot_begin(&p, "plot-calibration", "Calibration (reliability)", "mean predicted probability",
               "observed fraction positive");
    static const double diag[2] = {0, 1};
    plot_line(&p, diag, diag, 2, sizeof(double), "#999", "4 4");
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        if (!ar->present) continue;
        double xs[METRICS_RELIABILITY_BINS], ys[METRICS_RELIABILITY_BINS];
        size_t n = 0;
        for (int b = 0; b < METRICS_RELIABILITY_BINS; b++)
            if (ar->calib.bins[b].count) {
                xs[n] = ar->calib.bins[b].mean_score;
                ys[n++] = ar->calib.bins[b].frac_pos;
            }
        plot_line(&p, xs, ys, n, sizeof(double), arm_color[a], NULL);
        for (size_t i = 0; i < n; i++)
            plot_dot(&p, xs[i], ys[i], arm_color[a]);
    }
    const char *names[REPORT_N_ARMS], *colors[REPORT_N_ARMS];
    plot_end(&p, names, colors, arm_legend(res, names, colors));
}

static void svg_losses(report_text *t, const report_input *in, report_curve_kind kind,
                       const char *id, const char *title) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    const char *names[N_PALETTE], *colors[N_PALETTE];
    int n = 0;
    for (size_t i = 0; i < in->n_curves; i++) {
        const report_curve *c = &in->curves[i];
        if (c->kind != kind) continue;
        for (size_t k = 0; k < c->n; k++) {
            x0 = fmin(x0, c->step[k]);
            x1 = fmax(x1, c->step[k]);
            y0 = fmin(y0, c->loss[k]);
            y1 = fmax(y1, c->loss[k]);
        }
    }
    if (!isfinite(x0)) return;
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1;
    y0 = y0 > 0 && y0 < 0.5 * y1 ? 0 : y0 - 0.05 * (y1 - y0);
    plot p = {t, x0, x1, y0, y1 + 0.05 * (y1 - y0), 0, 0, 0};
    plot_begin(&p, id, title, "step", "loss");
    for (size_t i = 0; i < in->n_curves; i++) {
        const report_curve *c = &in->curves[i];
        if (c->kind != kind) continue;
        const char *col = palette[(size_t)n % N_PALETTE];
        plot_line(&p, c->step, c->loss, c->n, sizeof(double), col, NULL);
        if ((size_t)n < N_PALETTE) {
            names[n] = c->name;
            colors[n] = col;
        }
        n++;
    }
    plot_end(&p, names, colors, n < (int)N_PALETTE ? n : (int)N_PALETTE);
}

/* The side-by-side: each arm's AUC and CPM with its 95% CI as an error bar. */
static void svg_comparison(report_text *t, const report_results *res) {
    plot p = {t, 0, 1, 0, 4, 0, 1, 1};
    plot_begin(&p, "plot-comparison", "MAE vs scratch (95% CI)", "value", "");
    static const char *const what[2] = {"AUC", "CPM"};
    for (int m = 0; m < 2; m++)
        for (int a = 0; a < REPORT_N_ARMS; a++) {
            const report_arm_result *ar = &res->arms[a];
            if (!ar->present) continue;
            const report_ci *ci = m == 0 ? &ar->auc : &ar->cpm;
            double y = 3.5 - 2 * m - a;
            char lab[32];
            snprintf(lab, sizeof lab, "%s %s", what[m], report_arm_names[a]);
            text_at(t, ML + 4, py(&p, y) - 8, "start", " class=\"tick\"", lab);
            if (!isfinite(ci->value)) continue;
            if (isfinite(ci->lo) && isfinite(ci->hi)) {
                double lx[2] = {ci->lo, ci->hi}, ly[2] = {y, y};
                plot_line(&p, lx, ly, 2, sizeof(double), arm_color[a], NULL);
            }
            plot_dot(&p, ci->value, y, arm_color[a]);
        }
    plot_end(&p, NULL, NULL, 0); /* each row is labeled with its arm: no legend */
}

/* A metric (0: AUC, 1: CPM) against the label budget, both arms: the mean over seeds with its
 * 95% interval as an error bar, on a log2 budget axis. */
static void svg_budgets(report_text *t, const report_results *res, int metric) {
    if (!res->n_budgets) return;
    double b0 = res->budgets[0].budget > 0 ? res->budgets[0].budget : 1;
    double b1 =
        res->budgets[res->n_budgets - 1].budget > b0 ? res->budgets[res->n_budgets - 1].budget : b0;
    plot p = {t, b0 / 2, b1 * 2, 0, 1, 1, 0, 0};
    plot_begin(&p, metric ? "plot-budget-cpm" : "plot-budget-auc",
               metric ? "CPM vs label budget (test set)" : "AUC vs label budget (test set)",
               "training patients (log)", metric ? "CPM" : "volume AUC");
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        double xs[REPORT_MAX_BUDGETS], ys[REPORT_MAX_BUDGETS];
        size_t n = 0;
        for (size_t b = 0; b < res->n_budgets; b++) {
            const report_budget_arm *ba = &res->budgets[b].arm[a];
            const report_ci *ci = metric ? &ba->cpm : &ba->auc;
            if (!ba->present || !isfinite(ci->value)) continue;
            double x = res->budgets[b].budget * (a ? 1.04 : 0.96); /* bars side by side */
            if (isfinite(ci->lo) && isfinite(ci->hi)) {
                double lx[2] = {x, x}, ly[2] = {ci->lo, ci->hi};
                plot_line(&p, lx, ly, 2, sizeof(double), arm_color[a], NULL);
            }
            plot_dot(&p, x, ci->value, arm_color[a]);
            xs[n] = x, ys[n++] = ci->value;
        }
        plot_line(&p, xs, ys, n, sizeof(double), arm_color[a], NULL);
    }
    const char *names[REPORT_N_ARMS], *colors[REPORT_N_ARMS];
    plot_end(&p, names, colors, arm_legend(res, names, colors));
}

/* ---- tables ---------------------------------------------------------------------------- */

/* value [lo, hi]; with a finite sd: value ± sd [lo, hi] */
static void ci_sd_text(report_text *t, const report_ci *ci, double sd) {
    report_text_num(t, ci->value, 0);
    if (isfinite(sd)) {
        report_text_put(t, " ± ");
        report_text_num(t, sd, 0);
    }
    if (isfinite(ci->lo) && isfinite(ci->hi)) {
        report_text_put(t, " [");
        report_text_num(t, ci->lo, 0);
        report_text_put(t, ", ");
        report_text_num(t, ci->hi, 0);
        report_text_put(t, "]");
    }
}

static void ci_text(report_text *t, const report_ci *ci) { ci_sd_text(t, ci, NAN); }

static void mean_sd(report_text *t, double mean, double sd) {
    report_text_num(t, mean, 0);
    report_text_put(t, " ± ");
    report_text_num(t, sd, 0);
}

/* Rows of the headline table, shared by HTML (sep "</td><td>") and Markdown (" | "). */
static void comparison_rows(report_text *t, const report_results *res, const char *row0,
                            const char *sep, const char *row1) {
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        if (!ar->present) continue;
        report_text_printf(t, "%s%s (%s)%s", row0, report_arm_names[a], arm_title[a], sep);
        ci_text(t, &ar->auc);
        report_text_put(t, sep);
        ci_text(t, &ar->cpm);
        report_text_put(t, sep);
        ci_text(t, &ar->ap);
        report_text_put(t, sep);
        mean_sd(t, ar->fold_auc_mean, ar->fold_auc_sd);
        report_text_put(t, sep);
        mean_sd(t, ar->fold_cpm_mean, ar->fold_cpm_sd);
        report_text_put(t, row1);
    }
    if (res->has_delta) {
        report_text_printf(t, "%sdifference (mae - scratch)%s", row0, sep);
        ci_text(t, &res->delta_auc);
        report_text_put(t, sep);
        ci_text(t, &res->delta_cpm);
        report_text_printf(t, "%s%s%s", sep, sep, sep);
        report_text_put(t, row1);
    }
}

/* The protocol's table: one row per budget and arm, then the paired difference. */
static void budget_rows(report_text *t, const report_results *res, const char *row0,
                        const char *sep, const char *row1) {
    for (size_t b = 0; b < res->n_budgets; b++) {
        const report_budget_row *row = &res->budgets[b];
        for (int a = 0; a < REPORT_N_ARMS; a++) {
            const report_budget_arm *ba = &row->arm[a];
            if (!ba->present) continue;
            report_text_printf(t, "%s%d%s%s%s", row0, row->budget, sep, report_arm_names[a], sep);
            ci_sd_text(t, &ba->auc, ba->auc_sd);
            report_text_put(t, sep);
            ci_sd_text(t, &ba->cpm, ba->cpm_sd);
            report_text_put(t, row1);
        }
        if (row->has_delta) {
            report_text_printf(t, "%s%d%smae - scratch (paired)%s", row0, row->budget, sep, sep);
            ci_text(t, &row->delta_auc);
            report_text_put(t, sep);
            ci_text(t, &row->delta_cpm);
            report_text_put(t, row1);
        }
    }
}

static void fold_rows(report_text *t, const report_arm_result *ar, const char *row0,
                      const char *sep, const char *row1) {
    for (size_t f = 0; f < ar->n_folds; f++) {
        const report_fold *fo = &ar->folds[f];
        report_text_printf(t, "%s%d%s%zu%s%zu%s%zu%s", row0, fo->fold, sep, fo->n_series, sep,
                           fo->n_pos, sep, fo->n_lesions, sep);
        report_text_num(t, fo->auc, 0);
        report_text_put(t, sep);
        report_text_num(t, fo->cpm, 0);
        report_text_put(t, sep);
        report_text_num(t, fo->ap, 0);
        report_text_put(t, row1);
    }
    report_text_printf(t, "%smean ± sd%s%s%s%s", row0, sep, sep, sep, sep);
    mean_sd(t, ar->fold_auc_mean, ar->fold_auc_sd);
    report_text_put(t, sep);
    mean_sd(t, ar->fold_cpm_mean, ar->fold_cpm_sd);
    report_text_printf(t, "%s%s", sep, row1);
    report_text_printf(t, "%smean [95%% CI]%s%s%s%s", row0, sep, sep, sep, sep);
    ci_text(t, &ar->auc);
    report_text_put(t, sep);
    ci_text(t, &ar->cpm);
    report_text_put(t, sep);
    ci_text(t, &ar->ap);
    report_text_put(t, row1);
}

/* One operating point's row; a dev-chosen one says so after its threshold. */
static void op_row(report_text *t, const report_results *res, int a, const roc_operating_point *o,
                   int from_dev, const char *row0, const char *sep, const char *row1) {
    report_text_printf(t, "%s%s%s", row0, report_arm_names[a], sep);
    report_text_num(t, o->threshold, 0);
    if (from_dev) {
        report_text_put(t, " (chosen on dev: sensitivity ≥ ");
        report_text_num(t, res->opt.dev_sensitivity, 0);
        report_text_put(t, " there)");
    }
    report_text_printf(t, "%s%.0f / %.0f / %.0f / %.0f%s", sep, o->tp, o->fn, o->tn, o->fp, sep);
    report_text_num(t, o->sensitivity, 0);
    report_text_put(t, sep);
    report_text_num(t, o->specificity, 0);
    report_text_put(t, sep);
    report_text_num(t, res->arms[a].calib.brier, 0);
    report_text_put(t, row1);
}

static void op_rows(report_text *t, const report_results *res, const char *row0, const char *sep,
                    const char *row1) {
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        for (int i = 0; ar->present && i < res->opt.n_ops; i++)
            op_row(t, res, a, &ar->ops[i], 0, row0, sep, row1);
        if (ar->present && ar->has_dev_op) op_row(t, res, a, &ar->dev_op, 1, row0, sep, row1);
    }
}

static void provenance_rows(report_text *t, const report_input *in, const report_provenance *p,
                            const report_results *res, const char *row0, const char *sep,
                            const char *row1) {
    report_text_printf(t, "%svesalius%s%s (git %s)%s", row0, sep, p->vesalius_version,
                       p->git_revision, row1);
    for (int i = 0; i < p->n_libs; i++)
        report_text_printf(t, "%s%s%s%s%s", row0, p->libs[i].name, sep, p->libs[i].version, row1);
    report_text_printf(t, "%sCPU%s%s%s", row0, sep, p->cpu_model ? p->cpu_model : "unknown", row1);
    report_text_printf(t, "%sthreads%s%d (OpenBLAS %d)%s", row0, sep, p->threads, p->blas_threads,
                       row1);
    report_text_printf(t, "%sbootstrap%s%u resamples of test patients and seeds, seed %llu%s", row0,
                       sep, res->opt.n_bootstrap, (unsigned long long)res->opt.seed, row1);
    for (int i = 0; i < p->n_seeds; i++)
        report_text_printf(t, "%sseed %s%s%llu%s", row0, p->seeds[i].name, sep,
                           (unsigned long long)p->seeds[i].value, row1);
    for (size_t i = 0; i < in->n_files; i++)
        report_text_printf(t, "%s%s %s%ssha256 %s%s", row0, in->files[i].role, in->files[i].name,
                           sep, in->files[i].sha256, row1);
    if (p->have_shards)
        report_text_printf(t, "%sshards (%zu files)%ssha256 %s%s", row0, p->n_shards, sep,
                           p->shards_sha256, row1);
}

/* Text with &, <, > and " escaped (the definitions hold '>=' and '<name>'). */
static void html_put(report_text *t, const char *s) {
    static const char *const esc[] = {
        ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;"};
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < sizeof esc / sizeof esc[0] && esc[*p])
            report_text_put(t, esc[*p]);
        else
            report_text_printf(t, "%c", *p);
    }
}

/* ---- report.html ----------------------------------------------------------------------- */

static const char css[] =
    "body{font-family:sans-serif;margin:2em;color:#222;max-width:1000px}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;font-size:14px}th{background:#f0f0f0}.grid{stroke:#e4e4e4}"
    ".frame{fill:none;stroke:#444}.tick{font-size:11px}svg{margin:6px;font-family:sans-serif;"
    "font-size:13px}.previews img{max-width:460px;margin:6px;border:1px solid #ccc}"
    ".gallery figure{display:inline-block;margin:6px}.gallery img{border:1px solid #ccc}"
    "dt{font-weight:bold;margin-top:.6em}";

static void html_png(report_text *t, const report_preview *pv) {
    size_t len = sodium_base64_ENCODED_LEN(pv->size, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(len);
    if (!b64) {
        t->oom = 1;
        return;
    }
    sodium_bin2base64(b64, len, pv->png, pv->size, sodium_base64_VARIANT_ORIGINAL);
    report_text_printf(t,
                       "<figure><img alt=\"%s\" width=\"%u\" height=\"%u\" "
                       "src=\"data:image/png;base64,",
                       pv->name, pv->width, pv->height);
    report_text_put(t, b64);
    report_text_printf(t, "\"/><figcaption>%s</figcaption></figure>", pv->name);
    free(b64);
}

/* The detection gallery: pictures made by the command (pipeline/report_gallery.h). */
static void html_gallery(report_text *t, const report_input *in, const report_results *res) {
    if (!in->n_gallery) return;
    report_text_printf(t,
                       "<h2>Detections (test set, %d training patients, seed %d)</h2><p>Per "
                       "arm, the strongest detections (green: a true lesion, red: a false "
                       "positive) and the largest missed lesions (yellow), each on the axial "
                       "slice through its centre.</p><div class=\"gallery\">",
                       res->budget, res->n_seeds ? res->seeds[0] : 0);
    for (size_t i = 0; i < in->n_gallery; i++)
        html_png(t, &in->gallery[i]);
    report_text_put(t, "</div>\n");
}

static void html_previews(report_text *t, const report_input *in) {
    if (!in->n_previews) return;
    report_text_put(t, "<h2>MAE reconstruction previews</h2><div class=\"previews\">");
    for (size_t i = 0; i < in->n_previews; i++)
        html_png(t, &in->previews[i]);
    report_text_put(t, "</div>\n");
}

void report_html(report_text *t, const report_input *in, const report_results *res,
                 const report_provenance *prov, const char *start, const char *end) {
    static const char *const R0 = "<tr><td>", *const SEP = "</td><td>", *const R1 = "</td></tr>\n";
    const report_input *v = &res->view;
    size_t ns = res->n_seeds ? (size_t)res->n_seeds : 1;
    report_text_printf(t,
                       "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<title>vesalius validation report</title><style>%s</style></head>"
                       "<body>\n<h1>vesalius validation report</h1>\n"
                       "<p>Test set: %zu series from %u patients, every number below. Dev set: "
                       "%zu series from %zu patients, used for early stopping and to choose one "
                       "operating threshold (no number here is computed on them). %zu seed(s) per "
                       "budget and arm; report schema %d; run %s to "
                       "%s.</p>\n",
                       css, v->n_series / ns, v->n_clusters, res->n_dev_series, res->n_dev_patients,
                       ns, REPORT_SCHEMA_VERSION, start, end);
    report_text_put(t, "<h2>Does pretraining help? Label budgets (test set)</h2>\n<table><tr>"
                       "<th>training patients</th><th>arm</th><th>AUC mean ± sd [95% CI]</th>"
                       "<th>CPM mean ± sd [95% CI]</th></tr>\n");
    budget_rows(t, res, R0, SEP, R1);
    report_text_put(t, "</table>\n<div>");
    svg_budgets(t, res, 0);
    svg_budgets(t, res, 1);
    report_text_printf(t,
                       "</div>\n<h2>Fine-tuning from the MAE vs from scratch: %d training "
                       "patients</h2>\n<table><tr><th>arm</th><th>AUC [95%% CI]</th><th>CPM "
                       "[95%% CI]</th><th>AP [95%% CI]</th><th>AUC over seeds</th><th>CPM over "
                       "seeds</th></tr>\n",
                       res->budget);
    comparison_rows(t, res, R0, SEP, R1);
    report_text_put(t, "</table>\n<div>");
    svg_comparison(t, res);
    svg_roc(t, res);
    svg_froc(t, res);
    svg_calibration(t, res);
    report_text_put(t, "</div>\n<h2>Training curves</h2><div>");
    svg_losses(t, in, REPORT_PRETRAIN, "plot-pretrain-loss", "Pretraining loss (MAE)");
    svg_losses(t, in, REPORT_FINETUNE, "plot-finetune-loss", "Fine-tuning loss");
    if (!in->n_curves) report_text_put(t, "<p>No training logs were given.</p>");
    report_text_put(t, "</div>\n");
    html_previews(t, in);
    html_gallery(t, in, res);
    report_text_put(t, "<h2>Operating points</h2><table><tr><th>arm</th><th>threshold</th><th>"
                       "TP / FN / TN / FP</th><th>sensitivity</th><th>specificity</th><th>"
                       "Brier</th></tr>\n");
    op_rows(t, res, R0, SEP, R1);
    report_text_put(t, "</table>\n");
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        if (!res->arms[a].present) continue;
        report_text_printf(t,
                           "<h2>Seeds: %s (%s)</h2><table><tr><th>seed</th><th>series</th><th>"
                           "positive</th><th>lesions</th><th>AUC</th><th>CPM</th><th>AP</th>"
                           "</tr>\n",
                           report_arm_names[a], arm_title[a]);
        fold_rows(t, &res->arms[a], R0, SEP, R1);
        report_text_put(t, "</table>\n");
    }
    report_text_put(t, "<h2>Definitions</h2><dl>");
    for (size_t i = 0; i < report_n_defs; i++) {
        report_text_printf(t, "<dt>%s</dt><dd>", report_defs[i].metric);
        html_put(t, report_defs[i].text);
        report_text_put(t, "</dd>");
    }
    report_text_put(t, "</dl>\n<h2>Provenance</h2><table>\n");
    report_text prov_rows = {0};
    provenance_rows(&prov_rows, in, prov, res, "\x01", "\x02", "\x03");
    (void)v;
    /* escape the values, then put the table markup back in */
    for (const char *c = prov_rows.p ? prov_rows.p : ""; *c; c++) {
        char one[2] = {*c, 0};
        if (*c == '\x01')
            report_text_put(t, R0);
        else if (*c == '\x02')
            report_text_put(t, SEP);
        else if (*c == '\x03')
            report_text_put(t, R1);
        else
            html_put(t, one);
    }
    if (prov_rows.oom) t->oom = 1;
    report_text_free(&prov_rows);
    report_text_put(t, "</table>\n</body></html>\n");
}

/* ---- report.md ------------------------------------------------------------------------- */

void report_md(report_text *t, const report_input *in, const report_results *res,
               const report_provenance *prov, const char *start, const char *end) {
    static const char *const R0 = "| ", *const SEP = " | ", *const R1 = " |\n";
    const report_input *v = &res->view;
    size_t ns = res->n_seeds ? (size_t)res->n_seeds : 1;
    report_text_printf(t,
                       "# vesalius validation report\n\nTest set: %zu series from %u patients, "
                       "every number below. Dev set: %zu series from %zu patients, used for early "
                       "stopping and to choose one operating threshold (no number here is "
                       "computed on them). %zu seed(s) per budget and arm; report "
                       "schema %d; run %s to %s.\n\n## Does pretraining help? Label budgets "
                       "(test set)\n\n| training patients | arm | AUC mean ± sd [95%% CI] | CPM "
                       "mean ± sd [95%% CI] |\n|---|---|---|---|\n",
                       v->n_series / ns, v->n_clusters, res->n_dev_series, res->n_dev_patients, ns,
                       REPORT_SCHEMA_VERSION, start, end);
    budget_rows(t, res, R0, SEP, R1);
    report_text_printf(t,
                       "\n## Fine-tuning from the MAE vs from scratch: %d training patients\n\n"
                       "| arm | AUC [95%% CI] | CPM [95%% CI] | AP [95%% CI] | AUC over seeds | "
                       "CPM over seeds |\n|---|---|---|---|---|---|\n",
                       res->budget);
    comparison_rows(t, res, R0, SEP, R1);
    report_text_put(t, "\n## Operating points\n\n| arm | threshold | TP / FN / TN / FP | "
                       "sensitivity | specificity | Brier |\n|---|---|---|---|---|---|\n");
    op_rows(t, res, R0, SEP, R1);
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        if (!res->arms[a].present) continue;
        report_text_printf(t,
                           "\n## Seeds: %s (%s)\n\n| seed | series | positive | lesions | AUC "
                           "| CPM | AP |\n|---|---|---|---|---|---|---|\n",
                           report_arm_names[a], arm_title[a]);
        fold_rows(t, &res->arms[a], R0, SEP, R1);
    }
    report_text_put(t, "\n## Definitions\n\n");
    for (size_t i = 0; i < report_n_defs; i++)
        report_text_printf(t, "- **%s**: %s\n", report_defs[i].metric, report_defs[i].text);
    report_text_put(t, "\n## Provenance\n\n| item | value |\n|---|---|\n");
    provenance_rows(t, in, prov, res, R0, SEP, R1);
}
