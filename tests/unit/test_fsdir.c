/* test_fsdir — durable files (io/base fsdir.h): a committed file replaces the old one whole,
 * an aborted or failed one leaves the old one as it was and no temporary file behind;
 * vs_commit_file does the same for a file another writer made. */
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

static char dir[256];

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void test_commit_and_abort(void **state) {
    (void)state;
    char path[512], tmp[600], buf[64];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    vs_error err;
    assert_int_equal(vs_write_file_atomic(path, "old", 3, &err), VS_OK);
    vs_atomic a;
    assert_int_equal(vs_atomic_open(&a, path, &err), VS_OK);
    fputs("half of a new", a.f);
    slurp(path, buf, sizeof buf); /* until committed, the old file */
    assert_string_equal(buf, "old");
    vs_atomic_abort(&a);
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "old");
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(vs_atomic_open(&a, path, &err), VS_OK);
    fputs("new", a.f);
    assert_int_equal(vs_atomic_commit(&a, &err), VS_OK);
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "new");
    assert_int_equal(access(tmp, F_OK), -1);
}

static void test_commit_file_and_failure(void **state) {
    (void)state;
    char path[512], tmp[600], buf[64];
    snprintf(path, sizeof path, "%s/b.txt", dir);
    snprintf(tmp, sizeof tmp, "%s/.b.42.tmp", dir);
    vs_error err;
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs("made by another writer", f);
    fclose(f);
    assert_int_equal(vs_commit_file(tmp, path, &err), VS_OK);
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "made by another writer");
    assert_int_equal(access(tmp, F_OK), -1);
    /* a final name that cannot be replaced (a folder): an error naming it, the temporary gone */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/folder", dir);
    assert_int_equal(vs_mkdirs(sub, 0755, &err), VS_OK);
    char inner[700];
    snprintf(inner, sizeof inner, "%s/x", sub);
    f = fopen(inner, "w");
    fclose(f);
    f = fopen(tmp, "w");
    fclose(f);
    assert_int_equal(vs_commit_file(tmp, sub, &err), VS_ERR_IO);
    assert_non_null(strstr(err.msg, sub));
    assert_int_equal(access(tmp, F_OK), -1);
    /* a temporary file that cannot be made: the error names it */
    char nowhere[600];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/folder/c.txt", dir);
    vs_atomic a;
    assert_int_equal(vs_atomic_open(&a, nowhere, &err), VS_ERR_IO);
    assert_non_null(strstr(err.msg, "c.txt.tmp"));
}

/* A batch renames a queued file only at a flush (when full, or asked); closing drops the rest. */
static void test_batch(void **state) {
    (void)state;
    char tmp[3][600], path[3][600], buf[64];
    vs_error err;
    for (int i = 0; i < 3; i++) {
        snprintf(tmp[i], sizeof tmp[i], "%s/.c%d.tmp", dir, i);
        snprintf(path[i], sizeof path[i], "%s/c%d.txt", dir, i);
        FILE *f = fopen(tmp[i], "w");
        assert_non_null(f);
        fprintf(f, "file %d", i);
        fclose(f);
    }
    vs_commit_batch *b = NULL;
    assert_int_equal(vs_commit_batch_open(&b, 2, &err), VS_OK);
    assert_int_equal(vs_commit_batch_add(b, tmp[0], path[0], &err), VS_OK);
    assert_int_equal(access(path[0], F_OK), -1); /* queued, not yet in place */
    assert_int_equal(vs_commit_batch_add(b, tmp[1], path[1], &err), VS_OK); /* full: flushed */
    slurp(path[0], buf, sizeof buf);
    assert_string_equal(buf, "file 0");
    slurp(path[1], buf, sizeof buf);
    assert_string_equal(buf, "file 1");
    assert_int_equal(vs_commit_batch_add(b, tmp[2], path[2], &err), VS_OK);
    assert_int_equal(access(path[2], F_OK), -1);
    vs_commit_batch_close(b); /* not flushed: dropped, temporary removed */
    assert_int_equal(access(path[2], F_OK), -1);
    assert_int_equal(access(tmp[2], F_OK), -1);
    assert_int_equal(access(tmp[0], F_OK), -1);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/vs_fsdir_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_and_abort),
        cmocka_unit_test(test_commit_file_and_failure),
        cmocka_unit_test(test_batch),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
