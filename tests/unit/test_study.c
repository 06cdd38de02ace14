/* test_study — study files: the commented example loads, defaults apply, and every kind of
 * mistake gives one message naming the file, the line and the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "study.h"

static char tmpdir[256];

static const char *write_yaml(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_example_loads(void **state) {
    (void)state;
    const char *src = getenv("VESALIUS_SRC");
    assert_non_null(src);
    char path[512];
    snprintf(path, sizeof path, "%s/studies/example.yaml", src);
    study *s = NULL;
    vs_error err = {0};
    vs_status st = study_load(path, &s, &err);
    if (st != VS_OK) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, VS_OK);
    assert_string_equal(s->name, "chest-ct-2026");
    assert_int_equal(s->ingest.sources_count, 1);
    assert_string_equal(s->ingest.sources[0], "/archive/dicom");
    assert_int_equal(s->pretrain.crop[2], 96);
    assert_true(s->pretrain.lr == 0.00015);
    assert_int_equal(s->pretrain.working_set, 8);
    assert_int_equal(s->pretrain.swap_every, 256);
    assert_int_equal(s->finetune.mode, STUDY_TUNE_FINETUNE);
    assert_int_equal(s->validate.operating_points_count, 1);
    assert_null(s->deid.linkage);
    study_free(s);
}

static void test_defaults_and_relative_paths(void **state) {
    (void)state;
    const char *p = write_yaml("min.yaml", "name: tiny\noutput: out\ningest:\n  sources: [dicom]\n"
                                           "pretrain:\n  crop: [1, 224, 224]\n  patch: [1, 16, 16]\n");
    study *s = NULL;
    vs_error err = {0};
    assert_int_equal(study_load(p, &s, &err), VS_OK);
    assert_int_equal(s->seed, 1);
    assert_int_equal(s->pretrain.dim, 192);
    assert_true(s->pretrain.mask_ratio == 0.75);
    assert_int_equal(s->pretrain.crop[0], 1);
    assert_int_equal(s->pretrain.working_set, 8); /* the working-set sampler by default */
    assert_int_equal(s->pretrain.swap_every, 256);
    assert_int_equal(s->pretrain.chunk_cache_mb, 0);
    assert_int_equal(s->shards.chunk[1], 32);
    assert_int_equal(s->finetune.folds, 5);
    assert_int_equal(s->validate.bootstrap, 1000);
    assert_true(s->validate.operating_points[0] == 0.5);
    assert_true(s->preprocess.ct_window[0] == -1000 && s->preprocess.ct_window[1] == 1000);
    char want[600];
    snprintf(want, sizeof want, "%s/out", tmpdir);
    assert_string_equal(s->output, want);
    snprintf(want, sizeof want, "%s/dicom", tmpdir);
    assert_string_equal(s->ingest.sources[0], want);
    study_free(s);
}

/* load TEXT and expect failure with a message containing each of the needles */
static void expect_error(const char *text, const char *needle1, const char *needle2) {
    const char *p = write_yaml("bad.yaml", text);
    study *s = NULL;
    vs_error err = {0};
    vs_status st = study_load(p, &s, &err);
    fprintf(stderr, "  message: %s\n", err.msg);
    assert_int_equal(st, VS_ERR_CONFIG);
    assert_null(s);
    assert_non_null(strstr(err.msg, "bad.yaml:"));
    assert_non_null(strstr(err.msg, needle1));
    if (needle2) assert_non_null(strstr(err.msg, needle2));
    assert_null(strchr(err.msg, '\n'));
}

static void test_unknown_key(void **state) {
    (void)state;
    expect_error("name: x\noutput: o\npretrain:\n  dim: 96\n  stpes: 10\n", "bad.yaml:5:",
                 "key 'pretrain.stpes': unknown key");
    expect_error("name: x\noutput: o\nfrobnicate: 1\n", "bad.yaml:3:", "key 'frobnicate'");
}

static void test_wrong_type(void **state) {
    (void)state;
    expect_error("name: x\noutput: o\nseed: 3\npretrain:\n  lr: fast\n", "bad.yaml:5:", "key 'pretrain.lr'");
    expect_error("name: x\noutput: o\nfinetune:\n  mode: sometimes\n", "bad.yaml:4:", "key 'finetune.mode'");
    expect_error("name: x\noutput: o\npretrain:\n  crop: [1, 2]\n", "bad.yaml:4:", "pretrain.crop");
}

static void test_out_of_range(void **state) {
    (void)state;
    expect_error("name: x\noutput: o\n\npretrain:\n  mask_ratio: 1.5\n", "bad.yaml:5:",
                 "key 'pretrain.mask_ratio': value 1.5 is outside");
    expect_error("name: x\noutput: o\npretrain:\n  swap_every: 0\n", "bad.yaml:4:",
                 "key 'pretrain.swap_every': value 0 is outside");
    expect_error("name: x\noutput: o\nshards:\n  deflate: 12\n", "bad.yaml:4:", "shards.deflate");
    expect_error("name: x\noutput: o\npretrain:\n  crop: [96, 96, 96]\n  patch: [16, 10, 16]\n",
                 "bad.yaml:5:", "does not divide");
    expect_error("name: x\noutput: o\nvalidate:\n  operating_points: [0.2, 1.2]\n", "bad.yaml:4:",
                 "operating_points");
}

static void test_missing_required_and_file(void **state) {
    (void)state;
    expect_error("output: o\n", "key 'name': required key is missing", NULL);
    expect_error("name: x\noutput: o\ningest:\n  sources: [\"\"]\n", "bad.yaml:4:", "ingest.sources");
    study *s = NULL;
    vs_error err = {0};
    assert_int_equal(study_load("/nonexistent/study.yaml", &s, &err), VS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "/nonexistent/study.yaml"));
}

static void test_key_line(void **state) {
    (void)state;
    const char *p = write_yaml("lines.yaml", "name: x\n# comment\noutput: o\npretrain:\n  crop: [8, 8, 8]\n"
                                             "  lr: 0.1\nfinetune:\n  lr: 0.2\n");
    assert_int_equal(study_key_line(p, "output"), 3);
    assert_int_equal(study_key_line(p, "pretrain.crop"), 5);
    assert_int_equal(study_key_line(p, "pretrain.lr"), 6);
    assert_int_equal(study_key_line(p, "finetune.lr"), 8);
    assert_int_equal(study_key_line(p, "lr"), 0);
    assert_int_equal(study_key_line(p, "validate.bootstrap"), 0);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vs_study_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),     cmocka_unit_test(test_defaults_and_relative_paths),
        cmocka_unit_test(test_unknown_key),       cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),      cmocka_unit_test(test_missing_required_and_file),
        cmocka_unit_test(test_key_line),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
