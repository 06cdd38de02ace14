/* deid_scan.c — verify-deid beyond the DICOM structure: which kind a file is, text files
 * (reports, JSON-lines logs, anything else given) line by line, and the raw bytes of every
 * file, for listed identifiers and for UIDs of an organisation's root.
 *
 * Invariants:
 *   1. A hit names the file and where (line and column, byte offset), never the value.
 *   2. A UID of an organisation's root is a maximal run of digits and dots of at least 10
 *      characters that is a well-formed OID (first arc 0, 1 or 2; at least three arcs; no empty
 *      arc; no leading zero) and is neither a 2.25 pseudonym nor a DICOM-defined
 *      1.2.840.10008 UID. Decimal numbers (one dot) and dates ("2026.11.28": first arc > 2)
 *      are not UIDs, so reports and logs full of numbers do not raise false alarms. A run
 *      that is a 2.25 pseudonym behind at most 3 characters is not one either (binary glue).
 *   3. Listed identifiers match as io/deid/deid_phi.c says (case-insensitive, digit and word
 *      boundaries), in one pass over the bytes of a file whatever the length of the list.
 */
#include "deid_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_uid_char(unsigned char c) { return (c >= '0' && c <= '9') || c == '.'; }

/* Invariant 2 on the run s[0..n) (already stripped of leading and trailing dots). */
static int run_is_org_uid(const char *s, size_t n) {
    if (n < 10 || n > 255 || s[0] > '2' || s[1] != '.') return 0;
    /* 2.25 is the UUID arc: never an organisation's root, whatever digits follow (in binary
     * files a pseudonym can run into the digits of the next field). */
    if (memcmp(s, "2.25.", 5) == 0) return 0;
    /* Nor when at most 3 characters come before it ("1." + "2.25.…"): in binary files the last
     * bytes of the field before a pseudonym can read as digits and a dot (a timestamp in the
     * catalog's SQLite records did). A real root is longer than that before any "2.25." arc. */
    for (size_t k = 1; k <= 3 && k + 6 <= n; k++)
        if (s[k] == '.' && memcmp(s + k + 1, "2.25.", 5) == 0) return 0;
    int arcs = 1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '.') continue;
        if (i + 1 >= n || s[i + 1] == '.') return 0;                   /* empty arc */
        if (s[i + 1] == '0' && i + 2 < n && s[i + 2] != '.') return 0; /* leading zero */
        arcs++;
    }
    if (arcs < 3) return 0;
    char uid[256];
    memcpy(uid, s, n);
    uid[n] = 0;
    return !deid_uid_is_pseudonym(uid) && !deid_uid_is_standard(uid);
}

int deid_find_org_uid(const char *s, size_t n, size_t *pos, size_t *len) {
    size_t i = *pos;
    while (i < n) {
        if (!is_uid_char((unsigned char)s[i])) {
            i++;
            continue;
        }
        size_t a = i;
        while (i < n && is_uid_char((unsigned char)s[i]))
            i++;
        size_t b = i;
        while (a < b && s[a] == '.')
            a++;
        while (b > a && s[b - 1] == '.')
            b--;
        if (run_is_org_uid(s + a, b - a)) {
            *pos = a;
            *len = b - a;
            return 1;
        }
    }
    *pos = n;
    return 0;
}

/* 1 when the run s[0..n) is one of allowed[], or one of them followed by fewer than 10 more
 * digits and dots: in raw bytes a UID value of even length is followed directly by the next
 * tag, whose group (0030-0039) can read as a digit. */
static int uid_allowed(const char *s, size_t n, const char *const *allowed, int n_allowed) {
    for (int k = 0; k < n_allowed; k++) {
        size_t m = strlen(allowed[k]);
        if (m <= n && n - m < 10 && memcmp(allowed[k], s, m) == 0) return 1;
    }
    return 0;
}

void deid_report(const char *path, const char *where, const char *what, deid_hit_fn fn, void *user,
                 int *n_hits) {
    deid_hit h;
    h.path = path;
    snprintf(h.where, sizeof h.where, "%s", where);
    h.what = what;
    (*n_hits)++;
    if (fn) fn(&h, user);
}

int deid_scan_string(const char *path, const char *where, const char *s, size_t n,
                     const deid_phi *phi, const char *const *allowed, int n_allowed, deid_hit_fn fn,
                     void *user, int *n_hits) {
    int found = 0;
    size_t at = 0;
    if (deid_phi_find(phi, s, n, &at)) {
        deid_report(path, where, "listed identifier", fn, user, n_hits);
        found++;
    }
    size_t pos = 0, len = 0;
    while (deid_find_org_uid(s, n, &pos, &len)) {
        if (!uid_allowed(s + pos, len, allowed, n_allowed)) {
            deid_report(path, where, "UID of an organisation root (not a 2.25 pseudonym)", fn, user,
                        n_hits);
            found++;
            break;
        }
        pos += len;
    }
    return found;
}

/* ---- raw bytes ------------------------------------------------------------------------ */

typedef struct mapped {
    char *bytes;
    size_t n;
} mapped;

/* Read [off, off + n) of fd into buf; -1 (errno set) on a read error, else the bytes read
 * (fewer than n when the file ends, e.g. it was truncated while read). */
static ssize_t read_at(int fd, char *buf, size_t n, off_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, buf + got, n - got, off + (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* The whole file in memory, read with pread (never mapped: a file truncated while mapped kills
 * the process with SIGBUS; a short read is an error naming the file). */
static vs_status map_file(const char *path, mapped *m, vs_error *err) {
    m->bytes = NULL;
    m->n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot read the file (%s)", path, strerror(errno));
    struct stat st;
    vs_status s = VS_OK;
    if (fstat(fd, &st) != 0) {
        s = VS_FAIL(err, VS_ERR_IO, "%s: cannot read the file (%s)", path, strerror(errno));
    } else if (st.st_size > 0) {
        size_t n = (size_t)st.st_size;
        ssize_t got = (m->bytes = malloc(n)) ? read_at(fd, m->bytes, n, 0) : -2;
        if (got == -2)
            s = VS_FAIL(err, VS_ERR_NOMEM, "%s: cannot hold the file in memory", path);
        else if (got < 0)
            s = VS_FAIL(err, VS_ERR_IO, "%s: read error (%s)", path, strerror(errno));
        else if ((size_t)got < n)
            s = VS_FAIL(err, VS_ERR_IO, "%s: the file was truncated while it was read", path);
        m->n = n;
    }
    close(fd);
    if (s != VS_OK) {
        free(m->bytes);
        m->bytes = NULL, m->n = 0;
    }
    return s;
}

static void unmap_file(mapped *m) { free(m->bytes); }

/* Scan the raw bytes of path in windows of RAW_WINDOW bytes overlapping by RAW_OVERLAP (longer
 * than any identifier or UID looked for), read with pread: a shard of gigabytes is not held
 * whole. */
#define RAW_WINDOW (64u << 20)
#define RAW_OVERLAP 4096u

/* The matches of one scan that are reported, bounded whatever the file: in raw bytes the first
 * offset of each identifier (seen[] marks those met), in text the first match of each line. */
typedef struct raw_hits {
    struct raw_hit {
        int id;
        size_t pos;
    } * v;
    size_t n, cap;
    int oom;
    unsigned char *seen; /* raw: one bit per identifier */
    const char *buf;     /* text: the file, to find where lines end */
} raw_hits;

static int keep(raw_hits *h, int id, size_t pos) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16;
        struct raw_hit *g = realloc(h->v, cap * sizeof *g);
        if (!g) {
            h->oom = 1;
            return 1;
        }
        h->v = g;
        h->cap = cap;
    }
    h->v[h->n++] = (struct raw_hit){id, pos};
    return 0;
}

static int note_raw(void *user, int id, size_t pos) {
    raw_hits *h = user;
    if (h->seen[id >> 3] & (1u << (id & 7))) return 0; /* matches come by offset: first kept */
    h->seen[id >> 3] |= (unsigned char)(1u << (id & 7));
    return keep(h, id, pos);
}

static int note_text(void *user, int id, size_t pos) {
    raw_hits *h = user;
    if (h->n > 0) { /* a later match on the line of the last one kept adds nothing */
        size_t last = h->v[h->n - 1].pos;
        if (!memchr(h->buf + last, '\n', pos - last)) return 0;
    }
    return keep(h, id, pos);
}

static int cmp_hit(const void *a, const void *b) {
    const struct raw_hit *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* One window's matches: those starting where the window answers for (before `own`), each
 * identifier's first only. */
typedef struct window_hits {
    raw_hits *h;
    size_t start, own;
} window_hits;

static int note_window(void *user, int id, size_t pos) {
    window_hits *w = user;
    return pos < w->own ? note_raw(w->h, id, w->start + pos) : 0;
}

vs_status deid_scan_raw(const char *path, const deid_phi *phi, const char *const *allowed,
                        int n_allowed, deid_hit_fn fn, void *user, int *n_hits, vs_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot read the file (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot read the file (%s)", path, strerror(errno));
    }
    size_t size = (size_t)st.st_size, cap = size < RAW_WINDOW ? size : RAW_WINDOW;
    char *buf = malloc(cap ? cap : 1);
    if (!buf) {
        close(fd);
        return VS_FAIL(err, VS_ERR_NOMEM, "%s: cannot allocate a read window", path);
    }
    char where[96];
    raw_hits h = {NULL, 0, 0, 0, NULL, NULL};
    int n_phi = deid_phi_count(phi);
    h.seen = calloc((size_t)n_phi / 8 + 1, 1);
    size_t first_uid = 0;
    int n_uids = 0, run_into = 0; /* run_into: the byte before this window is a UID character */
    vs_status s = h.seen ? VS_OK : VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    /* each window starts RAW_OVERLAP before the previous one ended; a match is counted in the
     * window where it starts, unless it starts in that window's overlap with the next one */
    for (size_t start = 0; s == VS_OK && start < size;) {
        size_t want = size - start < cap ? size - start : cap;
        ssize_t got = read_at(fd, buf, want, (off_t)start);
        if (got < 0) {
            s = VS_FAIL(err, VS_ERR_IO, "%s: read error (%s)", path, strerror(errno));
            break;
        }
        if ((size_t)got < want) {
            s = VS_FAIL(err, VS_ERR_IO, "%s: the file was truncated while it was read", path);
            break;
        }
        int last = start + want >= size;
        size_t own = last ? want : want - RAW_OVERLAP; /* positions this window answers for */
        /* one pass for every listed identifier (a match's edges are read inside the window:
         * RAW_OVERLAP is longer than any identifier) */
        window_hits w = {&h, start, own};
        vs_error e;
        if (deid_phi_each(phi, buf, want, 1, note_window, &w, &e) != VS_OK || h.oom) {
            s = h.oom ? VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory scanning", path)
                      : VS_FAIL(err, e.code, "%s: %s", path, e.msg);
            break;
        }
        size_t pos = 0, len = 0;
        while (run_into && pos < want && is_uid_char((unsigned char)buf[pos])) /* its tail */
            pos++;
        while (deid_find_org_uid(buf, want, &pos, &len) && pos < own) {
            if (!uid_allowed(buf + pos, len, allowed, n_allowed) && n_uids++ == 0)
                first_uid = start + pos;
            pos += len;
        }
        if (last) break;
        run_into = is_uid_char((unsigned char)buf[own - 1]);
        start += own;
    }
    qsort(h.v, h.n, sizeof *h.v, cmp_hit); /* reported in list order, as they always were */
    for (size_t i = 0; s == VS_OK && i < h.n; i++) {
        snprintf(where, sizeof where, "raw bytes at offset %zu", h.v[i].pos);
        deid_report(path, where, "listed identifier in the raw bytes", fn, user, n_hits);
    }
    free(h.v);
    free(h.seen);
    if (s == VS_OK && n_uids > 0) {
        snprintf(where, sizeof where, "raw bytes at offset %zu (%d in the file)", first_uid,
                 n_uids);
        deid_report(path, where, "UID of an organisation root in the raw bytes", fn, user, n_hits);
    }
    free(buf);
    close(fd);
    return s;
}

/* ---- text files ----------------------------------------------------------------------- */

vs_status deid_verify_text(const char *path, const deid_phi *phi, deid_hit_fn fn, void *user,
                           int *n_hits, vs_error *err) {
    mapped m;
    vs_status st = map_file(path, &m, err);
    if (st != VS_OK) return st;
    raw_hits h = {NULL, 0, 0, 0, NULL, m.bytes}; /* by offset, as deid_phi_each reports them */
    vs_error e;
    if (deid_phi_each(phi, m.bytes, m.n, 0, note_text, &h, &e) != VS_OK || h.oom) {
        unmap_file(&m);
        free(h.v);
        return VS_FAIL(err, h.oom ? VS_ERR_NOMEM : e.code, "%s: %s", path,
                       h.oom ? "out of memory scanning" : e.msg);
    }
    char where[96];
    long line = 1;
    size_t k = 0; /* next match, by start */
    for (size_t a = 0; a < m.n; line++) {
        const char *nl = memchr(m.bytes + a, '\n', m.n - a);
        size_t b = nl ? (size_t)(nl - m.bytes) : m.n;
        const char *s = m.bytes + a;
        size_t n = b - a;
        while (k < h.n && h.v[k].pos < a)
            k++;
        if (k < h.n && h.v[k].pos < b) { /* the first of the line (identifiers hold no newline) */
            snprintf(where, sizeof where, "line %ld column %zu", line, h.v[k].pos - a + 1);
            deid_report(path, where, "listed identifier", fn, user, n_hits);
        }
        size_t pos = 0, len = 0;
        if (deid_find_org_uid(s, n, &pos, &len)) { /* the first of the line */
            snprintf(where, sizeof where, "line %ld column %zu", line, pos + 1);
            deid_report(path, where, "UID of an organisation root (not a 2.25 pseudonym)", fn, user,
                        n_hits);
        }
        a = b + 1;
    }
    free(h.v);
    unmap_file(&m);
    return VS_OK;
}

/* ---- any file ------------------------------------------------------------------------- */

typedef enum file_kind { KIND_DICOM, KIND_HDF5, KIND_TEXT, KIND_BINARY } file_kind;

static vs_status sniff(const char *path, file_kind *kind, vs_error *err) {
    static const unsigned char hdf5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8192];
    FILE *f = fopen(path, "rb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read the file (%s)", path, strerror(errno));
    size_t n = fread(head, 1, sizeof head, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) return VS_FAIL(err, VS_ERR_IO, "%s: read error", path);
    if (n >= 132 && memcmp(head + 128, "DICM", 4) == 0)
        *kind = KIND_DICOM;
    else if (n >= 8 && memcmp(head, hdf5_sig, 8) == 0)
        *kind = KIND_HDF5;
    else
        *kind = memchr(head, 0, n) ? KIND_BINARY : KIND_TEXT;
    return VS_OK;
}

vs_status deid_verify_path(const char *path, const deid_phi *phi, deid_hit_fn fn, void *user,
                           int *n_hits, vs_error *err) {
    file_kind kind;
    vs_status st = sniff(path, &kind, err);
    if (st != VS_OK) return st;
    switch (kind) {
    case KIND_DICOM: return deid_verify_file(path, phi, fn, user, n_hits, err);
    case KIND_HDF5: return deid_verify_shard(path, phi, fn, user, n_hits, err);
    case KIND_TEXT: return deid_verify_text(path, phi, fn, user, n_hits, err);
    case KIND_BINARY: break;
    }
    return deid_scan_raw(path, phi, NULL, 0, fn, user, n_hits, err);
}
