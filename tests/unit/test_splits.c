/* test_splits — studies/splits.h invariants 1-4 on a realistic cohort of 57 patients: roles by
 * the rounding rule, stratified; determinism and order independence; nested, stratified label
 * budgets; fit seeds; save and load. (tests/cli/test_split_cli.sh checks the same files against
 * a Python reimplementation of the ranks.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static split_table *make(double dev, double test, uint64_t seed) {
    split_table *t = NULL;
    vs_error err;
    assert_int_equal(splits_make(key_ptrs, pos, N, dev, test, seed, &t, &err), VS_OK);
    return t;
}

static void test_roles_follow_the_rounding(void **state) {
    (void)state;
    split_table *t = make(0.2, 0.5, 42);
    assert_int_equal(t->n, N);
    /* 19 positives: test floor(9.5 + 0.5) = 10, dev floor(3.8 + 0.5) = 4, train 5;
     * 38 negatives: test 19, dev floor(7.6 + 0.5) = 8, train 11 */
    int count[2][3] = {{0}};
    for (uint32_t i = 0; i < t->n; i++) {
        assert_true(t->role[i] <= SPLIT_TEST);
        count[t->positive[i]][t->role[i]]++;
        if (i) assert_true(strcmp(t->patient[i - 1], t->patient[i]) < 0);
    }
    assert_int_equal(count[1][SPLIT_TEST], 10);
    assert_int_equal(count[1][SPLIT_DEV], 4);
    assert_int_equal(count[1][SPLIT_TRAIN], 5);
    assert_int_equal(count[0][SPLIT_TEST], 19);
    assert_int_equal(count[0][SPLIT_DEV], 8);
    assert_int_equal(count[0][SPLIT_TRAIN], 11);
    assert_int_equal(splits_count(t, SPLIT_TRAIN), 16);
    for (int i = 0; i < N; i++) /* every input patient is found with its class */
        assert_int_equal(t->positive[splits_find(t, keys[i])], pos[i]);
    assert_int_equal(splits_find(t, "nobody"), -1);
    assert_string_equal(splits_role_name(SPLIT_DEV), "dev");
    splits_free(t);
}

static void test_deterministic_and_order_free(void **state) {
    (void)state;
    split_table *a = make(0.2, 0.5, 42), *b = make(0.2, 0.5, 42);
    assert_memory_equal(a->role, b->role, N);
    /* the same set in another order: the same table */
    const char *rev[N];
    uint8_t rpos[N];
    for (int i = 0; i < N; i++)
        rev[i] = key_ptrs[N - 1 - i], rpos[i] = pos[N - 1 - i];
    split_table *c = NULL;
    assert_int_equal(splits_make(rev, rpos, N, 0.2, 0.5, 42, &c, NULL), VS_OK);
    assert_memory_equal(a->patient, c->patient, sizeof *a->patient * N);
    assert_memory_equal(a->role, c->role, N);
    /* another seed: other roles */
    split_table *d = make(0.2, 0.5, 43);
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += a->role[i] != d->role[i];
    assert_true(differ > 5);
    /* dev_share never moves a test patient (test is carved first) */
    split_table *e = make(0.1, 0.5, 42);
    for (int i = 0; i < N; i++) {
        assert_int_equal(a->role[i] == SPLIT_TEST, e->role[i] == SPLIT_TEST);
        if (a->role[i] == SPLIT_TRAIN) assert_int_equal(e->role[i], SPLIT_TRAIN);
    }
    splits_free(a), splits_free(b), splits_free(c), splits_free(d), splits_free(e);
}

static void test_bad_inputs(void **state) {
    (void)state;
    split_table *t = NULL;
    vs_error err;
    assert_int_equal(splits_make(key_ptrs, pos, N, 0.5, 0.5, 1, &t, &err), VS_ERR_CONFIG);
    assert_null(t);
    const char *dup[3] = {"A", "B", "A"};
    assert_int_equal(splits_make(dup, NULL, 3, 0.2, 0.2, 1, &t, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "listed twice"));
    /* two patients and shares that take both: no training patient */
    const char *two[2] = {"A", "B"};
    assert_int_equal(splits_make(two, NULL, 2, 0.3, 0.5, 1, &t, &err), VS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "no training patient"));
}

static void test_budgets_nested_and_stratified(void **state) {
    (void)state;
    split_table *t =
        make(0.2, 0.3, 7); /* train: 19 - 6 - 4 = 9 positive, 38 - 11 - 8 = 19 negative */
    uint32_t *order = NULL, n = 0;
    vs_error err;
    assert_int_equal(splits_budget_order(t, 0, &order, &n, &err), VS_OK);
    uint32_t P = 0;
    for (uint32_t i = 0; i < t->n; i++)
        P += t->role[i] == SPLIT_TRAIN && t->positive[i];
    assert_int_equal(n, splits_count(t, SPLIT_TRAIN));
    assert_int_equal(P, 9);
    /* a permutation of the training patients; every prefix of two or more holds both classes and
     * its positives are within one of its share */
    uint8_t seen[N] = {0};
    uint32_t p = 0;
    for (uint32_t k = 0; k < n; k++) {
        assert_int_equal(t->role[order[k]], SPLIT_TRAIN);
        assert_int_equal(seen[order[k]]++, 0);
        p += t->positive[order[k]];
        if (k >= 1) assert_true(p >= 1 && p <= k);
        assert_true(fabs((double)p - (double)(k + 1) * P / n) <= 1.0);
    }
    /* budgets are prefixes of the order, nested */
    for (int b = 1; b <= (int)n; b += 4) {
        uint32_t *idx = NULL, m = 0;
        assert_int_equal(splits_budget(t, 0, b, &idx, &m, &err), VS_OK);
        assert_int_equal(m, (uint32_t)b);
        assert_memory_equal(idx, order, sizeof *idx * m);
        free(idx);
    }
    uint32_t *all = NULL, m = 0;
    assert_int_equal(splits_budget(t, 0, 0, &all, &m, &err), VS_OK); /* 0: every patient */
    assert_int_equal(m, n);
    free(all);
    /* too large a budget names both numbers */
    assert_int_equal(splits_budget(t, 0, (int)n + 1, &all, &m, &err), VS_ERR_CONFIG);
    char want[128];
    snprintf(want, sizeof want, "label budget %u is larger than the %u training patients", n + 1,
             n);
    assert_non_null(strstr(err.msg, want));
    /* another run seed: another order of the same patients */
    uint32_t *o1 = NULL, n1 = 0;
    assert_int_equal(splits_budget_order(t, 1, &o1, &n1, &err), VS_OK);
    assert_int_equal(n1, n);
    assert_true(memcmp(o1, order, sizeof *order * n) != 0);
    free(o1);
    /* the order depends on the set, not the order the patients were given in */
    const char *rev[N];
    uint8_t rpos[N];
    for (int i = 0; i < N; i++)
        rev[i] = key_ptrs[N - 1 - i], rpos[i] = pos[N - 1 - i];
    split_table *r = NULL;
    assert_int_equal(splits_make(rev, rpos, N, 0.2, 0.3, 7, &r, NULL), VS_OK);
    assert_int_equal(splits_budget_order(r, 0, &o1, &n1, &err), VS_OK);
    assert_memory_equal(o1, order, sizeof *order * n);
    free(o1), free(order);
    splits_free(r), splits_free(t);
}

static void test_small_class(void **state) {
    (void)state;
    /* one positive of ten training patients: budget 2 still holds it */
    const char *k[10] = {"A", "B", "C", "D", "E", "F", "G", "H", "I", "J"};
    uint8_t p[10] = {0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    split_table *t = NULL;
    assert_int_equal(splits_make(k, p, 10, 0, 0, 3, &t, NULL), VS_OK);
    for (int s = 0; s < 5; s++) {
        uint32_t *idx = NULL, n = 0;
        assert_int_equal(splits_budget(t, s, 2, &idx, &n, NULL), VS_OK);
        assert_int_equal(t->positive[idx[0]] + t->positive[idx[1]], 1);
        free(idx);
    }
    splits_free(t);
}

static void test_fit_seeds(void **state) {
    (void)state;
    assert_true(splits_fit_seed(42, 0) == splits_fit_seed(42, 0));
    assert_true(splits_fit_seed(42, 0) != splits_fit_seed(42, 1));
    assert_true(splits_fit_seed(42, 0) != splits_fit_seed(43, 0));
}

static void test_save_load(void **state) {
    (void)state;
    split_table *a = make(0.2, 0.5, 42), *b = NULL;
    char path[] = "/tmp/vs_splits_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    vs_error err;
    assert_int_equal(splits_save(a, path, &err), VS_OK);
    assert_int_equal(splits_load(path, &b, &err), VS_OK);
    assert_int_equal(b->n, a->n);
    assert_true(b->seed == 42 && b->dev_share == 0.2 && b->test_share == 0.5);
    assert_memory_equal(a->patient, b->patient, sizeof *a->patient * N);
    assert_memory_equal(a->positive, b->positive, N);
    assert_memory_equal(a->role, b->role, N);
    splits_free(b);
    /* a k-fold file of version 1 is refused with what to do */
    FILE *f = fopen(path, "w");
    fputs("# vesalius splits v1 k=5 seed=1 "
          "val_fraction=0.2\npatient,positive,fold,validation_folds\n",
          f);
    fclose(f);
    assert_int_equal(splits_load(path, &b, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "rerun `vesalius split`"));
    /* a bad role names its line */
    f = fopen(path, "w");
    fputs("# vesalius splits v2 seed=1 dev_share=0.2 "
          "test_share=0.5\npatient,positive,role\nA,1,test\nB,0,validate\n",
          f);
    fclose(f);
    assert_int_equal(splits_load(path, &b, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 4"));
    unlink(path);
    splits_free(a);
}

int main(void) {
    make_cohort();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_follow_the_rounding),
        cmocka_unit_test(test_deterministic_and_order_free),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_budgets_nested_and_stratified),
        cmocka_unit_test(test_small_class),
        cmocka_unit_test(test_fit_seeds),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
