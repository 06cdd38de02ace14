/* report_inputs.c — labels, predictions, training logs and previews in the documented forms
 * (validation/FORMATS.md), and the SHA-256 hashes of the provenance block. */
#include "report.h"
#include "report_records.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const report_arm_names[REPORT_N_ARMS] = {"mae", "scratch"};

#define MAX_PREVIEW_BYTES (16u << 20)

void report_input_init(report_input *in) { memset(in, 0, sizeof *in); }

static void arm_free(report_arm *a) {
    free(a->fold);
    free(a->score);
    free(a->has_volume_row);
    free(a->cands);
}

void report_input_free(report_input *in) {
    free(in->series);
    free(in->lesions);
    for (int a = 0; a < REPORT_N_ARMS; a++)
        arm_free(&in->arms[a]);
    for (size_t r = 0; r < in->n_runs; r++)
        arm_free(&in->runs[r].a);
    free(in->runs);
    for (size_t i = 0; i < in->n_curves; i++) {
        free(in->curves[i].step);
        free(in->curves[i].loss);
    }
    free(in->curves);
    for (size_t i = 0; i < in->n_previews; i++)
        free(in->previews[i].png);
    free(in->previews);
    for (size_t i = 0; i < in->n_gallery; i++)
        free(in->gallery[i].png);
    free(in->gallery);
    free(in->files);
    memset(in, 0, sizeof *in);
}

/* Grow *p (an array of *cap elements of size sz) to hold n + 1. */
static int grow(void **p, size_t *cap, size_t n, size_t sz) {
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 64, bytes;
    if (!vs_size_mul(c, sz, &bytes)) return -1;
    void *q = realloc(*p, bytes);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Pseudonymous keys and labels use a small alphabet, so nothing else (a name, a date with
 * spaces, free text) can pass into a report through them. */
static int key_ok(const char *s) {
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0 && n <= REPORT_KEY_MAX;
}

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

vs_status report_sha256_file(const char *path, char hex[REPORT_SHA256_HEX], vs_error *err) {
    if (sodium_init() < 0) return VS_FAIL(err, VS_ERR_LIBRARY, "libsodium failed to initialise");
    FILE *f = fopen(path, "rb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_hash_sha256_update(&st, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return VS_FAIL(err, VS_ERR_IO, "%s: read failed", path);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, REPORT_SHA256_HEX, h, sizeof h);
    return VS_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

vs_status report_sha256_shards(const char *dir, char hex[REPORT_SHA256_HEX], size_t *n_files,
                               vs_error *err) {
    DIR *d = opendir(dir);
    if (!d) return VS_FAIL(err, VS_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    vs_status s = VS_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0) continue;
        if (grow((void **)&names, &cap, n, sizeof *names) < 0 || !(names[n] = strdup(e->d_name))) {
            s = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory listing shards", dir);
            goto done;
        }
        n++;
    }
    if (n) qsort(names, n, sizeof *names, cmp_str);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (size_t i = 0; i < n; i++) {
        char path[4096], h[REPORT_SHA256_HEX];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        if ((s = report_sha256_file(path, h, err)) != VS_OK) goto done;
        crypto_hash_sha256_update(&st, (const unsigned char *)h, 64);
        crypto_hash_sha256_update(&st, (const unsigned char *)"  ", 2);
        crypto_hash_sha256_update(&st, (const unsigned char *)names[i], strlen(names[i]));
        crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, REPORT_SHA256_HEX, h, sizeof h);
    *n_files = n;
done:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return s;
}

vs_status report_add_file(report_input *in, const char *role, const char *path, vs_error *err) {
    report_file f;
    memset(&f, 0, sizeof f);
    snprintf(f.role, sizeof f.role, "%s", role);
    snprintf(f.name, sizeof f.name, "%s", base_name(path));
    vs_status s = report_sha256_file(path, f.sha256, err);
    if (s != VS_OK) return s;
    report_file *p = realloc(in->files, (in->n_files + 1) * sizeof *p);
    if (!p) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    in->files = p;
    in->files[in->n_files++] = f;
    return VS_OK;
}

/* ---- labels ---------------------------------------------------------------------------- */

typedef struct label_row {
    char key[REPORT_KEY_MAX + 1], patient[REPORT_KEY_MAX + 1];
    int label;
    long line;
} label_row;

static int cmp_label_row(const void *a, const void *b) {
    const label_row *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int cmp_series_key(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const report_series *)elem)->key);
}

static int cmp_patient(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static long find_series(const report_input *in, const char *key) {
    const report_series *s =
        bsearch(key, in->series, in->n_series, sizeof *in->series, cmp_series_key);
    return s ? (long)(s - in->series) : -1;
}

/* One label row: fills row, and a lesion when the row has a position. *has_lesion = 1 then. */
static vs_status parse_label_row(const rec_reader *rd, const rec *r, label_row *row,
                                 froc_lesion *les, int *has_lesion, vs_error *err) {
    const char *key = rec_get(r, "series"), *lab = rec_get(r, "label");
    const char *pat = rec_get(r, "patient");
    long v;
    if (!key || !key_ok(key))
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%s line %ld: 'series' is missing or not a pseudonymous key (1-64 of "
                       "A-Z a-z 0-9 . _ -)",
                       rd->path, rd->lineno);
    if (pat && !key_ok(pat))
        return VS_FAIL(
            err, VS_ERR_FORMAT,
            "%s line %ld: 'patient' is not a pseudonymous key (1-64 of A-Z a-z 0-9 . _ -)",
            rd->path, rd->lineno);
    if (rec_int(lab, 0, 1, &v) != 0)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: 'label' must be 0 or 1", rd->path,
                       rd->lineno);
    snprintf(row->key, sizeof row->key, "%s", key);
    snprintf(row->patient, sizeof row->patient, "%s", pat ? pat : key);
    row->label = (int)v;
    row->line = rd->lineno;
    const char *x = rec_get(r, "x"), *y = rec_get(r, "y"), *z = rec_get(r, "z");
    const char *d = rec_get(r, "diameter"), *irr = rec_get(r, "irrelevant");
    *has_lesion = 0;
    if (!x && !y && !z && !d) return VS_OK;
    *les = (froc_lesion){0};
    if (rec_double(x, &les->x) || rec_double(y, &les->y) || rec_double(z, &les->z))
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%s line %ld: a lesion needs numbers x, y and z (LPS mm)", rd->path,
                       rd->lineno);
    if (rec_double(d, &les->diameter) || !(les->diameter > 0))
        return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: a lesion needs a diameter > 0 (mm)",
                       rd->path, rd->lineno);
    if (irr && strcmp(irr, "true") != 0 && strcmp(irr, "false") != 0 && rec_int(irr, 0, 1, &v))
        return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: 'irrelevant' must be 0, 1, true or false",
                       rd->path, rd->lineno);
    les->irrelevant = irr && (strcmp(irr, "true") == 0 || strcmp(irr, "1") == 0);
    *has_lesion = 1;
    return VS_OK;
}

/* Build the series table (sorted by key) and the patient clusters from the label rows. */
static vs_status build_series(report_input *in, const char *path, label_row *rows, size_t n,
                              vs_error *err) {
    qsort(rows, n, sizeof *rows, cmp_label_row);
    in->series = calloc(n ? n : 1, sizeof *in->series);
    const char **pats = calloc(n ? n : 1, sizeof *pats);
    if (!in->series || !pats) {
        free(pats);
        return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && strcmp(in->series[k - 1].key, rows[i].key) == 0) {
            if (in->series[k - 1].label != rows[i].label ||
                strcmp(in->series[k - 1].patient, rows[i].patient) != 0) {
                free(pats);
                return VS_FAIL(err, VS_ERR_FORMAT,
                               "%s line %ld: series %s has a different label or patient than on "
                               "an earlier line",
                               path, rows[i].line, rows[i].key);
            }
            continue;
        }
        report_series *s = &in->series[k++];
        memcpy(s->key, rows[i].key, sizeof s->key);
        memcpy(s->patient, rows[i].patient, sizeof s->patient);
        s->label = rows[i].label;
        s->set = -1;
    }
    in->n_series = k;
    for (size_t i = 0; i < k; i++)
        pats[i] = in->series[i].patient;
    qsort(pats, k, sizeof *pats, cmp_patient);
    size_t n_p = 0;
    for (size_t i = 0; i < k; i++)
        if (!n_p || strcmp(pats[n_p - 1], pats[i]) != 0) pats[n_p++] = pats[i];
    for (size_t i = 0; i < k; i++) {
        const char *p = in->series[i].patient;
        const char **hit = bsearch(&p, pats, n_p, sizeof *pats, cmp_patient);
        in->series[i].cluster = (uint32_t)(hit - pats);
    }
    in->n_clusters = (uint32_t)n_p;
    free(pats);
    return VS_OK;
}

vs_status report_read_labels(report_input *in, const char *path, vs_error *err) {
    if (in->series) return VS_FAIL(err, VS_ERR_USAGE, "labels were already read");
    rec_reader rd;
    vs_status s = rec_open(&rd, path, 1, err);
    if (s != VS_OK) return s;
    label_row *rows = NULL, row;
    size_t n_rows = 0, cap_rows = 0, cap_les = 0;
    froc_lesion les;
    for (;;) {
        rec r;
        int got, has_les;
        if ((s = rec_next(&rd, &r, &got, err)) != VS_OK || !got) break;
        if ((s = parse_label_row(&rd, &r, &row, &les, &has_les, err)) != VS_OK) break;
        if (grow((void **)&rows, &cap_rows, n_rows, sizeof *rows) < 0 ||
            (has_les && grow((void **)&in->lesions, &cap_les, in->n_lesions, sizeof les) < 0)) {
            s = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        rows[n_rows++] = row;
        if (has_les) {
            /* the scan index is resolved once the series table exists; park the key's row */
            les.scan = (uint32_t)(n_rows - 1);
            in->lesions[in->n_lesions++] = les;
        }
    }
    rec_close(&rd);
    if (s == VS_OK && n_rows == 0) s = VS_FAIL(err, VS_ERR_FORMAT, "%s: no label rows", path);
    /* keys by original row, before build_series sorts the rows */
    char(*keys)[REPORT_KEY_MAX + 1] = NULL;
    if (s == VS_OK) {
        keys = malloc(n_rows * sizeof *keys);
        if (!keys)
            s = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
        else
            for (size_t i = 0; i < n_rows; i++)
                memcpy(keys[i], rows[i].key, sizeof keys[i]);
    }
    if (s == VS_OK) s = build_series(in, path, rows, n_rows, err);
    for (size_t i = 0; s == VS_OK && i < in->n_lesions; i++)
        in->lesions[i].scan = (uint32_t)find_series(in, keys[in->lesions[i].scan]);
    free(keys);
    free(rows);
    if (s == VS_OK) s = report_add_file(in, "labels", path, err);
    return s;
}

/* ---- predictions ----------------------------------------------------------------------- */

static vs_status arm_alloc(report_input *in, report_arm *a, vs_error *err) {
    if (a->present) return VS_OK;
    size_t n = in->n_series;
    a->fold = malloc(n * sizeof *a->fold);
    a->score = malloc(n * sizeof *a->score);
    a->has_volume_row = calloc(n, sizeof *a->has_volume_row);
    if (!a->fold || !a->score || !a->has_volume_row)
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %zu series", n);
    for (size_t i = 0; i < n; i++) {
        a->fold[i] = -1;
        a->score[i] = -INFINITY;
    }
    a->present = 1;
    return VS_OK;
}

/* The run of (arm, budget, seed), created when new. */
static vs_status find_run(report_input *in, int arm, int budget, int seed, report_arm **out,
                          vs_error *err) {
    for (size_t r = 0; r < in->n_runs; r++)
        if (in->runs[r].arm == arm && in->runs[r].budget == budget && in->runs[r].seed == seed) {
            *out = &in->runs[r].a;
            return VS_OK;
        }
    if (grow((void **)&in->runs, &in->cap_runs, in->n_runs, sizeof *in->runs) < 0)
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    report_run *r = &in->runs[in->n_runs++];
    memset(r, 0, sizeof *r);
    r->arm = arm, r->budget = budget, r->seed = seed;
    *out = &r->a;
    return arm_alloc(in, &r->a, err);
}

static vs_status prediction_row(report_input *in, const rec_reader *rd, const rec *r,
                                vs_error *err) {
    const char *key = rec_get(r, "series"), *arm = rec_get(r, "arm");
    const char *bud = rec_get(r, "budget"), *sd = rec_get(r, "seed"), *set = rec_get(r, "set");
    long budget = 0, seed = 0;
    double p;
    if (!key || !key_ok(key))
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%s line %ld: 'series' is missing or not a pseudonymous key", rd->path,
                       rd->lineno);
    long si = find_series(in, key);
    if (si < 0)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: series %s is not in the labels", rd->path,
                       rd->lineno, key);
    int a = -1;
    for (int i = 0; i < REPORT_N_ARMS; i++)
        if (arm && strcmp(arm, report_arm_names[i]) == 0) a = i;
    if (a < 0)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: 'arm' must be mae or scratch", rd->path,
                       rd->lineno);
    if ((bud && rec_int(bud, 0, 1000000, &budget)) || (sd && rec_int(sd, 0, 1000000, &seed)))
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%s line %ld: 'budget' and 'seed' must be whole numbers 0-1000000", rd->path,
                       rd->lineno);
    int role = !set || strcmp(set, "test") == 0 ? REPORT_SET_TEST
               : strcmp(set, "dev") == 0        ? REPORT_SET_DEV
                                                : -1;
    if (role < 0)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: 'set' must be test or dev", rd->path,
                       rd->lineno);
    if (rec_double(rec_get(r, "probability"), &p) || p < 0 || p > 1)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s line %ld: 'probability' must be a number in [0, 1]",
                       rd->path, rd->lineno);
    if (in->series[si].set >= 0 && in->series[si].set != role)
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%s line %ld: series %s is in set %s here and %s on an earlier line",
                       rd->path, rd->lineno, key, role ? "dev" : "test",
                       in->series[si].set ? "dev" : "test");
    in->series[si].set = role;
    report_arm *ar = NULL;
    vs_status s = find_run(in, a, (int)budget, (int)seed, &ar, err);
    if (s != VS_OK) return s;
    ar->fold[si] = (int)seed;
    const char *x = rec_get(r, "x"), *y = rec_get(r, "y"), *z = rec_get(r, "z");
    if (!x && !y && !z) { /* the volume-level row */
        if (ar->has_volume_row[si])
            return VS_FAIL(err, VS_ERR_FORMAT,
                           "%s line %ld: a second volume row for series %s in arm %s, budget "
                           "%ld, seed %ld",
                           rd->path, rd->lineno, key, report_arm_names[a], budget, seed);
        ar->has_volume_row[si] = 1;
        ar->score[si] = p;
        return VS_OK;
    }
    froc_candidate c = {(uint32_t)si, 0, 0, 0, p};
    if (rec_double(x, &c.x) || rec_double(y, &c.y) || rec_double(z, &c.z))
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%s line %ld: a candidate needs numbers x, y and z (LPS mm), or none of "
                       "them for the volume row",
                       rd->path, rd->lineno);
    if (grow((void **)&ar->cands, &ar->cap_cands, ar->n_cands, sizeof c) < 0)
        return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", rd->path);
    ar->cands[ar->n_cands++] = c;
    if (!ar->has_volume_row[si] && p > ar->score[si]) ar->score[si] = p;
    return VS_OK;
}

vs_status report_read_predictions(report_input *in, const char *path, vs_error *err) {
    if (!in->series) return VS_FAIL(err, VS_ERR_USAGE, "read the labels before the predictions");
    rec_reader rd;
    vs_status s = rec_open(&rd, path, 1, err);
    if (s != VS_OK) return s;
    size_t rows = 0;
    for (;;) {
        rec r;
        int got;
        if ((s = rec_next(&rd, &r, &got, err)) != VS_OK || !got) break;
        if ((s = prediction_row(in, &rd, &r, err)) != VS_OK) break;
        rows++;
    }
    rec_close(&rd);
    if (s == VS_OK && rows == 0) s = VS_FAIL(err, VS_ERR_FORMAT, "%s: no prediction rows", path);
    if (s == VS_OK) s = report_add_file(in, "predictions", path, err);
    return s;
}

vs_status report_inputs_check(report_input *in, vs_error *err) {
    if (!in->n_runs) return VS_FAIL(err, VS_ERR_FORMAT, "no predictions were read");
    size_t n_test = 0;
    for (size_t i = 0; i < in->n_series; i++)
        n_test += in->series[i].set == REPORT_SET_TEST;
    for (size_t r = 0; r < in->n_runs; r++) {
        const report_run *ru = &in->runs[r];
        for (size_t i = 0; i < in->n_series; i++)
            if (ru->a.fold[i] < 0)
                return VS_FAIL(err, VS_ERR_FORMAT,
                               "series %s is labeled but has no prediction row in arm %s, budget "
                               "%d, seed %d (a series without candidates needs a volume row)",
                               in->series[i].key, report_arm_names[ru->arm], ru->budget, ru->seed);
        /* pairing: the other arm, when it has this budget, has this seed too */
        for (size_t q = 0; q < in->n_runs; q++) {
            const report_run *o = &in->runs[q];
            if (o->arm == ru->arm || o->budget != ru->budget) continue;
            int found = 0;
            for (size_t k = 0; k < in->n_runs && !found; k++)
                found = in->runs[k].arm == o->arm && in->runs[k].budget == ru->budget &&
                        in->runs[k].seed == ru->seed;
            if (!found)
                return VS_FAIL(err, VS_ERR_FORMAT,
                               "arm %s has seed %d at budget %d and arm %s does not: the arms "
                               "must be paired",
                               report_arm_names[ru->arm], ru->seed, ru->budget,
                               report_arm_names[o->arm]);
        }
    }
    if (!n_test)
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "no labeled series is in the test set: the report is computed on test "
                       "series only");
    return VS_OK;
}

/* ---- training logs and previews -------------------------------------------------------- */

static vs_status curve_point(report_curve *c, size_t *cap, double step, double loss) {
    if (c->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        double *s = realloc(c->step, nc * sizeof *s);
        if (s) c->step = s;
        double *l = s ? realloc(c->loss, nc * sizeof *l) : NULL;
        if (!l) return VS_ERR_NOMEM;
        c->loss = l;
        *cap = nc;
    }
    c->step[c->n] = step;
    c->loss[c->n++] = loss;
    return VS_OK;
}

vs_status report_read_train_log(report_input *in, const char *name, const char *path,
                                vs_error *err) {
    if (name && (!key_ok(name) || strlen(name) > REPORT_NAME_MAX))
        return VS_FAIL(err, VS_ERR_USAGE, "a curve name must be 1-64 of A-Z a-z 0-9 . _ - (for %s)",
                       path);
    report_curve c;
    memset(&c, 0, sizeof c);
    size_t cap = 0;
    char component[REPORT_NAME_MAX + 1] = "";
    rec_reader rd;
    vs_status s = rec_open(&rd, path, 0, err);
    if (s != VS_OK) return s;
    for (;;) {
        rec r;
        int got;
        if ((s = rec_next(&rd, &r, &got, err)) != VS_OK || !got) break;
        const char *ev = rec_get(&r, "event");
        size_t ev_len = ev ? strlen(ev) : 0; /* train.step, pretrain.step, finetune.step, ... */
        if (ev_len < 5 || strcmp(ev + ev_len - 5, ".step") != 0) continue;
        double step, loss;
        if (rec_double(rec_get(&r, "step"), &step) || rec_double(rec_get(&r, "loss"), &loss)) {
            s = VS_FAIL(err, VS_ERR_FORMAT,
                        "%s line %ld: a step event needs numeric 'step' and 'loss'", path,
                        rd.lineno);
            break;
        }
        const char *comp = rec_get(&r, "component");
        if (!component[0] && comp && key_ok(comp) && strlen(comp) <= REPORT_NAME_MAX)
            snprintf(component, sizeof component, "%s", comp);
        if (curve_point(&c, &cap, step, loss) != VS_OK) {
            s = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
    }
    rec_close(&rd);
    if (s == VS_OK && c.n == 0)
        s = VS_FAIL(err, VS_ERR_FORMAT, "%s: no step events (\"*.step\") with step and loss", path);
    if (s == VS_OK) s = report_sha256_file(path, c.sha256, err);
    report_curve *p = s == VS_OK ? realloc(in->curves, (in->n_curves + 1) * sizeof *p) : NULL;
    if (s == VS_OK && !p) s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (s != VS_OK) {
        free(c.step);
        free(c.loss);
        return s;
    }
    if (name)
        snprintf(c.name, sizeof c.name, "%s", name);
    else if (component[0])
        snprintf(c.name, sizeof c.name, "%s", component);
    else
        snprintf(c.name, sizeof c.name, "log%zu", in->n_curves + 1);
    c.kind = strncmp(c.name, "pretrain", 8) == 0 || strcmp(component, "pretrain") == 0
                 ? REPORT_PRETRAIN
                 : REPORT_FINETUNE;
    in->curves = p;
    in->curves[in->n_curves++] = c;
    return VS_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

vs_status report_read_preview(report_input *in, const char *name, const char *path, vs_error *err) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (name && (!key_ok(name) || strlen(name) > REPORT_NAME_MAX))
        return VS_FAIL(err, VS_ERR_USAGE,
                       "a preview name must be 1-64 of A-Z a-z 0-9 . _ - (for %s)", path);
    report_preview pv;
    memset(&pv, 0, sizeof pv);
    FILE *f = fopen(path, "rb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    pv.png = malloc(MAX_PREVIEW_BYTES + 1);
    if (!pv.png) {
        fclose(f);
        return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
    }
    pv.size = fread(pv.png, 1, MAX_PREVIEW_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    vs_status s = VS_OK;
    if (bad)
        s = VS_FAIL(err, VS_ERR_IO, "%s: read failed", path);
    else if (pv.size > MAX_PREVIEW_BYTES)
        s = VS_FAIL(err, VS_ERR_FORMAT, "%s: larger than 16 MiB, too big to embed", path);
    else if (pv.size < 33 || memcmp(pv.png, sig, 8) != 0 || memcmp(pv.png + 12, "IHDR", 4) != 0)
        s = VS_FAIL(err, VS_ERR_FORMAT, "%s: not a PNG file", path);
    if (s == VS_OK) {
        pv.width = be32(pv.png + 16);
        pv.height = be32(pv.png + 20);
        if (pv.width == 0 || pv.height == 0 || pv.width > 65535 || pv.height > 65535)
            s = VS_FAIL(err, VS_ERR_FORMAT, "%s: PNG size %ux%u is out of range", path, pv.width,
                        pv.height);
    }
    if (s == VS_OK) s = report_sha256_file(path, pv.sha256, err);
    report_preview *p = s == VS_OK ? realloc(in->previews, (in->n_previews + 1) * sizeof *p) : NULL;
    if (s == VS_OK && !p) s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (s != VS_OK) {
        free(pv.png);
        return s;
    }
    if (name)
        snprintf(pv.name, sizeof pv.name, "%s", name);
    else
        snprintf(pv.name, sizeof pv.name, "preview%zu", in->n_previews + 1);
    in->previews = p;
    in->previews[in->n_previews++] = pv;
    return VS_OK;
}
