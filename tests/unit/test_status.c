/* test_status — the error convention (status.h invariants 1-3) and size arithmetic; invariant 1
 * (success leaves the record alone) on the base library's own functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsdir.h"
#include "status.h"
#include "walk.h"

static vs_status fails_with_format(vs_error *err, const char *path) {
    return VS_FAIL(err, VS_ERR_FORMAT, "%s: truncated\nafter 12 bytes", path);
}

static vs_status count_file(void *ctx, const char *path, int errno_, vs_error *err) {
    (void)path, (void)errno_, (void)err;
    ++*(int *)ctx;
    return VS_OK;
}

static void test_set_fills_record(void **state) {
    (void)state;
    vs_error err;
    vs_error_clear(&err);
    vs_status s = fails_with_format(&err, "a.dcm");
    assert_int_equal(s, VS_ERR_FORMAT);
    assert_int_equal(err.code, VS_ERR_FORMAT);
    assert_string_equal(err.msg, "a.dcm: truncated after 12 bytes"); /* one line */
    assert_non_null(strstr(err.src_file, "test_status.c"));
    assert_true(err.src_line > 0);
}

/* Invariant 1 on real calls that succeed: folders made, a file written durably, a walk. */
static void test_ok_leaves_record(void **state) {
    (void)state;
    char dir[64], sub[128], file[160];
    snprintf(dir, sizeof dir, "/tmp/vs_status_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    snprintf(file, sizeof file, "%s/f.txt", sub);
    vs_error err;
    VS_FAIL(&err, VS_ERR_IO, "earlier");
    int src_line = err.src_line, n = 0;
    const char *walk_from = dir;
    assert_int_equal(vs_mkdirs(sub, 0755, &err), VS_OK);
    assert_int_equal(vs_mkdirs(sub, 0755, &err), VS_OK); /* exists already */
    assert_int_equal(vs_write_file_atomic(file, "x", 1, &err), VS_OK);
    assert_int_equal(vs_walk(&walk_from, 1, count_file, &n, &err), VS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(err.msg, "earlier");
    assert_int_equal(err.code, VS_ERR_IO);
    assert_int_equal(err.src_line, src_line);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_null_record_and_prefix(void **state) {
    (void)state;
    assert_int_equal(VS_FAIL(NULL, VS_ERR_NOMEM, "x"), VS_ERR_NOMEM);
    vs_error err;
    VS_FAIL(&err, VS_ERR_LIBRARY, "H5Dcreate2 failed");
    assert_int_equal(vs_error_prefix(&err, "writing %s", "s.h5"), VS_ERR_LIBRARY);
    assert_string_equal(err.msg, "writing s.h5: H5Dcreate2 failed");
}

static void test_long_message_truncated(void **state) {
    (void)state;
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    vs_error err;
    VS_FAIL(&err, VS_ERR_IO, "%s", big);
    assert_int_equal(strlen(err.msg), VS_ERROR_MSG_MAX - 1);
}

static void test_status_names(void **state) {
    (void)state;
    for (int s = 0; s < VS_STATUS_COUNT; s++) {
        assert_non_null(vs_status_name((vs_status)s));
        assert_string_not_equal(vs_status_name((vs_status)s), "unknown");
    }
    assert_string_equal(vs_status_name((vs_status)999), "unknown");
    assert_string_equal(vs_status_name(VS_ERR_FORMAT), "format");
}

static void test_size_arith(void **state) {
    (void)state;
    size_t out = 7;
    assert_true(vs_size_mul(1u << 20, 1u << 10, &out));
    assert_int_equal(out, (size_t)1 << 30);
    out = 7;
    assert_false(vs_size_mul(SIZE_MAX / 2 + 1, 2, &out));
    assert_int_equal(out, 7);
    assert_false(vs_size_add(SIZE_MAX, 1, &out));
    assert_true(vs_size_add(1, 2, &out));
    assert_int_equal(out, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_fills_record),
        cmocka_unit_test(test_ok_leaves_record),
        cmocka_unit_test(test_null_record_and_prefix),
        cmocka_unit_test(test_long_message_truncated),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_size_arith),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
