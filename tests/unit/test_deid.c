/* test_deid — the de-identification table and helpers of io/deid/deid.c against naive references:
 * table order and lookup (binary search vs a linear scan), combined codes resolved by type
 * with the stricter action when unknown, option precedence, date shifting (vs a day-by-day
 * calendar walk), UID forms, free-text cleaning, and the key file's permission rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deid_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char no_opts[DEID_N_OPTIONS] = {0};

static void test_table_sorted_and_found(void **state) {
    (void)state;
    assert_int_equal(deid_profile_n, 621);
    for (int i = 1; i < deid_profile_n_exact; i++)
        assert_true(deid_profile[i - 1].tag < deid_profile[i].tag);
    /* every exact row is found by binary search, as a linear scan finds it */
    for (int i = 0; i < deid_profile_n_exact; i++) {
        const deid_rule *r =
            deid_rule_find(deid_profile[i].tag >> 16, deid_profile[i].tag & 0xFFFF);
        assert_ptr_equal(r, &deid_profile[i]);
    }
    /* repeating groups and private groups match their patterns */
    assert_string_equal(deid_rule_find(0x5002, 0x3000)->keyword, "CurveData");
    assert_string_equal(deid_rule_find(0x601E, 0x3000)->keyword, "OverlayData");
    assert_string_equal(deid_rule_find(0x6000, 0x4000)->keyword, "OverlayComments");
    assert_null(deid_rule_find(0x6000, 0x0010)); /* overlay rows are not in the table */
    assert_string_equal(deid_rule_find(0x0029, 0x1010)->keyword, "PrivateAttributes");
    assert_null(deid_rule_find(0x0028, 0x0010)); /* Rows */
}

static void test_resolve(void **state) {
    (void)state;
    /* combined codes by type; unknown type (0) takes the stricter action */
    deid_rule r = {0, 0xFFFFFFFF, "T", 0, DEID_XZ, "----------"};
    struct {
        uint8_t code, type, want;
    } cases[] = {
        {DEID_XZ, 0, DEID_X},  {DEID_XZ, 2, DEID_Z},  {DEID_XZ, 3, DEID_X},  {DEID_XD, 0, DEID_X},
        {DEID_XD, 1, DEID_D},  {DEID_XD, 3, DEID_X},  {DEID_ZD, 0, DEID_Z},  {DEID_ZD, 1, DEID_D},
        {DEID_ZD, 2, DEID_Z},  {DEID_XZD, 0, DEID_X}, {DEID_XZD, 1, DEID_D}, {DEID_XZD, 2, DEID_Z},
        {DEID_XZU, 0, DEID_X}, {DEID_XZU, 1, DEID_U}, {DEID_XZU, 2, DEID_Z}, {DEID_X, 1, DEID_X},
        {DEID_U, 0, DEID_U},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r.basic = cases[i].code;
        r.type = cases[i].type;
        assert_int_equal(deid_rule_resolve(&r, no_opts), cases[i].want);
    }
    /* an option's K or C wins only when the option is chosen */
    const deid_rule *date = deid_rule_find(0x0008, 0x0022); /* AcquisitionDate X/Z */
    unsigned char o[DEID_N_OPTIONS] = {0};
    assert_int_equal(deid_rule_resolve(date, o), DEID_X);
    o[DEID_OPT_RETAIN_MODIFIED_DATES] = 1;
    assert_int_equal(deid_rule_resolve(date, o), DEID_C);
    o[DEID_OPT_RETAIN_MODIFIED_DATES] = 0;
    o[DEID_OPT_RETAIN_FULL_DATES] = 1;
    assert_int_equal(deid_rule_resolve(date, o), DEID_K);
    o[DEID_OPT_RETAIN_UIDS] = 1; /* unrelated options change nothing */
    assert_int_equal(deid_rule_resolve(deid_rule_find(0x0010, 0x0010), o), DEID_Z);
}

/* Naive reference: walk the calendar one day at a time. */
static void walk_days(int *y, int *m, int *d, int days) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (; days < 0; days++) {
        if (--*d == 0) {
            if (--*m == 0) *m = 12, --*y;
            int leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
            *d = mdays[*m - 1] + (*m == 2 && leap);
        }
    }
}

static void test_date_shift(void **state) {
    (void)state;
    char out[32], want[16];
    const char *starts[] = {"20240301", "20000301", "19000301", "20230105", "19991231"};
    int shifts[] = {-1, -366, -1461, -3652, -59};
    for (size_t i = 0; i < 5; i++)
        for (size_t k = 0; k < 5; k++) {
            int y, m, d;
            sscanf(starts[i], "%4d%2d%2d", &y, &m, &d);
            walk_days(&y, &m, &d, shifts[k]);
            snprintf(want, sizeof want, "%04d%02d%02d", y, m, d);
            assert_int_equal(deid_shift_da(starts[i], shifts[k], out, sizeof out), 8);
            assert_string_equal(out, want);
        }
    assert_int_equal(deid_shift_dt("20230105134501.5+0100", -5, out, sizeof out), 21);
    assert_string_equal(out, "20221231134501.5+0100");
    /* partial or impossible dates cannot be shifted: emptied */
    assert_int_equal(deid_shift_da("2023", -5, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(deid_shift_da("20230231", -5, out, sizeof out), 0);
    assert_int_equal(deid_shift_dt("202301", -5, out, sizeof out), 0);
}

static void test_uid_forms(void **state) {
    (void)state;
    assert_true(deid_uid_is_pseudonym("2.25.0"));
    assert_true(deid_uid_is_pseudonym("2.25.340282366920938463463374607431768211455"));
    assert_false(deid_uid_is_pseudonym("2.25.340282366920938463463374607431768211456"));
    assert_false(deid_uid_is_pseudonym("2.25.0123"));
    assert_false(deid_uid_is_pseudonym("2.25."));
    assert_false(deid_uid_is_pseudonym("1.2.826.0.1.3680043.2.1125.1"));
    assert_true(deid_uid_is_standard("1.2.840.10008.5.1.4.1.1.2"));
    assert_false(deid_uid_is_standard("1.2.840.100081"));
    assert_true(deid_uid_tag_is_class(0x0008, 0x0016));
    assert_false(deid_uid_tag_is_class(0x0008, 0x0018));
}

static void test_text_clean(void **state) {
    (void)state;
    const char *ids[] = {"Doe^John", "Doe", "John", "MRN4711"};
    char out[128];
    deid_text_clean("CT for John Doe (MRN4711) on 2023-01-05, ref 1234567; Johnson ok", ids, 4, out,
                    sizeof out);
    assert_string_equal(out, "CT for * * (*) on *, ref *; Johnson ok");
    deid_text_clean("pt doe^john seen 05.01.2023", ids, 4, out, sizeof out);
    assert_string_equal(out, "pt * seen *");
    deid_text_clean("Axial 1mm 120kV", ids, 4, out, sizeof out);
    assert_string_equal(out, "Axial 1mm 120kV");
    /* truncation keeps the string terminated */
    assert_int_equal(deid_text_clean("abcdef", ids, 0, out, 4), 3);
    assert_string_equal(out, "abc");
}

static void test_option_names(void **state) {
    (void)state;
    for (int o = 0; o < DEID_N_OPTIONS; o++) {
        assert_int_equal(deid_option_from_flag(deid_option_flag((deid_option)o)), o);
        const char *code = deid_option_code((deid_option)o);
        assert_true(strcmp(code, "113103") >= 0 && strcmp(code, "113112") <= 0); /* CID 7050 */
    }
    assert_int_equal(deid_option_from_flag("retain-everything"), -1);
    assert_null(deid_option_flag(DEID_N_OPTIONS));
}

/* Rows of PS3.15 Table E.3.10-1 (io/deid/deid_private.c): creator + group + element byte + VR. */
static void test_private_safe_list(void **state) {
    (void)state;
    assert_true(deid_private_is_safe("SIEMENS MR HEADER ", 0x0019, 0x0C, "IS")); /* B Value */
    assert_true(deid_private_is_safe(" SIEMENS MR HEADER", 0x0019, 0x0C, "UN"));
    assert_true(deid_private_is_safe("SIEMENS MR HEADER", 0x0019, 0x0C, NULL));
    assert_false(deid_private_is_safe("SIEMENS MR HEADER", 0x0019, 0x0C, "LO")); /* wrong VR */
    assert_false(deid_private_is_safe("SIEMENS MR HEADER", 0x0019, 0x08, "IS")); /* not listed */
    assert_false(deid_private_is_safe("siemens mr header", 0x0019, 0x0C, "IS")); /* case */
    assert_false(deid_private_is_safe("ACME", 0x0019, 0x0C, "IS"));
    assert_false(deid_private_is_safe("SIEMENS MR HEADER", 0x0029, 0x0C, "IS")); /* group */
    assert_true(deid_private_is_safe("GEMS_ACQU_01", 0x0019, 0x23, "DS"));       /* table speed */
    assert_true(deid_private_is_safe("GEMS_PARM_01", 0x0043, 0x39, "IS"));
    assert_false(deid_private_is_safe("GEMS_PARM_01", 0x0045, 0x39, "IS"));
    /* the same element byte under different creators of one group */
    assert_true(deid_private_is_safe("Philips Imaging DD 001", 0x2001, 0x03, "FL"));
    assert_true(deid_private_is_safe("Philips Imaging DD 002", 0x2001, 0x03, "CS"));
    assert_false(deid_private_is_safe("Philips Imaging DD 002", 0x2001, 0x03, "FL"));
    assert_true(deid_private_is_safe("Philips Imaging DD 129", 0x2001, 0x00, "SQ"));
    assert_true(deid_private_is_safe("Philips Imaging DD 001", 0x2001, 0x7D, "OB")); /* OW/OB */
    assert_true(deid_private_is_safe("Philips Imaging DD 001", 0x2001, 0x7D, "OW"));
    assert_false(deid_private_is_safe("Philips Imaging DD 001", 0x2001, 0x7D, "UT"));
    assert_true(deid_private_is_safe("SIEMENS Ultrasound SC2000", 0x0119, 0x11, "FD")); /* no VR */
    assert_true(deid_private_is_safe("NQLeft", 0x0199, 0x16, "FL"));
    assert_false(deid_private_is_safe("NQLeft", 0x0199, 0x17, "FL"));
    assert_true(deid_private_is_safe("HOLOGIC, Inc.", 0x7E01, 0x12, "OB"));
    /* every row: an odd group that is not 0001-0007 or FFFF, a creator, a VR the table knows */
    for (int i = 0; i < deid_safe_private_n; i++) {
        const deid_safe_private *r = &deid_safe_private_table[i];
        assert_true((r->group & 1) && r->group > 0x0007 && r->group != 0xFFFF);
        assert_true(r->creator[0] != 0);
        assert_ptr_equal(deid_private_safe_row(r->creator, r->group, r->element)->creator,
                         r->creator);
    }
    assert_int_equal(deid_safe_private_n, 479);
}

static void test_key_file(void **state) {
    (void)state;
    char dir[] = "/tmp/vs_deid_XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/site.key", dir);
    deid_options opt;
    memset(&opt, 0, sizeof opt);
    deid_ctx *a = NULL, *b = NULL;
    vs_error err;
    assert_int_equal(deid_open(&opt, path, &a, &err), VS_OK); /* created */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(deid_open(&opt, path, &b, &err), VS_OK); /* reloaded: same pseudonyms */
    char ka[DEID_KEY_MAX], kb[DEID_KEY_MAX];
    deid_uid_key(a, "1.2.3.4", ka);
    deid_uid_key(b, "1.2.3.4", kb);
    assert_string_equal(ka, kb);
    assert_true(deid_uid_is_pseudonym(ka));
    deid_uid_key(a, "1.2.3.5", kb);
    assert_string_not_equal(ka, kb);
    deid_patient_key(a, "MRN1", NULL, ka);
    deid_patient_key(b, "MRN1", "", kb);
    assert_string_equal(ka, kb);
    assert_int_equal(strlen(ka), 18);
    deid_patient_key(a, "MRN1", "OTHER HOSPITAL", kb);
    assert_string_not_equal(ka, kb);
    int s = deid_date_shift(a, "MRN1", NULL);
    assert_true(s >= -3652 && s <= -1);
    deid_close(a);
    deid_close(b);
    /* readable by others: refused */
    chmod(path, 0644);
    assert_int_equal(deid_open(&opt, path, &a, &err), VS_ERR_ENV);
    assert_null(a);
    assert_non_null(strstr(err.msg, "chmod 600"));
    chmod(path, 0600);
    /* a linkage table others can read is refused too */
    char link[80];
    snprintf(link, sizeof link, "%s/link.sqlite", dir);
    FILE *lf = fopen(link, "w");
    fclose(lf);
    chmod(link, 0644);
    opt.linkage_path = link;
    assert_int_equal(deid_open(&opt, path, &a, &err), VS_ERR_ENV);
    assert_non_null(strstr(err.msg, "linkage table"));
    chmod(link, 0600);
    assert_int_equal(deid_open(&opt, path, &a, &err), VS_OK);
    assert_int_equal(deid_linkage_put(a, "patient", "MRN1", "VSX", &err), VS_OK);
    deid_close(a);
    unlink(link);
    opt.linkage_path = NULL;
    /* contradicting date options */
    opt.option[DEID_OPT_RETAIN_FULL_DATES] = opt.option[DEID_OPT_RETAIN_MODIFIED_DATES] = 1;
    assert_int_equal(deid_open(&opt, path, &a, &err), VS_ERR_CONFIG);
    /* not a key */
    FILE *f = fopen(path, "w");
    fputs("not a key\n", f);
    fclose(f);
    memset(&opt, 0, sizeof opt);
    assert_int_equal(deid_open(&opt, path, &a, &err), VS_ERR_ENV);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_sorted_and_found),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_date_shift),
        cmocka_unit_test(test_uid_forms),
        cmocka_unit_test(test_text_clean),
        cmocka_unit_test(test_private_safe_list),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_option_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
