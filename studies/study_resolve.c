/* study_resolve.c — a stage's resolved settings as text (what it records and the runner
 * hashes), the settings file every stage writes, reading such records back, and their diff. */
#include "deid.h"
#include "fsdir.h"
#include "log.h"
#include "study.h"
#include "walk.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEX 65
#define KEY_FINGERPRINT_INPUT "vesalius.settings.key-fingerprint"

void study_kv_free(study_kv *kv) {
    for (int i = 0; i < kv->n; i++)
        free(kv->key[i]), free(kv->value[i]);
    kv->n = 0;
}

static vs_status kv_add(study_kv *kv, const char *key, const char *value, vs_error *err) {
    if (kv->n == (int)(sizeof kv->key / sizeof kv->key[0]))
        return VS_FAIL(err, VS_ERR_FORMAT, "more settings than this version knows (%d)", kv->n);
    kv->key[kv->n] = strdup(key);
    kv->value[kv->n] = strdup(value);
    if (!kv->key[kv->n] || !kv->value[kv->n]) {
        free(kv->key[kv->n]), free(kv->value[kv->n]);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    kv->n++;
    return VS_OK;
}

/* ---- content hashes ----------------------------------------------------------------------------
 */

static vs_status hash_file(const char *path, crypto_hash_sha256_state *st, vs_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read (%s)", path, strerror(errno));
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_hash_sha256_update(st, buf, n);
    int bad = ferror(f);
    fclose(f);
    return bad ? VS_FAIL(err, VS_ERR_IO, "%s: read error", path) : VS_OK;
}

static void hex_of(crypto_hash_sha256_state *st, char out[HEX]) {
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(st, h);
    sodium_bin2hex(out, HEX, h, sizeof h);
}

/* A folder: its files in walk order (walk.h), each as "relative/name\0" + its SHA-256 hex. */
typedef struct tree_hash {
    crypto_hash_sha256_state *st;
    size_t root_len;
} tree_hash;

static vs_status hash_one(void *ctx, const char *path, int errno_, vs_error *err) {
    tree_hash *t = ctx;
    if (errno_) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read (%s)", path, strerror(errno_));
    crypto_hash_sha256_state one;
    char h[HEX];
    crypto_hash_sha256_init(&one);
    vs_status s = hash_file(path, &one, err);
    hex_of(&one, h);
    const char *rel = path + t->root_len + (path[t->root_len] == '/');
    crypto_hash_sha256_update(t->st, (const unsigned char *)rel, strlen(rel) + 1);
    crypto_hash_sha256_update(t->st, (const unsigned char *)h, HEX - 1);
    return s;
}

static vs_status hash_tree(const char *dir, crypto_hash_sha256_state *st, vs_error *err) {
    tree_hash t = {st, strlen(dir)};
    return vs_walk(&dir, 1, hash_one, &t, err);
}

/* "sha256:HEX" of a file or folder, or "missing". */
static vs_status content_value(const char *path, char *out, size_t cap, vs_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(out, cap, "missing");
        return VS_OK;
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    vs_status s = S_ISDIR(sb.st_mode) ? hash_tree(path, &st, err) : hash_file(path, &st, err);
    char h[HEX];
    hex_of(&st, h);
    snprintf(out, cap, "sha256:%s", h);
    return s;
}

/* "keyed-sha256:HEX": SHA-256 of the key's pseudonym of a constant (HMAC-SHA256 under the key),
 * so equal keys give equal values and the value tells nothing of the key; "absent". */
static vs_status key_value(const char *path, char *out, size_t cap, vs_error *err) {
    if (access(path, F_OK) != 0) {
        snprintf(out, cap, "absent");
        return VS_OK;
    }
    deid_options none;
    memset(&none, 0, sizeof none);
    deid_ctx *ctx = NULL;
    vs_status s = deid_open(&none, path, &ctx, err);
    if (s != VS_OK) return s;
    char uid[DEID_KEY_MAX], h[HEX];
    deid_uid_key(ctx, KEY_FINGERPRINT_INPUT, uid);
    deid_close(ctx);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)uid, strlen(uid));
    hex_of(&st, h);
    sodium_memzero(uid, sizeof uid);
    snprintf(out, cap, "keyed-sha256:%s", h);
    return VS_OK;
}

/* ---- canonical text ----------------------------------------------------------------------------
 */

static const char *choice_name(const char *choices, int k, char *buf, size_t cap) {
    const char *p = choices;
    for (int i = 0; i < k && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) return "?";
    size_t n = strcspn(p, "|");
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    return buf;
}

/* Append to a growing text; 0, or -1 when out of memory. */
typedef struct text_buf {
    char *p;
    size_t n, cap;
} text_buf;

static int tb_put(text_buf *t, const char *s) {
    size_t k = strlen(s);
    if (t->n + k + 1 > t->cap) {
        size_t cap = (t->n + k + 1) * 2;
        char *p = realloc(t->p, cap);
        if (!p) return -1;
        t->p = p, t->cap = cap;
    }
    memcpy(t->p + t->n, s, k + 1);
    t->n += k;
    return 0;
}

/* A number in its shortest text that reads back as the same double (0.1, not 0.1000...01). */
static int tb_num(text_buf *t, const char *sep, double v, int whole) {
    char b[64];
    if (whole || (v == floor(v) && fabs(v) < 1e15)) {
        snprintf(b, sizeof b, "%s%lld", sep, (long long)v);
    } else {
        for (int digits = 1; digits <= 17; digits++) {
            snprintf(b, sizeof b, "%s%.*g", sep, digits, v);
            if (strtod(b + strlen(sep), NULL) == v) break;
        }
    }
    return tb_put(t, b);
}

static vs_status value_text(const study *s, const study_setting *r, text_buf *t, vs_error *err) {
    const void *m = (const char *)s + r->offset;
    char b[128];
    int bad = 0;
    switch (r->kind) {
    case STUDY_BOOL: bad = tb_put(t, *(const int *)m ? "true" : "false"); break;
    case STUDY_INT: bad = tb_num(t, "", *(const int *)m, 1); break;
    case STUDY_I64: bad = tb_num(t, "", (double)*(const int64_t *)m, 1); break;
    case STUDY_DBL: bad = tb_num(t, "", *(const double *)m, 0); break;
    case STUDY_ENUM: bad = tb_put(t, choice_name(r->choices, *(const int *)m, b, sizeof b)); break;
    case STUDY_INT3:
        for (int i = 0; i < 3; i++)
            bad |= tb_num(t, i ? "," : "", ((const int *)m)[i], 1);
        break;
    case STUDY_DBL2:
    case STUDY_DBL3:
        for (int i = 0; i < (r->kind == STUDY_DBL2 ? 2 : 3); i++)
            bad |= tb_num(t, i ? "," : "", ((const double *)m)[i], 0);
        break;
    case STUDY_TEXT:
    case STUDY_PATH: bad = tb_put(t, *(char *const *)m ? *(char *const *)m : ""); break;
    case STUDY_FILE:
    case STUDY_KEY: {
        const char *path = *(char *const *)m;
        char v[96] = "";
        vs_status st = VS_OK;
        if (path)
            st = r->kind == STUDY_FILE ? content_value(path, v, sizeof v, err)
                                       : key_value(path, v, sizeof v, err);
        if (st != VS_OK) return st;
        bad = tb_put(t, v);
        break;
    }
    case STUDY_TEXTS:
    case STUDY_PATHS: {
        const study_list *l = m;
        for (unsigned i = 0; i < l->n && !bad; i++)
            bad = tb_put(t, i ? "," : "") || tb_put(t, l->v[i]);
        break;
    }
    case STUDY_DBLS: {
        const study_dbls *l = m;
        for (unsigned i = 0; i < l->n; i++)
            bad |= tb_num(t, i ? "," : "", l->v[i], 0);
        break;
    }
    case STUDY_INTS: {
        const study_ints *l = m;
        for (unsigned i = 0; i < l->n; i++)
            bad |= tb_num(t, i ? "," : "", l->v[i], 1);
        break;
    }
    }
    return bad ? VS_FAIL(err, VS_ERR_NOMEM, "out of memory") : VS_OK;
}

vs_status study_value(const study *s, const study_setting *r, char **text, vs_error *err) {
    text_buf t = {NULL, 0, 0};
    *text = NULL;
    if (sodium_init() < 0) return VS_FAIL(err, VS_ERR_LIBRARY, "libsodium failed to initialise");
    vs_status st =
        tb_put(&t, "") ? VS_FAIL(err, VS_ERR_NOMEM, "out of memory") : value_text(s, r, &t, err);
    if (st == VS_OK)
        *text = t.p;
    else
        free(t.p);
    return st;
}

vs_status study_resolve(const study *s, unsigned stage, study_kv *out, vs_error *err) {
    memset(out, 0, sizeof *out);
    vs_status st = VS_OK;
    for (int i = 0; i < STUDY_N_KEYS && st == VS_OK; i++) {
        const study_setting *r = &study_settings[i];
        if (!(r->readers & stage)) continue;
        char *text = NULL;
        st = study_value(s, r, &text, err);
        if (st == VS_OK) st = kv_add(out, r->key, text, err);
        free(text);
    }
    if (st != VS_OK) study_kv_free(out);
    return st;
}

/* ---- the settings file
 * --------------------------------------------------------------------------- */

char *study_settings_text(const char *stage, const study_kv *kv) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fputs("{\n  \"schema\": \"vesalius.settings/1\",\n  \"stage\": ", f);
    log_json_string(f, stage);
    fputs(",\n  \"settings\": {", f);
    for (int i = 0; i < kv->n; i++) {
        fputs(i ? ",\n    " : "\n    ", f);
        log_json_string(f, kv->key[i]);
        fputs(": ", f);
        log_json_string(f, kv->value[i]);
    }
    fputs("\n  }\n}\n", f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

vs_status study_settings_write(const char *path, const char *stage, const study_kv *kv,
                               vs_error *err) {
    char *text = study_settings_text(stage, kv);
    if (!text) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    vs_status s = vs_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return s;
}

/* The JSON string at *p (past its opening quote) into out, unescaped; *p moves past its
 * closing quote. -1 when it does not end. */
static int read_string(const char **p, char *out, size_t cap) {
    size_t n = 0;
    const char *q = *p;
    for (; *q && *q != '"'; q++) {
        char c = *q;
        if (c == '\\') {
            q++;
            switch (*q) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned v = 0;
                if (sscanf(q + 1, "%4x", &v) != 1) return -1;
                c = v < 0x80 ? (char)v : '?';
                q += 4;
                break;
            }
            case '\0': return -1;
            default: c = *q;
            }
        }
        if (n + 1 < cap) out[n++] = c;
    }
    if (*q != '"') return -1;
    out[n] = '\0';
    *p = q + 1;
    return 0;
}

vs_status study_kv_parse(const char *text, const char *block, study_kv *out, vs_error *err) {
    memset(out, 0, sizeof *out);
    char head[96];
    snprintf(head, sizeof head, "\"%s\": {", block);
    const char *p = strstr(text, head);
    if (!p) return VS_FAIL(err, VS_ERR_FORMAT, "no \"%s\" block", block);
    p = strchr(p, '\n');
    vs_status st = VS_OK;
    static char key[256], value[PATH_MAX * 4];
    while (p && st == VS_OK) {
        p++;
        while (*p == ' ')
            p++;
        if (*p == '}' || !*p) break;
        if (*p != '"' || (p++, read_string(&p, key, sizeof key)) < 0 ||
            strncmp(p, ": \"", 3) != 0 || (p += 3, read_string(&p, value, sizeof value)) < 0) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "a malformed line in the \"%s\" block", block);
            break;
        }
        st = kv_add(out, key, value, err);
        p = strchr(p, '\n');
    }
    if (st != VS_OK) study_kv_free(out);
    return st;
}

vs_status study_kv_read(const char *path, const char *block, study_kv *out, vs_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read (%s)", path, strerror(errno));
    char *text = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *t = realloc(text, cap = (n + 4096 + 1) * 2);
            if (!t) {
                free(text);
                fclose(f);
                return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
            }
            text = t;
        }
        size_t k = fread(text + n, 1, 4096, f);
        n += k;
        if (k < 4096) break;
    }
    int bad = ferror(f);
    fclose(f);
    text[n] = '\0';
    vs_status s = bad ? VS_FAIL(err, VS_ERR_IO, "%s: read error", path)
                      : study_kv_parse(text, block, out, err);
    free(text);
    if (s != VS_OK && !bad) {
        vs_error inner = *err;
        s = VS_FAIL(err, inner.code, "%s: %s", path, inner.msg);
    }
    return s;
}

static int find_key(const study_kv *kv, const char *key) {
    for (int i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], key) == 0) return i;
    return -1;
}

static void append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t cap, const char *fmt, ...) {
    size_t n = strlen(buf);
    if (n + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

int study_kv_diff(const study_kv *old, const study_kv *now, char *buf, size_t cap) {
    int n = 0;
    buf[0] = '\0';
    for (int i = 0; i < now->n; i++) {
        int j = find_key(old, now->key[i]);
        const char *sep = n ? "; " : "";
        if (j < 0) {
            append(buf, cap, "%s%s: new setting", sep, now->key[i]);
        } else if (strcmp(old->value[j], now->value[i]) != 0) {
            if (strncmp(now->value[i], "sha256:", 7) == 0 ||
                strncmp(old->value[j], "sha256:", 7) == 0)
                append(buf, cap, "%s%s: content changed", sep, now->key[i]);
            else if (strncmp(now->value[i], "keyed-", 6) == 0 ||
                     strncmp(old->value[j], "keyed-", 6) == 0)
                append(buf, cap, "%s%s: another key", sep, now->key[i]);
            else
                append(buf, cap, "%s%s: %.40s -> %.40s", sep, now->key[i],
                       old->value[j][0] ? old->value[j] : "(none)",
                       now->value[i][0] ? now->value[i] : "(none)");
        } else {
            continue;
        }
        n++;
    }
    for (int j = 0; j < old->n; j++)
        if (find_key(now, old->key[j]) < 0)
            append(buf, cap, "%s%s: no longer a setting", n++ ? "; " : "", old->key[j]);
    return n;
}
