/* deid.c — the profile table's lookup and resolution, keyed pseudonyms (libsodium
 * HMAC-SHA256), the site key file, date shifting, free-text cleaning and the SQLite linkage
 * table. The walk over a dataset is deid_apply.c; verify-deid's is deid_verify.cc. */
#include "deid_internal.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- options ------------------------------------------------------------------------------ */

/* One row per option, in enum order: flag, CID 7050 code, code meaning. */
static const struct {
    const char *flag, *code, *meaning;
} option_rows[DEID_N_OPTIONS] = {
    {"retain-safe-private", "113111", "Retain Safe Private Option"},
    {"retain-uids", "113110", "Retain UIDs Option"},
    {"retain-device-id", "113109", "Retain Device Identity Option"},
    {"retain-institution-id", "113112", "Retain Institution Identity Option"},
    {"retain-patient-chars", "113108", "Retain Patient Characteristics Option"},
    {"retain-long-full-dates", "113106",
     "Retain Longitudinal Temporal Information Full Dates Option"},
    {"retain-long-modified-dates", "113107",
     "Retain Longitudinal Temporal Information Modified Dates Option"},
    {"clean-descriptors", "113105", "Clean Descriptors Option"},
    {"clean-structured-content", "113104", "Clean Structured Content Option"},
    {"clean-graphics", "113103", "Clean Graphics Option"},
};

const char *deid_option_flag(deid_option o) {
    return (unsigned)o < DEID_N_OPTIONS ? option_rows[o].flag : NULL;
}
const char *deid_option_code(deid_option o) {
    return (unsigned)o < DEID_N_OPTIONS ? option_rows[o].code : NULL;
}
const char *deid_option_meaning(deid_option o) {
    return (unsigned)o < DEID_N_OPTIONS ? option_rows[o].meaning : NULL;
}

int deid_option_from_flag(const char *flag) {
    for (int o = 0; o < DEID_N_OPTIONS; o++)
        if (strcmp(option_rows[o].flag, flag) == 0) return o;
    return -1;
}

/* --- the profile ---------------------------------------------------------------------------- */

const deid_rule *deid_rule_find(uint16_t group, uint16_t element) {
    uint32_t t = ((uint32_t)group << 16) | element;
    int lo = 0, hi = deid_profile_n_exact - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        uint32_t v = deid_profile[mid].tag;
        if (v == t) return &deid_profile[mid];
        if (v < t)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    for (int i = deid_profile_n_exact; i < deid_profile_n; i++)
        if ((t & deid_profile[i].mask) == deid_profile[i].tag) return &deid_profile[i];
    return NULL;
}

/* Combined codes by attribute type: row = code, column = type (0 unknown, 1, 2, 3). Unknown
 * type takes the stricter choice: X before Z before D. */
static const uint8_t combined[][4] = {
    [DEID_ZD] = {DEID_Z, DEID_D, DEID_Z, DEID_Z},  [DEID_XZ] = {DEID_X, DEID_Z, DEID_Z, DEID_X},
    [DEID_XD] = {DEID_X, DEID_D, DEID_D, DEID_X},  [DEID_XZD] = {DEID_X, DEID_D, DEID_Z, DEID_X},
    [DEID_XZU] = {DEID_X, DEID_U, DEID_Z, DEID_X},
};

deid_action deid_rule_resolve(const deid_rule *r, const unsigned char option[DEID_N_OPTIONS]) {
    int clean = 0;
    for (int o = 0; o < DEID_N_OPTIONS; o++) {
        if (!option[o]) continue;
        if (r->opts[o] == 'K') return DEID_K;
        if (r->opts[o] == 'C') clean = 1;
    }
    if (clean) return DEID_C;
    if (r->basic >= DEID_ZD) return (deid_action)combined[r->basic][r->type <= 3 ? r->type : 0];
    return (deid_action)r->basic;
}

const char *deid_action_name(deid_action a) {
    static const char *names[] = {"none", "X",   "Z",   "D",   "K",     "C",
                                  "U",    "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}

/* UI attributes naming classes, transfer syntaxes or coding schemes (kept by every option). */
static const uint32_t class_uid_tags[] = {
    0x00020002, /* MediaStorageSOPClassUID */
    0x00020010, /* TransferSyntaxUID */
    0x00020012, /* ImplementationClassUID */
    0x00041510, /* ReferencedSOPClassUIDInFile */
    0x0004151A, /* ReferencedRelatedGeneralSOPClassUIDInFile */
    0x00080016, /* SOPClassUID */
    0x0008001A, /* RelatedGeneralSOPClassUID */
    0x0008001B, /* OriginalSpecializedSOPClassUID */
    0x00080062, /* SOPClassesInStudy */
    0x0008010C, /* CodingSchemeUID */
    0x00081150, /* ReferencedSOPClassUID */
    0x00089123, /* CreatorVersionUID */
    0x04000010, /* MACCalculationTransferSyntaxUID */
    0x04000510, /* EncryptedContentTransferSyntaxUID */
};

int deid_uid_tag_is_class(uint16_t group, uint16_t element) {
    uint32_t t = ((uint32_t)group << 16) | element;
    for (size_t i = 0; i < sizeof class_uid_tags / sizeof class_uid_tags[0]; i++)
        if (t == class_uid_tags[i]) return 1;
    return 0;
}

int deid_uid_is_standard(const char *uid) { return strncmp(uid, "1.2.840.10008.", 14) == 0; }

int deid_uid_is_pseudonym(const char *uid) {
    static const char max128[] = "340282366920938463463374607431768211455";
    if (strncmp(uid, "2.25.", 5) != 0) return 0;
    const char *d = uid + 5;
    size_t n = strlen(d);
    if (n == 0 || n > 39 || (n > 1 && d[0] == '0')) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)d[i])) return 0;
    return n < 39 || strcmp(d, max128) <= 0;
}

/* Dummy values by VR (action D); each valid for its VR's length and character rules. */
static const struct {
    const char vr[3];
    const char *dummy;
} vr_dummies[] = {
    {"AE", "ANONYMOUS"},  {"AS", "000Y"},       {"CS", "ANONYMIZED"},
    {"DA", "19000101"},   {"DS", "0"},          {"DT", "19000101000000"},
    {"IS", "0"},          {"LO", "ANONYMIZED"}, {"LT", "ANONYMIZED"},
    {"PN", "ANONYMIZED"}, {"SH", "ANONYMIZED"}, {"ST", "ANONYMIZED"},
    {"TM", "000000"},     {"UC", "ANONYMIZED"}, {"UR", "http://example.invalid/"},
    {"UT", "ANONYMIZED"}, {"US", "0"},          {"SS", "0"},
    {"UL", "0"},          {"SL", "0"},          {"FL", "0"},
    {"FD", "0"},          {"UV", "0"},          {"SV", "0"},
};

const char *deid_dummy_for_vr(const char *vr) {
    for (size_t i = 0; i < sizeof vr_dummies / sizeof vr_dummies[0]; i++)
        if (strncmp(vr_dummies[i].vr, vr, 2) == 0) return vr_dummies[i].dummy;
    return "";
}

/* Keywords whose values name or number a person, place or thing (scrubbed from free text). */
int deid_keyword_is_identifier(const char *kw) {
    static const char *const yes[] = {"ID",          "Name",    "Address",  "Telephone",
                                      "Number",      "Locator", "Email",    "Identifier",
                                      "Institution", "Station", "Operator", "Physician"};
    static const char *const no[] = {"Description", "Comment", "Label", "Sequence"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strstr(kw, no[i])) return 0;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strstr(kw, yes[i])) return 1;
    return 0;
}

/* --- dates ----------------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms). */
static long days_from_civil(long y, unsigned m, unsigned d) {
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

static void civil_from_days(long z, long *y, unsigned *m, unsigned *d) {
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long)yoe + era * 400 + (*m <= 2);
}

/* Shift the 8 leading digits YYYYMMDD of s; 0 when they are not a valid date. */
static int shift8(const char *s, int days, char out[9]) {
    for (int i = 0; i < 8; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    long y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    unsigned m = (unsigned)((s[4] - '0') * 10 + (s[5] - '0'));
    unsigned d = (unsigned)((s[6] - '0') * 10 + (s[7] - '0'));
    if (m < 1 || m > 12 || d < 1 || d > 31) return 0;
    long z = days_from_civil(y, m, d);
    long y2;
    unsigned m2, d2;
    civil_from_days(z, &y2, &m2, &d2);
    if (y2 != y || m2 != m || d2 != d) return 0; /* 31 February and such */
    civil_from_days(z + days, &y2, &m2, &d2);
    if (y2 < 0 || y2 > 9999) return 0;
    snprintf(out, 9, "%04ld%02u%02u", y2, m2, d2);
    return 1;
}

size_t deid_shift_da(const char *in, int days, char *out, size_t cap) {
    char buf[9];
    size_t n = strlen(in);
    while (n && in[n - 1] == ' ')
        n--;
    if (cap < 9 || n != 8 || !shift8(in, days, buf)) {
        if (cap) out[0] = 0;
        return 0;
    }
    memcpy(out, buf, 9);
    return 8;
}

size_t deid_shift_dt(const char *in, int days, char *out, size_t cap) {
    char buf[9];
    size_t n = strlen(in);
    if (n < 8 || n + 1 > cap || !shift8(in, days, buf)) {
        if (cap) out[0] = 0;
        return 0;
    }
    memcpy(out, buf, 8);
    memcpy(out + 8, in + 8, n - 8 + 1);
    return n;
}

/* --- free text ------------------------------------------------------------------------------- */

static int is_word(char c) { return isalnum((unsigned char)c); }

/* Length of a date-like d{1,4}[-./]d{1,2}[-./]d{1,4} at s, else 0. */
static size_t date_like(const char *s) {
    size_t i = 0, k;
    for (int part = 0; part < 3; part++) {
        for (k = 0; isdigit((unsigned char)s[i + k]) && k < 4; k++) {
        }
        if (k == 0) return 0;
        i += k;
        if (part < 2) {
            if (s[i] != '-' && s[i] != '.' && s[i] != '/') return 0;
            i++;
        }
    }
    return isdigit((unsigned char)s[i]) ? 0 : i;
}

size_t deid_text_clean(const char *in, const char *const *idents, int n_idents, char *out,
                       size_t cap) {
    size_t o = 0;
    if (cap == 0) return 0;
    for (size_t i = 0; in[i] && o + 1 < cap;) {
        size_t skip = 0;
        int start = i == 0 || !is_word(in[i - 1]);
        for (int k = 0; start && k < n_idents && !skip; k++) {
            size_t l = strlen(idents[k]);
            if (l >= 2 && strncasecmp(in + i, idents[k], l) == 0 && !is_word(in[i + l])) skip = l;
        }
        if (!skip && isdigit((unsigned char)in[i]) &&
            (i == 0 || !isdigit((unsigned char)in[i - 1]))) {
            size_t run = 0;
            while (isdigit((unsigned char)in[i + run]))
                run++;
            skip = date_like(in + i);
            if (!skip && run >= 5) skip = run;
        }
        if (skip) {
            out[o++] = '*';
            i += skip;
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = 0;
    return o;
}

/* --- keys and pseudonyms --------------------------------------------------------------------- */

void deid_hmac(const deid_ctx *ctx, const char *domain, const char *msg, unsigned char out[32]) {
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, ctx->key, sizeof ctx->key);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)domain, strlen(domain) + 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
    crypto_auth_hmacsha256_final(&st, out);
}

static void base32(const unsigned char *b, int n_chars, char *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    for (int i = 0; i < n_chars; i++) {
        int bit = i * 5, byte = bit / 8, off = bit % 8;
        unsigned v = ((unsigned)b[byte] << 8 | b[byte + 1]) >> (11 - off);
        out[i] = alphabet[v & 31];
    }
    out[n_chars] = 0;
}

/* Patient identity for keying: ID and issuer (an empty ID still keys consistently). */
static void patient_msg(const char *id, const char *issuer, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%c%s", id ? id : "", 1, issuer ? issuer : "");
}

void deid_patient_key(const deid_ctx *ctx, const char *patient_id, const char *issuer,
                      char out[DEID_KEY_MAX]) {
    char msg[256];
    unsigned char h[32];
    patient_msg(patient_id, issuer, msg, sizeof msg);
    deid_hmac(ctx, "patient", msg, h);
    out[0] = 'V';
    out[1] = 'S';
    base32(h, 16, out + 2);
}

vs_status deid_source_key(deid_ctx *ctx, const char *path, int link, char out[DEID_KEY_MAX],
                          vs_error *err) {
    unsigned char h[32];
    deid_hmac(ctx, "source-path", path, h);
    out[0] = 'S';
    out[1] = 'P';
    base32(h, 26, out + 2);
    return link ? deid_linkage_put(ctx, "source-path", path, out, err) : VS_OK;
}

int deid_date_shift(const deid_ctx *ctx, const char *patient_id, const char *issuer) {
    char msg[256];
    unsigned char h[32];
    patient_msg(patient_id, issuer, msg, sizeof msg);
    deid_hmac(ctx, "date-shift", msg, h);
    uint32_t v = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return -(int)(1 + v % 3652);
}

void deid_uid_key(const deid_ctx *ctx, const char *uid, char out[DEID_KEY_MAX]) {
    unsigned char h[32], num[16];
    deid_hmac(ctx, "uid", uid, h);
    memcpy(num, h, 16);
    /* decimal of the 128-bit big-endian number num, by repeated division by 10 */
    char digits[40];
    int nd = 0, nonzero = 1;
    while (nonzero) {
        unsigned rem = 0;
        nonzero = 0;
        for (int i = 0; i < 16; i++) {
            unsigned cur = rem << 8 | num[i];
            num[i] = (unsigned char)(cur / 10);
            rem = cur % 10;
            if (num[i]) nonzero = 1;
        }
        digits[nd++] = (char)('0' + rem);
    }
    memcpy(out, "2.25.", 5);
    for (int i = 0; i < nd; i++)
        out[5 + i] = digits[nd - 1 - i];
    out[5 + nd] = 0;
}

void deid_ae_key(const deid_ctx *ctx, const char *ae, char out[17]) {
    unsigned char h[32];
    deid_hmac(ctx, "ae", ae, h);
    out[0] = 'A';
    out[1] = 'E';
    base32(h, 12, out + 2);
}

/* Refuse a secret file that is not a regular file or that group/others may read or write. */
static vs_status check_private_file(int fd, const char *path, const char *what, vs_error *err) {
    struct stat st;
    if (fstat(fd, &st) != 0) return VS_FAIL(err, VS_ERR_IO, "%s: cannot stat the %s", path, what);
    if (!S_ISREG(st.st_mode))
        return VS_FAIL(err, VS_ERR_ENV, "%s: the %s is not a regular file", path, what);
    if (st.st_mode & 077)
        return VS_FAIL(err, VS_ERR_ENV,
                       "%s: the %s is accessible by group or others (mode %03o); run chmod 600",
                       path, what, (unsigned)(st.st_mode & 0777));
    return VS_OK;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static vs_status key_create(const char *path, unsigned char key[32], vs_error *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot create the key file (%s)", path,
                       strerror(errno));
    char hex[65 + 1];
    randombytes_buf(key, 32);
    sodium_bin2hex(hex, sizeof hex, key, 32);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    int ok = fchmod(fd, 0600) == 0 && write(fd, hex, n) == (ssize_t)n && fsync(fd) == 0;
    sodium_memzero(hex, sizeof hex);
    if (close(fd) != 0) ok = 0;
    if (!ok) {
        unlink(path);
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot write the key file", path);
    }
    log_warn("created a new site key %s (mode 0600): every pseudonym depends on it, keep it safe",
             path);
    return VS_OK;
}

static vs_status key_load(const char *path, unsigned char key[32], vs_error *err) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return key_create(path, key, err);
    if (fd < 0)
        return VS_FAIL(err, VS_ERR_ENV, "%s: cannot open the key file (%s)", path, strerror(errno));
    vs_status s = check_private_file(fd, path, "key file", err);
    char buf[130];
    ssize_t n = s == VS_OK ? read(fd, buf, sizeof buf) : 0;
    close(fd);
    if (s != VS_OK) return s;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    if (n != 64)
        return VS_FAIL(err, VS_ERR_ENV, "%s: not a vesalius key file (64 hex digits)", path);
    for (int i = 0; i < 32; i++) {
        int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return VS_FAIL(err, VS_ERR_ENV, "%s: not a vesalius key file (64 hex digits)", path);
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    sodium_memzero(buf, sizeof buf);
    return VS_OK;
}

/* --- linkage table --------------------------------------------------------------------------- */

static vs_status linkage_open(deid_ctx *ctx, const char *path, vs_error *err) {
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot open the linkage table (%s)", path,
                       strerror(errno));
    vs_status s = check_private_file(fd, path, "linkage table", err);
    close(fd);
    if (s != VS_OK) return s;
    if (sqlite3_open_v2(path, &ctx->linkage, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        s = VS_FAIL(err, VS_ERR_LIBRARY, "%s: SQLite cannot open the linkage table (%s)", path,
                    ctx->linkage ? sqlite3_errmsg(ctx->linkage) : "out of memory");
        sqlite3_close(ctx->linkage);
        ctx->linkage = NULL;
        return s;
    }
    sqlite3_busy_timeout(ctx->linkage, 5000);
    /* WAL: one sync per checkpoint, not per row; SQLite gives -wal/-shm the database's mode */
    const char *sql =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        "CREATE TABLE IF NOT EXISTS linkage (kind TEXT NOT NULL, original TEXT NOT NULL,"
        " pseudonym TEXT NOT NULL, PRIMARY KEY (kind, original));";
    if (sqlite3_exec(ctx->linkage, sql, NULL, NULL, NULL) != SQLITE_OK) {
        s = VS_FAIL(err, VS_ERR_LIBRARY, "%s: SQLite cannot create the linkage table (%s)", path,
                    sqlite3_errmsg(ctx->linkage));
        sqlite3_close(ctx->linkage);
        ctx->linkage = NULL;
        return s;
    }
    return VS_OK;
}

vs_status deid_linkage_put(deid_ctx *ctx, const char *kind, const char *original,
                           const char *pseudonym, vs_error *err) {
    if (!ctx->linkage || !original || !original[0]) return VS_OK;
    vs_status s = VS_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&ctx->lock);
    int rc = sqlite3_prepare_v2(
        ctx->linkage, "INSERT OR IGNORE INTO linkage (kind, original, pseudonym) VALUES (?, ?, ?)",
        -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, original, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, pseudonym, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        s = VS_FAIL(err, VS_ERR_LIBRARY, "%s: SQLite cannot record a %s link (%s)",
                    ctx->linkage_path, kind, sqlite3_errmsg(ctx->linkage));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&ctx->lock);
    return s;
}

/* --- context --------------------------------------------------------------------------------- */

vs_status deid_open(const deid_options *opt, const char *key_path, deid_ctx **out, vs_error *err) {
    *out = NULL;
    if (opt->option[DEID_OPT_RETAIN_FULL_DATES] && opt->option[DEID_OPT_RETAIN_MODIFIED_DATES])
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "the full-dates and modified-dates options exclude each other");
    if (!key_path || !key_path[0]) return VS_FAIL(err, VS_ERR_USAGE, "a key file is required");
    if (sodium_init() < 0) return VS_FAIL(err, VS_ERR_LIBRARY, "libsodium failed to initialise");
    dcm_file_quiet();
    deid_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    ctx->opt = *opt;
    ctx->opt.linkage_path = NULL;
    pthread_mutex_init(&ctx->lock, NULL);
    vs_status s = key_load(key_path, ctx->key, err);
    if (s == VS_OK && opt->linkage_path) {
        ctx->linkage_path = strdup(opt->linkage_path);
        if (!ctx->linkage_path)
            s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        else
            s = linkage_open(ctx, ctx->linkage_path, err);
        ctx->opt.linkage_path = ctx->linkage_path;
    }
    if (s != VS_OK) {
        deid_close(ctx);
        return s;
    }
    *out = ctx;
    return VS_OK;
}

void deid_close(deid_ctx *ctx) {
    if (!ctx) return;
    if (ctx->linkage) sqlite3_close(ctx->linkage);
    free(ctx->linkage_path);
    pthread_mutex_destroy(&ctx->lock);
    sodium_memzero(ctx->key, sizeof ctx->key);
    free(ctx);
}
