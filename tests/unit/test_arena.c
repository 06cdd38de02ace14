/* test_arena — arena.h invariants 1-4 against a naive reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "arena.h"

static void test_alignment_and_capacity(void **state) {
    (void)state;
    arena a;
    assert_int_equal(arena_init(&a, 4096, NULL), VS_OK);
    size_t aligns[] = {1, 2, 8, 16, 64, 256};
    for (int i = 0; i < 6; i++) {
        void *p = arena_alloc(&a, 3, aligns[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % aligns[i], 0);
    }
    assert_null(arena_alloc(&a, 5000, 8)); /* does not fit: NULL, nothing taken */
    size_t used = a.used;
    assert_null(arena_alloc(&a, SIZE_MAX - 8, 8)); /* overflow guarded */
    assert_int_equal(a.used, used);
    assert_null(arena_alloc(&a, 8, 3));     /* not a power of two */
    assert_non_null(arena_alloc(&a, 8, 8)); /* still usable */
    arena_free(&a);
}

static void test_mark_reset(void **state) {
    (void)state;
    arena a;
    assert_int_equal(arena_init(&a, 1 << 16, NULL), VS_OK);
    float *keep = arena_alloc(&a, 100 * sizeof(float), 64);
    assert_non_null(keep);
    for (int i = 0; i < 100; i++)
        keep[i] = (float)i;
    size_t m = arena_mark(&a);
    for (int step = 0; step < 100; step++) {
        float *tmp = arena_calloc(&a, 1000, sizeof(float), 64);
        assert_non_null(tmp);
        for (int i = 0; i < 1000; i++)
            assert_true(tmp[i] == 0.0f);
        for (int i = 0; i < 1000; i++)
            tmp[i] = -1.0f;
        arena_reset(&a, m);
    }
    for (int i = 0; i < 100; i++)
        assert_true(keep[i] == (float)i);
    assert_true(a.high_water >= m + 4000);
    assert_true(a.high_water < m + 4000 + 128);
    assert_null(arena_calloc(&a, SIZE_MAX / 2, 4, 8));
    arena_free(&a);
}

static void test_zero_capacity_refused(void **state) {
    (void)state;
    arena a;
    vs_error err;
    assert_int_equal(arena_init(&a, 0, &err), VS_ERR_INTERNAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_capacity),
        cmocka_unit_test(test_mark_reset),
        cmocka_unit_test(test_zero_capacity_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
