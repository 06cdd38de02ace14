/* metrics.c — calibration, bootstrap draws and small statistics (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>

vs_status metrics_calibrate(const double *score, const int *label, size_t n,
                            metrics_calibration *out, vs_error *err) {
    if (n == 0) return VS_FAIL(err, VS_ERR_FORMAT, "calibration needs at least one case");
    double sum_s[METRICS_RELIABILITY_BINS] = {0}, sum_y[METRICS_RELIABILITY_BINS] = {0};
    size_t cnt[METRICS_RELIABILITY_BINS] = {0};
    double brier = 0;
    for (size_t i = 0; i < n; i++) {
        double s = score[i];
        if (!(s >= 0.0 && s <= 1.0))
            return VS_FAIL(err, VS_ERR_FORMAT,
                           "case %zu: calibration needs probabilities in [0, 1], got %g", i, s);
        double d = s - (label[i] ? 1.0 : 0.0);
        brier += d * d;
        int b = (int)(s * METRICS_RELIABILITY_BINS);
        if (b >= METRICS_RELIABILITY_BINS) b = METRICS_RELIABILITY_BINS - 1;
        sum_s[b] += s;
        sum_y[b] += label[i] ? 1.0 : 0.0;
        cnt[b]++;
    }
    out->brier = brier / (double)n;
    out->ece = 0;
    for (int b = 0; b < METRICS_RELIABILITY_BINS; b++) {
        metrics_bin *bin = &out->bins[b];
        bin->lo = (double)b / METRICS_RELIABILITY_BINS;
        bin->hi = (double)(b + 1) / METRICS_RELIABILITY_BINS;
        bin->count = cnt[b];
        bin->mean_score = cnt[b] ? sum_s[b] / (double)cnt[b] : NAN;
        bin->frac_pos = cnt[b] ? sum_y[b] / (double)cnt[b] : NAN;
        if (cnt[b]) out->ece += (double)cnt[b] / (double)n * fabs(bin->frac_pos - bin->mean_score);
    }
    return VS_OK;
}

void metrics_bootstrap_draw(rng *r, uint32_t n_clusters, uint32_t *count) {
    for (uint32_t i = 0; i < n_clusters; i++)
        count[i] = 0;
    for (uint32_t i = 0; i < n_clusters; i++)
        count[rng_below(r, n_clusters)]++;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double metrics_quantile(double *v, size_t m, double p) {
    if (m == 0) return NAN;
    qsort(v, m, sizeof *v, cmp_double);
    double pos = p * (double)(m - 1);
    size_t lo = (size_t)floor(pos);
    if (lo >= m - 1) return v[m - 1];
    double frac = pos - (double)lo;
    return v[lo] + (v[lo + 1] - v[lo]) * frac;
}

size_t metrics_drop_nan(double *v, size_t m) {
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (!isnan(v[i])) v[k++] = v[i];
    return k;
}

size_t metrics_mean_sd(const double *v, size_t m, double *mean, double *sd) {
    size_t k = 0;
    double s = 0;
    for (size_t i = 0; i < m; i++)
        if (isfinite(v[i])) {
            s += v[i];
            k++;
        }
    *mean = k ? s / (double)k : NAN;
    double ss = 0;
    for (size_t i = 0; i < m; i++)
        if (isfinite(v[i])) ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = k > 1 ? sqrt(ss / (double)(k - 1)) : NAN;
    return k;
}
