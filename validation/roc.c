/* roc.c — exact ROC curve and Mann-Whitney AUC (see roc.h for the invariants). */
#include "roc.h"

#include <math.h>
#include <stdlib.h>

/* Descending score; ties keep index order, so the order (and every sum) is deterministic. */
static int by_score_desc(const void *a, const void *b, void *ctx) {
    const double *score = ctx;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    if (score[i] > score[j]) return -1;
    if (score[i] < score[j]) return 1;
    return (i > j) - (i < j);
}

vs_status roc_order(const double *score, size_t n, uint32_t **order, vs_error *err) {
    *order = NULL;
    if (n > UINT32_MAX) return VS_FAIL(err, VS_ERR_NOMEM, "too many cases (%zu)", n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(score[i]))
            return VS_FAIL(err, VS_ERR_FORMAT, "case %zu has a score that is not a finite number",
                           i);
    uint32_t *o = malloc((n ? n : 1) * sizeof *o);
    if (!o) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory ordering %zu scores", n);
    for (size_t i = 0; i < n; i++)
        o[i] = (uint32_t)i;
    qsort_r(o, n, sizeof *o, by_score_desc, (void *)score);
    *order = o;
    return VS_OK;
}

/* Total weight of positives and negatives; fails unless both are > 0. */
static vs_status class_totals(const int *label, const double *weight, size_t n, double *pos,
                              double *neg, vs_error *err) {
    double p = 0, q = 0;
    for (size_t i = 0; i < n; i++) {
        double w = weight ? weight[i] : 1.0;
        if (label[i])
            p += w;
        else
            q += w;
    }
    *pos = p;
    *neg = q;
    if (p <= 0 || q <= 0)
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "ROC analysis needs both classes, but there are %s (%.0f positive, %.0f "
                       "negative cases)",
                       p <= 0 ? "no positive cases" : "no negative cases", p, q);
    return VS_OK;
}

vs_status roc_auc_ordered(const double *score, const int *label, const double *weight,
                          const uint32_t *order, size_t n, double *auc, vs_error *err) {
    double n_pos, n_neg;
    vs_status s = class_totals(label, weight, n, &n_pos, &n_neg, err);
    if (s != VS_OK) return s;
    /* Walk tie groups from the highest score down. A positive in a group beats every negative
     * below the group and ties with the negatives inside it (half a win each). */
    double neg_above = 0, u = 0;
    size_t i = 0;
    while (i < n) {
        double gp = 0, gn = 0, t = score[order[i]];
        size_t j = i;
        for (; j < n && score[order[j]] == t; j++) {
            double w = weight ? weight[order[j]] : 1.0;
            if (label[order[j]])
                gp += w;
            else
                gn += w;
        }
        u += gp * ((n_neg - neg_above - gn) + 0.5 * gn);
        neg_above += gn;
        i = j;
    }
    *auc = u / (n_pos * n_neg);
    return VS_OK;
}

vs_status roc_auc(const double *score, const int *label, size_t n, double *auc, vs_error *err) {
    uint32_t *order = NULL;
    vs_status s = roc_order(score, n, &order, err);
    if (s == VS_OK) s = roc_auc_ordered(score, label, NULL, order, n, auc, err);
    free(order);
    return s;
}

vs_status roc_curve(const double *score, const int *label, size_t n, roc_point **pts, size_t *n_pts,
                    vs_error *err) {
    *pts = NULL;
    *n_pts = 0;
    double n_pos, n_neg;
    vs_status s = class_totals(label, NULL, n, &n_pos, &n_neg, err);
    if (s != VS_OK) return s;
    uint32_t *order = NULL;
    s = roc_order(score, n, &order, err);
    if (s != VS_OK) return s;
    roc_point *p = malloc((n + 1) * sizeof *p);
    if (!p) {
        free(order);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %zu ROC points", n + 1);
    }
    size_t k = 0;
    p[k++] = (roc_point){INFINITY, 0.0, 0.0};
    double tp = 0, fp = 0;
    size_t i = 0;
    while (i < n) {
        double t = score[order[i]];
        for (; i < n && score[order[i]] == t; i++) {
            if (label[order[i]])
                tp += 1;
            else
                fp += 1;
        }
        p[k++] = (roc_point){t, fp / n_neg, tp / n_pos};
    }
    free(order);
    *pts = p;
    *n_pts = k;
    return VS_OK;
}

vs_status roc_operating(const double *score, const int *label, size_t n, double threshold,
                        roc_operating_point *out, vs_error *err) {
    double n_pos, n_neg;
    vs_status s = class_totals(label, NULL, n, &n_pos, &n_neg, err);
    if (s != VS_OK) return s;
    roc_operating_point o = {threshold, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int called = score[i] >= threshold;
        if (label[i])
            *(called ? &o.tp : &o.fn) += 1;
        else
            *(called ? &o.fp : &o.tn) += 1;
    }
    o.sensitivity = o.tp / n_pos;
    o.specificity = o.tn / n_neg;
    *out = o;
    return VS_OK;
}
