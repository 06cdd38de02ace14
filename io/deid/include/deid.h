/* deid.h — de-identification by DICOM PS3.15 Annex E (Basic Application Level
 * Confidentiality Profile and its ten options), keyed pseudonyms, and a leak scanner.
 *
 * One code path serves `vesalius ingest` (in memory, on each file of a series before
 * anything is written) and `vesalius anonymize` (files to files): deid_open once with the
 * options and the site key, deid_apply on each loaded dcm_file, deid_close.
 *
 * Invariants:
 *   1. The profile is the project's own table (io/deid/deid_profile.c, generated once from Table
 *      E.1-1); it is applied to every element at every nesting depth of every sequence.
 *      Combined codes are resolved by the attribute's type, the stricter action when the type
 *      is unknown. Private elements are removed unless the Retain Safe Private option is
 *      chosen and the element is in PS3.15 Table E.3.10-1 (io/deid/deid_private.c), matched by
 *      private creator and element byte within the creator's block; a creator stays only
 *      while its block keeps an element.
 *   2. Every replaced UID is "2.25." + the decimal of 128 bits of HMAC-SHA256(key, uid): the
 *      same original gives the same pseudonym in every file and every run with the same key.
 *      Patient pseudonyms and per-patient date shifts are derived the same way.
 *   3. The key file is 32 random bytes (hex) created with mode 0600 on first use; a key file
 *      readable or writable by group or others is refused (VS_ERR_ENV).
 *   4. A de-identified dataset carries PatientIdentityRemoved = YES, DeidentificationMethod,
 *      DeidentificationMethodCodeSequence (113100 + one CID 7050 code per option), fresh file
 *      meta information (from the new SOP Instance UID) and a zeroed preamble.
 *   5. No function here logs or returns a header value: results and messages hold tags,
 *      counts and pseudonyms only.
 */
#ifndef VS_DEID_H
#define VS_DEID_H

#include "dcmfile.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ten options of PS3.15 Table E.1-1, in the column order of the profile table. */
typedef enum deid_option {
    DEID_OPT_RETAIN_SAFE_PRIVATE = 0,
    DEID_OPT_RETAIN_UIDS,
    DEID_OPT_RETAIN_DEVICE_ID,
    DEID_OPT_RETAIN_INSTITUTION_ID,
    DEID_OPT_RETAIN_PATIENT_CHARS,
    DEID_OPT_RETAIN_FULL_DATES,
    DEID_OPT_RETAIN_MODIFIED_DATES,
    DEID_OPT_CLEAN_DESCRIPTORS,
    DEID_OPT_CLEAN_STRUCTURED_CONTENT,
    DEID_OPT_CLEAN_GRAPHICS,
    DEID_N_OPTIONS
} deid_option;

typedef struct deid_options {
    unsigned char option[DEID_N_OPTIONS]; /* 1: the option is chosen */
    int accept_burned_in;     /* 1: accept images that may carry burned-in text (flagged) */
    const char *linkage_path; /* SQLite linkage table (mode 0600); NULL: none (default) */
} deid_options;

/* Command-line flag ("retain-safe-private"), CID 7050 code ("113111") and code meaning of
 * an option; NULL for an out-of-range value. */
const char *deid_option_flag(deid_option o);
const char *deid_option_code(deid_option o);
const char *deid_option_meaning(deid_option o);
/* The option named by its flag ("retain-uids", as in a study file), or -1. */
int deid_option_from_flag(const char *flag);

#define DEID_KEY_MAX 65 /* pseudonymous keys: at most 64 characters + NUL */

typedef struct deid_file_result {
    int accepted;          /* 1: de-identified; 0: rejected (reason says why) */
    char reason[160];      /* why rejected; never a header value */
    int burned_in_flagged; /* accepted although it may carry burned-in text */
    int graphics_kept;     /* overlay/curve bitmaps kept under Clean Graphics */
    int date_shift_days;   /* applied shift (Modified Dates option), else 0 */
    int n_removed, n_emptied, n_dummied, n_uids, n_cleaned, n_private_removed;
    /* pseudonyms of the ORIGINAL identifiers: patient_key from PatientID + IssuerOfPatientID
     * (PatientName + PatientBirthDate when the ID is empty), the others from the UIDs */
    char patient_key[DEID_KEY_MAX];
    char study_key[DEID_KEY_MAX];
    char series_key[DEID_KEY_MAX];
    char instance_key[DEID_KEY_MAX]; /* of the SOP Instance UID: a safe output file name */
} deid_file_result;

typedef struct deid_ctx deid_ctx;

/* Open a context: load the key (creating it, mode 0600, when absent), open the linkage table
 * when asked. Fails with VS_ERR_ENV for an unsafe key or linkage file, VS_ERR_CONFIG for
 * contradicting options (full and modified dates), VS_ERR_IO when a file cannot be made. */
vs_status deid_open(const deid_options *opt, const char *key_path, deid_ctx **out, vs_error *err);
void deid_close(deid_ctx *ctx);

/* De-identify f in place. A rejected file (burned-in text) returns VS_OK with
 * res->accepted = 0 and is left unchanged. Fails (VS_ERR_LIBRARY / VS_ERR_IO) only when
 * DCMTK or the linkage table fails; then f must not be written. Thread-safe for distinct
 * files. */
vs_status deid_apply(deid_ctx *ctx, dcm_file *f, deid_file_result *res, vs_error *err);

/* Pseudonymous keys for volume.h, from the ORIGINAL identifiers:
 * patient ID (+ issuer, may be NULL) -> "VS" + 16 base32 characters; a UID -> its 2.25 UID. */
void deid_patient_key(const deid_ctx *ctx, const char *patient_id, const char *issuer,
                      char out[DEID_KEY_MAX]);
void deid_uid_key(const deid_ctx *ctx, const char *uid, char out[DEID_KEY_MAX]);
/* An input file's key: "SP" + 26 base32 characters of HMAC-SHA256(key, its path), so the
 * catalog can find a file again without holding its path (archives name folders and files after
 * patients). With `link` and a linkage table open, the path -> key pair goes there (kind
 * "source-path"), its only record. Fails only when the linkage table cannot be written. */
vs_status deid_source_key(deid_ctx *ctx, const char *path, int link, char out[DEID_KEY_MAX],
                          vs_error *err);
/* The per-patient date shift in days (negative: into the past), in [-3652, -1]. */
int deid_date_shift(const deid_ctx *ctx, const char *patient_id, const char *issuer);

/* --- verify-deid ------------------------------------------------------------------------ */

/* The identifiers a site lists (names, IDs, accession numbers, dates, UIDs), compiled once
 * (io/deid/deid_phi.c, in time linear in the list) and searched for together in one pass over the
 * bytes: the cost of a scan hardly grows with the length of the list. Matching is
 * case-insensitive; an identifier that begins or ends with a digit matches only on digit
 * boundaries (a birth date is not found inside a longer number); one listed as "\bWORD" only
 * on word boundaries; "\\..." lists an identifier that starts with a backslash. Read-only
 * once compiled: threads share it. */
typedef struct deid_phi deid_phi;
/* Compile items[0..n) (NUL-terminated, in the syntax above; empty items list nothing). */
vs_status deid_phi_compile(const char *const *items, int n, deid_phi **out, vs_error *err);
/* One identifier per line; CR/LF stripped, blank lines skipped. Errors name the file, never
 * an identifier. */
vs_status deid_phi_load(const char *path, deid_phi **out, vs_error *err);
void deid_phi_free(deid_phi *p);
int deid_phi_count(const deid_phi *p); /* items given, including empty ones */
/* The leftmost listed identifier in s[0..n): 1 and *pos, or 0. p may be NULL (none). */
int deid_phi_find(const deid_phi *p, const char *s, size_t n, size_t *pos);
/* Every match in s[0..n), once, in order of its start: fn(user, item index, start) returns
 * non-zero to stop. raw: s is a file's raw bytes (a lone digit byte next to a match is no
 * boundary violation: in binary formats it is a length or tag byte). */
typedef int (*deid_phi_fn)(void *user, int id, size_t pos);
vs_status deid_phi_each(const deid_phi *p, const char *s, size_t n, int raw, deid_phi_fn fn,
                        void *user, vs_error *err);

typedef struct deid_hit {
    const char *path; /* the file */
    char where[96];   /* tag path, e.g. "(0008,1140)[0].(0008,1155)" or "raw bytes" */
    const char *what; /* the kind of hit, e.g. "attribute the profile removes" */
} deid_hit;

typedef void (*deid_hit_fn)(const deid_hit *hit, void *user);

/* Scan one DICOM file: attributes the profile removes (under the options the file declares
 * in DeidentificationMethodCodeSequence), private elements (all of them, or, when the file
 * declares Retain Safe Private, those outside Table E.3.10-1 and creators of blocks without a
 * safe element), UIDs not of the 2.25 pseudonym form (DICOM-defined 1.2.840.10008 UIDs excepted), a
 * missing PatientIdentityRemoved = YES, and any listed identifier (phi, may be NULL) in any text
 * value (case-insensitive) or in the raw bytes. Calls fn per hit and adds the count to *n_hits. A
 * file that is not DICOM is an error (VS_ERR_FORMAT) naming the file. */
vs_status deid_verify_file(const char *path, const deid_phi *phi, deid_hit_fn fn, void *user,
                           int *n_hits, vs_error *err);

/* Scan an HDF5 shard (io/deid/deid_shard.c): every object name, attribute name and string value,
 * and every string of every dataset (the index), for listed identifiers and UIDs of an
 * organisation's root (allowed only in series_instance_uid under the Retain UIDs option), and
 * every name the shard schema does not define; then its raw bytes. VS_ERR_LIBRARY naming the
 * file when HDF5 cannot open or walk it. */
vs_status deid_verify_shard(const char *path, const deid_phi *phi, deid_hit_fn fn, void *user,
                            int *n_hits, vs_error *err);
/* Scan a text file (reports, JSON-lines logs) line by line for listed identifiers and UIDs of
 * an organisation's root; hits name the line and column. */
vs_status deid_verify_text(const char *path, const deid_phi *phi, deid_hit_fn fn, void *user,
                           int *n_hits, vs_error *err);
/* Scan any file by what it holds: DICOM ("DICM" at offset 128) with deid_verify_file, HDF5
 * with deid_verify_shard, text (no NUL byte in its first 8 KiB) with deid_verify_text, any
 * other file by its raw bytes (listed identifiers, UIDs of an organisation's root). */
vs_status deid_verify_path(const char *path, const deid_phi *phi, deid_hit_fn fn, void *user,
                           int *n_hits, vs_error *err);

#ifdef __cplusplus
}
#endif
#endif
