/* test_metrics — ROC/AUC and bootstrap helpers against naive references: weighted AUC equals
 * the O(n^2) Mann-Whitney count on duplicated cases, one class is an error (not NaN), the
 * quantile matches numpy's linear method, bootstrap draws are seeded, Brier and bins by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "roc.h"

/* Mann-Whitney by the definition: every (positive, negative) pair, ties one half. */
static double naive_auc(const double *s, const int *y, const double *w, size_t n) {
    double u = 0, np = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i])
            np += w[i];
        else
            nn += w[i];
        for (size_t j = 0; j < n; j++)
            if (y[i] && !y[j]) u += w[i] * w[j] * (s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0);
    }
    return u / (np * nn);
}

static void test_weighted_auc_matches_naive(void **state) {
    (void)state;
    rng r;
    rng_seed(&r, 11, 3);
    enum { N = 300 };
    double s[N], w[N];
    int y[N];
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < N; i++) {
            y[i] = rng_below(&r, 3) == 0;
            /* heavy ties: only 7 distinct scores, shifted up for positives */
            s[i] = (double)(rng_below(&r, 5) + (y[i] ? rng_below(&r, 3) : 0)) / 7.0;
            w[i] = (double)rng_below(&r, 4); /* bootstrap multiplicities, zeros included */
        }
        w[0] = w[1] = 1;
        y[0] = 1;
        y[1] = 0;
        uint32_t *order;
        double auc;
        vs_error err;
        assert_int_equal(roc_order(s, N, &order, &err), VS_OK);
        assert_int_equal(roc_auc_ordered(s, y, w, order, N, &auc, &err), VS_OK);
        double want = naive_auc(s, y, w, N);
        assert_true(fabs(auc - want) < 1e-12);
        free(order);
    }
}

static void test_one_class_is_an_error(void **state) {
    (void)state;
    double s[4] = {0.1, 0.4, 0.4, 0.9}, auc = 12345;
    int y[4] = {1, 1, 1, 1};
    vs_error err;
    assert_int_equal(roc_auc(s, y, 4, &auc, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "both classes"));
    assert_true(auc == 12345); /* untouched, never NaN */
    roc_point *p = NULL;
    size_t n = 7;
    assert_int_equal(roc_curve(s, y, 4, &p, &n, &err), VS_ERR_FORMAT);
    assert_null(p);
    s[2] = NAN;
    y[0] = 0;
    assert_int_equal(roc_auc(s, y, 4, &auc, &err), VS_ERR_FORMAT);
}

static void test_operating_point(void **state) {
    (void)state;
    double s[6] = {0.9, 0.5, 0.2, 0.5, 0.49, 0.1};
    int y[6] = {1, 1, 1, 0, 0, 0};
    roc_operating_point o;
    vs_error err;
    assert_int_equal(roc_operating(s, y, 6, 0.5, &o, &err), VS_OK);
    assert_true(o.tp == 2 && o.fn == 1 && o.fp == 1 && o.tn == 2);
    assert_true(fabs(o.sensitivity - 2.0 / 3) < 1e-15 && fabs(o.specificity - 2.0 / 3) < 1e-15);
}

static void test_quantile_numpy_linear(void **state) {
    (void)state;
    double v[5] = {4, 1, 3, 2, NAN};
    size_t m = metrics_drop_nan(v, 5);
    assert_int_equal(m, 4);
    /* numpy.quantile([1,2,3,4], [0.025, 0.25, 0.975]) = 1.075, 1.75, 3.925 */
    assert_true(fabs(metrics_quantile(v, m, 0.025) - 1.075) < 1e-12);
    assert_true(fabs(metrics_quantile(v, m, 0.25) - 1.75) < 1e-12);
    assert_true(fabs(metrics_quantile(v, m, 0.975) - 3.925) < 1e-12);
    assert_true(isnan(metrics_quantile(v, 0, 0.5)));
    double mean, sd, f[4] = {1, 2, 3, INFINITY};
    assert_int_equal(metrics_mean_sd(f, 4, &mean, &sd), 3);
    assert_true(fabs(mean - 2) < 1e-15 && fabs(sd - 1) < 1e-15);
}

static void test_bootstrap_draw_seeded(void **state) {
    (void)state;
    enum { N = 37 };
    uint32_t a[N], b[N], c[N];
    rng r1, r2, r3;
    rng_seed(&r1, 99, 5);
    rng_seed(&r2, 99, 5);
    rng_seed(&r3, 100, 5);
    metrics_bootstrap_draw(&r1, N, a);
    metrics_bootstrap_draw(&r2, N, b);
    metrics_bootstrap_draw(&r3, N, c);
    uint32_t sum = 0;
    int same_c = 1;
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i], b[i]);
        sum += a[i];
        same_c &= a[i] == c[i];
    }
    assert_int_equal(sum, N);
    assert_false(same_c);
}

static void test_calibration_by_hand(void **state) {
    (void)state;
    double s[4] = {0.05, 0.15, 0.95, 1.0};
    int y[4] = {0, 1, 1, 1};
    metrics_calibration c;
    vs_error err;
    assert_int_equal(metrics_calibrate(s, y, 4, &c, &err), VS_OK);
    double brier = (0.05 * 0.05 + 0.85 * 0.85 + 0.05 * 0.05 + 0) / 4;
    assert_true(fabs(c.brier - brier) < 1e-15);
    assert_int_equal(c.bins[0].count, 1);
    assert_int_equal(c.bins[1].count, 1);
    assert_int_equal(c.bins[9].count, 2); /* 1.0 falls in the last bin */
    assert_true(fabs(c.bins[9].mean_score - 0.975) < 1e-15);
    assert_true(isnan(c.bins[5].mean_score));
    s[0] = 1.5;
    assert_int_equal(metrics_calibrate(s, y, 4, &c, &err), VS_ERR_FORMAT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weighted_auc_matches_naive),
        cmocka_unit_test(test_one_class_is_an_error),
        cmocka_unit_test(test_operating_point),
        cmocka_unit_test(test_quantile_numpy_linear),
        cmocka_unit_test(test_bootstrap_draw_seeded),
        cmocka_unit_test(test_calibration_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
