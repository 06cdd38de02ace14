/* test_log — JSON lines are valid single-line objects, levels filter, progress formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "progress.h"

static char *capture(FILE *f) {
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *buf = calloc(1, (size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    return buf;
}

static void test_json_lines(void **state) {
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    log_config cfg = {LOG_INFO, 1, f, "ingest"};
    log_configure(&cfg);
    log_debug("dropped");
    log_warn("quote \" backslash \\ newline\n tab\t ctl\x01 end");
    const char *fields[] = {"path", "a/b.dcm", "reason", "truncated", NULL};
    log_event(LOG_ERROR, "ingest.reject", "rejected", fields);
    char *out = capture(f);
    /* exactly two lines, each one JSON object */
    int lines = 0;
    for (char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    assert_null(strstr(out, "dropped"));
    assert_non_null(strstr(out, "\"level\":\"warning\",\"component\":\"ingest\""));
    assert_non_null(strstr(out, "quote \\\" backslash \\\\ newline\\n tab\\t ctl\\u0001 end"));
    assert_non_null(strstr(out, "\"event\":\"ingest.reject\",\"msg\":\"rejected\",\"path\":\"a/"
                                "b.dcm\",\"reason\":\"truncated\"}"));
    assert_true(out[0] == '{');
    free(out);
    fclose(f);
}

static void test_human_lines(void **state) {
    (void)state;
    FILE *f = tmpfile();
    log_config cfg = {LOG_WARN, 0, f, "pretrain"};
    log_configure(&cfg);
    log_info("not shown");
    log_error("checkpoint %s unreadable", "c.ckpt");
    char *out = capture(f);
    assert_string_equal(out, "vesalius pretrain: error: checkpoint c.ckpt unreadable\n");
    free(out);
    fclose(f);
}

static void test_level_parse(void **state) {
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("warn"), LOG_WARN);
    assert_int_equal(log_level_parse("warning"), LOG_WARN);
    assert_int_equal(log_level_parse("quiet"), LOG_QUIET);
    assert_int_equal(log_level_parse("loud"), -1);
}

static void test_progress_format(void **state) {
    (void)state;
    progress p;
    progress_begin(&p, "ingest", 200, "files");
    p.t_start = 100.0;
    p.done = 50;
    char buf[256];
    progress_format(&p, 110.0, buf, sizeof buf);
    assert_string_equal(buf, "ingest [######..................] 50/200 5.0 files/s ETA 00:30");
    p.total = 0;
    progress_format(&p, 110.0, buf, sizeof buf);
    assert_string_equal(buf, "ingest 50 5.0 files/s");
    /* not a terminal under ctest: silent */
    assert_int_equal(p.active, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_human_lines),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_progress_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
