/* test_froc — LUNA16 matching, FROC, CPM and AP on hand-computed cases (validation/froc.h):
 * several hits on one lesion, hits on irrelevant lesions, a hit exactly on the radius, scans
 * without lesions, a missed lesion, ties between a hit and a false positive, a candidate on two
 * lesions, and scan weights equal to duplicated scans. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "froc.h"

#define EPS 1e-12

/* Case A, 4 scans (distances in mm):
 *   scan 0: lesion (0,0,0) d=10; hits at 1 mm (p .9) and 2 mm (p .6, a duplicate); FP p .7
 *   scan 1: lesion (10,10,10) d=6; irrelevant lesion (50,50,50) d=8 hit at 1 mm (p .95,
 *           ignored); a candidate exactly 3 mm = the radius away (p .8: not a hit, so FP);
 *           a hit at 2 mm (p .4)
 *   scan 2: no lesion; FPs p .5 and .3
 *   scan 3: lesion (0,0,0) d=4, no candidate (missed)
 * Events: .9 TP, .8 FP, .7 FP, .5 FP, .4 TP, .3 FP; 3 relevant lesions, 4 scans.
 * FROC: (0,0) (0,1/3) (.25,1/3) (.5,1/3) (.75,1/3) (.75,2/3) (1,2/3).
 * CPM = (3 * 1/3 + 4 * 2/3) / 7 = 11/21. AP = 1/3 * 1 + 1/3 * 2/5 = 7/15. */
static const froc_lesion case_a_les[] = {
    {0, 0, 0, 0, 10, 0}, {1, 10, 10, 10, 6, 0}, {1, 50, 50, 50, 8, 1}, {3, 0, 0, 0, 4, 0}};
static const froc_candidate case_a_cand[] = {
    {0, 1, 0, 0, 0.9},    {0, 0, 2, 0, 0.6},    {0, 20, 0, 0, 0.7}, {1, 51, 50, 50, 0.95},
    {1, 10, 10, 13, 0.8}, {1, 10, 10, 12, 0.4}, {2, 5, 5, 5, 0.5},  {2, -5, 5, 5, 0.3}};

static froc_match build(const froc_lesion *l, size_t nl, const froc_candidate *c, size_t nc,
                        size_t n_scans) {
    froc_match m;
    vs_error err;
    assert_int_equal(froc_match_build(l, nl, c, nc, n_scans, &m, &err), VS_OK);
    return m;
}

static void test_case_a_counts_and_curve(void **state) {
    (void)state;
    froc_match m = build(case_a_les, 4, case_a_cand, 8, 4);
    assert_int_equal(m.n_lesions, 3);
    assert_int_equal(m.n_detected, 2);
    assert_int_equal(m.n_fp, 4);
    assert_int_equal(m.n_duplicate_hits, 1);
    assert_int_equal(m.n_irrelevant_hits, 1);
    froc_point *p;
    size_t n;
    vs_error err;
    assert_int_equal(froc_curve(&m, NULL, &p, &n, &err), VS_OK);
    static const double want[][3] = {
        {INFINITY, 0, 0},     {0.9, 0, 1.0 / 3},    {0.8, 0.25, 1.0 / 3}, {0.7, 0.5, 1.0 / 3},
        {0.5, 0.75, 1.0 / 3}, {0.4, 0.75, 2.0 / 3}, {0.3, 1.0, 2.0 / 3}};
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++) {
        assert_true(p[i].threshold == want[i][0]);
        assert_true(fabs(p[i].fps - want[i][1]) < EPS);
        assert_true(fabs(p[i].sensitivity - want[i][2]) < EPS);
    }
    /* numpy.interp at a repeated x takes the last point: 2/3 at 0.75 */
    assert_true(fabs(froc_sensitivity_at(p, n, 0.75) - 2.0 / 3) < EPS);
    assert_true(fabs(froc_sensitivity_at(p, n, 100) - 2.0 / 3) < EPS);
    free(p);
    double cpm, sens[FROC_N_CPM], ap;
    assert_int_equal(froc_cpm(&m, NULL, &cpm, sens, &err), VS_OK);
    assert_true(fabs(cpm - 11.0 / 21) < EPS);
    assert_true(fabs(sens[0] - 1.0 / 3) < EPS && fabs(sens[3] - 2.0 / 3) < EPS);
    assert_int_equal(froc_ap(&m, NULL, &ap, &err), VS_OK);
    assert_true(fabs(ap - 7.0 / 15) < EPS);
    froc_match_free(&m);
}

/* Case B, 2 scans, a hit tied with a false positive, so the curve rises between FP rates:
 * events .9 {TP, FP}, .5 TP, .2 FP; FROC (0,0) (.5,.5) (.5,1) (1,1).
 * Sensitivity at 1/8 = .125 and 1/4 = .25 (interpolated), 1 from 1/2 on: CPM = 5.375/7.
 * AP = .5 * .5 + .5 * 2/3 = 7/12. */
static void test_case_b_interpolation(void **state) {
    (void)state;
    static const froc_lesion les[] = {{0, 0, 0, 0, 10, 0}, {1, 0, 0, 0, 10, 0}};
    static const froc_candidate cand[] = {
        {0, 0, 0, 1, 0.9}, {1, 30, 0, 0, 0.9}, {1, 0, 1, 0, 0.5}, {0, 40, 0, 0, 0.2}};
    froc_match m = build(les, 2, cand, 4, 2);
    double cpm, sens[FROC_N_CPM], ap;
    vs_error err;
    assert_int_equal(froc_cpm(&m, NULL, &cpm, sens, &err), VS_OK);
    assert_true(fabs(sens[0] - 0.125) < EPS);
    assert_true(fabs(sens[1] - 0.25) < EPS);
    assert_true(fabs(sens[2] - 1.0) < EPS);
    assert_true(fabs(cpm - 5.375 / 7) < EPS);
    assert_int_equal(froc_ap(&m, NULL, &ap, &err), VS_OK);
    assert_true(fabs(ap - 7.0 / 12) < EPS);
    froc_match_free(&m);
}

/* A candidate within the radius of two overlapping lesions detects both (LUNA16 counts it for
 * each). */
static void test_one_candidate_two_lesions(void **state) {
    (void)state;
    static const froc_lesion les[] = {{0, 0, 0, 0, 10, 0}, {0, 4, 0, 0, 10, 0}};
    static const froc_candidate cand[] = {{0, 2, 0, 0, 0.6}};
    froc_match m = build(les, 2, cand, 1, 1);
    assert_int_equal(m.n_detected, 2);
    assert_int_equal(m.n_fp, 0);
    double cpm;
    vs_error err;
    assert_int_equal(froc_cpm(&m, NULL, &cpm, NULL, &err), VS_OK);
    assert_true(fabs(cpm - 1.0) < EPS);
    froc_match_free(&m);
}

/* Scan weights (bootstrap multiplicities) equal duplicating the scans: weights {2,0,1,3} on
 * case A against the naive copy with scan 0 twice, scan 2 once and scan 3 three times. */
static void test_weights_equal_duplicates(void **state) {
    (void)state;
    static const double w[4] = {2, 0, 1, 3};
    froc_lesion les[16];
    froc_candidate cand[32];
    size_t nl = 0, nc = 0;
    uint32_t next = 0;
    for (uint32_t s = 0; s < 4; s++)
        for (int k = 0; k < (int)w[s]; k++, next++) {
            for (size_t i = 0; i < 4; i++)
                if (case_a_les[i].scan == s) {
                    les[nl] = case_a_les[i];
                    les[nl++].scan = next;
                }
            for (size_t i = 0; i < 8; i++)
                if (case_a_cand[i].scan == s) {
                    cand[nc] = case_a_cand[i];
                    cand[nc++].scan = next;
                }
        }
    froc_match dup = build(les, nl, cand, nc, next);
    froc_match m = build(case_a_les, 4, case_a_cand, 8, 4);
    double c1, c2, a1, a2, s1[FROC_N_CPM], s2[FROC_N_CPM];
    vs_error err;
    assert_int_equal(froc_cpm(&m, w, &c1, s1, &err), VS_OK);
    assert_int_equal(froc_cpm(&dup, NULL, &c2, s2, &err), VS_OK);
    assert_int_equal(froc_ap(&m, w, &a1, &err), VS_OK);
    assert_int_equal(froc_ap(&dup, NULL, &a2, &err), VS_OK);
    for (int i = 0; i < FROC_N_CPM; i++)
        assert_true(fabs(s1[i] - s2[i]) < EPS);
    assert_true(fabs(c1 - c2) < EPS);
    assert_true(fabs(a1 - a2) < EPS);
    froc_match_free(&m);
    froc_match_free(&dup);
}

/* No relevant lesion: a clear error, not NaN; bad input is refused. */
static void test_degenerate(void **state) {
    (void)state;
    static const froc_lesion irr[] = {{0, 0, 0, 0, 10, 1}};
    static const froc_candidate cand[] = {{0, 0, 0, 0, 0.5}, {1, 9, 9, 9, 0.4}};
    froc_match m = build(irr, 1, cand, 2, 2);
    double cpm = 0;
    vs_error err;
    assert_int_equal(froc_cpm(&m, NULL, &cpm, NULL, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "relevant lesion"));
    froc_match_free(&m);
    static const froc_lesion bad[] = {{5, 0, 0, 0, 10, 0}};
    assert_int_equal(froc_match_build(bad, 1, cand, 2, 2, &m, &err), VS_ERR_FORMAT);
    static const froc_lesion zero_d[] = {{0, 0, 0, 0, 0, 0}};
    assert_int_equal(froc_match_build(zero_d, 1, cand, 2, 2, &m, &err), VS_ERR_FORMAT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_a_counts_and_curve),
        cmocka_unit_test(test_case_b_interpolation),
        cmocka_unit_test(test_one_candidate_two_lesions),
        cmocka_unit_test(test_weights_equal_duplicates),
        cmocka_unit_test(test_degenerate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
