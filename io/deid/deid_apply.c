/* deid_apply.c — deid_apply: the profile applied to every element of a dataset, at every
 * nesting depth, through the element table of io/dicom/include/dcmedit.h (DCMTK in the
 * product, a plain tree in tests/unit/test_deid_apply.c). Every decision is made here, in C:
 * which action an element gets (the profile table, or the defaults below), what the action
 * does to it, which private elements stay, which images are refused for burned-in text, and
 * the markers a de-identified dataset carries.
 *
 * Invariants (beyond deid.h's):
 *   1. Two passes: the first collects identifiers (names and IDs of PN and identifier-keyword
 *      elements, and dates in their written forms) that cleaned free text must not repeat; the
 *      second acts on every element.
 *   2. The second pass walks each item backwards, so removals keep the remaining indices valid
 *      and a private data element is judged while its creator element is still present.
 *   3. Items nested deeper than MAX_DEPTH are removed outright (hostile files).
 *   4. The first failed edit stops nothing but fails the file: its tag and the library's
 *      reason make the error, and nothing of the file may then be written.
 */
#include "dcmedit.h"
#include "deid_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
/* Past this many identifiers, scrubbing would cost idents x text length: text under action C
 * is emptied instead (the stricter way). */
#define MAX_IDENTS 4096

#define TAG(g, e) (((uint32_t)(g) << 16) | (uint32_t)(e))
#define T_SOP_CLASS_UID TAG(0x0008, 0x0016)
#define T_SOP_INSTANCE_UID TAG(0x0008, 0x0018)
#define T_MODALITY TAG(0x0008, 0x0060)
#define T_CODE_VALUE TAG(0x0008, 0x0100)
#define T_CODING_SCHEME TAG(0x0008, 0x0102)
#define T_CODE_MEANING TAG(0x0008, 0x0104)
#define T_PATIENT_NAME TAG(0x0010, 0x0010)
#define T_PATIENT_ID TAG(0x0010, 0x0020)
#define T_ISSUER_OF_PATIENT_ID TAG(0x0010, 0x0021)
#define T_PATIENT_IDENTITY_REMOVED TAG(0x0012, 0x0062)
#define T_DEID_METHOD TAG(0x0012, 0x0063)
#define T_DEID_METHOD_CODES TAG(0x0012, 0x0064)
#define T_STUDY_INSTANCE_UID TAG(0x0020, 0x000D)
#define T_SERIES_INSTANCE_UID TAG(0x0020, 0x000E)
#define T_BURNED_IN_ANNOTATION TAG(0x0028, 0x0301)
#define T_LONGITUDINAL_TEMPORAL TAG(0x0028, 0x0303)

typedef struct walker {
    const dcm_edit_ops *ops;
    dcm_edit *ed;
    deid_ctx *ctx;
    const unsigned char *opt;
    deid_file_result *res;
    int shift_days;
    int cleaning;  /* inside a sequence being cleaned (action C): free text is scrubbed */
    char **idents; /* identifiers to scrub from free text, longest first */
    size_t n_idents, cap_idents;
    int too_many_idents;
    int out_of_memory;
    int failed; /* the first failed edit: */
    uint32_t fail_tag;
    char fail_why[160];
} walker;

static int vr_is(const char *vr, const char *list) { /* list: "LO SH ST" */
    for (const char *p = list; *p; p += p[2] ? 3 : 2)
        if (p[0] == vr[0] && p[1] == vr[1]) return 1;
    return 0;
}

static const char *const TEXT_VRS = "LO SH ST LT UT UC PN CS";
static const char *const BINARY_VRS = "OB OW OF OD OL OV UN";

/* Note an edit's result: the first failure is the file's (invariant 4). */
static void note(walker *w, int rc, uint32_t tag) {
    if (rc == 0 || w->failed) return;
    w->failed = 1;
    w->fail_tag = tag;
    snprintf(w->fail_why, sizeof w->fail_why, "%s", w->ops->last_error(w->ed));
}

/* --- values ----------------------------------------------------------------------------------- */

/* DICOM values: s[0..len) split at backslashes; each value ends at its first NUL. */
typedef struct value_list {
    char **v;
    size_t n;
} value_list;

static void values_free(value_list *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int values_split(const char *s, size_t len, value_list *out) {
    out->v = NULL;
    out->n = 0;
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '\\';
    if (!(out->v = calloc(n, sizeof *out->v))) return -1;
    size_t start = 0;
    for (size_t k = 0; k < n; k++) {
        size_t end = start;
        while (end < len && s[end] != '\\')
            end++;
        size_t vlen = strnlen(s + start, end - start);
        if (!(out->v[k] = malloc(vlen + 1))) {
            out->n = k;
            values_free(out);
            return -1;
        }
        memcpy(out->v[k], s + start, vlen);
        out->v[k][vlen] = '\0';
        out->n = k + 1;
        start = end + 1;
    }
    return 0;
}

/* The values joined by backslashes (malloc'ed), or NULL when out of memory. */
static char *values_join(const value_list *l) {
    size_t n = 1;
    for (size_t i = 0; i < l->n; i++)
        n += strlen(l->v[i]) + 1;
    char *s = malloc(n), *p = s;
    if (!s) return NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (i) *p++ = '\\';
        size_t k = strlen(l->v[i]);
        memcpy(p, l->v[i], k);
        p += k;
    }
    *p = '\0';
    return s;
}

/* Replace value i of l by a copy of s. */
static int values_set(value_list *l, size_t i, const char *s) {
    char *c = strdup(s);
    if (!c) return -1;
    free(l->v[i]);
    l->v[i] = c;
    return 0;
}

/* Put the joined values into e. */
static void put_values(walker *w, dcm_elem *e, const value_list *l) {
    char *s = values_join(l);
    if (!s) {
        w->out_of_memory = 1;
        return;
    }
    note(w, w->ops->put(w->ed, e, s), w->ops->tag(w->ed, e));
    free(s);
}

/* An element's values, split (*l); 0 when it has none to give (unreadable, or empty when
 * skip_empty), which leaves the element as it is. Out of memory is noted for the file. */
static int read_values(walker *w, dcm_elem *el, int skip_empty, value_list *l) {
    size_t len = 0;
    char *s = w->ops->values(w->ed, el, &len);
    if (!s || (skip_empty && !len)) {
        free(s);
        return 0;
    }
    int rc = values_split(s, len, l);
    free(s);
    if (rc != 0) w->out_of_memory = 1;
    return rc == 0;
}

/* --- pass 1: identifiers that free text must not repeat ----------------------------------- */

static void add_ident(walker *w, const char *v, size_t n) {
    while (n && *v == ' ')
        v++, n--;
    while (n && v[n - 1] == ' ')
        n--;
    if (n < 2) return;
    if (w->n_idents == w->cap_idents) {
        size_t cap = w->cap_idents ? 2 * w->cap_idents : 64;
        char **p = realloc(w->idents, cap * sizeof *p);
        if (!p) {
            w->out_of_memory = 1;
            return;
        }
        w->idents = p;
        w->cap_idents = cap;
    }
    char *c = malloc(n + 1);
    if (!c) {
        w->out_of_memory = 1;
        return;
    }
    memcpy(c, v, n);
    c[n] = '\0';
    w->idents[w->n_idents++] = c;
}

/* A name or ID, whole and as its tokens between ^ = space , . - */
static void add_tokens(walker *w, const char *v) {
    add_ident(w, v, strlen(v));
    const char *tok = v;
    for (const char *p = v;; p++) {
        if (*p == '\0' || strchr("^= ,.-", *p)) {
            add_ident(w, tok, (size_t)(p - tok));
            tok = p + 1;
        }
        if (*p == '\0') break;
    }
}

/* A date (DA, or the date part of DT) in the forms people write it: YYYYMMDD, YYYY-MM-DD,
 * YYYY.MM.DD, YYYY/MM/DD, DD.MM.YYYY, DD/MM/YYYY, MM/DD/YYYY. (Assembled by hand: this runs
 * for every date of every file, where snprintf would cost more than the rest of the pass.) */
static void add_date(walker *w, const char *d) {
    if (strlen(d) < 8) return;
    const char *y = d, *m = d + 4, *dd = d + 6;
    add_ident(w, d, 8);
    static const struct {
        char sep;
        int year_first, month_first;
    } forms[] = {{'-', 1, 0}, {'.', 1, 0}, {'/', 1, 0}, {'.', 0, 0}, {'/', 0, 0}, {'/', 0, 1}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char f[10];
        char c = forms[i].sep;
        if (forms[i].year_first) { /* YYYY-MM-DD */
            memcpy(f, y, 4), f[4] = c, memcpy(f + 5, m, 2), f[7] = c, memcpy(f + 8, dd, 2);
        } else { /* DD.MM.YYYY or MM/DD/YYYY */
            memcpy(f, forms[i].month_first ? m : dd, 2), f[2] = c;
            memcpy(f + 3, forms[i].month_first ? dd : m, 2), f[5] = c, memcpy(f + 6, y, 4);
        }
        add_ident(w, f, sizeof f);
    }
}

static void collect_item(walker *w, dcm_item *item, int depth) {
    const dcm_edit_ops *o = w->ops;
    if (depth > MAX_DEPTH) return;
    unsigned long n = o->count(w->ed, item);
    for (unsigned long i = 0; i < n; i++) {
        dcm_elem *el = o->at(w->ed, item, i);
        if (!el) continue;
        const char *vr = o->vr(w->ed, el);
        if (vr_is(vr, "SQ")) {
            unsigned long k_n = o->n_items(w->ed, el);
            for (unsigned long k = 0; k < k_n; k++) {
                dcm_item *sub = o->item(w->ed, el, k);
                if (sub) collect_item(w, sub, depth + 1);
            }
            continue;
        }
        uint32_t tag = o->tag(w->ed, el);
        if ((tag >> 16) & 1) continue;
        const deid_rule *r = deid_rule_find((uint16_t)(tag >> 16), (uint16_t)tag);
        int names = vr_is(vr, "PN") ||
                    (r && vr_is(vr, "LO SH LT ST AE UC") && deid_keyword_is_identifier(r->keyword));
        int date = vr_is(vr, "DA DT");
        if (!names && !date) continue;
        value_list l;
        if (!read_values(w, el, 0, &l)) continue;
        for (size_t k = 0; k < l.n; k++) {
            if (names)
                add_tokens(w, l.v[k]);
            else
                add_date(w, l.v[k]);
        }
        values_free(&l);
    }
}

/* Longest first, then in byte order. */
static int ident_cmp(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t nx = strlen(x), ny = strlen(y);
    if (nx != ny) return nx > ny ? -1 : 1;
    return strcmp(x, y);
}

static void finish_idents(walker *w) {
    if (w->n_idents) qsort(w->idents, w->n_idents, sizeof *w->idents, ident_cmp);
    size_t k = 0;
    for (size_t i = 0; i < w->n_idents; i++) {
        if (k && strcmp(w->idents[k - 1], w->idents[i]) == 0)
            free(w->idents[i]);
        else
            w->idents[k++] = w->idents[i];
    }
    w->n_idents = k;
    w->too_many_idents = w->n_idents > MAX_IDENTS;
}

/* --- pass 2: actions ----------------------------------------------------------------------- */

static void walk_item(walker *w, dcm_item *item, int depth);

static void walk_sequence(walker *w, dcm_elem *el, int depth) {
    unsigned long n = w->ops->n_items(w->ed, el);
    for (unsigned long k = 0; k < n; k++) {
        dcm_item *sub = w->ops->item(w->ed, el, k);
        if (sub) walk_item(w, sub, depth + 1);
    }
}

/* Every UID value becomes its 2.25 pseudonym (DICOM's own UIDs stay when skip_standard). */
static void map_uid_values(walker *w, value_list *l, int skip_standard) {
    for (size_t i = 0; i < l->n; i++) {
        char *u = l->v[i];
        size_t n = strlen(u);
        while (n && u[n - 1] == ' ')
            u[--n] = '\0';
        if (!n || (skip_standard && deid_uid_is_standard(u))) continue;
        char out[DEID_KEY_MAX];
        deid_uid_key(w->ctx, u, out);
        if (values_set(l, i, out) != 0) w->out_of_memory = 1;
    }
}

static void map_uids(walker *w, dcm_elem *el, int skip_standard) {
    value_list l;
    if (!read_values(w, el, 1, &l)) return;
    map_uid_values(w, &l, skip_standard);
    put_values(w, el, &l);
    values_free(&l);
    w->res->n_uids++;
}

static void shift_dates(walker *w, dcm_elem *el, int dt) {
    value_list l;
    if (!read_values(w, el, 0, &l)) return;
    for (size_t i = 0; i < l.n; i++) {
        char out[64];
        if (dt)
            deid_shift_dt(l.v[i], w->shift_days, out, sizeof out);
        else
            deid_shift_da(l.v[i], w->shift_days, out, sizeof out);
        if (values_set(&l, i, out) != 0) w->out_of_memory = 1;
    }
    put_values(w, el, &l);
    values_free(&l);
}

static void clean_text(walker *w, dcm_elem *el) {
    size_t len = 0;
    char *s = w->ops->values(w->ed, el, &len);
    uint32_t tag = w->ops->tag(w->ed, el);
    if (!s || !len) {
        free(s);
        return;
    }
    if (w->too_many_idents) {
        free(s);
        note(w, w->ops->put(w->ed, el, ""), tag);
        return;
    }
    char *out = malloc(len + 1);
    if (!out) {
        free(s);
        w->out_of_memory = 1;
        return;
    }
    deid_text_clean(s, (const char *const *)w->idents, (int)w->n_idents, out, len + 1);
    note(w, w->ops->put(w->ed, el, out), tag);
    free(out);
    free(s);
}

/* Action D on a value: zeros of the same (even, at least 2) length for binary VRs, else the
 * VR's dummy. */
static void dummy(walker *w, dcm_elem *el, const char *vr) {
    uint32_t tag = w->ops->tag(w->ed, el);
    if (vr_is(vr, BINARY_VRS)) {
        uint32_t n = w->ops->length(w->ed, el);
        if (n < 2) n = 2;
        note(w, w->ops->put_zeros(w->ed, el, n + (n & 1)), tag);
        return;
    }
    note(w, w->ops->put(w->ed, el, deid_dummy_for_vr(vr)), tag);
}

/* The action for a public element the profile does not list. */
static deid_action default_action(const walker *w, uint32_t tag, const char *vr) {
    if (vr_is(vr, "SQ")) return DEID_K;
    if (vr_is(vr, "UI"))
        return w->opt[DEID_OPT_RETAIN_UIDS] ||
                       deid_uid_tag_is_class((uint16_t)(tag >> 16), (uint16_t)tag)
                   ? DEID_K
                   : DEID_U;
    if (w->cleaning && vr_is(vr, "LO SH ST LT UT UC PN")) return DEID_C;
    if (vr_is(vr, "DA DT")) { /* any other date is temporal information too */
        if (w->opt[DEID_OPT_RETAIN_FULL_DATES]) return DEID_K;
        return w->opt[DEID_OPT_RETAIN_MODIFIED_DATES] ? DEID_C : DEID_X;
    }
    return DEID_K;
}

/* 1 when an element of block bb of group g follows index i in item (the walk goes backwards,
 * so those are the block's elements already judged and kept). */
static int block_kept(walker *w, dcm_item *item, unsigned long i, uint16_t g, uint16_t bb) {
    unsigned long n = w->ops->count(w->ed, item);
    for (unsigned long k = i + 1; k < n; k++) {
        dcm_elem *e = w->ops->at(w->ed, item, k);
        if (!e) break;
        uint32_t t = w->ops->tag(w->ed, e);
        if ((t >> 16) != g) break;
        if (((t & 0xFFFF) >> 8) == bb) return 1;
    }
    return 0;
}

/* 1: remove the private element at index i. Under Retain Safe Private, a data element
 * (gggg,bbee) stays when the creator at (gggg,00bb) of the same item, element byte ee and its
 * VR are a row of Table E.3.10-1 (io/deid/deid_private.c, *row gets it) and its value conforms
 * to its VR (a name in a DS is not a table speed); a creator stays only while its block keeps
 * an element. Everything else private goes. */
static int private_remove(walker *w, dcm_item *item, unsigned long i, dcm_elem *el, const char *vr,
                          const deid_safe_private **row) {
    *row = NULL;
    if (!w->opt[DEID_OPT_RETAIN_SAFE_PRIVATE]) return 1;
    uint32_t tag = w->ops->tag(w->ed, el);
    uint16_t g = (uint16_t)(tag >> 16), e = (uint16_t)tag;
    if (e >= 0x0010 && e <= 0x00FF) return !block_kept(w, item, i, g, e);
    if (e < 0x1000) return 1; /* (gggg,0001-000F), (gggg,0100-0FFF): no creator reserves them */
    char *creator = w->ops->find(w->ed, item, TAG(g, e >> 8));
    if (!creator) return 1;
    int remove = !deid_private_is_safe(creator, g, (uint8_t)(e & 0xFF), vr) ||
                 (!vr_is(vr, "SQ") && !w->ops->conforms(w->ed, el));
    if (!remove) *row = deid_private_safe_row(creator, g, (uint8_t)(e & 0xFF));
    free(creator);
    return remove;
}

/* A UID held as UN (implicit VR, not in the dictionary): the raw value without its padding. */
static char *un_text(walker *w, dcm_elem *el) {
    size_t n = 0;
    uint8_t *b = w->ops->bytes(w->ed, el, &n);
    if (!b) n = 0;
    char *s = malloc(n + 1);
    if (s) {
        if (n) memcpy(s, b, n);
        while (n && (s[n - 1] == '\0' || s[n - 1] == ' '))
            n--;
        s[n] = '\0';
    }
    free(b);
    return s;
}

/* A kept safe private element: a sequence is walked like any other, and UIDs become
 * pseudonyms like every other instance UID (the table keeps references such as an analyzed
 * series UID; Retain UIDs keeps them as they are). A UID element read as UN is replaced by a
 * UI element first. */
static void private_keep(walker *w, dcm_item *item, dcm_elem *el, const char *vr,
                         const deid_safe_private *row, int depth) {
    if (vr_is(vr, "SQ")) {
        walk_sequence(w, el, depth);
        return;
    }
    if (!row || strcmp(row->vr, "UI") != 0 || w->opt[DEID_OPT_RETAIN_UIDS]) return;
    if (vr_is(vr, "UI")) {
        map_uids(w, el, 1);
        return;
    }
    uint32_t tag = w->ops->tag(w->ed, el);
    char *value = un_text(w, el);
    if (!value) {
        w->out_of_memory = 1;
        return;
    }
    dcm_elem *ui = w->ops->replace_ui(w->ed, item, tag, value); /* el is gone */
    free(value);
    if (ui)
        map_uids(w, ui, 1);
    else
        note(w, -1, tag);
}

/* Action C by VR: sequences cleaned inside, dates shifted (Modified Dates), AE titles keyed,
 * text scrubbed of identifiers. Overlay and curve bitmaps are graphics the Clean Graphics
 * option keeps (no OCR here: flagged); any other binary value cannot be cleaned: zeroed. */
static void clean(walker *w, dcm_elem *el, const deid_rule *rule, const char *vr, int depth) {
    if (vr_is(vr, "SQ")) {
        int outer = w->cleaning;
        w->cleaning = 1;
        walk_sequence(w, el, depth);
        w->cleaning = outer;
    } else if (vr_is(vr, "DA DT")) {
        shift_dates(w, el, vr[1] == 'T');
    } else if (vr_is(vr, "AE")) {
        char *s = w->ops->value0(w->ed, el);
        if (s && s[0]) {
            char ae[17];
            deid_ae_key(w->ctx, s, ae);
            note(w, w->ops->put(w->ed, el, ae), w->ops->tag(w->ed, el));
        }
        free(s);
    } else if (vr_is(vr, TEXT_VRS)) {
        clean_text(w, el);
    } else if (vr_is(vr, BINARY_VRS) && rule && rule->opts[DEID_OPT_CLEAN_GRAPHICS] == 'C') {
        w->res->graphics_kept = 1;
    } else if (vr_is(vr, BINARY_VRS)) {
        dummy(w, el, vr);
    }
}

/* Apply one action; returns 1 when the element must be removed from its item. */
static int act(walker *w, dcm_elem *el, const deid_rule *rule, deid_action a, const char *vr,
               int depth) {
    deid_file_result *r = w->res;
    int sq = vr_is(vr, "SQ");
    switch (a) {
    case DEID_X: r->n_removed++; return 1;
    case DEID_Z:
        r->n_emptied++;
        note(w, w->ops->clear(w->ed, el), w->ops->tag(w->ed, el));
        return 0;
    case DEID_D:
        if (sq) { /* a dummy sequence: one empty item (the content is what identifies) */
            note(w, w->ops->one_empty_item(w->ed, el), w->ops->tag(w->ed, el));
            r->n_dummied++;
        } else if (vr_is(vr, "UI")) {
            map_uids(w, el, 0);
        } else {
            dummy(w, el, vr);
            r->n_dummied++;
        }
        return 0;
    case DEID_U:
        if (sq)
            walk_sequence(w, el, depth);
        else if (vr_is(vr, "UI"))
            map_uids(w, el, !rule);
        else { /* a UID we cannot read as one (UN in implicit VR files): removed, stricter */
            r->n_removed++;
            return 1;
        }
        return 0;
    case DEID_C:
        r->n_cleaned++;
        clean(w, el, rule, vr, depth);
        return 0;
    default: /* K (and anything else): keep, cleaning inside sequences */
        if (sq) walk_sequence(w, el, depth);
        return 0;
    }
}

static void walk_item(walker *w, dcm_item *item, int depth) {
    const dcm_edit_ops *o = w->ops;
    for (long i = (long)o->count(w->ed, item) - 1; i >= 0; i--) { /* invariant 2 */
        dcm_elem *el = o->at(w->ed, item, (unsigned long)i);
        if (!el) continue;
        uint32_t tag = o->tag(w->ed, el);
        uint16_t g = (uint16_t)(tag >> 16), e = (uint16_t)tag;
        const char *vr = o->vr(w->ed, el);
        int remove;
        if (depth > MAX_DEPTH) {
            remove = 1;
        } else if (g & 1) {
            const deid_safe_private *row = NULL;
            remove = private_remove(w, item, (unsigned long)i, el, vr, &row);
            if (remove)
                w->res->n_private_removed++;
            else
                private_keep(w, item, el, vr, row, depth);
        } else if (e == 0x0000) {
            remove = 1; /* group lengths are recomputed */
        } else {
            const deid_rule *r = deid_rule_find(g, e);
            deid_action a = r                               ? deid_rule_resolve(r, w->opt)
                            : !o->in_dictionary(w->ed, tag) ? DEID_X /* see below */
                                                            : default_action(w, tag, vr);
            /* A public tag neither the profile nor the data dictionary knows is removed: a
             * vendor's misuse of a public group or a damaged tag number could hold anything. */
            remove = act(w, el, r, a, vr, depth);
        }
        if (remove) note(w, o->remove(w->ed, item, (unsigned long)i), tag);
    }
}

/* --- burned-in text ------------------------------------------------------------------------ */

/* Kinds of images that usually carry burned-in text when BurnedInAnnotation is absent. */
static const struct {
    const char *modality;   /* NULL: any */
    const char *sop_prefix; /* NULL: any */
    const char *reason;
} burned_in_kinds[] = {
    {"US", NULL, "ultrasound image without BurnedInAnnotation (usually burned-in text)"},
    {"XA", NULL, "XA image without BurnedInAnnotation (screenshots carry burned-in text)"},
    {NULL, "1.2.840.10008.5.1.4.1.1.7", "secondary capture without BurnedInAnnotation"},
    {"SC", NULL, "secondary capture without BurnedInAnnotation"},
};

/* Why the dataset may carry burned-in text, or NULL. */
static const char *burned_in_reason(const dcm_edit_ops *o, dcm_edit *ed, dcm_item *ds) {
    char *burned = o->find(ed, ds, T_BURNED_IN_ANNOTATION);
    if (burned) {
        int no = strcmp(burned, "NO") == 0;
        free(burned);
        return no ? NULL : "BurnedInAnnotation is not NO (burned-in text)";
    }
    char *modality = o->find(ed, ds, T_MODALITY), *sop = o->find(ed, ds, T_SOP_CLASS_UID);
    const char *why = NULL;
    for (size_t i = 0; !why && i < sizeof burned_in_kinds / sizeof burned_in_kinds[0]; i++) {
        const char *m = burned_in_kinds[i].modality, *p = burned_in_kinds[i].sop_prefix;
        if (m && strcmp(modality ? modality : "", m) != 0) continue;
        if (p && strncmp(sop ? sop : "", p, strlen(p)) != 0) continue;
        why = burned_in_kinds[i].reason;
    }
    free(modality);
    free(sop);
    return why;
}

/* --- markers ------------------------------------------------------------------------------- */

/* The markers of deid.h invariant 4 (the meta information is replaced by the caller). */
static int put_markers(walker *w, dcm_item *ds, const char *pseudonym) {
    const dcm_edit_ops *o = w->ops;
    dcm_edit *ed = w->ed;
    int rc = o->insert(ed, ds, T_PATIENT_NAME, pseudonym);
    if (rc == 0) rc = o->insert(ed, ds, T_PATIENT_ID, pseudonym);
    if (rc == 0) rc = o->insert(ed, ds, T_PATIENT_IDENTITY_REMOVED, "YES");
    const char *temporal = "REMOVED";
    if (w->opt[DEID_OPT_RETAIN_FULL_DATES]) temporal = "UNMODIFIED";
    if (w->opt[DEID_OPT_RETAIN_MODIFIED_DATES]) temporal = "MODIFIED";
    if (rc == 0) rc = o->insert(ed, ds, T_LONGITUDINAL_TEMPORAL, temporal);
    o->erase(ed, ds, T_DEID_METHOD_CODES);
    char method[1024] = "PS3.15 E.1 Basic Application Level Confidentiality Profile";
    size_t len = strlen(method);
    for (int k = -1; k < DEID_N_OPTIONS && rc == 0; k++) {
        if (k >= 0 && !w->opt[k]) continue;
        const char *code = k < 0 ? "113100" : deid_option_code((deid_option)k);
        const char *meaning = k < 0 ? "Basic Application Confidentiality Profile"
                                    : deid_option_meaning((deid_option)k);
        if (k >= 0) len += (size_t)snprintf(method + len, sizeof method - len, "\\%s", meaning);
        dcm_item *item = o->append_item(ed, ds, T_DEID_METHOD_CODES);
        rc = item ? 0 : -1;
        if (rc == 0) rc = o->insert(ed, item, T_CODE_VALUE, code);
        if (rc == 0) rc = o->insert(ed, item, T_CODING_SCHEME, "DCM");
        if (rc == 0) rc = o->insert(ed, item, T_CODE_MEANING, meaning);
    }
    if (rc == 0) rc = o->insert(ed, ds, T_DEID_METHOD, method);
    return rc;
}

/* --- the file ------------------------------------------------------------------------------ */

/* An element's first value, "" when absent (never NULL unless out of memory). */
static char *find_or_empty(const dcm_edit_ops *o, dcm_edit *ed, dcm_item *ds, uint32_t tag) {
    char *s = o->find(ed, ds, tag);
    return s ? s : strdup("");
}

static vs_status apply(walker *w, dcm_item *ds, const char *path, vs_error *err) {
    const dcm_edit_ops *o = w->ops;
    deid_ctx *ctx = w->ctx;
    deid_file_result *res = w->res;
    vs_status st = VS_OK;
    char *pid = find_or_empty(o, w->ed, ds, T_PATIENT_ID);
    char *issuer = find_or_empty(o, w->ed, ds, T_ISSUER_OF_PATIENT_ID);
    char *study = find_or_empty(o, w->ed, ds, T_STUDY_INSTANCE_UID);
    char *series = find_or_empty(o, w->ed, ds, T_SERIES_INSTANCE_UID);
    char *sop = find_or_empty(o, w->ed, ds, T_SOP_INSTANCE_UID);
    if (!pid || !issuer || !study || !series || !sop) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    deid_patient_key(ctx, pid, issuer, res->patient_key);
    deid_uid_key(ctx, study, res->study_key);
    deid_uid_key(ctx, series, res->series_key);
    deid_uid_key(ctx, sop, res->instance_key);

    const char *why = burned_in_reason(o, w->ed, ds);
    if (why && !ctx->opt.accept_burned_in) {
        snprintf(res->reason, sizeof res->reason, "%s", why);
        goto done;
    }
    res->burned_in_flagged = why != NULL;
    w->shift_days = deid_date_shift(ctx, pid, issuer);
    if (w->opt[DEID_OPT_RETAIN_MODIFIED_DATES]) res->date_shift_days = w->shift_days;

    collect_item(w, ds, 0);
    finish_idents(w);
    walk_item(w, ds, 0);
    if (w->out_of_memory) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (o->threw(w->ed)) goto done;
    if (w->failed) {
        st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: DCMTK cannot edit (%04X,%04X): %s", path,
                     (unsigned)(w->fail_tag >> 16), (unsigned)(w->fail_tag & 0xFFFF), w->fail_why);
        goto done;
    }
    if (put_markers(w, ds, res->patient_key) != 0) {
        if (!o->threw(w->ed))
            st = VS_FAIL(err, VS_ERR_LIBRARY,
                         "%s: DCMTK cannot write the de-identification markers: %s", path,
                         o->last_error(w->ed));
        goto done;
    }
    if (o->fresh_meta(w->ed) != 0) goto done; /* it fails only by throwing */
    res->accepted = 1;

    char shift[16];
    snprintf(shift, sizeof shift, "%d", w->shift_days);
    st = deid_linkage_put(ctx, "patient", pid, res->patient_key, err);
    if (st == VS_OK) st = deid_linkage_put(ctx, "date-shift", pid, shift, err);
    if (st == VS_OK) st = deid_linkage_put(ctx, "study", study, res->study_key, err);
    if (st == VS_OK) st = deid_linkage_put(ctx, "series", series, res->series_key, err);
    if (st == VS_OK) st = deid_linkage_put(ctx, "instance", sop, res->instance_key, err);
done:
    free(pid);
    free(issuer);
    free(study);
    free(series);
    free(sop);
    return st;
}

vs_status deid_apply_edit(deid_ctx *ctx, const dcm_edit_ops *ops, dcm_edit *ed, const char *path,
                          deid_file_result *res, vs_error *err) {
    memset(res, 0, sizeof *res);
    walker w;
    memset(&w, 0, sizeof w);
    w.ops = ops;
    w.ed = ed;
    w.ctx = ctx;
    w.opt = ctx->opt.option;
    w.res = res;
    vs_status st = VS_OK;
    dcm_item *ds = ops->root(ed);
    if (ds) st = apply(&w, ds, path, err);
    if (st == VS_OK && (!ds || ops->threw(ed))) {
        res->accepted = 0;
        st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: de-identification failed inside DCMTK", path);
    }
    for (size_t i = 0; i < w.n_idents; i++)
        free(w.idents[i]);
    free(w.idents);
    return st;
}

vs_status deid_apply(deid_ctx *ctx, dcm_file *f, deid_file_result *res, vs_error *err) {
    dcm_edit *ed = dcm_file_edit_open(f);
    if (!ed) {
        memset(res, 0, sizeof *res);
        return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", dcm_file_path(f));
    }
    vs_status st = deid_apply_edit(ctx, &dcm_file_edit_ops, ed, dcm_file_path(f), res, err);
    dcm_file_edit_close(ed);
    return st;
}
