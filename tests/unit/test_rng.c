/* test_rng — PCG32 against the published reference sequence, save/restore, helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "rng.h"

/* pcg32-demo from the PCG reference C implementation: pcg32_srandom_r(&rng, 42u, 54u),
 * first six outputs of pcg32_random_r. */
static void test_reference_sequence(void **state) {
    (void)state;
    static const uint32_t expected[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u,
                                         0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
    rng r;
    rng_seed(&r, 42u, 54u);
    for (int i = 0; i < 6; i++)
        assert_int_equal(rng_u32(&r), expected[i]);
}

static void test_save_restore(void **state) {
    (void)state;
    rng a;
    rng_seed(&a, 1234, 7);
    for (int i = 0; i < 1000; i++)
        (void)rng_u32(&a);
    uint8_t buf[RNG_STATE_BYTES];
    rng_save(&a, buf);
    uint32_t after[64];
    for (int i = 0; i < 64; i++)
        after[i] = rng_u32(&a);
    rng b;
    rng_seed(&b, 99, 1); /* a different position entirely */
    assert_int_equal(rng_load(&b, buf, NULL), VS_OK);
    for (int i = 0; i < 64; i++)
        assert_int_equal(rng_u32(&b), after[i]);
    buf[8] &= 0xfe; /* an even increment can never come from rng_seed */
    vs_error err;
    assert_int_equal(rng_load(&b, buf, &err), VS_ERR_FORMAT);
}

static void test_streams_differ(void **state) {
    (void)state;
    rng a, b;
    rng_seed(&a, 5, 1);
    rng_seed(&b, 5, 2);
    int same = 0;
    for (int i = 0; i < 100; i++)
        same += rng_u32(&a) == rng_u32(&b);
    assert_true(same < 3);
}

static void test_below_and_floats(void **state) {
    (void)state;
    rng r;
    rng_seed(&r, 3, 0);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t x = rng_below(&r, 7);
        assert_true(x < 7);
        counts[x]++;
    }
    for (int i = 0; i < 7; i++)
        assert_true(counts[i] > 9500 && counts[i] < 10500);
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 100000; i++) {
        float f = rng_float(&r);
        assert_true(f >= 0.0f && f < 1.0f);
        double n = rng_normal(&r);
        sum += n;
        sum2 += n * n;
    }
    assert_true(fabs(sum / 100000) < 0.02);
    assert_true(fabs(sum2 / 100000 - 1.0) < 0.03);
}

static void test_shuffle_is_permutation(void **state) {
    (void)state;
    rng r;
    rng_seed(&r, 11, 0);
    uint32_t a[100];
    for (uint32_t i = 0; i < 100; i++)
        a[i] = i;
    rng_shuffle_u32(&r, a, 100);
    int seen[100] = {0}, moved = 0;
    for (uint32_t i = 0; i < 100; i++) {
        seen[a[i]]++;
        moved += a[i] != i;
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > 80);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_sequence),     cmocka_unit_test(test_save_restore),
        cmocka_unit_test(test_streams_differ),         cmocka_unit_test(test_below_and_floats),
        cmocka_unit_test(test_shuffle_is_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
