/* test_deid_apply — the de-identification walk (io/deid/deid_apply.c) on a fake dataset: a
 * plain tree implementing io/dicom/include/dcmedit.h's table, no DCMTK. Each test builds a
 * dataset, applies the profile and checks every element's fate against what PS3.15 Table E.1-1
 * and this project's rules say, written out by hand here: removed, emptied, replaced by a
 * pseudonym, shifted, scrubbed or kept; private blocks under Retain Safe Private; images
 * refused for burned-in text; the markers; depth limits; and a refused edit failing the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dcmedit.h"
#include "deid_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TAG(g, e) (((uint32_t)(g) << 16) | (uint32_t)(e))

/* --- the fake dataset ------------------------------------------------------------------------ */

typedef struct fitem fitem;
typedef struct felem {
    uint32_t tag;
    char vr[3];
    char *value; /* the bytes of the value (text values: no padding) */
    size_t len;
    fitem **items; /* SQ */
    size_t n_items;
} felem;
struct fitem {
    felem **e; /* in tag order */
    size_t n;
};
struct dcm_edit {
    fitem *root;
    uint32_t refuse_tag; /* put on this tag fails */
    int throw_on_count;  /* count throws (invariant 3 of dcmedit.h) */
    int threw, fresh_meta;
    char why[64];
};

static fitem *item_new(void) { return calloc(1, sizeof(fitem)); }

static void elem_free(felem *e);
static void item_free(fitem *it) {
    if (!it) return;
    for (size_t i = 0; i < it->n; i++)
        elem_free(it->e[i]);
    free(it->e);
    free(it);
}
static void items_free(felem *e) {
    for (size_t k = 0; k < e->n_items; k++)
        item_free(e->items[k]);
    free(e->items);
    e->items = NULL;
    e->n_items = 0;
}
static void elem_free(felem *e) {
    if (!e) return;
    items_free(e);
    free(e->value);
    free(e);
}

static void set_value(felem *e, const char *v, size_t n) {
    free(e->value);
    e->value = malloc(n + 1);
    memcpy(e->value, v, n);
    e->value[n] = '\0';
    e->len = n;
}

static long index_of(fitem *it, uint32_t tag) {
    for (size_t i = 0; i < it->n; i++)
        if (it->e[i]->tag == tag) return (long)i;
    return -1;
}

/* Put (or replace) an element, keeping tag order. */
static felem *add(fitem *it, uint32_t tag, const char *vr, const char *value) {
    long at = index_of(it, tag);
    felem *e = calloc(1, sizeof *e);
    e->tag = tag;
    memcpy(e->vr, vr, 2);
    if (value) set_value(e, value, strlen(value));
    if (at >= 0) {
        elem_free(it->e[at]);
        it->e[at] = e;
        return e;
    }
    size_t i = 0;
    while (i < it->n && it->e[i]->tag < tag)
        i++;
    it->e = realloc(it->e, (it->n + 1) * sizeof *it->e);
    memmove(it->e + i + 1, it->e + i, (it->n - i) * sizeof *it->e);
    it->e[i] = e;
    it->n++;
    return e;
}

static fitem *add_item(felem *sq) {
    sq->items = realloc(sq->items, (sq->n_items + 1) * sizeof *sq->items);
    return sq->items[sq->n_items++] = item_new();
}

static felem *get(fitem *it, uint32_t tag) {
    long i = index_of(it, tag);
    return i < 0 ? NULL : it->e[i];
}

/* --- the table over it ------------------------------------------------------------------------ */

#define IT(x) ((fitem *)(x))
#define EL(x) ((felem *)(x))

static dcm_item *f_root(dcm_edit *ed) { return (dcm_item *)ed->root; }
static unsigned long f_count(dcm_edit *ed, dcm_item *it) {
    if (ed->throw_on_count) ed->threw = 1;
    return IT(it)->n;
}
static dcm_elem *f_at(dcm_edit *ed, dcm_item *it, unsigned long i) {
    (void)ed;
    return i < IT(it)->n ? (dcm_elem *)IT(it)->e[i] : NULL;
}
static uint32_t f_tag(dcm_edit *ed, dcm_elem *e) { return (void)ed, EL(e)->tag; }
static const char *f_vr(dcm_edit *ed, dcm_elem *e) { return (void)ed, EL(e)->vr; }
static uint32_t f_length(dcm_edit *ed, dcm_elem *e) { return (void)ed, (uint32_t)EL(e)->len; }
static unsigned long f_n_items(dcm_edit *ed, dcm_elem *sq) { return (void)ed, EL(sq)->n_items; }
static dcm_item *f_item(dcm_edit *ed, dcm_elem *sq, unsigned long k) {
    (void)ed;
    return k < EL(sq)->n_items ? (dcm_item *)EL(sq)->items[k] : NULL;
}
static char *f_values(dcm_edit *ed, dcm_elem *e, size_t *len) {
    (void)ed;
    if (!EL(e)->value) return strdup("");
    char *s = malloc(EL(e)->len + 1);
    memcpy(s, EL(e)->value, EL(e)->len + 1);
    *len = EL(e)->len;
    return s;
}
static char *f_value0(dcm_edit *ed, dcm_elem *e) {
    (void)ed;
    const char *v = EL(e)->value ? EL(e)->value : "";
    return strndup(v, strcspn(v, "\\"));
}
static uint8_t *f_bytes(dcm_edit *ed, dcm_elem *e, size_t *n) {
    (void)ed;
    if (!EL(e)->value) return NULL;
    uint8_t *b = malloc(EL(e)->len);
    memcpy(b, EL(e)->value, EL(e)->len);
    *n = EL(e)->len;
    return b;
}
static int f_conforms(dcm_edit *ed, dcm_elem *e) { /* DS only: digits, sign, point, exponent */
    (void)ed;
    if (strcmp(EL(e)->vr, "DS") != 0 || !EL(e)->value) return 1;
    return strspn(EL(e)->value, "0123456789+-.eE \\") == EL(e)->len;
}
static char *f_find(dcm_edit *ed, dcm_item *it, uint32_t tag) {
    felem *e = get(IT(it), tag);
    return e ? f_value0(ed, (dcm_elem *)e) : NULL;
}
static int f_in_dictionary(dcm_edit *ed, uint32_t tag) {
    (void)ed;
    return tag != TAG(0x0044, 0x7777); /* the one public tag this fake dictionary lacks */
}
static int f_put(dcm_edit *ed, dcm_elem *e, const char *v) {
    if (EL(e)->tag == ed->refuse_tag) {
        snprintf(ed->why, sizeof ed->why, "refused by the fake");
        return -1;
    }
    set_value(EL(e), v, strlen(v));
    return 0;
}
static int f_put_zeros(dcm_edit *ed, dcm_elem *e, uint32_t n) {
    (void)ed;
    char *z = calloc(1, n);
    set_value(EL(e), z, n);
    free(z);
    return 0;
}
static int f_clear(dcm_edit *ed, dcm_elem *e) {
    (void)ed;
    items_free(EL(e));
    set_value(EL(e), "", 0);
    return 0;
}
static int f_one_empty_item(dcm_edit *ed, dcm_elem *sq) {
    (void)ed;
    items_free(EL(sq));
    add_item(EL(sq));
    return 0;
}
static int f_remove(dcm_edit *ed, dcm_item *it, unsigned long i) {
    (void)ed;
    fitem *x = IT(it);
    elem_free(x->e[i]);
    memmove(x->e + i, x->e + i + 1, (x->n - i - 1) * sizeof *x->e);
    x->n--;
    return 0;
}
static dcm_elem *f_replace_ui(dcm_edit *ed, dcm_item *it, uint32_t tag, const char *v) {
    (void)ed;
    return (dcm_elem *)add(IT(it), tag, "UI", v);
}
static int f_insert(dcm_edit *ed, dcm_item *it, uint32_t tag, const char *v) {
    (void)ed;
    felem *e = get(IT(it), tag);
    if (e)
        set_value(e, v, strlen(v));
    else
        add(IT(it), tag, tag == TAG(0x0010, 0x0010) ? "PN" : "LO", v);
    return 0;
}
static void f_erase(dcm_edit *ed, dcm_item *it, uint32_t tag) {
    long i = index_of(IT(it), tag);
    if (i >= 0) f_remove(ed, it, (unsigned long)i);
}
static dcm_item *f_append_item(dcm_edit *ed, dcm_item *it, uint32_t sq_tag) {
    (void)ed;
    felem *sq = get(IT(it), sq_tag);
    if (!sq) sq = add(IT(it), sq_tag, "SQ", NULL);
    return (dcm_item *)add_item(sq);
}
static int f_fresh_meta(dcm_edit *ed) { return ed->fresh_meta = 1, 0; }
static const char *f_last_error(dcm_edit *ed) { return ed->why; }
static int f_threw(dcm_edit *ed) { return ed->threw; }

static const dcm_edit_ops fake = {
    f_root,       f_count,         f_at,     f_tag,       f_vr,          f_length,
    f_n_items,    f_item,          f_values, f_value0,    f_bytes,       f_conforms,
    f_find,       f_in_dictionary, f_put,    f_put_zeros, f_clear,       f_one_empty_item,
    f_remove,     f_replace_ui,    f_insert, f_erase,     f_append_item, f_fresh_meta,
    f_last_error, f_threw,
};

/* --- helpers ---------------------------------------------------------------------------------- */

static char key_dir[] = "/tmp/vs_test_deid_apply_XXXXXX";

static deid_ctx *open_ctx(const int *options, int accept_burned_in) {
    deid_options opt;
    memset(&opt, 0, sizeof opt);
    for (const int *o = options; o && *o >= 0; o++)
        opt.option[*o] = 1;
    opt.accept_burned_in = accept_burned_in;
    char path[128];
    snprintf(path, sizeof path, "%s/site.key", key_dir);
    deid_ctx *ctx = NULL;
    vs_error err;
    assert_int_equal(deid_open(&opt, path, &ctx, &err), VS_OK);
    return ctx;
}

/* A CT image header: the identifiers a real one carries. */
static fitem *ct_dataset(void) {
    fitem *ds = item_new();
    add(ds, TAG(0x0008, 0x0000), "UL", "120"); /* group length */
    add(ds, TAG(0x0008, 0x0016), "UI", "1.2.840.10008.5.1.4.1.1.2");
    add(ds, TAG(0x0008, 0x0018), "UI", "1.2.3.4.5.6.7.3"); /* SOPInstanceUID */
    add(ds, TAG(0x0008, 0x0020), "DA", "20240131");        /* StudyDate */
    add(ds, TAG(0x0008, 0x0050), "SH", "ACC123456");       /* AccessionNumber */
    add(ds, TAG(0x0008, 0x0060), "CS", "CT");
    add(ds, TAG(0x0008, 0x0090), "PN", "House^Gregory"); /* ReferringPhysicianName */
    add(ds, TAG(0x0008, 0x1030), "LO", "Doe John chest 2024-01-31 follow-up");
    add(ds, TAG(0x0010, 0x0010), "PN", "Doe^John");
    add(ds, TAG(0x0010, 0x0020), "LO", "PID-778899");
    add(ds, TAG(0x0010, 0x0030), "DA", "19600229");         /* PatientBirthDate */
    add(ds, TAG(0x0010, 0x1000), "LO", "OTHER-1\\OTHER-2"); /* OtherPatientIDs */
    add(ds, TAG(0x0018, 0x1000), "LO", "SN-0042");          /* DeviceSerialNumber */
    add(ds, TAG(0x0020, 0x000D), "UI", "1.2.3.4.5.6.7.1");
    add(ds, TAG(0x0020, 0x000E), "UI", "1.2.3.4.5.6.7.2");
    add(ds, TAG(0x0018, 0x9999), "UI", "1.2.840.10008.1.2\\1.2.3.4.5.6.7.4"); /* not listed */
    add(ds, TAG(0x0028, 0x0010), "US", "512");             /* Rows: not in the profile */
    add(ds, TAG(0x0044, 0x7777), "LO", "Doe John");        /* unknown public tag */
    felem *ref = add(ds, TAG(0x0008, 0x1140), "SQ", NULL); /* ReferencedImageSequence */
    add(add_item(ref), TAG(0x0008, 0x1155), "UI", "1.2.3.4.5.6.7.8");
    felem *voi = add(ds, TAG(0x0028, 0x3010), "SQ", NULL); /* VOILUTSequence */
    add(add_item(voi), TAG(0x0008, 0x1155), "UI", "1.2.3.4.5.6.7.9");
    return ds;
}

static vs_status run(deid_ctx *ctx, fitem *ds, dcm_edit *ed, deid_file_result *res, vs_error *err) {
    ed->root = ds;
    return deid_apply_edit(ctx, &fake, ed, "fake.dcm", res, err);
}

static const char *val(fitem *ds, uint32_t tag) {
    felem *e = get(ds, tag);
    return e ? (e->value ? e->value : "") : NULL;
}

static void assert_uid_pseudonym(deid_ctx *ctx, const char *got, const char *original) {
    char want[DEID_KEY_MAX];
    deid_uid_key(ctx, original, want);
    assert_string_equal(got, want);
    assert_true(deid_uid_is_pseudonym(got));
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_basic_profile(void **state) {
    (void)state;
    deid_ctx *ctx = open_ctx(NULL, 0);
    fitem *ds = ct_dataset();
    dcm_edit ed = {0};
    deid_file_result res;
    vs_error err;
    assert_int_equal(run(ctx, ds, &ed, &res, &err), VS_OK);
    assert_int_equal(res.accepted, 1);
    char pk[DEID_KEY_MAX];
    deid_patient_key(ctx, "PID-778899", "", pk);
    assert_string_equal(res.patient_key, pk);
    /* X: removed */
    assert_null(val(ds, TAG(0x0010, 0x1000)));
    assert_null(val(ds, TAG(0x0008, 0x1030)));
    assert_null(val(ds, TAG(0x0018, 0x1000))); /* X/Z/D, type 3: X */
    assert_null(val(ds, TAG(0x0008, 0x0000))); /* group lengths go */
    assert_null(val(ds, TAG(0x0044, 0x7777))); /* unknown to profile and dictionary */
    /* Z: emptied */
    assert_string_equal(val(ds, TAG(0x0008, 0x0050)), "");
    assert_string_equal(val(ds, TAG(0x0008, 0x0090)), "");
    assert_string_equal(val(ds, TAG(0x0010, 0x0030)), "");
    assert_string_equal(val(ds, TAG(0x0008, 0x0020)), "");
    /* U: keyed pseudonyms, DICOM's own UIDs and class UIDs kept, nested ones too */
    assert_uid_pseudonym(ctx, val(ds, TAG(0x0020, 0x000D)), "1.2.3.4.5.6.7.1");
    assert_uid_pseudonym(ctx, val(ds, TAG(0x0008, 0x0018)), "1.2.3.4.5.6.7.3");
    assert_uid_pseudonym(ctx, val(ds, TAG(0x0020, 0x000E)), "1.2.3.4.5.6.7.2");
    char two[2 * DEID_KEY_MAX] = "1.2.840.10008.1.2\\";
    deid_uid_key(ctx, "1.2.3.4.5.6.7.4", two + strlen(two));
    assert_string_equal(val(ds, TAG(0x0018, 0x9999)), two);
    assert_string_equal(val(ds, TAG(0x0008, 0x0016)), "1.2.840.10008.5.1.4.1.1.2");
    assert_null(val(ds, TAG(0x0008, 0x1140))); /* X/Z/U, type 3: X */
    felem *voi = get(ds, TAG(0x0028, 0x3010)); /* a sequence the profile does not list: walked */
    assert_non_null(voi);
    assert_uid_pseudonym(ctx, val(voi->items[0], TAG(0x0008, 0x1155)), "1.2.3.4.5.6.7.9");
    /* not in the profile: kept */
    assert_string_equal(val(ds, TAG(0x0028, 0x0010)), "512");
    assert_string_equal(val(ds, TAG(0x0008, 0x0060)), "CT");
    /* markers (deid.h invariant 4) */
    assert_string_equal(val(ds, TAG(0x0010, 0x0010)), pk);
    assert_string_equal(val(ds, TAG(0x0010, 0x0020)), pk);
    assert_string_equal(val(ds, TAG(0x0012, 0x0062)), "YES");
    assert_string_equal(val(ds, TAG(0x0028, 0x0303)), "REMOVED");
    assert_string_equal(val(ds, TAG(0x0012, 0x0063)),
                        "PS3.15 E.1 Basic Application Level Confidentiality Profile");
    felem *codes = get(ds, TAG(0x0012, 0x0064));
    assert_non_null(codes);
    assert_int_equal(codes->n_items, 1);
    assert_string_equal(val(codes->items[0], TAG(0x0008, 0x0100)), "113100");
    assert_string_equal(val(codes->items[0], TAG(0x0008, 0x0102)), "DCM");
    assert_int_equal(ed.fresh_meta, 1);
    /* counts: X on OtherPatientIDs, StudyDescription, DeviceSerialNumber, the referenced
     * images and the unknown tag; Z on the ID (Z/D, type 2: Z), name, accession, referrer,
     * birth date and study date */
    assert_int_equal(res.n_removed, 5);
    assert_int_equal(res.n_emptied, 6);
    assert_int_equal(res.n_uids, 5);
    item_free(ds);
    deid_close(ctx);
}

static void test_options(void **state) {
    (void)state;
    const int opts[] = {DEID_OPT_RETAIN_MODIFIED_DATES, DEID_OPT_CLEAN_DESCRIPTORS,
                        DEID_OPT_RETAIN_DEVICE_ID, -1};
    deid_ctx *ctx = open_ctx(opts, 0);
    fitem *ds = ct_dataset();
    dcm_edit ed = {0};
    deid_file_result res;
    vs_error err;
    assert_int_equal(run(ctx, ds, &ed, &res, &err), VS_OK);
    int shift = deid_date_shift(ctx, "PID-778899", "");
    assert_true(shift <= -1 && shift >= -3652);
    assert_int_equal(res.date_shift_days, shift);
    char want[16];
    deid_shift_da("20240131", shift, want, sizeof want);
    assert_string_equal(val(ds, TAG(0x0008, 0x0020)), want);
    /* the description is kept, scrubbed of the patient's and the referrer's names and of
     * the dates the dataset holds, in any written form */
    assert_string_equal(val(ds, TAG(0x0008, 0x1030)), "* * chest * follow-up");
    assert_string_equal(val(ds, TAG(0x0018, 0x1000)), "SN-0042");
    assert_string_equal(val(ds, TAG(0x0028, 0x0303)), "MODIFIED");
    felem *codes = get(ds, TAG(0x0012, 0x0064));
    assert_int_equal(codes->n_items, 4); /* 113100 + one per option, in option order */
    assert_string_equal(val(codes->items[1], TAG(0x0008, 0x0100)), "113109");
    assert_string_equal(val(codes->items[2], TAG(0x0008, 0x0100)), "113107");
    assert_string_equal(val(codes->items[3], TAG(0x0008, 0x0100)), "113105");
    item_free(ds);
    deid_close(ctx);
}

static void test_burned_in(void **state) {
    (void)state;
    static const struct {
        const char *modality, *sop_class, *burned;
        int refused;
    } cases[] = {
        {"US", "1.2.840.10008.5.1.4.1.1.6.1", NULL, 1},
        {"US", "1.2.840.10008.5.1.4.1.1.6.1", "NO", 0},
        {"CT", "1.2.840.10008.5.1.4.1.1.2", "YES", 1},
        {"XA", "1.2.840.10008.5.1.4.1.1.12.1", NULL, 1},
        {"OT", "1.2.840.10008.5.1.4.1.1.7", NULL, 1}, /* secondary capture by class */
        {"CT", "1.2.840.10008.5.1.4.1.1.2", NULL, 0},
    };
    for (int accept = 0; accept < 2; accept++) {
        deid_ctx *ctx = open_ctx(NULL, accept);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            fitem *ds = ct_dataset();
            add(ds, TAG(0x0008, 0x0060), "CS", cases[i].modality);
            add(ds, TAG(0x0008, 0x0016), "UI", cases[i].sop_class);
            if (cases[i].burned) add(ds, TAG(0x0028, 0x0301), "CS", cases[i].burned);
            dcm_edit ed = {0};
            deid_file_result res;
            vs_error err;
            assert_int_equal(run(ctx, ds, &ed, &res, &err), VS_OK);
            int refused = cases[i].refused && !accept;
            assert_int_equal(res.accepted, !refused);
            assert_int_equal(res.burned_in_flagged, cases[i].refused && accept);
            if (refused) { /* left unchanged, with a reason that holds no header value */
                assert_true(strstr(res.reason, "burned-in") || strstr(res.reason, "BurnedIn"));
                assert_string_equal(val(ds, TAG(0x0010, 0x0010)), "Doe^John");
            }
            item_free(ds);
        }
        deid_close(ctx);
    }
}

/* The first row of Table E.3.10-1 with this VR (the table is io/deid/deid_private.c's). */
static const deid_safe_private *safe_row(const char *vr) {
    for (int i = 0; i < deid_safe_private_n; i++)
        if (strcmp(deid_safe_private_table[i].vr, vr) == 0) return &deid_safe_private_table[i];
    fail_msg("no safe private row with VR %s", vr);
    return NULL;
}

/* An element byte of that row's creator and group the table does not list. */
static uint8_t unsafe_byte(const deid_safe_private *r) {
    for (int e = 0; e < 256; e++)
        if (!deid_private_safe_row(r->creator, r->group, (uint8_t)e)) return (uint8_t)e;
    fail_msg("every element of %s is safe", r->creator);
    return 0;
}

static void test_private(void **state) {
    (void)state;
    const deid_safe_private *ds_row = safe_row("DS"), *ui_row = safe_row("UI");
    for (int retain = 0; retain < 2; retain++) {
        const int opts[] = {DEID_OPT_RETAIN_SAFE_PRIVATE, -1};
        deid_ctx *ctx = open_ctx(retain ? opts : NULL, 0);
        fitem *ds = ct_dataset();
        /* block 0x10 of ds_row's group: the safe element, and one the table does not list */
        uint16_t g = ds_row->group;
        add(ds, TAG(g, 0x0010), "LO", ds_row->creator);
        add(ds, TAG(g, 0x1000 | ds_row->element), "DS", "12.5");
        add(ds, TAG(g, 0x1000 | unsafe_byte(ds_row)), "LO", "Doe John");
        /* block 0x11: the safe element holding a name instead of a number */
        add(ds, TAG(g, 0x0011), "LO", ds_row->creator);
        add(ds, TAG(g, 0x1100 | ds_row->element), "DS", "Doe John");
        /* a safe UID element read as UN (implicit VR, not in the dictionary) */
        uint16_t gu = ui_row->group;
        add(ds, TAG(gu, 0x0010), "LO", ui_row->creator);
        add(ds, TAG(gu, 0x1000 | ui_row->element), "UN", "1.2.3.4.5.99");
        get(ds, TAG(gu, 0x1000 | ui_row->element))->len++; /* and its NUL padding */
        /* a private tag no creator reserves */
        add(ds, TAG(0x0009, 0x0002), "LO", "Doe John");
        dcm_edit ed = {0};
        deid_file_result res;
        vs_error err;
        assert_int_equal(run(ctx, ds, &ed, &res, &err), VS_OK);
        assert_null(val(ds, TAG(g, 0x1000 | unsafe_byte(ds_row))));
        assert_null(val(ds, TAG(g, 0x1100 | ds_row->element)));
        assert_null(val(ds, TAG(g, 0x0011))); /* its block kept nothing */
        assert_null(val(ds, TAG(0x0009, 0x0002)));
        if (!retain) {
            assert_null(val(ds, TAG(g, 0x0010)));
            assert_null(val(ds, TAG(g, 0x1000 | ds_row->element)));
            assert_null(val(ds, TAG(gu, 0x1000 | ui_row->element)));
            assert_int_equal(res.n_private_removed, 8);
        } else {
            assert_string_equal(val(ds, TAG(g, 0x0010)), ds_row->creator);
            assert_string_equal(val(ds, TAG(g, 0x1000 | ds_row->element)), "12.5");
            felem *u = get(ds, TAG(gu, 0x1000 | ui_row->element));
            assert_non_null(u);
            assert_string_equal(u->vr, "UI");
            assert_uid_pseudonym(ctx, u->value, "1.2.3.4.5.99");
            assert_int_equal(res.n_private_removed, 4);
        }
        item_free(ds);
        deid_close(ctx);
    }
}

static void test_depth_limit(void **state) {
    (void)state;
    deid_ctx *ctx = open_ctx(NULL, 0);
    fitem *ds = ct_dataset();
    /* a chain of sequences 70 items deep, each item holding a UID and the next sequence */
    fitem *it = ds;
    fitem *level[71];
    for (int d = 0; d <= 70; d++) {
        level[d] = it;
        if (d) add(it, TAG(0x0008, 0x1155), "UI", "1.2.3.4.5.6.7.9");
        if (d < 70) it = add_item(add(it, TAG(0x0028, 0x3010), "SQ", NULL));
    }
    dcm_edit ed = {0};
    deid_file_result res;
    vs_error err;
    assert_int_equal(run(ctx, ds, &ed, &res, &err), VS_OK);
    for (int d = 1; d <= 64; d++) /* items at depth 1..64 are walked */
        assert_uid_pseudonym(ctx, val(level[d], TAG(0x0008, 0x1155)), "1.2.3.4.5.6.7.9");
    assert_int_equal(level[65]->n, 0); /* deeper: removed outright */
    item_free(ds);
    deid_close(ctx);
}

static void test_failures(void **state) {
    (void)state;
    const int opts[] = {DEID_OPT_CLEAN_DESCRIPTORS, -1};
    deid_ctx *ctx = open_ctx(opts, 0);
    fitem *ds = ct_dataset();
    dcm_edit ed = {.refuse_tag = TAG(0x0008, 0x1030)};
    deid_file_result res;
    vs_error err;
    assert_int_equal(run(ctx, ds, &ed, &res, &err), VS_ERR_LIBRARY);
    assert_int_equal(res.accepted, 0);
    assert_string_equal(err.msg, "fake.dcm: DCMTK cannot edit (0008,1030): refused by the fake");
    assert_null(strstr(err.msg, "Doe"));
    item_free(ds);

    ds = ct_dataset();
    dcm_edit ed2 = {.throw_on_count = 1};
    assert_int_equal(run(ctx, ds, &ed2, &res, &err), VS_ERR_LIBRARY);
    assert_int_equal(res.accepted, 0);
    assert_string_equal(err.msg, "fake.dcm: de-identification failed inside DCMTK");
    item_free(ds);
    deid_close(ctx);
}

static int setup(void **state) {
    (void)state;
    return mkdtemp(key_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/site.key", key_dir);
    unlink(path);
    return rmdir(key_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_profile), cmocka_unit_test(test_options),
        cmocka_unit_test(test_burned_in),     cmocka_unit_test(test_private),
        cmocka_unit_test(test_depth_limit),   cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
