/* test_parse — io/base/include/parse.h against a naive reference: every string of a table of
 * valid, malformed and overflowing numbers, and every integer string of up to four characters
 * over "+-0123456789 x", parsed by hand (digit by digit, with an exact overflow check) and
 * compared with vs_parse_i64 / vs_parse_u64 / vs_parse_int. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "parse.h"

#include <math.h>
#include <string.h>

/* The rule of parse.h, written the slow way: [sign] digits, nothing else, in range. */
static int naive_i64(const char *s, int sign_ok, int64_t lo, int64_t hi, int64_t *out) {
    int neg = 0;
    if (sign_ok && (*s == '+' || *s == '-')) neg = *s++ == '-';
    if (!*s) return 0;
    uint64_t m = 0; /* the magnitude */
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        unsigned d = (unsigned)(*s - '0');
        if (m > (UINT64_MAX - d) / 10) return 0;
        m = m * 10 + d;
    }
    if (neg ? m > (uint64_t)INT64_MAX + 1 : m > (uint64_t)INT64_MAX) return 0;
    int64_t v = neg ? (m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m) : (int64_t)m;
    if (v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static void test_integers_table(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int ok;
        int64_t v;
    } rows[] = {
        {"0", 1, 0},
        {"42", 1, 42},
        {"-7", 1, -7},
        {"+7", 1, 7},
        {"007", 1, 7},
        {"", 0, 0},
        {" 5", 0, 0},
        {"5 ", 0, 0},
        {"5x", 0, 0},
        {"x5", 0, 0},
        {"-", 0, 0},
        {"+", 0, 0},
        {"1.5", 0, 0},
        {"1e3", 0, 0},
        {"0x10", 0, 0},
        {"--1", 0, 0},
        {"9223372036854775807", 1, INT64_MAX},
        {"9223372036854775808", 0, 0},
        {"-9223372036854775808", 1, INT64_MIN},
        {"-9223372036854775809", 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t v = 12345;
        int ok = vs_parse_i64(rows[i].s, INT64_MIN, INT64_MAX, &v);
        if (ok != rows[i].ok) fail_msg("vs_parse_i64(\"%s\") = %d", rows[i].s, ok);
        assert_true(ok ? v == rows[i].v : v == 12345); /* *out untouched on failure */
    }
    uint64_t u = 0;
    assert_true(vs_parse_u64("18446744073709551615", 0, UINT64_MAX, &u) && u == UINT64_MAX);
    assert_false(vs_parse_u64("18446744073709551616", 0, UINT64_MAX, &u));
    assert_false(vs_parse_u64("-1", 0, UINT64_MAX, &u)); /* strtoull would wrap it */
    assert_false(vs_parse_u64("+1", 0, UINT64_MAX, &u));
    assert_false(vs_parse_u64("0", 1, 10, &u));
    int n = 0;
    assert_true(vs_parse_int("2147483647", 0, 2147483647, &n) && n == 2147483647);
    assert_false(vs_parse_int("2147483648", 0, 2147483647, &n));
    assert_false(vs_parse_int("11", 0, 10, &n));
}

static void test_integers_exhaustive(void **state) {
    (void)state;
    static const char alphabet[] = "+-0123456789 x";
    const int k = (int)strlen(alphabet);
    char s[5];
    long n = 0;
    for (int len = 0; len <= 4; len++) {
        int idx[4] = {0};
        for (;;) {
            for (int i = 0; i < len; i++)
                s[i] = alphabet[idx[i]];
            s[len] = '\0';
            int64_t a = 0, b = 0;
            uint64_t u = 0;
            int got = vs_parse_i64(s, -500, 5000, &a), want = naive_i64(s, 1, -500, 5000, &b);
            if (got != want || (got && a != b))
                fail_msg("i64 \"%s\": %d %lld vs %d %lld", s, got, (long long)a, want,
                         (long long)b);
            got = vs_parse_u64(s, 3, 999, &u);
            want = naive_i64(s, 0, 3, 999, &b);
            if (got != want || (got && (int64_t)u != b)) fail_msg("u64 \"%s\"", s);
            n++;
            int i = 0;
            while (i < len && ++idx[i] == k)
                idx[i++] = 0;
            if (i == len) break;
        }
    }
    assert_int_equal(n, 1 + 14 + 14 * 14 + 14 * 14 * 14 + 14 * 14 * 14 * 14);
}

static void test_doubles(void **state) {
    (void)state;
    double v = -1;
    assert_true(vs_parse_double("0.5", 0, 1, &v) && v == 0.5);
    assert_true(vs_parse_double("1e-4", 0, 1, &v) && v == 1e-4);
    assert_true(vs_parse_double("-3", -5, 5, &v) && v == -3);
    assert_true(vs_parse_double(".25", 0, 1, &v) && v == 0.25);
    assert_true(vs_parse_double("1", 0, 1, &v) && v == 1); /* bounds are inclusive */
    v = 7;
    assert_false(vs_parse_double("", 0, 10, &v));
    assert_false(vs_parse_double(" 1", 0, 10, &v));
    assert_false(vs_parse_double("1 ", 0, 10, &v));
    assert_false(vs_parse_double("1x", 0, 10, &v));
    assert_false(vs_parse_double("nan", -1e300, 1e300, &v));
    assert_false(vs_parse_double("inf", -1e300, INFINITY, &v));
    assert_false(vs_parse_double("1e999", 0, INFINITY, &v)); /* overflows */
    assert_false(vs_parse_double("1e-400", -1, 1, &v));      /* underflows */
    assert_false(vs_parse_double("1.0001", 0, 1, &v));
    assert_false(vs_parse_double("-0.5", 0, 1, &v));
    assert_true(v == 7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_table),
        cmocka_unit_test(test_integers_exhaustive),
        cmocka_unit_test(test_doubles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
