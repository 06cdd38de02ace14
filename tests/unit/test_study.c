/* test_study — study files: the commented example loads and shows every key of the tables
 * with its default, defaults apply, an option and a study file parse a value alike, resolved
 * settings record files by content and the key by a fingerprint, and every kind of mistake
 * gives one message naming the file, the line and the key; studies/demo/full.yaml differs from
 * the demo study only in its output folder and fine-tuning recipe, ensemble.yaml from full.yaml
 * only in its output, ensembles and arms. */
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
    assert_string_equal(s->top.name, "chest-ct-2026");
    assert_int_equal(s->ingest.sources.n, 1);
    assert_string_equal(s->ingest.sources.v[0], "/archive/dicom");
    assert_int_equal(s->pretrain.crop[2], 64);
    assert_true(s->pretrain.lr == 0.00015);
    assert_int_equal(s->pretrain.working_set, 8);
    assert_int_equal(s->pretrain.swap_every, 256);
    assert_int_equal(s->finetune.mode, STUDY_TUNE_FINETUNE);
    assert_int_equal(s->validate.operating_points.n, 1);
    assert_null(s->deid.linkage);
    study_free(s);
}

static void test_defaults_and_relative_paths(void **state) {
    (void)state;
    const char *p =
        write_yaml("min.yaml", "name: tiny\noutput: out\ningest:\n  sources: [dicom]\n"
                               "pretrain:\n  crop: [1, 224, 224]\n  patch: [1, 16, 16]\n");
    study *s = NULL;
    vs_error err = {0};
    assert_int_equal(study_load(p, &s, &err), VS_OK);
    assert_int_equal(s->top.seed, 1);
    assert_int_equal(s->pretrain.dim, 192);
    assert_true(s->pretrain.mask_ratio == 0.75);
    assert_int_equal(s->pretrain.crop[0], 1);
    assert_int_equal(s->pretrain.working_set, 8); /* the working-set sampler by default */
    assert_int_equal(s->pretrain.swap_every, 256);
    assert_int_equal(s->pretrain.chunk_cache_mb, 0);
    assert_int_equal(s->shards.chunk[1], 32);
    assert_int_equal(s->finetune.seeds, 3);
    assert_int_equal(s->finetune.budgets.n, 3); /* nested label budgets 10, 20, 40 */
    assert_int_equal(s->finetune.budgets.v[0], 10);
    assert_int_equal(s->finetune.budgets.v[2], 40);
    assert_int_equal(s->validate.bootstrap, 1000);
    assert_true(s->validate.operating_points.v[0] == 0.5);
    assert_true(s->preprocess.ct_window[0] == -1000 && s->preprocess.ct_window[1] == 1000);
    char want[600];
    snprintf(want, sizeof want, "%s/out", tmpdir);
    assert_string_equal(s->top.output, want);
    snprintf(want, sizeof want, "%s/dicom", tmpdir);
    assert_string_equal(s->ingest.sources.v[0], want);
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
    expect_error("name: x\noutput: o\npretrain:\n  dim: 96\n  stpes: 10\n",
                 "bad.yaml:5:", "key 'pretrain.stpes': unknown key");
    expect_error("name: x\noutput: o\nfrobnicate: 1\n", "bad.yaml:3:", "key 'frobnicate'");
}

static void test_wrong_type(void **state) {
    (void)state;
    expect_error("name: x\noutput: o\nseed: 3\npretrain:\n  lr: fast\n",
                 "bad.yaml:5:", "key 'pretrain.lr'");
    expect_error("name: x\noutput: o\nfinetune:\n  mode: sometimes\n",
                 "bad.yaml:4:", "key 'finetune.mode'");
    expect_error("name: x\noutput: o\npretrain:\n  crop: [1, 2]\n", "bad.yaml:4:", "pretrain.crop");
    expect_error("name: x\noutput: o\nfinetune:\n  budgets: [10, 20.5]\n",
                 "bad.yaml:4:", "'20.5' is not a whole number");
    expect_error("name: x\noutput: o\nfinetune:\n  budgets: [10, -1]\n",
                 "bad.yaml:4:", "finetune.budgets");
}

static void test_out_of_range(void **state) {
    (void)state;
    expect_error("name: x\noutput: o\n\npretrain:\n  mask_ratio: 1.5\n",
                 "bad.yaml:5:", "key 'pretrain.mask_ratio': value 1.5 is outside");
    expect_error("name: x\noutput: o\npretrain:\n  swap_every: 0\n",
                 "bad.yaml:4:", "key 'pretrain.swap_every': value 0 is outside");
    expect_error("name: x\noutput: o\nshards:\n  deflate: 12\n", "bad.yaml:4:", "shards.deflate");
    expect_error("name: x\noutput: o\npretrain:\n  crop: [96, 96, 96]\n  patch: [16, 10, 16]\n",
                 "bad.yaml:5:", "does not divide");
    expect_error("name: x\noutput: o\nvalidate:\n  operating_points: [0.2, 1.2]\n",
                 "bad.yaml:4:", "operating_points");
}

static void test_missing_required_and_file(void **state) {
    (void)state;
    expect_error("output: o\n", "key 'name': required key is missing", NULL);
    expect_error("name: x\noutput: o\ningest:\n  sources: [\"\"]\n",
                 "bad.yaml:4:", "ingest.sources");
    study *s = NULL;
    vs_error err = {0};
    assert_int_equal(study_load("/nonexistent/study.yaml", &s, &err), VS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "/nonexistent/study.yaml"));
}

static void test_key_line(void **state) {
    (void)state;
    const char *p =
        write_yaml("lines.yaml", "name: x\n# comment\noutput: o\npretrain:\n  crop: [8, 8, 8]\n"
                                 "  lr: 0.1\nfinetune:\n  lr: 0.2\n");
    assert_int_equal(study_key_line(p, "output"), 3);
    assert_int_equal(study_key_line(p, "pretrain.crop"), 5);
    assert_int_equal(study_key_line(p, "pretrain.lr"), 6);
    assert_int_equal(study_key_line(p, "finetune.lr"), 8);
    assert_int_equal(study_key_line(p, "lr"), 0);
    assert_int_equal(study_key_line(p, "validate.bootstrap"), 0);
}

/* The pacs section: values as rows of the table, relative paths resolved, PACS URLs among the
 * sources left as they are, unknown pacs keys refused. */
static void test_pacs_section(void **state) {
    (void)state;
    const char *p = write_yaml("pacs.yaml", "name: p\noutput: out\ningest:\n  sources: "
                                            "[\"pacs://PACS@h:104?modality=CT,MR\", dicom]\n"
                                            "pacs:\n  retrieve: move\n  retries: 2\n  spool: sp\n");
    study *s = NULL;
    vs_error err = {0};
    assert_int_equal(study_load(p, &s, &err), VS_OK);
    assert_string_equal(s->ingest.sources.v[0], "pacs://PACS@h:104?modality=CT,MR");
    assert_true(s->ingest.sources.v[1][0] == '/'); /* a folder: made absolute */
    assert_int_equal(s->pacs.retrieve, 1);
    assert_int_equal(s->pacs.retries, 2);
    assert_non_null(strstr(s->pacs.spool, "/sp"));
    assert_string_equal(s->pacs.calling_aet, "VESALIUS");
    study_free(s);
    p = write_yaml("pacs2.yaml", "name: p\noutput: out\npacs:\n  colour: red\n");
    assert_int_not_equal(study_load(p, &s, &err), VS_OK);
    p = write_yaml("pacs3.yaml", "name: p\noutput: out\npacs:\n  retries: 101\n");
    assert_int_not_equal(study_load(p, &s, &err), VS_OK);
    assert_non_null(strstr(err.msg, "pacs.retries"));
}

/* studies/example.yaml shows every row: a key with a default set to it, a key without one at
 * least as a comment. */
static void test_example_shows_every_key(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/studies/example.yaml", getenv("VESALIUS_SRC"));
    study *ex = NULL, *def = NULL;
    vs_error err = {0};
    assert_int_equal(study_load(path, &ex, &err), VS_OK);
    assert_int_equal(study_defaults(&def, &err), VS_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[65536];
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    int bad = 0;
    for (int i = 0; i < STUDY_N_KEYS; i++) {
        const study_setting *r = &study_settings[i];
        const char *name = strrchr(r->key, '.') ? strrchr(r->key, '.') + 1 : r->key;
        char needle[80];
        snprintf(needle, sizeof needle, "%s:", name);
        if (!r->def || !r->def[0]) {
            if (!strstr(text, needle)) fprintf(stderr, "  example.yaml lacks %s\n", r->key), bad++;
            continue;
        }
        char *a = NULL, *b = NULL;
        assert_int_equal(study_value(ex, r, &a, &err), VS_OK);
        assert_int_equal(study_value(def, r, &b, &err), VS_OK);
        if (!study_key_line(path, r->key) || strcmp(a, b) != 0)
            fprintf(stderr, "  example.yaml: %s is '%s', its default '%s'\n", r->key, a, b), bad++;
        free(a), free(b);
    }
    study_free(ex), study_free(def);
    assert_int_equal(bad, 0);
}

/* Study b of studies/demo loads and differs from study a of studies/demo only in the keys
 * named in changed (every one of them), so the two runs share the cohort, the key, the split and
 * the pretraining. */
static void differs_only(const char *a_name, const char *b_name, const char *const *changed,
                         int n_changed) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/studies/demo/%s", getenv("VESALIUS_SRC"), a_name);
    snprintf(b, sizeof b, "%s/studies/demo/%s", getenv("VESALIUS_SRC"), b_name);
    study *x_st = NULL, *y_st = NULL;
    vs_error err = {0};
    assert_int_equal(study_load(a, &x_st, &err), VS_OK);
    assert_int_equal(study_load(b, &y_st, &err), VS_OK);
    int differ = 0, bad = 0;
    for (int i = 0; i < STUDY_N_KEYS; i++) {
        const study_setting *r = &study_settings[i];
        char *x = NULL, *y = NULL;
        assert_int_equal(study_value(x_st, r, &x, &err), VS_OK);
        assert_int_equal(study_value(y_st, r, &y, &err), VS_OK);
        int allowed = 0;
        for (int k = 0; k < n_changed; k++)
            allowed |= !strcmp(r->key, changed[k]);
        const char *u = x ? x : "", *v = y ? y : "";
        if (strcmp(u, v) != 0) {
            differ++;
            if (!allowed)
                fprintf(stderr, "  %s changes %s: %s -> %s\n", b_name, r->key, u, v), bad++;
        }
        free(x), free(y);
    }
    study_free(x_st), study_free(y_st);
    assert_int_equal(bad, 0);
    assert_int_equal(differ, n_changed);
}

/* studies/demo/full.yaml is the demo study with the detector's full recipe; ensemble.yaml is
 * full.yaml with ensembles of 3 detectors per fit, the MAE arm alone. */
static void test_demo_full_differs_only_in_recipe(void **state) {
    (void)state;
    static const char *const full[] = {"output", "finetune.steps", "finetune.width",
                                       "finetune.mine_every"};
    differs_only("demo.yaml", "full.yaml", full, 4);
    static const char *const ens[] = {"output", "finetune.members", "finetune.scratch_baseline"};
    differs_only("full.yaml", "ensemble.yaml", ens, 3);
}

/* Invariant 2: every value of the example set as an option gives the same text as loaded. */
static void test_options_parse_like_files(void **state) {
    (void)state;
    const char *p =
        write_yaml("values.yaml",
                   "name: x\noutput: o\nseed: 12\nthreads: 3\npretrain:\n  crop: [8, 16, 32]\n"
                   "  patch: 8\n  lr: 0.002\n  flips: no\n  target: plain\n  modalities: [MR]\n"
                   "preprocess:\n  ct_window: [-20, 180]\n  spacing: [1.5, 1.5, 2]\n"
                   "validate:\n  operating_points: [0.25, 0.5]\nfinetune:\n  window: [0, 1e3]\n");
    study *file = NULL, *opt = NULL;
    vs_error err = {0};
    assert_int_equal(study_load(p, &file, &err), VS_OK);
    assert_int_equal(study_defaults(&opt, &err), VS_OK);
    static const char *const set[][2] = {{"seed", "12"},
                                         {"threads", "3"},
                                         {"pretrain.crop", "8,16,32"},
                                         {"pretrain.patch", "8"},
                                         {"pretrain.lr", "0.002"},
                                         {"pretrain.flips", "no"},
                                         {"pretrain.target", "plain"},
                                         {"pretrain.modalities", "MR"},
                                         {"preprocess.ct_window", "-20,180"},
                                         {"preprocess.spacing", "1.5,1.5,2"},
                                         {"validate.operating_points", "0.25,0.5"},
                                         {"finetune.window", "0,1e3"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        assert_int_equal(study_set(opt, study_setting_find(set[i][0]), set[i][1], 0, &err), VS_OK);
    assert_int_equal(study_check(opt, &err), VS_OK);
    for (int i = 0; i < STUDY_N_KEYS; i++) {
        if (study_settings[i].kind == STUDY_TEXT || study_settings[i].kind == STUDY_PATH) continue;
        char *a = NULL, *b = NULL;
        assert_int_equal(study_value(file, &study_settings[i], &a, &err), VS_OK);
        assert_int_equal(study_value(opt, &study_settings[i], &b, &err), VS_OK);
        if (strcmp(a, b))
            fprintf(stderr, "  %s: file '%s', option '%s'\n", study_settings[i].key, a, b);
        assert_string_equal(a, b);
        free(a), free(b);
    }
    /* a value out of range or of the wrong form names the option */
    assert_int_equal(study_set(opt, study_setting_find("pretrain.mask_ratio"), "1.5", 0, &err),
                     VS_ERR_USAGE);
    assert_non_null(strstr(err.msg, "option --mask-ratio: value 1.5 is outside"));
    assert_int_equal(study_set(opt, study_setting_find("finetune.loss"), "hinge", 0, &err),
                     VS_ERR_USAGE);
    assert_non_null(strstr(err.msg, "option --loss: 'hinge' is not one of focal|bce"));
    assert_int_equal(study_set(opt, study_setting_find("pretrain.patch"), "5", 0, &err), VS_OK);
    assert_int_equal(study_check(opt, &err), VS_ERR_USAGE);
    assert_non_null(strstr(err.msg, "option --patch: patch 5 does not divide crop 8"));
    study_free(file), study_free(opt);
}

static const char *value_of(const study_kv *kv, const char *key) {
    for (int i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], key) == 0) return kv->value[i];
    return NULL;
}

/* Label files by content (a folder too), the key by a keyed fingerprint, each stage only the
 * keys it reads; the settings file reads back; a diff names what changed. */
static void test_resolve(void **state) {
    (void)state;
    char dir[600], cmd[1300];
    snprintf(dir, sizeof dir, "%s/res", tmpdir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/masks && printf 'a,1\\n' >%s/masks/m1 && printf 'b\\n' >%s/v.csv"
             " && printf '%%064x' 7 >%s/k1 && printf '%%064x' 8 >%s/k2 && chmod 600 %s/k1 %s/k2",
             dir, dir, dir, dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    char yaml[1200];
    snprintf(yaml, sizeof yaml,
             "name: x\noutput: o\ndeid:\n  key_file: res/k1\nlabels:\n  format: masks\n"
             "  file: res/masks\n  volumes: res/v.csv\n");
    study *s = NULL;
    vs_error err = {0};
    assert_int_equal(study_load(write_yaml("r.yaml", yaml), &s, &err), VS_OK);
    study_kv a, b, ing;
    assert_int_equal(study_resolve(s, ST_FT_MAE, &a, &err), VS_OK);
    assert_int_equal(study_resolve(s, ST_INGEST, &ing, &err), VS_OK);
    assert_non_null(value_of(&a, "finetune.steps"));
    assert_null(value_of(&a, "pretrain.dim"));     /* the mae arm's encoder: its checkpoint's */
    assert_null(value_of(&ing, "finetune.steps")); /* ingest reads none of fine-tuning's */
    assert_null(value_of(&a, "name"));
    const char *fp = value_of(&a, "deid.key_file");
    assert_non_null(fp);
    assert_int_equal(strncmp(fp, "keyed-sha256:", 13), 0);
    assert_null(strstr(fp, "0000000000000007"));
    assert_string_equal(fp, value_of(&ing, "deid.key_file"));
    assert_int_equal(strncmp(value_of(&a, "labels.file"), "sha256:", 7), 0);
    /* the settings file reads back as written */
    char path[700];
    snprintf(path, sizeof path, "%s/settings.json", dir);
    assert_int_equal(study_settings_write(path, "finetune-mae", &a, &err), VS_OK);
    study_kv back;
    assert_int_equal(study_kv_read(path, "settings", &back, &err), VS_OK);
    char diff[1024];
    assert_int_equal(study_kv_diff(&back, &a, diff, sizeof diff), 0);
    /* another key, a changed mask, another value */
    snprintf(cmd, sizeof cmd, "printf 'a,2\\n' >%s/masks/m1", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/k2", dir);
    assert_int_equal(study_set(s, study_setting_find("deid.key_file"), path, 0, &err), VS_OK);
    assert_int_equal(study_set(s, study_setting_find("finetune.steps"), "20", 0, &err), VS_OK);
    assert_int_equal(study_resolve(s, ST_FT_MAE, &b, &err), VS_OK);
    assert_int_equal(study_kv_diff(&a, &b, diff, sizeof diff), 3);
    fprintf(stderr, "  diff: %s\n", diff);
    assert_non_null(strstr(diff, "deid.key_file: another key"));
    assert_non_null(strstr(diff, "labels.file: content changed"));
    assert_non_null(strstr(diff, "finetune.steps: 2000 -> 20"));
    study_kv_free(&a), study_kv_free(&b), study_kv_free(&ing), study_kv_free(&back);
    study_free(s);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vs_study_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_defaults_and_relative_paths),
        cmocka_unit_test(test_pacs_section),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_missing_required_and_file),
        cmocka_unit_test(test_key_line),
        cmocka_unit_test(test_example_shows_every_key),
        cmocka_unit_test(test_demo_full_differs_only_in_recipe),
        cmocka_unit_test(test_options_parse_like_files),
        cmocka_unit_test(test_resolve),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
