/* report_records.c — CSV and JSON-lines records (see report_records.h). */
#include "report_records.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

vs_status rec_open(rec_reader *r, const char *path, int allow_csv, vs_error *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = fopen(path, "rb");
    if (!r->f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int c;
    while ((c = fgetc(r->f)) == ' ' || c == '\t' || c == '\r' || c == '\n') {
    }
    r->json = c == '{';
    if (fseek(r->f, 0, SEEK_SET) != 0) {
        rec_close(r);
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    }
    if (c == EOF) {
        rec_close(r);
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: the file is empty", path);
    }
    if (!r->json && !allow_csv) {
        rec_close(r);
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: not JSON lines (the first line is not an object)",
                       path);
    }
    return VS_OK;
}

void rec_close(rec_reader *r) {
    if (r->f) fclose(r->f);
    free(r->line);
    free(r->scratch);
    free(r->hdr_buf);
    memset(r, 0, sizeof *r);
}

/* Read one line without its line ending; 0 at end of file, -1 on error. */
static int read_line(rec_reader *r) {
    errno = 0;
    ssize_t n = getline(&r->line, &r->cap, r->f);
    if (n < 0) return errno ? -1 : 0;
    r->lineno++;
    while (n > 0 && (r->line[n - 1] == '\n' || r->line[n - 1] == '\r'))
        r->line[--n] = '\0';
    if (memchr(r->line, '\0', (size_t)n)) return -2;
    return 1;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

/* Split a CSV line at commas in place; quoted fields are refused (the forms never need them). */
static int split_csv(char *line, const char **out, int max) {
    if (strchr(line, '"')) return -1;
    int n = 0;
    char *p = line;
    for (;;) {
        char *c = strchr(p, ',');
        if (c) *c = '\0';
        if (n == max) return -2;
        out[n++] = trim(p);
        if (!c) break;
        p = c + 1;
    }
    return n;
}

static vs_status csv_header(rec_reader *r, vs_error *err) {
    int got;
    do {
        got = read_line(r);
        if (got <= 0) return VS_FAIL(err, VS_ERR_FORMAT, "%s: no header row", r->path);
    } while (trim(r->line)[0] == '\0');
    r->hdr_buf = strdup(r->line);
    if (!r->hdr_buf) return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", r->path);
    int n = split_csv(r->hdr_buf, r->hdr, REC_MAX_FIELDS);
    if (n < 0)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: %s", r->path, r->lineno,
                       n == -1 ? "quoted fields are not supported" : "too many columns");
    r->n_hdr = n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(r->hdr[i], r->hdr[j]) == 0)
                return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: column '%s' appears twice",
                               r->path, r->lineno, r->hdr[i]);
    return VS_OK;
}

/* --- a flat JSON object: string keys; string, number, true/false/null values; nested
 * values are skipped (they are never needed here). Strings are unescaped into scratch. --- */

typedef struct jp {
    const char *s;
    char *out; /* scratch write position */
} jp;

static void ws(jp *p) {
    while (*p->s == ' ' || *p->s == '\t')
        p->s++;
}

static void put_utf8(jp *p, unsigned cp) {
    if (cp < 0x80)
        *p->out++ = (char)cp;
    else if (cp < 0x800) {
        *p->out++ = (char)(0xC0 | (cp >> 6));
        *p->out++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *p->out++ = (char)(0xE0 | (cp >> 12));
        *p->out++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *p->out++ = (char)(0x80 | (cp & 0x3F));
    }
}

/* A string literal at p->s; returns its unescaped copy in scratch, or NULL when malformed.
 * (\uXXXX is 6 input bytes and at most 3 output bytes, so scratch never outgrows the line.) */
static const char *jstring(jp *p) {
    if (*p->s != '"') return NULL;
    p->s++;
    char *start = p->out;
    while (*p->s && *p->s != '"') {
        if (*p->s != '\\') {
            *p->out++ = *p->s++;
            continue;
        }
        p->s++;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = *p->s ? strchr(from, *p->s) : NULL;
        if (k) {
            *p->out++ = to[k - from];
            p->s++;
        } else if (*p->s == 'u') {
            unsigned cp = 0;
            for (int i = 1; i <= 4; i++) {
                char h = p->s[i];
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0) return NULL;
                cp = cp * 16 + (unsigned)d;
            }
            put_utf8(p, cp >= 0xD800 && cp < 0xE000 ? '?' : cp);
            p->s += 5;
        } else
            return NULL;
    }
    if (*p->s != '"') return NULL;
    p->s++;
    *p->out++ = '\0';
    return start;
}

/* Skip a nested object or array (strings inside may hold brackets). */
static int jskip(jp *p) {
    int depth = 0;
    do {
        if (*p->s == '"') {
            char *save = p->out;
            if (!jstring(p)) return -1;
            p->out = save;
            continue;
        }
        if (*p->s == '{' || *p->s == '[')
            depth++;
        else if (*p->s == '}' || *p->s == ']')
            depth--;
        else if (!*p->s)
            return -1;
        p->s++;
    } while (depth > 0);
    return 0;
}

static const char *jscalar(jp *p) {
    if (*p->s == '"') return jstring(p);
    if (*p->s == '{' || *p->s == '[') {
        if (jskip(p) < 0) return NULL;
        return "";
    }
    const char *b = p->s;
    while (*p->s && *p->s != ',' && *p->s != '}' && *p->s != ' ' && *p->s != '\t')
        p->s++;
    size_t n = (size_t)(p->s - b);
    if (n == 0) return NULL;
    if (n == 4 && memcmp(b, "null", 4) == 0) return "";
    char *start = p->out;
    memcpy(p->out, b, n);
    p->out += n;
    *p->out++ = '\0';
    return start;
}

static int parse_object(rec_reader *r, rec *out) {
    size_t need = strlen(r->line) + 1;
    if (need > r->scratch_cap) {
        char *s = realloc(r->scratch, need);
        if (!s) return -2;
        r->scratch = s;
        r->scratch_cap = need;
    }
    jp p = {r->line, r->scratch};
    out->n = 0;
    ws(&p);
    if (*p.s++ != '{') return -1;
    ws(&p);
    if (*p.s == '}') return 0;
    for (;;) {
        ws(&p);
        const char *k = jstring(&p);
        if (!k) return -1;
        ws(&p);
        if (*p.s++ != ':') return -1;
        ws(&p);
        const char *v = jscalar(&p);
        if (!v) return -1;
        if (out->n == REC_MAX_FIELDS) return -1;
        out->key[out->n] = k;
        out->val[out->n++] = v;
        ws(&p);
        if (*p.s == ',') {
            p.s++;
            continue;
        }
        if (*p.s++ != '}') return -1;
        ws(&p);
        return *p.s ? -1 : 0;
    }
}

vs_status rec_next(rec_reader *r, rec *out, int *got, vs_error *err) {
    *got = 0;
    if (!r->json && !r->hdr_buf) {
        vs_status s = csv_header(r, err);
        if (s != VS_OK) return s;
    }
    for (;;) {
        int k = read_line(r);
        if (k == 0) return VS_OK;
        if (k == -2)
            return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: holds a NUL byte", r->path, r->lineno);
        if (k < 0) return VS_FAIL(err, VS_ERR_IO, "%s: read failed: %s", r->path, strerror(errno));
        if (trim(r->line)[0] == '\0') continue;
        if (r->json) {
            int rc = parse_object(r, out);
            if (rc == -2) return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", r->path);
            if (rc < 0)
                return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: not a flat JSON object", r->path,
                               r->lineno);
        } else {
            int n = split_csv(r->line, out->val, REC_MAX_FIELDS);
            if (n != r->n_hdr)
                return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: %s", r->path, r->lineno,
                               n == -1 ? "quoted fields are not supported"
                                       : "the number of fields differs from the header's");
            out->n = n;
            for (int i = 0; i < n; i++)
                out->key[i] = r->hdr[i];
        }
        *got = 1;
        return VS_OK;
    }
}

const char *rec_get(const rec *r, const char *key) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->key[i], key) == 0) return r->val[i][0] ? r->val[i] : NULL;
    return NULL;
}

int rec_double(const char *s, double *out) {
    if (!s) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int rec_int(const char *s, long lo, long hi, long *out) {
    if (!s) return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno == ERANGE || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}
