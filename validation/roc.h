/* roc.h — volume-level ROC analysis: the exact ROC curve, AUC as the Mann-Whitney statistic,
 * and sensitivity / specificity at fixed operating points.
 *
 * Cases carry a score, a 0/1 label and a non-negative weight (the number of times a case is
 * drawn in a bootstrap resample; 1 for the plain analysis), so one code path serves both.
 *
 * Invariants:
 *   1. roc_curve gives one point per distinct score, visited in descending order, after a
 *      first point (0, 0) whose threshold is +infinity; it equals scikit-learn's
 *      roc_curve(y, s, drop_intermediate=False) point for point.
 *   2. roc_auc is the Mann-Whitney U statistic divided by n_pos * n_neg: a positive scored
 *      above a negative counts 1, a tie counts 1/2. It equals roc_auc_score.
 *   3. With only one class present every function fails with VS_ERR_FORMAT (never NaN).
 *   4. Results depend only on the inputs (fixed summation order), so they are bit-stable.
 */
#ifndef VS_ROC_H
#define VS_ROC_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct roc_point {
    double threshold; /* a case is called positive when score >= threshold */
    double fpr;       /* 1 - specificity */
    double tpr;       /* sensitivity */
} roc_point;

typedef struct roc_operating_point {
    double threshold;
    double tp, fn, tn, fp; /* weighted counts */
    double sensitivity, specificity;
} roc_operating_point;

/* Indices 0..n-1 ordered by descending score (ties keep index order). *order is malloc'ed. */
vs_status roc_order(const double *score, size_t n, uint32_t **order, vs_error *err);

/* AUC of n cases given their descending order (from roc_order). weight may be NULL (all 1).
 * Cases of weight 0 are left out. Fails when either class has zero total weight. */
vs_status roc_auc_ordered(const double *score, const int *label, const double *weight,
                          const uint32_t *order, size_t n, double *auc, vs_error *err);

/* Convenience: roc_order + roc_auc_ordered with unit weights. */
vs_status roc_auc(const double *score, const int *label, size_t n, double *auc, vs_error *err);

/* The whole curve, unit weights: (*pts)[0] = {+inf, 0, 0}, then one point per distinct score.
 * *pts is malloc'ed; *n_pts = distinct scores + 1. */
vs_status roc_curve(const double *score, const int *label, size_t n, roc_point **pts, size_t *n_pts,
                    vs_error *err);

/* Sensitivity and specificity when cases with score >= threshold are called positive. */
vs_status roc_operating(const double *score, const int *label, size_t n, double threshold,
                        roc_operating_point *out, vs_error *err);

#endif
