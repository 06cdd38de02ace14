/* deid_phi.c — the listed identifiers of verify-deid, compiled once and searched for all at
 * once: one pass over the bytes whatever the length of the list.
 *
 * Why not Hyperscan: it scans as fast, but compiling 100,000 literals took it 3.7 CPU-s (10,000:
 * 0.27 s), more than scanning the demo's whole output; this compiles in O(total length).
 * The search: at each offset, the two bytes there (ASCII-folded) are looked up in a bitmap of
 * every identifier's first two bytes (8 KiB, in L1: most offsets of compressed or binary data
 * stop here); on a hit, the identifiers keyed by the folded 8 (or 4) bytes there are verified
 * one by one. Identifiers of 1-3 bytes have small tables of their own.
 *
 * Invariants:
 *   1. A listed identifier matches case-insensitively (ASCII letters; other bytes as they are).
 *   2. An identifier that begins (ends) with a digit matches only where the byte before (after)
 *      it is not a digit, so a date or a number is not "found" inside a longer number such as
 *      a 2.25 pseudonym. In raw bytes (raw != 0) a neighbouring digit that stands alone (no
 *      digit beyond it) does not count: in binary formats it is a length or tag byte.
 *   3. An identifier listed as "\bWORD" matches only where the bytes on either side are not
 *      word bytes ([A-Za-z0-9_] or any byte >= 0x80, part of a UTF-8 letter).
 *   4. Every match is reported once, in order of its start; the tables are read-only once
 *      compiled, so threads share them.
 */
#include "deid.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EDGE_DIGIT_START = 1, EDGE_DIGIT_END = 2, EDGE_WORD = 4 };

struct deid_phi {
    int n;
    char **lit;                /* per identifier: its bytes, lower-cased (ASCII) */
    size_t *len;               /* per identifier: its length (0: lists nothing) */
    unsigned char *edge;       /* per identifier: EDGE_* */
    uint64_t *key;             /* per identifier: folded first 8 (len >= 8) or 4 bytes */
    int32_t *next;             /* per identifier: the next one in its bucket, -1 */
    int32_t *head8, *head4;    /* buckets by hash of the key; -1 when empty */
    unsigned bits8, bits4;     /* log2 of the bucket counts (0: no identifier of that class) */
    uint64_t pair[65536 / 64]; /* folded first two bytes of every identifier of length >= 2 */
    int32_t head2[65536];      /* identifiers of length 2-3 by their folded first two bytes */
    int32_t head1[256];        /* identifiers of length 1 by their folded byte */
    int has1;
};

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_word(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
static unsigned char lower(unsigned char c) {
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* The filters fold every byte with | 0x20 (a superset of ASCII case folding: a few
 * punctuation pairs collide too, which verification sorts out). Up to 8 bytes, the rest of the
 * word folded zeros; the same call on pattern and text gives equal keys on any byte order. */
static uint64_t load_folded(const unsigned char *p, size_t n) {
    uint64_t w = 0;
    memcpy(&w, p, n < 8 ? n : 8);
    return w | 0x2020202020202020ull;
}
static unsigned pair_of(const unsigned char *p) {
    return (unsigned)((p[0] | 0x20) | (p[1] | 0x20) << 8);
}
static unsigned hash_key(uint64_t k, unsigned bits) {
    return (unsigned)((k * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

/* ---- compiling ------------------------------------------------------------------------- */

void deid_phi_free(deid_phi *p) {
    if (!p) return;
    if (p->lit)
        for (int i = 0; i < p->n; i++)
            free(p->lit[i]);
    free(p->lit);
    free(p->len);
    free(p->edge);
    free(p->key);
    free(p->next);
    free(p->head8);
    free(p->head4);
    free(p);
}

int deid_phi_count(const deid_phi *p) { return p ? p->n : 0; }

static unsigned bits_for(int count) {
    unsigned b = 4;
    while (b < 30 && (1u << b) < 2u * (unsigned)count)
        b++;
    return b;
}

/* Buckets of one key class: identifiers of length >= lo (and < hi), keyed by width bytes. */
static int32_t *make_buckets(deid_phi *p, size_t lo, size_t hi, size_t width, unsigned *bits) {
    int count = 0;
    for (int i = 0; i < p->n; i++)
        count += p->len[i] >= lo && p->len[i] < hi;
    *bits = 0;
    if (count == 0) return NULL;
    *bits = bits_for(count);
    int32_t *head = malloc(sizeof *head << *bits);
    if (!head) return NULL;
    memset(head, 0xFF, sizeof *head << *bits);
    for (int i = p->n - 1; i >= 0; i--) { /* pushed in reverse: buckets list in list order */
        if (p->len[i] < lo || p->len[i] >= hi) continue;
        p->key[i] = load_folded((const unsigned char *)p->lit[i], width);
        unsigned h = hash_key(p->key[i], *bits);
        p->next[i] = head[h];
        head[h] = i;
    }
    return head;
}

vs_status deid_phi_compile(const char *const *items, int n, deid_phi **out, vs_error *err) {
    *out = NULL;
    deid_phi *p = calloc(1, sizeof *p);
    if (!p || n < 0) {
        free(p);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %d listed identifiers", n);
    }
    p->n = n;
    size_t m = n > 0 ? (size_t)n : 1;
    p->lit = calloc(m, sizeof *p->lit);
    p->len = calloc(m, sizeof *p->len);
    p->edge = calloc(m, 1);
    p->key = calloc(m, sizeof *p->key);
    p->next = malloc(m * sizeof *p->next);
    int ok = p->lit && p->len && p->edge && p->key && p->next;
    memset(p->head2, 0xFF, sizeof p->head2);
    memset(p->head1, 0xFF, sizeof p->head1);
    for (int i = 0; ok && i < n; i++) {
        const char *s = items[i];
        unsigned char edge = 0;
        if (s[0] == '\\' && s[1] == 'b') { /* "\bWORD": word boundaries */
            edge |= EDGE_WORD;
            s += 2;
        } else if (s[0] == '\\' && s[1] == '\\') { /* "\\..." lists a leading backslash */
            s += 1;
        }
        size_t len = strlen(s);
        if (!(p->lit[i] = malloc(len + 8))) { /* padded: keys load 8 bytes */
            ok = 0;
            break;
        }
        memset(p->lit[i], 0, len + 8);
        for (size_t k = 0; k < len; k++)
            p->lit[i][k] = (char)lower((unsigned char)s[k]);
        p->len[i] = len;
        p->next[i] = -1;
        if (len == 0) continue; /* "\b" alone lists nothing */
        if (is_digit((unsigned char)s[0])) edge |= EDGE_DIGIT_START;
        if (is_digit((unsigned char)s[len - 1])) edge |= EDGE_DIGIT_END;
        p->edge[i] = edge;
    }
    if (ok) {
        for (int i = n - 1; i >= 0; i--) {
            const unsigned char *l = (const unsigned char *)p->lit[i];
            if (p->len[i] == 1) {
                p->next[i] = p->head1[l[0] | 0x20];
                p->head1[l[0] | 0x20] = i;
                p->has1 = 1;
            } else if (p->len[i] >= 2) {
                unsigned k = pair_of(l);
                p->pair[k >> 6] |= 1ull << (k & 63);
                if (p->len[i] < 4) {
                    p->next[i] = p->head2[k];
                    p->head2[k] = i;
                }
            }
        }
        p->head8 = make_buckets(p, 8, SIZE_MAX, 8, &p->bits8);
        p->head4 = make_buckets(p, 4, 8, 4, &p->bits4);
        ok = (p->bits8 == 0 || p->head8) && (p->bits4 == 0 || p->head4);
    }
    if (!ok) {
        deid_phi_free(p);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %d listed identifiers", n);
    }
    *out = p;
    return VS_OK;
}

vs_status deid_phi_load(const char *path, deid_phi **out, vs_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot read the identifier list (%s)", path,
                       strerror(errno));
    char **items = NULL, *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0, alloc = 0;
    vs_status st = VS_OK;
    while (st == VS_OK && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0) continue;
        if (n == alloc) {
            alloc = alloc ? 2 * alloc : 256;
            char **g = alloc < INT_MAX / 2 ? realloc(items, (size_t)alloc * sizeof *g) : NULL;
            if (!g) {
                st = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory reading the list", path);
                break;
            }
            items = g;
        }
        if (!(items[n] = strdup(line)))
            st = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory reading the list", path);
        else
            n++;
    }
    if (st == VS_OK && ferror(f)) st = VS_FAIL(err, VS_ERR_IO, "%s: read error", path);
    free(line);
    fclose(f);
    if (st == VS_OK) st = deid_phi_compile((const char *const *)items, n, out, err);
    for (int i = 0; i < n; i++)
        free(items[i]);
    free(items);
    return st;
}

/* ---- matching -------------------------------------------------------------------------- */

/* Invariants 2 and 3 for a match s[a..b). */
static int edges_ok(const deid_phi *p, int id, const unsigned char *s, size_t n, size_t a, size_t b,
                    int raw) {
    unsigned char e = p->edge[id];
    if (e & EDGE_WORD) {
        if ((a > 0 && is_word(s[a - 1])) || (b < n && is_word(s[b]))) return 0;
    }
    if ((e & EDGE_DIGIT_START) && a > 0 && is_digit(s[a - 1]) &&
        !(raw && (a < 2 || !is_digit(s[a - 2]))))
        return 0;
    if ((e & EDGE_DIGIT_END) && b < n && is_digit(s[b]) &&
        !(raw && (b + 1 >= n || !is_digit(s[b + 1]))))
        return 0;
    return 1;
}

/* Identifier id at s[i..): its bytes (case-folded) and its edges. */
static int match_at(const deid_phi *p, int id, const unsigned char *s, size_t n, size_t i,
                    int raw) {
    size_t len = p->len[id];
    if (len > n - i) return 0;
    const unsigned char *l = (const unsigned char *)p->lit[id];
    for (size_t k = 0; k < len; k++)
        if (lower(s[i + k]) != l[k]) return 0;
    return edges_ok(p, id, s, n, i, i + len, raw);
}

/* Walk one bucket list, reporting every identifier that matches at i; 1 when fn stopped. */
static int try_list(const deid_phi *p, int32_t id, uint64_t key, int keyed, const unsigned char *s,
                    size_t n, size_t i, int raw, deid_phi_fn fn, void *user) {
    for (; id >= 0; id = p->next[id]) {
        if (keyed && p->key[id] != key) continue;
        if (match_at(p, id, s, n, i, raw) && fn(user, id, i) != 0) return 1;
    }
    return 0;
}

vs_status deid_phi_each(const deid_phi *p, const char *text, size_t n, int raw, deid_phi_fn fn,
                        void *user, vs_error *err) {
    (void)err; /* nothing here can fail once compiled; the status keeps the seam open */
    if (!p || p->n == 0 || n == 0) return VS_OK;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n; i++) {
        if (p->has1 && p->head1[s[i] | 0x20] >= 0 &&
            try_list(p, p->head1[s[i] | 0x20], 0, 0, s, n, i, raw, fn, user))
            return VS_OK;
        if (i + 1 >= n) break;
        unsigned k = pair_of(s + i);
        if (!(p->pair[k >> 6] & (1ull << (k & 63)))) continue; /* most offsets stop here */
        if (p->head2[k] >= 0 && try_list(p, p->head2[k], 0, 0, s, n, i, raw, fn, user))
            return VS_OK;
        uint64_t w = load_folded(s + i, n - i);
        if (p->bits4 && n - i >= 4) {
            uint64_t k4 = load_folded(s + i, 4);
            int32_t h = p->head4[hash_key(k4, p->bits4)];
            if (h >= 0 && try_list(p, h, k4, 1, s, n, i, raw, fn, user)) return VS_OK;
        }
        if (p->bits8 && n - i >= 8) {
            int32_t h = p->head8[hash_key(w, p->bits8)];
            if (h >= 0 && try_list(p, h, w, 1, s, n, i, raw, fn, user)) return VS_OK;
        }
    }
    return VS_OK;
}

static int keep_first(void *user, int id, size_t pos) {
    (void)id;
    *(size_t *)user = pos;
    return 1; /* matches come by start: the first is the leftmost */
}

int deid_phi_find(const deid_phi *p, const char *s, size_t n, size_t *pos) {
    size_t at = SIZE_MAX;
    vs_error ignore;
    deid_phi_each(p, s, n, 0, keep_first, &at, &ignore);
    if (at == SIZE_MAX) return 0;
    *pos = at;
    return 1;
}
