/* study.c — study files and options onto the tables of study.h: one parser per kind of value
 * (a study file's scalars and sequences, an option's text and a row's default all go through
 * it), defaults, relative paths, ranges and the cross-key rules. */
#include "study.h"
#include "parse.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MAX_ITEMS 4096 /* items of one list value */

static void *member(study *s, const study_setting *r) { return (char *)s + r->offset; }
static int row_index(const study_setting *r) { return (int)(r - study_settings); }

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- one parser per kind -------------------------------------------------------------------- */

static int parse_bool(const char *t, int *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(t, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(t, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

static int parse_whole(const char *t, double *out) {
    int64_t v;
    if (!vs_parse_i64(t, INT64_MIN, INT64_MAX, &v)) return -1;
    *out = (double)v;
    return 0;
}

static int parse_real(const char *t, double *out) {
    return vs_parse_double(t, -DBL_MAX, DBL_MAX, out) ? 0 : -1;
}

/* Index of t in "a|b|c", or -1. */
static int parse_choice(const char *choices, const char *t) {
    int i = 0;
    for (const char *p = choices; *p; i++) {
        size_t n = strcspn(p, "|");
        if (strlen(t) == n && strncmp(p, t, n) == 0) return i;
        p += n + (p[n] == '|');
    }
    return -1;
}

static int width(study_kind k) {
    return k == STUDY_INT3 || k == STUDY_DBL3 ? 3 : k == STUDY_DBL2 ? 2 : 1;
}

static int is_list(study_kind k) {
    return k == STUDY_TEXTS || k == STUDY_PATHS || k == STUDY_DBLS || k == STUDY_INTS;
}
static int is_path(study_kind k) {
    return k == STUDY_PATH || k == STUDY_FILE || k == STUDY_KEY || k == STUDY_PATHS;
}

/* dir/p when p is relative and dir is set; a copy of p otherwise (and of a PACS URL). */
static char *resolve_path(const char *p, const char *dir) {
    if (!p[0] || p[0] == '/' || !dir || !dir[0] || strncasecmp(p, "pacs:", 5) == 0)
        return dup_str(p);
    size_t n = strlen(dir) + strlen(p) + 2;
    char *full = malloc(n);
    if (full) snprintf(full, n, "%s/%s", dir, p);
    return full;
}

static void free_member(study *s, const study_setting *r) {
    void *m = member(s, r);
    if (r->kind == STUDY_TEXT || r->kind == STUDY_PATH || r->kind == STUDY_FILE ||
        r->kind == STUDY_KEY) {
        free(*(char **)m);
        *(char **)m = NULL;
    } else if (r->kind == STUDY_TEXTS || r->kind == STUDY_PATHS) {
        study_list *l = m;
        for (unsigned i = 0; i < l->n; i++)
            free(l->v[i]);
        free(l->v);
        l->v = NULL, l->n = 0;
    } else if (r->kind == STUDY_DBLS) {
        study_dbls *l = m;
        free(l->v);
        l->v = NULL, l->n = 0;
    } else if (r->kind == STUDY_INTS) {
        study_ints *l = m;
        free(l->v);
        l->v = NULL, l->n = 0;
    }
}

/* Store items[0..n) into row r of s (lists append when `append`). Paths are resolved against
 * dir. Returns 0, or -1 with the reason in why. */
static int store(study *s, const study_setting *r, const char *const *items, int n, int append,
                 const char *dir, char *why, size_t cap) {
    void *m = member(s, r);
    double x[3];
    int w = width(r->kind);
    if (is_list(r->kind)) {
        if (!append) free_member(s, r);
        if (r->kind == STUDY_DBLS) {
            study_dbls *l = m;
            if (l->n + (unsigned)n > 64) return snprintf(why, cap, "at most 64 values"), -1;
            double *v = realloc(l->v, (l->n + (unsigned)n + 1) * sizeof *v);
            if (!v) return snprintf(why, cap, "out of memory"), -1;
            l->v = v;
            for (int i = 0; i < n; i++) {
                if (parse_real(items[i], &x[0]) < 0)
                    return snprintf(why, cap, "'%s' is not a number", items[i]), -1;
                if (!(x[0] >= r->lo && x[0] <= r->hi))
                    return snprintf(why, cap, "value %g is outside [%g, %g]", x[0], r->lo, r->hi),
                           -1;
                l->v[l->n++] = x[0];
            }
            return 0;
        }
        if (r->kind == STUDY_INTS) {
            study_ints *l = m;
            if (l->n + (unsigned)n > 64) return snprintf(why, cap, "at most 64 values"), -1;
            int *v = realloc(l->v, (l->n + (unsigned)n + 1) * sizeof *v);
            if (!v) return snprintf(why, cap, "out of memory"), -1;
            l->v = v;
            for (int i = 0; i < n; i++) {
                if (parse_real(items[i], &x[0]) < 0 || x[0] != floor(x[0]))
                    return snprintf(why, cap, "'%s' is not a whole number", items[i]), -1;
                if (!(x[0] >= r->lo && x[0] <= r->hi))
                    return snprintf(why, cap, "value %g is outside [%g, %g]", x[0], r->lo, r->hi),
                           -1;
                l->v[l->n++] = (int)x[0];
            }
            return 0;
        }
        study_list *l = m;
        char **v = realloc(l->v, (l->n + (unsigned)n + 1) * sizeof *v);
        if (!v) return snprintf(why, cap, "out of memory"), -1;
        l->v = v;
        for (int i = 0; i < n; i++) {
            if (!items[i][0]) return snprintf(why, cap, "an empty entry"), -1;
            char *t = r->kind == STUDY_PATHS ? resolve_path(items[i], dir) : dup_str(items[i]);
            if (!t) return snprintf(why, cap, "out of memory"), -1;
            l->v[l->n++] = t;
        }
        return 0;
    }
    if (n != 1 && n != w)
        return snprintf(why, cap, "wants %d value%s, not %d", w, w > 1 ? "s" : "", n), -1;
    if (n == 1 && w > 1 && r->kind == STUDY_DBL2) return snprintf(why, cap, "wants 2 values"), -1;
    switch (r->kind) {
    case STUDY_BOOL: {
        int b;
        if (parse_bool(items[0], &b) < 0)
            return snprintf(why, cap, "'%s' is not true or false", items[0]), -1;
        *(int *)m = b;
        return 0;
    }
    case STUDY_ENUM: {
        int c = parse_choice(r->choices, items[0]);
        if (c < 0) return snprintf(why, cap, "'%s' is not one of %s", items[0], r->choices), -1;
        *(int *)m = c;
        return 0;
    }
    case STUDY_TEXT: {
        size_t len = strlen(items[0]);
        if ((double)len < r->lo || (double)len > r->hi)
            return snprintf(why, cap, "wants %g to %g characters", r->lo, r->hi), -1;
        char *t = dup_str(items[0]);
        if (!t) return snprintf(why, cap, "out of memory"), -1;
        free_member(s, r);
        *(char **)m = t;
        return 0;
    }
    case STUDY_PATH:
    case STUDY_FILE:
    case STUDY_KEY: {
        char *t = items[0][0] ? resolve_path(items[0], dir) : NULL;
        if (items[0][0] && !t) return snprintf(why, cap, "out of memory"), -1;
        free_member(s, r);
        *(char **)m = t;
        return 0;
    }
    default: break;
    }
    int whole = r->kind == STUDY_INT || r->kind == STUDY_I64 || r->kind == STUDY_INT3;
    for (int i = 0; i < w; i++) {
        const char *t = items[n == 1 ? 0 : i];
        if ((whole ? parse_whole(t, &x[i]) : parse_real(t, &x[i])) < 0)
            return snprintf(why, cap, "'%s' is not a %s", t, whole ? "whole number" : "number"), -1;
        if (!(x[i] >= r->lo && x[i] <= r->hi))
            return snprintf(why, cap, "value %g is outside [%g, %g]", x[i], r->lo, r->hi), -1;
    }
    for (int i = 0; i < w; i++) {
        if (r->kind == STUDY_I64)
            *(int64_t *)m = (int64_t)x[0];
        else if (whole)
            ((int *)m)[i] = (int)x[i];
        else
            ((double *)m)[i] = x[i];
    }
    return 0;
}

/* Split text at commas into at most MAX_ITEMS items (pointers into buf). */
static int split(char *buf, const char **items, int lists) {
    int n = 0;
    if (!buf[0] && lists) return 0;
    for (char *p = buf;;) {
        items[n++] = p;
        char *c = strchr(p, ',');
        if (!c || n == MAX_ITEMS) break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

/* Store a comma-separated text. */
static int store_text(study *s, const study_setting *r, const char *text, int append,
                      const char *dir, char *why, size_t cap) {
    char *buf = dup_str(text);
    const char **items = malloc(MAX_ITEMS * sizeof *items);
    int rc = -1;
    if (!buf || !items)
        snprintf(why, cap, "out of memory");
    else if (!is_list(r->kind) && (r->kind == STUDY_TEXT || is_path(r->kind)))
        rc = store(s, r, (const char *const *)&buf, 1, append, dir, why, cap);
    else
        rc = store(s, r, items, split(buf, items, is_list(r->kind)), append, dir, why, cap);
    free(buf);
    free(items);
    return rc;
}

static vs_status apply_defaults(study *s, vs_error *err) {
    for (int i = 0; i < STUDY_N_KEYS; i++) {
        const study_setting *r = &study_settings[i];
        char why[256];
        if (r->def && (r->def[0] || !is_path(r->kind)) &&
            store_text(s, r, r->def, 0, NULL, why, sizeof why) < 0)
            return VS_FAIL(err, VS_ERR_INTERNAL, "the default of key '%s' is wrong: %s", r->key,
                           why);
        s->origin[i] = STUDY_FROM_DEFAULT;
    }
    return VS_OK;
}

void study_free(study *s) {
    if (!s) return;
    for (int i = 0; i < STUDY_N_KEYS; i++)
        free_member(s, &study_settings[i]);
    free(s->path);
    free(s);
}

vs_status study_defaults(study **out, vs_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    vs_status st = apply_defaults(*out, err);
    if (st != VS_OK) {
        study_free(*out);
        *out = NULL;
    }
    return st;
}

vs_status study_set(study *s, const study_setting *r, const char *text, int append, vs_error *err) {
    char why[256], flag[64];
    if (store_text(s, r, text, append, NULL, why, sizeof why) < 0)
        return VS_FAIL(err, VS_ERR_USAGE, "option --%s: %s",
                       study_setting_flag(r, flag, sizeof flag), why);
    s->origin[row_index(r)] = STUDY_FROM_OPTION;
    return VS_OK;
}

vs_status study_set_list(study *s, const study_setting *r, const char *const *items, int n,
                         vs_error *err) {
    char why[256];
    if (!is_list(r->kind)) return VS_FAIL(err, VS_ERR_INTERNAL, "key '%s' is not a list", r->key);
    if (store(s, r, items, n, 0, NULL, why, sizeof why) < 0)
        return VS_FAIL(err, VS_ERR_USAGE, "%s: %s", r->key, why);
    s->origin[row_index(r)] = STUDY_FROM_OPTION;
    return VS_OK;
}

/* ---- study files ------------------------------------------------------------------------------
 */

/* One key of the file: its path, the scalar or the sequence's scalars, its line. */
typedef struct yaml_entry {
    char path[256];
    char **items;
    int n_items, is_seq, line;
} yaml_entry;

typedef struct yaml_doc {
    yaml_entry *e;
    int n, cap;
    char error[512]; /* "LINE: reason" of the first structural problem */
} yaml_doc;

static void doc_free(yaml_doc *d) {
    for (int i = 0; i < d->n; i++) {
        for (int k = 0; k < d->e[i].n_items; k++)
            free(d->e[i].items[k]);
        free(d->e[i].items);
    }
    free(d->e);
}

static yaml_entry *doc_add(yaml_doc *d, const char *path, int line) {
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 64;
        yaml_entry *e = realloc(d->e, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        d->e = e, d->cap = cap;
    }
    yaml_entry *e = &d->e[d->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s", path);
    e->line = line;
    return e;
}

static int entry_push(yaml_entry *e, const char *text) {
    if (e->n_items == MAX_ITEMS) return -1;
    char **v = realloc(e->items, (size_t)(e->n_items + 1) * sizeof *v);
    if (!v) return -1;
    e->items = v;
    if (!(e->items[e->n_items] = dup_str(text))) return -1;
    e->n_items++;
    return 0;
}

#define DOC_FAIL(d, line, ...)                                                                     \
    do {                                                                                           \
        if (!(d)->error[0]) {                                                                      \
            int k_ = snprintf((d)->error, sizeof(d)->error, "%d: ", (line));                       \
            snprintf((d)->error + k_, sizeof(d)->error - (size_t)k_, __VA_ARGS__);                 \
        }                                                                                          \
    } while (0)

/* Read the file as a mapping of scalars, sequences of scalars and one level of sections
 * (mappings of those). Returns -1 when the file cannot be read (errno), 0 otherwise (d->error
 * holds the first structural problem). */
static int doc_read(const char *path, yaml_doc *d) {
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        snprintf(d->error, sizeof d->error, "0: cannot start the YAML parser");
        return 0;
    }
    yaml_parser_set_input_file(&p, f);
    /* depth: 0 outside, 1 in the top mapping, 2 in a section; key: the current key at each */
    int depth = 0, done = 0, started = 0;
    char key[3][128] = {"", "", ""};
    int expect_key[3] = {1, 1, 1};
    yaml_entry *seq = NULL; /* the entry whose sequence is open */
    while (!done && !d->error[0]) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            DOC_FAIL(d, (int)p.problem_mark.line + 1, "not valid YAML (%s)",
                     p.problem ? p.problem : "syntax");
            break;
        }
        int line = (int)ev.start_mark.line + 1;
        char full[300];
        if (depth == 2)
            snprintf(full, sizeof full, "%s.%s", key[1], key[2]);
        else
            snprintf(full, sizeof full, "%s", key[1]);
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (seq) {
                if (entry_push(seq, v) < 0) DOC_FAIL(d, line, "too many values");
            } else if (depth == 0) {
                DOC_FAIL(d, line, "a study file is a mapping of keys");
            } else if (expect_key[depth]) {
                snprintf(key[depth], sizeof key[depth], "%s", v);
                expect_key[depth] = 0;
            } else {
                yaml_entry *e = doc_add(d, full, line);
                if (!e || entry_push(e, v) < 0) DOC_FAIL(d, line, "out of memory");
                expect_key[depth] = 1;
            }
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
            if (seq || depth == 0 || expect_key[depth]) {
                DOC_FAIL(d, line, "key '%s': a list is not expected here", full);
                break;
            }
            if (!(seq = doc_add(d, full, line)))
                DOC_FAIL(d, line, "out of memory");
            else
                seq->is_seq = 1;
            break;
        case YAML_SEQUENCE_END_EVENT:
            seq = NULL;
            expect_key[depth] = 1;
            break;
        case YAML_MAPPING_START_EVENT:
            if (seq) {
                DOC_FAIL(d, line, "key '%s': a list of mappings is not expected", full);
            } else if (depth == 0 && !started) {
                depth = 1, started = 1;
            } else if (depth == 1 && !expect_key[1]) {
                depth = 2, expect_key[2] = 1;
            } else {
                DOC_FAIL(d, line, "key '%s': sections hold keys and values, not deeper mappings",
                         full);
            }
            break;
        case YAML_MAPPING_END_EVENT:
            if (depth == 2) expect_key[1] = 1;
            depth--;
            break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    fclose(f);
    return 0;
}

int study_key_line(const char *path, const char *key_path) {
    yaml_doc d;
    if (doc_read(path, &d) < 0) return 0;
    int line = 0;
    for (int i = 0; i < d.n && !line; i++)
        if (strcmp(d.e[i].path, key_path) == 0) line = d.e[i].line;
    doc_free(&d);
    return line;
}

static int is_section(const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < STUDY_N_KEYS; i++)
        if (strncmp(study_settings[i].key, name, n) == 0 && study_settings[i].key[n] == '.')
            return 1;
    return 0;
}

static vs_status apply_doc(study *s, const char *path, const yaml_doc *d, const char *dir,
                           vs_error *err) {
    int seen[STUDY_N_KEYS] = {0};
    for (int i = 0; i < d->n; i++) {
        const yaml_entry *e = &d->e[i];
        const study_setting *r = study_setting_find(e->path);
        if (!r && is_section(e->path))
            return VS_FAIL(err, VS_ERR_CONFIG,
                           "%s:%d: key '%s': a section holds keys (key: value lines)", path,
                           e->line, e->path);
        if (!r)
            return VS_FAIL(err, VS_ERR_CONFIG, "%s:%d: key '%s': unknown key", path, e->line,
                           e->path);
        int k = row_index(r);
        if (seen[k])
            return VS_FAIL(err, VS_ERR_CONFIG, "%s:%d: key '%s': given twice", path, e->line,
                           e->path);
        seen[k] = 1;
        char why[256];
        if (e->is_seq && !is_list(r->kind) && width(r->kind) == 1)
            return VS_FAIL(err, VS_ERR_CONFIG, "%s:%d: key '%s': wants one value, not a list", path,
                           e->line, e->path);
        if (!e->is_seq && width(r->kind) > 1 && r->kind != STUDY_INT3 && r->kind != STUDY_DBL3)
            return VS_FAIL(err, VS_ERR_CONFIG, "%s:%d: key '%s': wants a list [a, b]", path,
                           e->line, e->path);
        if (store(s, r, (const char *const *)e->items, e->n_items, 0, dir, why, sizeof why) < 0)
            return VS_FAIL(err, VS_ERR_CONFIG, "%s:%d: key '%s': %s", path, e->line, e->path, why);
        s->origin[k] = STUDY_FROM_FILE;
        s->line[k] = e->line;
    }
    for (int k = 0; k < STUDY_N_KEYS; k++)
        if (!study_settings[k].def && !seen[k])
            return VS_FAIL(err, VS_ERR_CONFIG, "%s:0: key '%s': required key is missing", path,
                           study_settings[k].key);
    return VS_OK;
}

vs_status study_load(const char *path, study **out, vs_error *err) {
    *out = NULL;
    yaml_doc d;
    if (doc_read(path, &d) < 0)
        return VS_FAIL(err, VS_ERR_CONFIG, "%s: cannot open the study file (%s)", path,
                       strerror(errno));
    study *s = NULL;
    vs_status st = VS_OK;
    if (d.error[0]) st = VS_FAIL(err, VS_ERR_CONFIG, "%s:%s", path, d.error);
    if (st == VS_OK) st = study_defaults(&s, err);
    char dir[PATH_MAX] = "";
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (st == VS_OK) st = apply_doc(s, path, &d, dir, err);
    if (st == VS_OK && !(s->path = dup_str(path))) st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (st == VS_OK) st = study_check(s, err);
    doc_free(&d);
    if (st != VS_OK) {
        study_free(s);
        return st;
    }
    *out = s;
    return VS_OK;
}

/* ---- cross-key rules ------------------------------------------------------------------------- */

/* The message for a rule broken at key k: where its value came from, then why. */
static vs_status key_error(const study *s, int k, vs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static vs_status key_error(const study *s, int k, vs_error *err, const char *fmt, ...) {
    char why[256], flag[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    const study_setting *r = &study_settings[k];
    if (s->origin[k] == STUDY_FROM_OPTION)
        return VS_FAIL(err, VS_ERR_USAGE, "option --%s: %s",
                       study_setting_flag(r, flag, sizeof flag), why);
    if (s->origin[k] == STUDY_FROM_FILE)
        return VS_FAIL(err, VS_ERR_CONFIG, "%s:%d: key '%s': %s", s->path, s->line[k], r->key, why);
    return VS_FAIL(err, s->path ? VS_ERR_CONFIG : VS_ERR_USAGE, "%s%skey '%s' (default %s): %s",
                   s->path ? s->path : "", s->path ? ": " : "", r->key, r->def, why);
}

/* Of two keys in one rule, the one set by the user (an option over a file over a default) is
 * the one to name; on a tie the second, the one that depends on the first. */
static int blame(const study *s, int a, int b) { return s->origin[b] >= s->origin[a] ? b : a; }

vs_status study_check(const study *s, vs_error *err) {
    const study_pretrain *p = &s->pretrain;
    for (int a = 0; a < 3; a++)
        if (p->crop[a] % p->patch[a])
            return key_error(s, blame(s, STUDY_KEY_pretrain_crop, STUDY_KEY_pretrain_patch), err,
                             "patch %d does not divide crop %d (axis %d)", p->patch[a], p->crop[a],
                             a);
    if (p->dim % p->heads)
        return key_error(s, blame(s, STUDY_KEY_pretrain_dim, STUDY_KEY_pretrain_heads), err,
                         "dim %d is not a multiple of heads %d", p->dim, p->heads);
    if (p->dec_dim % p->dec_heads)
        return key_error(s, blame(s, STUDY_KEY_pretrain_dec_dim, STUDY_KEY_pretrain_dec_heads), err,
                         "dec_dim %d is not a multiple of dec_heads %d", p->dec_dim, p->dec_heads);
    if (p->min_lr > p->lr)
        return key_error(s, STUDY_KEY_pretrain_min_lr, err, "min_lr is above lr");
    if (p->modalities.n > 1)
        return key_error(s, STUDY_KEY_pretrain_modalities, err,
                         "pretraining takes one modality (or none: every volume), not %u",
                         p->modalities.n);
    if (s->preprocess.ct_window[0] >= s->preprocess.ct_window[1])
        return key_error(s, STUDY_KEY_preprocess_ct_window, err,
                         "the window's low end must be below its high end");
    if (s->preprocess.mr_percentiles[0] >= s->preprocess.mr_percentiles[1])
        return key_error(s, STUDY_KEY_preprocess_mr_percentiles, err,
                         "the low percentile must be below the high one");
    if (s->finetune.dev_share + s->finetune.test_share >= 1)
        return key_error(s, blame(s, STUDY_KEY_finetune_dev_share, STUDY_KEY_finetune_test_share),
                         err, "dev_share %g and test_share %g leave no training patient",
                         s->finetune.dev_share, s->finetune.test_share);
    if (s->finetune.window[0] > s->finetune.window[1])
        return key_error(s, STUDY_KEY_finetune_window, err,
                         "the window's low end must not be above its high end");
    if (s->deid.retain_long_full_dates && s->deid.retain_long_modified_dates)
        return key_error(s,
                         blame(s, STUDY_KEY_deid_retain_long_full_dates,
                               STUDY_KEY_deid_retain_long_modified_dates),
                         err, "cannot retain full dates and modified dates at once");
    return VS_OK;
}
