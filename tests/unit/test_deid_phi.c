/* test_deid_phi — verify-deid's one-pass identifier search (io/deid/deid_phi.c) against
 * a naive reference that tries every identifier at every offset with the documented rules
 * (case-insensitive; digit boundaries for identifiers that begin or end with a digit, a lone
 * digit byte tolerated in raw bytes; word boundaries for "\b" items), on random text and
 * binary with planted identifiers; and the two planted cases of issue #17: a birth date inside
 * a 39-digit 2.25 pseudonym is no hit, the same date on its own is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deid.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the reference: every identifier at every offset ---------------------------------- */

static int digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int word(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }

/* Is there a non-boundary digit next to the match at this side? (raw: a lone digit is fine) */
static int digit_blocks(const unsigned char *s, size_t n, long at, int step, int raw) {
    if (at < 0 || (size_t)at >= n || !digit(s[at])) return 0;
    if (!raw) return 1;
    long beyond = at + step;
    return beyond >= 0 && (size_t)beyond < n && digit(s[beyond]);
}

static int ref_match(const char *item, const unsigned char *s, size_t n, size_t a, int raw) {
    int w = item[0] == '\\' && item[1] == 'b';
    const char *lit = w ? item + 2 : (item[0] == '\\' && item[1] == '\\') ? item + 1 : item;
    size_t m = strlen(lit);
    if (m == 0 || a + m > n) return 0;
    for (size_t k = 0; k < m; k++)
        if (tolower(s[a + k]) != tolower((unsigned char)lit[k])) return 0;
    if (w && ((a > 0 && word(s[a - 1])) || (a + m < n && word(s[a + m])))) return 0;
    if (digit((unsigned char)lit[0]) && digit_blocks(s, n, (long)a - 1, -1, raw)) return 0;
    if (digit((unsigned char)lit[m - 1]) && digit_blocks(s, n, (long)(a + m), +1, raw)) return 0;
    return 1;
}

/* ---- collecting the scanner's matches -------------------------------------------------- */

typedef struct found {
    int n;
    int id[4096];
    size_t pos[4096];
} found;

static int collect(void *user, int id, size_t pos) {
    found *f = user;
    if (f->n < 4096) {
        f->id[f->n] = id;
        f->pos[f->n] = pos;
        f->n++;
    }
    return 0;
}

static int has(const found *f, int id, size_t pos) {
    for (int i = 0; i < f->n; i++)
        if (f->id[i] == id && f->pos[i] == pos) return 1;
    return 0;
}

/* Every (identifier, offset) the reference finds is found, and nothing else. */
static void compare(const char *const *items, int n_items, const deid_phi *p,
                    const unsigned char *s, size_t n, int raw) {
    static found f;
    f.n = 0;
    vs_error err;
    assert_int_equal(deid_phi_each(p, (const char *)s, n, raw, collect, &f, &err), VS_OK);
    int want = 0;
    for (int id = 0; id < n_items; id++)
        for (size_t a = 0; a < n; a++)
            if (ref_match(items[id], s, n, a, raw)) {
                want++;
                if (!has(&f, id, a))
                    fail_msg("identifier %d at %zu not found (raw %d)", id, a, raw);
            }
    for (int i = 0; i < f.n; i++)
        if (!ref_match(items[f.id[i]], s, n, f.pos[i], raw))
            fail_msg("identifier %d at %zu found but not a match (raw %d)", f.id[i], f.pos[i], raw);
    assert_int_equal(f.n, want);
}

static uint64_t rnd_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state >> 11);
}

static const char *const items[] = {
    "Doe^John",
    "19650412",
    "MRN4711",
    "4711",
    "\\bAnn",
    "555-0134",
    "1.2.826.0.1.3680043.8.498.7",
    "ACC556677",
    "\\\\slash",
    "st elsewhere",
    "2023",
    "\\b0042",
    "x9",
};
#define N_ITEMS ((int)(sizeof items / sizeof items[0]))

static void test_random_vs_reference(void **state) {
    (void)state;
    deid_phi *p = NULL;
    vs_error err;
    assert_int_equal(deid_phi_compile(items, N_ITEMS, &p, &err), VS_OK);
    assert_int_equal(deid_phi_count(p), N_ITEMS);
    static unsigned char buf[4096];
    static const char alpha[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .^-\\_";
    for (int round = 0; round < 400; round++) {
        int binary = round % 2;
        size_t n = 64 + rnd() % (sizeof buf - 64);
        for (size_t i = 0; i < n; i++)
            buf[i] =
                binary ? (unsigned char)rnd() : (unsigned char)alpha[rnd() % (sizeof alpha - 1)];
        for (int k = 0; k < 6; k++) { /* plant identifiers, case changed, next to digits */
            const char *it = items[rnd() % N_ITEMS];
            if (it[0] == '\\') it += it[1] == 'b' ? 2 : 1;
            size_t m = strlen(it), at = rnd() % (n - m);
            for (size_t c = 0; c < m; c++)
                buf[at + c] = (unsigned char)(rnd() % 2 ? toupper((unsigned char)it[c]) : it[c]);
            if (rnd() % 3 == 0 && at > 0) buf[at - 1] = (unsigned char)('0' + rnd() % 10);
            if (rnd() % 3 == 0 && at + m < n) buf[at + m] = (unsigned char)('0' + rnd() % 10);
        }
        compare(items, N_ITEMS, p, buf, n, 0);
        compare(items, N_ITEMS, p, buf, n, 1);
    }
    deid_phi_free(p);
}

/* Issue #17 item 4: a listed 8-digit birth date inside a 39-digit pseudonym is no hit (text
 * and raw bytes); on its own, or next to one lone binary digit byte in raw bytes, it is. */
static void test_planted_pseudonym_and_date(void **state) {
    (void)state;
    const char *list[] = {"19650412", "\\bAnn"};
    deid_phi *p = NULL;
    vs_error err;
    assert_int_equal(deid_phi_compile(list, 2, &p, &err), VS_OK);
    const char *pseudo = "uid 2.25.318196504121234567890123456789012345 ok";
    size_t at = 0;
    assert_false(deid_phi_find(p, pseudo, strlen(pseudo), &at));
    static found f;
    f.n = 0;
    assert_int_equal(deid_phi_each(p, pseudo, strlen(pseudo), 1, collect, &f, &err), VS_OK);
    assert_int_equal(f.n, 0);
    const char *alone = "born 19650412, seen";
    assert_true(deid_phi_find(p, alone, strlen(alone), &at));
    assert_int_equal(at, 5);
    const char raw[] = {'\x10', '8', '1', '9', '6', '5', '0', '4', '1', '2', '5', '\x00'};
    f.n = 0; /* a length byte '8' before, a tag byte '5' after: still a leak in raw bytes */
    assert_int_equal(deid_phi_each(p, raw, sizeof raw, 1, collect, &f, &err), VS_OK);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.pos[0], 2);
    assert_false(deid_phi_find(p, raw, sizeof raw, &at)); /* but not in text */
    /* word boundaries only where the list says so */
    assert_true(deid_phi_find(p, "dear ANN, hi", 12, &at));
    assert_false(deid_phi_find(p, "Joanne Annex", 12, &at));
    deid_phi_free(p);
}

/* The same database from several threads at once gives the same matches (own scratch). */
static void *thread_scan(void *arg) {
    const deid_phi *p = arg;
    static const char text[] = "a 19650412 b MRN4711 c doe^JOHN";
    size_t at = 0;
    for (int i = 0; i < 2000; i++)
        if (!deid_phi_find(p, text, sizeof text - 1, &at) || at != 2) return (void *)1;
    return NULL;
}

static void test_threads_share_the_list(void **state) {
    (void)state;
    deid_phi *p = NULL;
    vs_error err;
    assert_int_equal(deid_phi_compile(items, N_ITEMS, &p, &err), VS_OK);
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&th[t], NULL, thread_scan, p), 0);
    for (int t = 0; t < 4; t++) {
        void *rc = NULL;
        pthread_join(th[t], &rc);
        assert_null(rc);
    }
    deid_phi_free(p);
}

/* An empty list, and a NULL one, find nothing. */
static void test_empty(void **state) {
    (void)state;
    deid_phi *p = NULL;
    vs_error err;
    const char *none[] = {"", "\\b"};
    assert_int_equal(deid_phi_compile(none, 2, &p, &err), VS_OK);
    size_t at = 0;
    assert_false(deid_phi_find(p, "anything", 8, &at));
    assert_false(deid_phi_find(NULL, "anything", 8, &at));
    deid_phi_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_vs_reference),
        cmocka_unit_test(test_planted_pseudonym_and_date),
        cmocka_unit_test(test_threads_share_the_list),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
