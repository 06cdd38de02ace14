/* test_volume — the index <-> LPS mapping on an oblique, sheared, non-isotropic volume,
 * against a naive per-axis sum; allocation limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "volume.h"

static void oblique(volume *v) {
    memset(v, 0, sizeof *v);
    double a = 0.3; /* rotation about the slice axis, then a gantry-like shear */
    double d[9] = {cos(a), -sin(a), 0.05, sin(a), cos(a), 0.2, 0, 0, 0.978};
    memcpy(v->direction, d, sizeof d);
    v->spacing[0] = 0.7;
    v->spacing[1] = 0.8;
    v->spacing[2] = 2.5;
    v->origin[0] = -120.5;
    v->origin[1] = 33.0;
    v->origin[2] = 410.25;
    volume_update_affine(v);
}

static void test_index_to_lps_matches_naive(void **state) {
    (void)state;
    volume v;
    oblique(&v);
    double ijk[3] = {10.0, 20.5, 7.0}, lps[3];
    volume_index_to_lps(&v, ijk, lps);
    for (int r = 0; r < 3; r++) {
        double naive = v.origin[r];
        for (int c = 0; c < 3; c++)
            naive += ijk[c] * v.spacing[c] * v.direction[r * 3 + c];
        assert_true(fabs(naive - lps[r]) < 1e-9);
    }
    double back[3];
    assert_int_equal(volume_lps_to_index(&v, lps, back, NULL), VS_OK);
    for (int c = 0; c < 3; c++)
        assert_true(fabs(back[c] - ijk[c]) < 1e-9);
}

static void test_singular_refused(void **state) {
    (void)state;
    volume v;
    oblique(&v);
    v.spacing[2] = 0.0;
    volume_update_affine(&v);
    double lps[3] = {0, 0, 0}, ijk[3];
    vs_error err;
    assert_int_equal(volume_lps_to_index(&v, lps, ijk, &err), VS_ERR_FORMAT);
}

static void test_alloc_limits(void **state) {
    (void)state;
    volume v;
    memset(&v, 0, sizeof v);
    vs_error err;
    assert_int_equal(volume_alloc(&v, 3, 4, 5, VOL_INT16, 0, &err), VS_OK);
    assert_int_equal(volume_n_voxels(&v), 60);
    assert_int_equal(((int16_t *)v.voxels)[59], 0);
    volume_free(&v);
    assert_int_equal(volume_alloc(&v, 512, 512, 512, VOL_FLOAT32, 1000000, &err), VS_ERR_NOMEM);
    assert_null(v.voxels);
    assert_int_equal(volume_alloc(&v, INT64_MAX / 2, 4, 4, VOL_FLOAT32, 0, &err), VS_ERR_NOMEM);
    assert_int_equal(volume_alloc(&v, 0, 4, 4, VOL_FLOAT32, 0, &err), VS_ERR_FORMAT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_to_lps_matches_naive),
        cmocka_unit_test(test_singular_refused),
        cmocka_unit_test(test_alloc_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
