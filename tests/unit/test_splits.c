/* test_splits — studies/splits.h invariants 1-4 on a realistic cohort of 57 patients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splits.h"

#define N 57
static char keys[N][16];
static const char *key_ptrs[N];
static uint8_t pos[N];

static void make_cohort(void) {
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "P%08x", (unsigned)(i * 2654435761u));
        key_ptrs[i] = keys[i];
        pos[i] = (i % 3) == 0; /* 19 positive patients */
    }
}

static void test_partition_and_balance(void **state) {
    (void)state;
    split_table *t = NULL;
    assert_int_equal(splits_make(key_ptrs, pos, N, 5, 0.2, 42, &t, NULL), VS_OK);
    int size[5] = {0}, npos[5] = {0};
    for (uint32_t i = 0; i < t->n; i++) {
        assert_true(t->fold[i] >= 0 && t->fold[i] < 5);
        size[t->fold[i]]++;
        npos[t->fold[i]] += t->positive[i];
    }
    int mn = N, mx = 0, pmn = N, pmx = 0;
    for (int f = 0; f < 5; f++) {
        mn = size[f] < mn ? size[f] : mn;
        mx = size[f] > mx ? size[f] : mx;
        pmn = npos[f] < pmn ? npos[f] : pmn;
        pmx = npos[f] > pmx ? npos[f] : pmx;
    }
    assert_true(mx - mn <= 1);
    assert_true(pmx - pmn <= 1);
    /* every patient is TEST in exactly one fold; no patient has two roles in a fold */
    for (uint32_t i = 0; i < t->n; i++) {
        int tests = 0, vals = 0;
        for (int f = 0; f < 5; f++) {
            split_role r = splits_role(t, f, i);
            tests += r == SPLIT_TEST;
            vals += r == SPLIT_VALIDATION;
            if (r == SPLIT_TEST) assert_int_equal(t->val_mask[(size_t)f * t->n + i], 0);
        }
        assert_int_equal(tests, 1);
        assert_true(vals >= 0 && vals <= 4);
    }
    /* each fold validates about 20% of its training patients, including positives */
    for (int f = 0; f < 5; f++) {
        int train = 0, val = 0, valpos = 0;
        for (uint32_t i = 0; i < t->n; i++) {
            split_role r = splits_role(t, f, i);
            train += r != SPLIT_TEST;
            val += r == SPLIT_VALIDATION;
            valpos += r == SPLIT_VALIDATION && t->positive[i];
        }
        assert_true(val >= train / 5 - 1 && val <= train / 5 + 2);
        assert_true(valpos >= 2);
    }
    splits_free(t);
}

static void test_deterministic_and_order_free(void **state) {
    (void)state;
    split_table *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(splits_make(key_ptrs, pos, N, 5, 0.2, 42, &a, NULL), VS_OK);
    const char *rev[N];
    uint8_t revpos[N];
    for (int i = 0; i < N; i++) {
        rev[i] = key_ptrs[N - 1 - i];
        revpos[i] = pos[N - 1 - i];
    }
    assert_int_equal(splits_make(rev, revpos, N, 5, 0.2, 42, &b, NULL), VS_OK);
    assert_memory_equal(a->fold, b->fold, sizeof(int) * N);
    assert_memory_equal(a->val_mask, b->val_mask, (size_t)N * 5);
    assert_int_equal(splits_make(key_ptrs, pos, N, 5, 0.2, 43, &c, NULL), VS_OK);
    int differ = 0;
    for (int i = 0; i < N; i++) differ += a->fold[i] != c->fold[i];
    assert_true(differ > N / 3);
    int64_t at = splits_find(a, keys[7]);
    assert_true(at >= 0);
    assert_string_equal(a->patient[at], keys[7]);
    assert_int_equal(splits_find(a, "nobody"), -1);
    splits_free(a);
    splits_free(b);
    splits_free(c);
}

static void test_save_load_roundtrip(void **state) {
    (void)state;
    split_table *a = NULL, *b = NULL;
    assert_int_equal(splits_make(key_ptrs, pos, N, 4, 0.25, 7, &a, NULL), VS_OK);
    char path[] = "/tmp/vs_splits_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    vs_error err;
    assert_int_equal(splits_save(a, path, &err), VS_OK);
    assert_int_equal(splits_load(path, &b, &err), VS_OK);
    assert_int_equal(b->n, a->n);
    assert_int_equal(b->k, 4);
    assert_int_equal(b->seed, 7);
    assert_true(b->val_fraction == 0.25);
    for (uint32_t i = 0; i < a->n; i++) {
        assert_string_equal(a->patient[i], b->patient[i]);
        assert_int_equal(a->positive[i], b->positive[i]);
    }
    assert_memory_equal(a->fold, b->fold, sizeof(int) * N);
    assert_memory_equal(a->val_mask, b->val_mask, (size_t)N * 4);
    /* a damaged file is refused with its line */
    FILE *f = fopen(path, "a");
    fputs("garbage line\n", f);
    fclose(f);
    split_table *c = NULL;
    assert_int_equal(splits_load(path, &c, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line"));
    remove(path);
    splits_free(a);
    splits_free(b);
}

static void test_bad_requests(void **state) {
    (void)state;
    split_table *t = NULL;
    vs_error err;
    assert_int_equal(splits_make(key_ptrs, pos, 3, 5, 0.2, 1, &t, &err), VS_ERR_CONFIG);
    assert_int_equal(splits_make(key_ptrs, pos, N, 1, 0.2, 1, &t, &err), VS_ERR_CONFIG);
    const char *dup[3] = {"A", "B", "A"};
    assert_int_equal(splits_make(dup, NULL, 3, 2, 0.0, 1, &t, &err), VS_ERR_FORMAT);
    assert_null(t);
}

int main(void) {
    make_cohort();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_and_balance),
        cmocka_unit_test(test_deterministic_and_order_free),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
