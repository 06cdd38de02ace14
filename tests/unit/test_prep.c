/* test_prep — preprocessing checked against independent computations: reorient and crop move
 * no value and keep every voxel's world position (checked through the original affine);
 * linear resampling reproduces an analytic linear field of LPS coordinates exactly; nearest
 * keeps labels; a bright ball stays at its world point through reorient + resample; window,
 * percentile and N4 against their definitions; "none" changes no bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prep.h"
#include "synth.h"

static double value_at(const volume *v, int64_t k, int64_t j, int64_t i) {
    size_t at = (size_t)((k * v->n_rows + j) * v->n_cols + i);
    switch (v->dtype) {
    case VOL_INT16: return ((const int16_t *)v->voxels)[at];
    case VOL_FLOAT32: return ((const float *)v->voxels)[at];
    case VOL_UINT8: return ((const uint8_t *)v->voxels)[at];
    }
    return 0;
}

static volume copy_of(const volume *v) {
    volume c = *v;
    size_t bytes = volume_n_voxels(v) * vol_dtype_size(v->dtype);
    c.voxels = malloc(bytes);
    memcpy(c.voxels, v->voxels, bytes);
    return c;
}

/* Every voxel of `moved` sits at an integer index of `orig` with the same value. */
static void check_relabelled(const volume *orig, const volume *moved) {
    vs_error err;
    for (int64_t k = 0; k < moved->n_slices; k++)
        for (int64_t j = 0; j < moved->n_rows; j++)
            for (int64_t i = 0; i < moved->n_cols; i++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, lps[3], o[3];
                volume_index_to_lps(moved, ijk, lps);
                assert_int_equal(volume_lps_to_index(orig, lps, o, &err), VS_OK);
                int64_t oi = llround(o[0]), oj = llround(o[1]), ok = llround(o[2]);
                if (fabs(o[0] - oi) > 1e-6 || fabs(o[1] - oj) > 1e-6 || fabs(o[2] - ok) > 1e-6)
                    fail_msg("voxel (%lld,%lld,%lld) is not on the original grid", (long long)i,
                             (long long)j, (long long)k);
                assert_true(value_at(moved, k, j, i) == value_at(orig, ok, oj, oi));
            }
}

static void test_reorient_exact(void **state) {
    (void)state;
    volume v;
    vs_error err;
    assert_int_equal(synth_ct(&v, 12, 20, 26, 3, "ct-a", &err), VS_OK);
    /* A flipped, permuted oblique frame: columns along -S, rows along +L, slices along -P. */
    double d[9] = {0.1, 0.99, 0, 0, 0, -1, -0.99, 0.1, 0};
    memcpy(v.direction, d, sizeof d);
    volume_update_affine(&v);
    volume orig = copy_of(&v);
    assert_int_equal(prep_reorient(&v, &err), VS_OK);
    for (int a = 0; a < 3; a++)
        assert_true(v.direction[a * 3 + a] > 0.9);
    assert_int_equal(v.n_cols * v.n_rows * v.n_slices, 12 * 20 * 26);
    check_relabelled(&orig, &v);
    volume_free(&v);
    volume_free(&orig);
}

static void test_crop_exact(void **state) {
    (void)state;
    volume v;
    vs_error err;
    assert_int_equal(synth_ct(&v, 10, 64, 64, 4, "ct-b", &err), VS_OK);
    volume orig = copy_of(&v);
    size_t above = 0;
    for (size_t i = 0; i < volume_n_voxels(&v); i++)
        above += ((int16_t *)v.voxels)[i] > -500;
    assert_int_equal(prep_crop_foreground(&v, -500, 2, &err), VS_OK);
    assert_true(v.n_cols < 64 && v.n_rows < 64);
    size_t kept = 0;
    for (size_t i = 0; i < volume_n_voxels(&v); i++)
        kept += ((int16_t *)v.voxels)[i] > -500;
    assert_int_equal(kept, above); /* no foreground voxel lost */
    check_relabelled(&orig, &v);
    volume_free(&v);
    volume_free(&orig);
}

/* f(LPS) = a . LPS + b: trilinear interpolation reproduces it exactly inside the grid. */
static double field(const double p[3]) { return 0.7 * p[0] - 1.3 * p[1] + 0.45 * p[2] + 20.0; }

static void test_resample_linear_field(void **state) {
    (void)state;
    volume v;
    vs_error err;
    assert_int_equal(synth_mr(&v, 18, 30, 34, 5, "mr-a", &err), VS_OK);
    /* the field replaces the anatomy: a grid of 1 x 1 x 1.2 mm (the phantom's frame is ~13 mm) */
    double sp0[3] = {1.0, 1.0, 1.2};
    memcpy(v.spacing, sp0, sizeof sp0);
    volume_update_affine(&v);
    float *p = v.voxels;
    for (int64_t k = 0; k < v.n_slices; k++)
        for (int64_t j = 0; j < v.n_rows; j++)
            for (int64_t i = 0; i < v.n_cols; i++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, lps[3];
                volume_index_to_lps(&v, ijk, lps);
                *p++ = (float)field(lps);
            }
    volume orig = copy_of(&v);
    double sp[3] = {1.3, 0.7, 1.9};
    assert_int_equal(prep_resample(&v, sp, 0, &err), VS_OK);
    assert_memory_equal(v.spacing, sp, sizeof sp);
    assert_int_equal(v.n_cols, llround(34 * 1.0 / 1.3));
    assert_int_equal(v.n_slices, llround(18 * 1.2 / 1.9));
    double worst = 0;
    int n_checked = 0;
    for (int64_t k = 0; k < v.n_slices; k++)
        for (int64_t j = 0; j < v.n_rows; j++)
            for (int64_t i = 0; i < v.n_cols; i++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, lps[3], o[3];
                volume_index_to_lps(&v, ijk, lps);
                assert_int_equal(volume_lps_to_index(&orig, lps, o, &err), VS_OK);
                if (o[0] < 0 || o[1] < 0 || o[2] < 0 || o[0] > 33 || o[1] > 29 || o[2] > 17)
                    continue; /* outside the input's centres: extrapolated */
                double d = fabs(value_at(&v, k, j, i) - field(lps));
                if (d > worst) worst = d;
                n_checked++;
            }
    print_message("linear field: %d voxels, worst |error| %.2e\n", n_checked, worst);
    assert_true(n_checked > 1000);
    assert_true(worst < 2e-3); /* float32 rounding of values ~100 */
    volume_free(&v);
    volume_free(&orig);
}

static void test_resample_nearest_labels(void **state) {
    (void)state;
    volume v;
    vs_error err;
    assert_int_equal(synth_ct(&v, 16, 24, 24, 6, "lab-a", &err), VS_OK);
    volume lab = v;
    lab.voxels = NULL;
    assert_int_equal(volume_alloc(&lab, 16, 24, 24, VOL_UINT8, 0, &err), VS_OK);
    for (size_t i = 0; i < volume_n_voxels(&v); i++) {
        int16_t hu = ((int16_t *)v.voxels)[i];
        ((uint8_t *)lab.voxels)[i] = hu > 300 ? 3 : hu > -300 ? 2 : hu > -950 ? 1 : 0;
    }
    volume orig = copy_of(&lab);
    double sp[3] = {0.5, 0.6, 1.1};
    prep_options o;
    assert_int_equal(prep_parse("spacing=0.5x0.6x1.1,nearest", &o, &err), VS_OK);
    char applied[128];
    assert_int_equal(prep_apply(&lab, &o, applied, sizeof applied, &err), VS_OK);
    assert_string_equal(applied, "spacing=0.5x0.6x1.1,nearest");
    assert_int_equal(lab.dtype, VOL_UINT8);
    assert_memory_equal(lab.spacing, sp, sizeof sp);
    int n_checked = 0;
    for (int64_t k = 0; k < lab.n_slices; k++)
        for (int64_t j = 0; j < lab.n_rows; j++)
            for (int64_t i = 0; i < lab.n_cols; i++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, lps[3], q[3];
                volume_index_to_lps(&lab, ijk, lps);
                assert_int_equal(volume_lps_to_index(&orig, lps, q, &err), VS_OK);
                int skip = 0;
                for (int a = 0; a < 3; a++) /* ties at .5 may round either way */
                    skip |= fabs(q[a] - floor(q[a]) - 0.5) < 1e-3 || q[a] < 0 ||
                            q[a] > (a == 2 ? 15 : 23);
                if (skip) continue;
                double want = value_at(&orig, llround(q[2]), llround(q[1]), llround(q[0]));
                assert_true(value_at(&lab, k, j, i) == want);
                n_checked++;
            }
    assert_true(n_checked > 1000);
    volume_free(&lab);
    volume_free(&orig);
    volume_free(&v);
}

static void test_ball_stays_in_place(void **state) {
    (void)state;
    volume v;
    vs_error err;
    assert_int_equal(synth_ct(&v, 24, 48, 40, 7, "ct-ball", &err), VS_OK);
    /* the ball replaces the anatomy: a 0.78 x 0.78 x 2.5 mm grid (the phantom's is ~11 mm) */
    double sp0[3] = {0.78, 0.78, 2.5};
    memcpy(v.spacing, sp0, sizeof sp0);
    double d[9] = {0, 0.96, 0.28, -0.96, 0, 0, 0, -0.28, 0.96}; /* oblique and permuted */
    double n = 0;
    for (int c = 0; c < 3; c++) {
        double len = sqrt(d[c] * d[c] + d[3 + c] * d[3 + c] + d[6 + c] * d[6 + c]);
        for (int r = 0; r < 3; r++)
            d[r * 3 + c] /= len;
    }
    (void)n;
    memcpy(v.direction, d, sizeof d);
    volume_update_affine(&v);
    double centre_idx[3] = {17.3, 25.6, 9.4}, centre[3];
    volume_index_to_lps(&v, centre_idx, centre);
    int16_t *p = v.voxels;
    for (int64_t k = 0; k < v.n_slices; k++)
        for (int64_t j = 0; j < v.n_rows; j++)
            for (int64_t i = 0; i < v.n_cols; i++, p++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, lps[3], r2 = 0;
                volume_index_to_lps(&v, ijk, lps);
                for (int a = 0; a < 3; a++)
                    r2 += (lps[a] - centre[a]) * (lps[a] - centre[a]);
                *p = r2 < 36.0 ? 2000 : -1000; /* a 6 mm ball in air */
            }
    prep_options o;
    assert_int_equal(prep_parse("reorient,spacing=1.1x1.1x1.1,ct-window=-1000:1000", &o, &err),
                     VS_OK);
    char applied[128];
    assert_int_equal(prep_apply(&v, &o, applied, sizeof applied, &err), VS_OK);
    assert_string_equal(applied, "reorient,spacing=1.1x1.1x1.1,ct-window=-1000:1000");
    /* Centroid of the ball in the new grid, mapped through the new affine. */
    double sum = 0, c[3] = {0, 0, 0};
    const float *f = v.voxels;
    for (int64_t k = 0; k < v.n_slices; k++)
        for (int64_t j = 0; j < v.n_rows; j++)
            for (int64_t i = 0; i < v.n_cols; i++, f++) {
                assert_true(*f >= 0.0f && *f <= 1.0f);
                if (*f <= 0.0f) continue;
                double ijk[3] = {(double)i, (double)j, (double)k}, lps[3];
                volume_index_to_lps(&v, ijk, lps);
                for (int a = 0; a < 3; a++)
                    c[a] += *f * lps[a];
                sum += *f;
            }
    double dist = 0;
    for (int a = 0; a < 3; a++)
        dist += pow(c[a] / sum - centre[a], 2);
    print_message("ball centre moved by %.3f mm\n", sqrt(dist));
    assert_true(sqrt(dist) < 0.3);
    volume_free(&v);
}

static void test_none_and_window(void **state) {
    (void)state;
    volume v;
    vs_error err;
    assert_int_equal(synth_ct(&v, 6, 20, 20, 8, "ct-w", &err), VS_OK);
    volume orig = copy_of(&v);
    prep_options o;
    char applied[64];
    assert_int_equal(prep_parse("none", &o, &err), VS_OK);
    assert_int_equal(prep_apply(&v, &o, applied, sizeof applied, &err), VS_OK);
    assert_string_equal(applied, "none");
    assert_int_equal(v.dtype, VOL_INT16);
    assert_memory_equal(v.voxels, orig.voxels, volume_n_voxels(&v) * 2);
    assert_memory_equal(v.affine, orig.affine, sizeof v.affine);
    assert_int_equal(prep_parse("ct-window=-160:240,percentile=1:99", &o, &err), VS_OK);
    assert_int_equal(prep_apply(&v, &o, applied, sizeof applied, &err), VS_OK);
    assert_string_equal(applied, "ct-window=-160:240"); /* percentile is for non-CT */
    for (size_t i = 0; i < volume_n_voxels(&v); i++) {
        double hu = ((int16_t *)orig.voxels)[i];
        double want = (fmin(fmax(hu, -160), 240) + 160) / 400.0;
        assert_true(fabs(((float *)v.voxels)[i] - want) < 1e-6);
    }
    assert_string_equal(v.units, "normalized");
    assert_memory_equal(v.affine, orig.affine, sizeof v.affine);
    volume_free(&v);
    volume_free(&orig);
}

static void test_parse_errors(void **state) {
    (void)state;
    prep_options o;
    vs_error err;
    char buf[128];
    assert_int_equal(
        prep_parse("reorient,spacing=1x1x2.5,n4,percentile=0.5:99.5,crop=-500,margin=3", &o, &err),
        VS_OK);
    prep_describe(&o, buf, sizeof buf);
    assert_string_equal(buf, "reorient,crop=-500,margin=3,n4,spacing=1x1x2.5,percentile=0.5:99.5");
    prep_options back;
    assert_int_equal(prep_parse(buf, &back, &err), VS_OK);
    assert_memory_equal(&o, &back, sizeof o);
    assert_int_equal(prep_parse("spacing=1x1", &o, &err), VS_ERR_CONFIG);
    assert_int_equal(prep_parse("sharpen", &o, &err), VS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "sharpen"));
    assert_int_equal(prep_parse("ct-window=400:-100", &o, &err), VS_ERR_CONFIG);
    assert_int_equal(prep_parse("n4=3", &o, &err), VS_ERR_CONFIG);
}

/* Muscle voxels of a synth_mr volume of seed `seed`: those (off the grid's border) whose centre
 * and six neighbours' lie in muscle (phantom_tissue_at), clear of partial volume. */
static uint8_t *muscle_mask(const volume *v, uint64_t seed) {
    phantom p;
    synth_subject(&p, seed, SYNTH_STREAM_MR);
    int64_t nz = v->n_slices, ny = v->n_rows, nx = v->n_cols;
    uint8_t *in = calloc(volume_n_voxels(v), 1), *m = calloc(volume_n_voxels(v), 1);
    assert_true(in && m);
    for (int64_t k = 0, t = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++, t++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, lps[3];
                volume_index_to_lps(v, ijk, lps);
                in[t] = phantom_tissue_at(&p, lps) == TISSUE_MUSCLE;
            }
    for (int64_t k = 1; k < nz - 1; k++)
        for (int64_t j = 1; j < ny - 1; j++)
            for (int64_t i = 1; i < nx - 1; i++) {
                int64_t t = (k * ny + j) * nx + i;
                m[t] = in[t] && in[t - 1] && in[t + 1] && in[t - nx] && in[t + nx] &&
                       in[t - nx * ny] && in[t + nx * ny];
            }
    free(in);
    return m;
}

/* Coefficient of variation of the voxels in mask (one tissue: its spread is texture, noise
 * and bias), each divided by field[i] when field is given. */
static double class_cv(const volume *v, const uint8_t *mask, const double *field, size_t *n_out) {
    double s = 0, s2 = 0;
    size_t n = 0;
    for (size_t i = 0; i < volume_n_voxels(v); i++)
        if (mask[i]) {
            double x = ((const float *)v->voxels)[i] / (field ? field[i] : 1.0);
            s += x, s2 += x * x, n++;
        }
    *n_out = n;
    double mean = s / n;
    return sqrt(s2 / n - mean * mean) / mean;
}

static void test_n4_and_percentile(void **state) {
    (void)state;
    volume v;
    vs_error err;
    assert_int_equal(synth_mr(&v, 32, 64, 64, 9, "mr-n4", &err), VS_OK);
    uint8_t *muscle = muscle_mask(&v, 9);
    size_t n_muscle = 0;
    double before = class_cv(&v, muscle, NULL, &n_muscle);
    /* The floor no bias correction goes below: the CV with the subject's own field divided out
     * (the phantom's MR with and without its bias field, noise-free, at each voxel centre). */
    phantom biased, flat;
    synth_subject(&biased, 9, SYNTH_STREAM_MR);
    flat = biased;
    memset(flat.bias, 0, sizeof flat.bias);
    double *field = calloc(volume_n_voxels(&v), sizeof *field);
    assert_non_null(field);
    for (int64_t k = 0, i = 0; k < v.n_slices; k++)
        for (int64_t j = 0; j < v.n_rows; j++)
            for (int64_t c = 0; c < v.n_cols; c++, i++) {
                double ijk[3] = {(double)c, (double)j, (double)k}, lps[3];
                volume_index_to_lps(&v, ijk, lps);
                if (muscle[i]) field[i] = phantom_mr(&biased, lps) / phantom_mr(&flat, lps);
            }
    double floor_cv = class_cv(&v, muscle, field, &n_muscle);
    free(field);
    volume orig = copy_of(&v);
    prep_options o;
    assert_int_equal(prep_parse("n4", &o, &err), VS_OK);
    char applied[64];
    assert_int_equal(prep_apply(&v, &o, applied, sizeof applied, &err), VS_OK);
    assert_string_equal(applied, "n4");
    double after = class_cv(&v, muscle, NULL, &n_muscle);
    free(muscle);
    print_message("N4: muscle CV %.3f -> %.3f over %zu voxels (%.3f with the true field out)\n",
                  before, after, n_muscle, floor_cv);
    assert_true(n_muscle > 1000);
    /* the bias holds most of the spread; N4 removes at least half of its variance */
    double bias_before = before * before - floor_cv * floor_cv,
           bias_after = after * after - floor_cv * floor_cv;
    print_message("N4: bias variance %.2e -> %.2e\n", bias_before, bias_after);
    assert_true(bias_before > floor_cv * floor_cv);
    assert_true(bias_after < 0.5 * bias_before);
    assert_memory_equal(v.affine, orig.affine, sizeof v.affine);

    assert_int_equal(prep_parse("percentile=2:98", &o, &err), VS_OK);
    assert_int_equal(prep_apply(&v, &o, applied, sizeof applied, &err), VS_OK);
    size_t n = volume_n_voxels(&v), below = 0, above = 0;
    for (size_t i = 0; i < n; i++) {
        float x = ((float *)v.voxels)[i];
        below += x < 0.0f;
        above += x > 1.0f;
    }
    print_message("percentile 2:98: %.4f below 0, %.4f above 1\n", (double)below / n,
                  (double)above / n);
    assert_true(fabs((double)below / n - 0.02) < 0.002);
    assert_true(fabs((double)above / n - 0.02) < 0.002);
    volume_free(&v);
    volume_free(&orig);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reorient_exact),
        cmocka_unit_test(test_crop_exact),
        cmocka_unit_test(test_resample_linear_field),
        cmocka_unit_test(test_resample_nearest_labels),
        cmocka_unit_test(test_ball_stays_in_place),
        cmocka_unit_test(test_none_and_window),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_n4_and_percentile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
