/* test_pacs_url — PACS URLs and settings (io/pacs/pacs.h): what parses, into what, and that
 * every malformed URL, window or AE title is refused with a message naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pacs.h"

static void test_good_urls(void **state) {
    (void)state;
    pacs_url u;
    vs_error err = {0};
    assert_int_equal(
        pacs_url_parse("pacs://PACS_AET@pacs.example.org:104?modality=CT,MR&since=20180101", &u,
                       &err),
        VS_OK);
    assert_string_equal(u.aet, "PACS_AET");
    assert_string_equal(u.host, "pacs.example.org");
    assert_int_equal(u.port, 104);
    assert_int_equal(u.n_modalities, 2);
    assert_string_equal(u.modalities[1], "MR");
    assert_string_equal(u.since, "20180101");
    assert_string_equal(u.until, "");
    assert_string_equal(u.name, "pacs://PACS_AET@pacs.example.org:104");
    assert_int_equal(pacs_url_parse("pacs://A@[::1]:11112/?until=20200131", &u, &err), VS_OK);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.until, "20200131");
    assert_int_equal(u.n_modalities, 0);
    assert_true(pacs_url_is("PACS:whatever"));
    assert_false(pacs_url_is("/archive/pacs://x"));
}

static void test_bad_urls(void **state) {
    (void)state;
    static const char *const bad[] = {
        "pacs://host:104",
        "pacs://A@host",
        "pacs://A@host:0",
        "pacs://A@host:65536",
        "pacs://A@host:12x",
        "pacs://@host:104",
        "pacs://A@:104",
        "pacs://A@ho st:104",
        "pacs://A@host:104/x",
        "pacs://A@host:104?since",
        "pacs://A@host:104?since=20181301",
        "pacs://A@host:104?modality=C-T",
        "pacs://A@host:104?since=20200101&until=20190101",
        "pacs://A@host:104?x=1",
        "pacs://ABCDEFGHIJKLMNOPQ@host:104",
        "pacs:/A@host:104",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pacs_url u;
        vs_error err = {0};
        assert_int_equal(pacs_url_parse(bad[i], &u, &err), VS_ERR_USAGE);
        assert_non_null(strstr(err.msg, bad[i])); /* the message names the URL */
    }
}

static void test_window_and_checks(void **state) {
    (void)state;
    int a = -1, b = -1;
    vs_error err = {0};
    assert_int_equal(pacs_window_parse("22:30-06:00", &a, &b, &err), VS_OK);
    assert_int_equal(a, 22 * 60 + 30);
    assert_int_equal(b, 6 * 60);
    assert_int_equal(pacs_window_parse("", &a, &b, &err), VS_OK);
    assert_int_equal(a, b); /* any time */
    static const char *const bad[] = {"6:00-7:00",   "10:00-10:00", "24:00-01:00",
                                      "10:60-11:00", "10:00 11:00", "10:00-11:00x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pacs_window_parse(bad[i], &a, &b, &err), VS_ERR_CONFIG);
        assert_non_null(strstr(err.msg, bad[i]));
    }
    pacs_options o;
    memset(&o, 0, sizeof o);
    strcpy(o.calling_aet, "VESALIUS");
    assert_int_equal(pacs_options_check(&o, &err), VS_OK);
    strcpy(o.calling_aet, "A\\B");
    assert_int_equal(pacs_options_check(&o, &err), VS_ERR_CONFIG);
    strcpy(o.calling_aet, "   ");
    assert_int_equal(pacs_options_check(&o, &err), VS_ERR_CONFIG);
    strcpy(o.calling_aet, "VESALIUS");
    strcpy(o.tls_key, "k.pem");
    assert_int_equal(pacs_options_check(&o, &err), VS_ERR_CONFIG); /* a key without tls_ca */
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_good_urls),
                                       cmocka_unit_test(test_bad_urls),
                                       cmocka_unit_test(test_window_and_checks)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
