/* deid_internal.h — what deid.c (profile, crypto, text) shares with deid_apply.c (the walk),
 * the verify-deid scanners (deid_verify.cc, deid_scan.c, deid_shard.c) and the white-box
 * tests. Not a public header: C types only. */
#ifndef VS_DEID_INTERNAL_H
#define VS_DEID_INTERNAL_H

#include "dcmedit.h"
#include "deid.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Action codes of Table E.1-1; the last five are combined codes resolved by attribute type. */
typedef enum deid_action {
    DEID_NONE = 0, /* not in the profile */
    DEID_X,        /* remove */
    DEID_Z,        /* zero length (or dummy) */
    DEID_D,        /* dummy of the right VR */
    DEID_K,        /* keep (sequences still cleaned) */
    DEID_C,        /* clean */
    DEID_U,        /* replace UID */
    DEID_ZD,
    DEID_XZ,
    DEID_XD,
    DEID_XZD,
    DEID_XZU
} deid_action;

typedef struct deid_rule {
    uint32_t tag;  /* (group << 16) | element, with pattern digits zero */
    uint32_t mask; /* the row matches a tag t when (t & mask) == tag */
    const char *keyword;
    uint8_t type;                  /* 1, 2, 3; 0: unknown (stricter action) */
    uint8_t basic;                 /* deid_action */
    char opts[DEID_N_OPTIONS + 1]; /* per option: '-' basic, 'K' keep, 'C' clean */
} deid_rule;

extern const deid_rule deid_profile[];
extern const int deid_profile_n;       /* all rows */
extern const int deid_profile_n_exact; /* rows [0, n_exact) are exact tags, sorted */

/* The profile row for a tag, or NULL. Exact rows win over patterns. */
const deid_rule *deid_rule_find(uint16_t group, uint16_t element);
/* The single action (X, Z, D, K, C or U) for a row under the chosen options: a chosen
 * option's K or C wins (K over C), otherwise the basic code resolved by type. */
deid_action deid_rule_resolve(const deid_rule *r, const unsigned char option[DEID_N_OPTIONS]);
const char *deid_action_name(deid_action a);

/* UI attributes that name a class or a coding scheme, never an instance: kept as they are. */
int deid_uid_tag_is_class(uint16_t group, uint16_t element);
/* "1.2.840.10008." UIDs are defined by DICOM itself and identify nothing. */
int deid_uid_is_standard(const char *uid);
/* "2.25." + decimal of at most 128 bits without leading zeros. */
int deid_uid_is_pseudonym(const char *uid);

/* Retain Safe Private: PS3.15 Table E.3.10-1 (io/deid/deid_private.c). */
typedef struct deid_safe_private {
    const char *creator; /* the private creator that reserves the block */
    uint16_t group;
    uint8_t element; /* element byte within the block: (gggg,xxee) -> ee */
    const char *vr;  /* "DS", "OW/OB"; "" when the table gives none */
    const char *meaning;
} deid_safe_private;

extern const deid_safe_private deid_safe_private_table[];
extern const int deid_safe_private_n;

/* The row for an element (gggg,bbee) whose block bb is reserved by creator, or NULL. */
const deid_safe_private *deid_private_safe_row(const char *creator, uint16_t group,
                                               uint8_t element);
/* 1 when the row exists and allows vr (NULL: not checked; UN: unless the row is SQ). */
int deid_private_is_safe(const char *creator, uint16_t group, uint8_t element, const char *vr);

/* Dummy value of a VR for action D ("" for VRs that have none: SQ, binary, UI). */
const char *deid_dummy_for_vr(const char *vr);

/* Shift one DICOM DA value ("YYYYMMDD") or the date part of a DT value by `days`; out gets
 * "" when the value is not a full date (partial or malformed dates cannot be shifted).
 * Returns the length written. */
size_t deid_shift_da(const char *in, int days, char *out, size_t cap);
size_t deid_shift_dt(const char *in, int days, char *out, size_t cap);

/* Clean free text: every occurrence (case-insensitive, on word boundaries) of an identifier
 * in idents[0..n), every run of 5+ digits and every date-like d/m/y pattern becomes '*'.
 * Returns the length written (out is always NUL-terminated, truncated to cap-1). */
size_t deid_text_clean(const char *in, const char *const *idents, int n_idents, char *out,
                       size_t cap);
/* 1 when an identifier found in an attribute of this keyword should be scrubbed from text
 * elsewhere (names, IDs, addresses, numbers). */
int deid_keyword_is_identifier(const char *keyword);

struct sqlite3;
struct deid_ctx {
    deid_options opt;
    unsigned char key[32];
    char *linkage_path;
    struct sqlite3 *linkage; /* NULL when off */
    pthread_mutex_t lock;    /* guards linkage */
};

/* deid_apply on any implementation of io/dicom/include/dcmedit.h's table (deid_apply passes
 * DCMTK's; tests a fake). path names the file in errors. */
vs_status deid_apply_edit(deid_ctx *ctx, const dcm_edit_ops *ops, dcm_edit *ed, const char *path,
                          deid_file_result *res, vs_error *err);

/* HMAC-SHA256(key, domain || 0x00 || msg). */
void deid_hmac(const deid_ctx *ctx, const char *domain, const char *msg, unsigned char out[32]);
/* AE-title pseudonym (Clean under Retain Device Identity): "AE" + 12 base32 chars. */
void deid_ae_key(const deid_ctx *ctx, const char *ae, char out[17]);
/* Record original -> pseudonym in the linkage table (no-op when off). */
vs_status deid_linkage_put(deid_ctx *ctx, const char *kind, const char *original,
                           const char *pseudonym, vs_error *err);

/* ---- verify-deid scanning (io/deid/deid_scan.c) ------------------------------------------- */

/* The next UID of an organisation's root (deid_scan.c invariant 2) in s[0..n) starting the
 * search at *pos: returns 1 and sets *pos, *len to it, or 0. */
int deid_find_org_uid(const char *s, size_t n, size_t *pos, size_t *len);
/* Count one hit and pass it to fn (may be NULL). */
void deid_report(const char *path, const char *where, const char *what, deid_hit_fn fn, void *user,
                 int *n_hits);
/* Scan one text value: a listed identifier, a UID of an organisation's root other than
 * allowed[0..n_allowed). At most one hit per kind; returns the number of hits. */
int deid_scan_string(const char *path, const char *where, const char *s, size_t n,
                     const deid_phi *phi, const char *const *allowed, int n_allowed, deid_hit_fn fn,
                     void *user, int *n_hits);
/* Scan the raw bytes of a file: the first offset of each listed identifier, and the UIDs of an
 * organisation's root other than allowed[0..n_allowed) (one hit with their count). */
vs_status deid_scan_raw(const char *path, const deid_phi *phi, const char *const *allowed,
                        int n_allowed, deid_hit_fn fn, void *user, int *n_hits, vs_error *err);

#ifdef __cplusplus
}
#endif
#endif
