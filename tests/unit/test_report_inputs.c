/* test_report_inputs — the input forms of validation/FORMATS.md: CSV and JSON lines give the
 * same data, unknown columns are ignored, and every malformed input fails with one line naming
 * the file and the line (never a crash, never the refused value). */
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

#include "report.h"
#include "report_text.h"

static char g_dir[] = "/tmp/vs_inputs_XXXXXX";

static const char *put(const char *name, const char *text) {
    static char path[8][256];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return p;
}

static const char *LABELS = "series,label,x,y,z,diameter,irrelevant,patient,name\n"
                            "B.2,0,,,,,,P2,Jane Roe\n"
                            "A.1,1,10,20,-30,8,0,P1,John Doe\n"
                            "A.1,1,50,50,50,6,1,P1,John Doe\n"
                            "C.3,1,0,0,0,12,false,P1,x\n";

static void test_csv_and_jsonl_agree(void **state) {
    (void)state;
    report_input a, b;
    vs_error err;
    report_input_init(&a);
    report_input_init(&b);
    assert_int_equal(report_read_labels(&a, put("l.csv", LABELS), &err), VS_OK);
    assert_int_equal(a.n_series, 3);
    assert_string_equal(a.series[0].key, "A.1"); /* sorted by key */
    assert_int_equal(a.n_clusters, 2);
    assert_int_equal(a.series[0].cluster, a.series[2].cluster); /* A.1 and C.3: patient P1 */
    assert_int_equal(a.n_lesions, 3);
    assert_int_equal(a.lesions[1].irrelevant, 1);
    assert_int_equal(a.lesions[2].scan, 2);
    assert_int_equal(
        report_read_predictions(&a,
                                put("p.csv", "arm,series,fold,probability,x,y,z,physician\n"
                                             "mae,A.1,0,0.9,11,20,-30,Dr X\n"
                                             "mae,A.1,0,0.4,,,,Dr X\n"
                                             "mae,B.2,1,0.2,,,,Dr X\n"
                                             "mae,C.3,1,0.7,1,1,1,Dr X\n"),
                                &err),
        VS_OK);
    assert_int_equal(report_inputs_check(&a, &err), VS_OK);
    assert_true(a.runs[0].a.score[0] == 0.4); /* the volume row wins over the candidates */
    assert_true(a.runs[0].a.score[2] == 0.7); /* no volume row: the best candidate */
    assert_int_equal(
        report_read_labels(&b,
                           put("l.jsonl",
                               "{\"series\":\"B.2\",\"label\":0,\"patient\":\"P2\"}\n"
                               "{\"series\":\"A.1\",\"label\":\"1\",\"x\":10,\"y\":20,\"z\":-30,"
                               "\"diameter\":8,\"patient\":\"P1\",\"nested\":{\"k\":[1,\"}\"]}}\n"
                               "  {\"series\":\"A.1\",\"label\":1,\"x\":50,\"y\":50,\"z\":50,"
                               "\"diameter\":6,\"irrelevant\":true,\"patient\":\"P\\u0031\"}\n"
                               "{\"series\":\"C.3\",\"label\":1,\"x\":0,\"y\":0,\"z\":0,"
                               "\"diameter\":12,\"irrelevant\":null,\"patient\":\"P1\"}\n"),
                           &err),
        VS_OK);
    assert_int_equal(b.n_series, a.n_series);
    assert_int_equal(b.n_lesions, a.n_lesions);
    for (size_t i = 0; i < a.n_series; i++) {
        assert_string_equal(a.series[i].key, b.series[i].key);
        assert_string_equal(a.series[i].patient, b.series[i].patient);
        assert_int_equal(a.series[i].label, b.series[i].label);
    }
    for (size_t i = 0; i < a.n_lesions; i++)
        assert_memory_equal(&a.lesions[i], &b.lesions[i], sizeof a.lesions[i]);
    report_input_free(&a);
    report_input_free(&b);
}

/* One bad input: the error names the file and line and holds the wanted phrase. */
static void expect_bad_predictions(const char *text, const char *phrase) {
    report_input in;
    vs_error err;
    report_input_init(&in);
    assert_int_equal(report_read_labels(&in, put("l.csv", LABELS), &err), VS_OK);
    const char *p = put("bad.csv", text);
    vs_status s = report_read_predictions(&in, p, &err);
    if (s == VS_OK) s = report_inputs_check(&in, &err);
    assert_int_not_equal(s, VS_OK);
    if (!strstr(err.msg, phrase)) fail_msg("message '%s' lacks '%s'", err.msg, phrase);
    assert_null(strchr(err.msg, '\n'));
    report_input_free(&in);
}

static void test_bad_predictions(void **state) {
    (void)state;
    expect_bad_predictions("series,fold,arm,probability\nA.1,0,mae,1.5\n",
                           "bad.csv line 2: 'probability' must be a number in [0, 1]");
    expect_bad_predictions("series,fold,arm,probability\nA.1,0,mae,nan\n", "line 2");
    expect_bad_predictions("series,set,arm,probability\nA.1,test,mae,0.5\nA.1,dev,mae,0.5\n",
                           "line 3: series A.1 is in set dev here and test on an earlier line");
    expect_bad_predictions("series,set,arm,probability\nA.1,train,mae,0.5\n",
                           "line 2: 'set' must be test or dev");
    expect_bad_predictions("series,fold,arm,probability\nA.1,0,mae,0.5\nA.1,0,mae,0.6\n",
                           "line 3: a second volume row");
    expect_bad_predictions("series,fold,arm,probability,x,y,z\nA.1,0,mae,0.5,1,2,\n",
                           "line 2: a candidate needs numbers x, y and z");
    expect_bad_predictions("series,fold,arm,probability\nZ.9,0,mae,0.5\n",
                           "line 2: series Z.9 is not in the labels");
    expect_bad_predictions("series,fold,arm,probability\nA.1,0,mae\n",
                           "line 2: the number of fields differs");
    expect_bad_predictions("series,fold,arm,probability\n\"A.1\",0,mae,0.5\n",
                           "quoted fields are not supported");
    expect_bad_predictions("{\"series\":\"A.1\",\"fold\":0,\"arm\":\"mae\",\"probability\":0.5\n",
                           "bad.csv line 1: not a flat JSON object");
    expect_bad_predictions("{\"series\":\"A.1\",\"seed\":-1,\"arm\":\"mae\",\"probability\":0.5}\n",
                           "line 1: 'budget' and 'seed' must be whole numbers");
    expect_bad_predictions("series,fold,arm,probability\nA.1,0,mae,0.5\n",
                           "series B.2 is labeled but has no prediction row in arm mae, budget 0, "
                           "seed 0");
    /* pairing: a seed of one arm missing in the other */
    expect_bad_predictions("series,arm,seed,probability\nA.1,mae,0,0.5\nB.2,mae,0,0.5\nC.3,mae,0,"
                           "0.5\nA.1,mae,1,0.5\nB.2,mae,1,0.5\nC.3,mae,1,0.5\nA.1,scratch,0,0.5\n"
                           "B.2,scratch,0,0.5\nC.3,scratch,0,0.5\n",
                           "arm mae has seed 1 at budget 0 and arm scratch does not");
    /* the report is computed on test series: dev alone is refused */
    expect_bad_predictions("series,set,arm,probability\nA.1,dev,mae,0.5\nB.2,dev,mae,0.5\nC.3,"
                           "dev,mae,0.5\n",
                           "no labeled series is in the test set");
    expect_bad_predictions("", "the file is empty");
    expect_bad_predictions("series,fold,arm,probability\n", "no prediction rows");
}

static void test_bad_labels(void **state) {
    (void)state;
    static const struct {
        const char *text, *phrase;
    } cases[] = {
        {"series,label\nA.1,2\n", "line 2: 'label' must be 0 or 1"},
        {"series,label\nA.1,1\nA.1,0\n", "line 3: series A.1 has a different label"},
        {"series,label\nJohn Doe,1\n", "line 2: 'series' is missing or not a pseudonymous key"},
        {"series,label,x,y,z,diameter\nA.1,1,1,2,3,0\n", "line 2: a lesion needs a diameter > 0"},
        {"series,label,x,y,z,diameter\nA.1,1,1,2,,4\n", "line 2: a lesion needs numbers x, y"},
        {"series,label,irrelevant,x,y,z,diameter\nA.1,1,maybe,1,2,3,4\n", "'irrelevant' must be"},
        {"series,series\nA.1,1\n", "column 'series' appears twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        report_input in;
        vs_error err;
        report_input_init(&in);
        assert_int_not_equal(report_read_labels(&in, put("badl.csv", cases[i].text), &err), VS_OK);
        if (!strstr(err.msg, cases[i].phrase))
            fail_msg("message '%s' lacks '%s'", err.msg, cases[i].phrase);
        assert_null(strstr(err.msg, "Doe"));
        report_input_free(&in);
    }
    /* a NUL byte inside a line is refused, not truncated */
    char nul_path[256];
    snprintf(nul_path, sizeof nul_path, "%s/nul.csv", g_dir);
    FILE *f = fopen(nul_path, "wb");
    fwrite("series,label\nA.1,1\0x\n", 1, 22, f);
    fclose(f);
    report_input in;
    vs_error err;
    report_input_init(&in);
    assert_int_equal(report_read_labels(&in, nul_path, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 2: holds a NUL byte"));
    report_input_free(&in);
}

static void test_train_log_and_preview(void **state) {
    (void)state;
    report_input in;
    vs_error err;
    report_input_init(&in);
    const char *log =
        put("t.log", "{\"component\":\"finetune\",\"event\":\"start\",\"msg\":\"x\"}\n"
                     "{\"component\":\"finetune\",\"event\":\"train.step\",\"step\":\"1\","
                     "\"loss\":\"0.5\",\"msg\":\"Doe\"}\n"
                     "{\"event\":\"train.step\",\"step\":2,\"loss\":0.25}\n");
    assert_int_equal(report_read_train_log(&in, NULL, log, &err), VS_OK);
    assert_string_equal(in.curves[0].name, "finetune");
    assert_int_equal(in.curves[0].kind, REPORT_FINETUNE);
    assert_int_equal(in.curves[0].n, 2);
    assert_true(in.curves[0].loss[1] == 0.25);
    assert_int_equal(report_read_train_log(&in, "pretrain-a", log, &err), VS_OK);
    assert_int_equal(in.curves[1].kind, REPORT_PRETRAIN);
    assert_int_equal(report_read_train_log(&in, "bad name", log, &err), VS_ERR_USAGE);
    /* the trainer's own events (pretrain.step) are step events too */
    const char *mae_log = put("p.log", "{\"component\":\"pretrain\",\"event\":\"pretrain.step\","
                                       "\"step\":\"10\",\"loss\":\"0.9\"}\n");
    assert_int_equal(report_read_train_log(&in, NULL, mae_log, &err), VS_OK);
    const char *bad = put("b.log", "{\"event\":\"train.step\",\"step\":3}\n");
    assert_int_equal(report_read_train_log(&in, NULL, bad, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 1: a step event needs numeric 'step' and 'loss'"));
    assert_int_equal(report_read_train_log(&in, NULL, put("c.csv", "step,loss\n1,2\n"), &err),
                     VS_ERR_FORMAT);
    assert_int_equal(
        report_read_preview(&in, NULL, put("x.png", "not a png at all, clearly..."), &err),
        VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not a PNG file"));
    report_input_free(&in);
}

/* The one number format of report.json and the text reports. */
static void test_number_format(void **state) {
    (void)state;
    static const struct {
        double v;
        int json;
        const char *want;
    } cases[] = {
        {0.5, 1, "0.5"},
        {1.0, 1, "1.0"},
        {-0.0, 1, "0.0"},
        {-1e-12, 1, "0.0"},
        {1.0 / 3, 1, "0.3333333333"},
        {-2.25, 1, "-2.25"},
        {1e30, 1, "1000000000000000019884624838656.0"},
        {NAN, 1, "null"},
        {INFINITY, 1, "null"},
        {1.0 / 3, 0, "0.333"},
        {NAN, 0, "n/a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        report_text t = {0};
        report_text_num(&t, cases[i].v, cases[i].json);
        assert_string_equal(t.p, cases[i].want);
        report_text_free(&t);
    }
}

static int setup(void **state) {
    (void)state;
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_and_jsonl_agree), cmocka_unit_test(test_bad_predictions),
        cmocka_unit_test(test_bad_labels),          cmocka_unit_test(test_train_log_and_preview),
        cmocka_unit_test(test_number_format),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
