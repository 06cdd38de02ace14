/* metrics.h — calibration (Brier score, reliability bins), the bootstrap over patients, and
 * the small statistics the report needs (percentiles, mean and standard deviation).
 *
 * Invariants:
 *   1. metrics_bootstrap_draw with the same rng state draws the same multiset of clusters on
 *      every platform (integer draws from rng.h only).
 *   2. metrics_quantile interpolates linearly between order statistics at position p*(m-1),
 *      numpy's default ("linear") method, so a reviewer can recompute a CI in one line.
 *   3. Sums run in index order, so results are bit-stable for the same inputs.
 */
#ifndef VS_METRICS_H
#define VS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "status.h"

#define METRICS_RELIABILITY_BINS 10

typedef struct metrics_bin {
    double lo, hi;     /* bin edges; the last bin includes 1.0 */
    size_t count;      /* cases whose score falls in [lo, hi) */
    double mean_score; /* mean predicted probability in the bin (NaN when empty) */
    double frac_pos;   /* observed fraction of positives in the bin (NaN when empty) */
} metrics_bin;

typedef struct metrics_calibration {
    double brier; /* mean of (score - label)^2 */
    double ece;   /* sum over bins of count/n * |frac_pos - mean_score| */
    metrics_bin bins[METRICS_RELIABILITY_BINS];
} metrics_calibration;

/* Brier score and reliability bins of n probabilities in [0, 1]. Fails on n == 0 or a score
 * outside [0, 1]. */
vs_status metrics_calibrate(const double *score, const int *label, size_t n,
                            metrics_calibration *out, vs_error *err);

/* One bootstrap resample: draw n_clusters cluster indices uniformly with replacement and
 * write how often each was drawn to count[0..n_clusters). */
void metrics_bootstrap_draw(rng *r, uint32_t n_clusters, uint32_t *count);

/* The p-quantile (0 <= p <= 1) of the m finite values in v (sorted in place). NaN if m == 0. */
double metrics_quantile(double *v, size_t m, double p);

/* Drop the NaNs from v (in place); returns how many values remain. */
size_t metrics_drop_nan(double *v, size_t m);

/* Mean and sample standard deviation (n - 1) of the finite values in v; NaN where undefined
 * (mean needs 1 value, sd needs 2). Returns the number of finite values. */
size_t metrics_mean_sd(const double *v, size_t m, double *mean, double *sd);

#endif
