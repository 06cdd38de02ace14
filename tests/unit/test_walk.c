/* test_walk — the one walk every command uses (io/base walk.h): order, hidden entries, links
 * to files and folders followed once, loops cut, broken links reported, special files left
 * out; against the list the rule gives for a tree built here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "walk.h"

static char root[256], other[256];

typedef struct seen {
    char lines[64][512];
    int n;
} seen;

static vs_status record(void *ctx, const char *path, int errno_, vs_error *err) {
    (void)err;
    seen *s = ctx;
    if (s->n < 64)
        snprintf(s->lines[s->n++], sizeof s->lines[0], "%s%s", path,
                 errno_ == ENOENT ? " ENOENT"
                 : errno_         ? " ERR"
                                  : "");
    return VS_OK;
}

static void touch(const char *rel) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(rel, f);
    fclose(f);
}

static void link_to(const char *target, const char *rel) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/vs_walk_XXXXXX");
    snprintf(other, sizeof other, "/tmp/vs_walk_other_XXXXXX");
    if (!mkdtemp(root) || !mkdtemp(other)) return -1;
    char p[600];
    snprintf(p, sizeof p, "%s/y1", other);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fclose(f);
    snprintf(p, sizeof p, "%s/a", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/.hdir", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/c", root), mkdir(p, 0755);
    touch("a/x1");
    touch(".hdir/h1");
    touch(".hidden");
    touch("b.dcm");
    link_to("a", "link_to_a");          /* a folder walked already */
    link_to("..", "a/link_up");         /* a loop */
    link_to("../b.dcm", "c/link_file"); /* a file given already */
    link_to(other, "d");                /* a folder elsewhere: walked */
    link_to("nowhere", "broken");       /* leads nowhere */
    snprintf(p, sizeof p, "%s/fifo", root);
    return mkfifo(p, 0644);
}

static int teardown(void **state) {
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", root, other);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_rule(void **state) {
    (void)state;
    seen s = {.n = 0};
    vs_error err;
    const char *paths[] = {root};
    assert_int_equal(vs_walk(paths, 1, record, &s, &err), VS_OK);
    char want[8][512];
    snprintf(want[0], 512, "%s/.hdir/h1", root);
    snprintf(want[1], 512, "%s/.hidden", root);
    snprintf(want[2], 512, "%s/a/x1", root);
    snprintf(want[3], 512, "%s/b.dcm", root);
    snprintf(want[4], 512, "%s/broken ENOENT", root);
    snprintf(want[5], 512, "%s/d/y1", root);
    for (int i = 0; i < s.n; i++)
        fprintf(stderr, "  %s\n", s.lines[i]);
    assert_int_equal(s.n, 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(s.lines[i], want[i]);
}

static void test_arguments_in_order_each_file_once(void **state) {
    (void)state;
    seen s = {.n = 0};
    vs_error err;
    char first[600];
    snprintf(first, sizeof first, "%s/c/link_file", root); /* b.dcm, by a link, first */
    const char *paths[] = {first, root};
    assert_int_equal(vs_walk(paths, 2, record, &s, &err), VS_OK);
    for (int i = 0; i < s.n; i++)
        fprintf(stderr, "  %s\n", s.lines[i]);
    assert_int_equal(s.n, 6); /* link_file, .hdir/h1, .hidden, a/x1, broken, d/y1 */
    assert_string_equal(s.lines[0], first);
    for (int i = 1; i < s.n; i++)
        assert_null(strstr(s.lines[i], "b.dcm")); /* not again */
}

static void test_missing_argument(void **state) {
    (void)state;
    seen s = {.n = 0};
    vs_error err = {0};
    const char *paths[] = {"/nonexistent/vs_walk"};
    assert_int_equal(vs_walk(paths, 1, record, &s, &err), VS_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/vs_walk"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_arguments_in_order_each_file_once),
        cmocka_unit_test(test_missing_argument),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
