/* labels.c — label import (labels.h): LUNA16 points, volume labels, label masks. */
#include "labels.h"
#include "walk.h"

#include "itk_shim.h"
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_COLS 32

/* ------------------------------------------------------------------------------ set */
void labels_free(label_set *ls) {
    for (int i = 0; i < ls->n; i++)
        free(ls->s[i].lesions), free(ls->s[i].mask_path);
    free(ls->s);
    memset(ls, 0, sizeof *ls);
}

label_series *labels_find(const label_set *ls, const char *key) {
    for (int i = 0; i < ls->n; i++)
        if (strcmp(ls->s[i].key, key) == 0) return &ls->s[i];
    return NULL;
}

int labels_volume_label(const label_series *s) {
    return s->label >= 0 ? s->label : s->n_lesions > 0;
}

static label_series *series_get(label_set *ls, const char *key, vs_error *err) {
    label_series *s = labels_find(ls, key);
    if (s) return s;
    if (ls->n == ls->cap) {
        int cap = ls->cap ? 2 * ls->cap : 32;
        label_series *ns = realloc(ls->s, (size_t)cap * sizeof *ns);
        if (!ns) {
            VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate labels");
            return NULL;
        }
        ls->s = ns, ls->cap = cap;
    }
    s = &ls->s[ls->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->key, sizeof s->key, "%s", key);
    s->label = -1;
    return s;
}

static vs_status lesion_add(label_series *s, const label_lesion *l, vs_error *err) {
    if (s->n_lesions == s->cap) {
        int cap = s->cap ? 2 * s->cap : 4;
        label_lesion *nl = realloc(s->lesions, (size_t)cap * sizeof *nl);
        if (!nl) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate lesions");
        s->lesions = nl, s->cap = cap;
    }
    s->lesions[s->n_lesions++] = *l;
    return VS_OK;
}

/* ------------------------------------------------------------------------------ keys */
static int key_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') return 0;
    return 1;
}

/* The pseudonymous key of an identifier from a label file (never quoted in messages). */
static vs_status map_key(const deid_ctx *key, const char *id, char out[LABEL_KEY_MAX],
                         const char *path, int line, vs_error *err) {
    if (!*id) return VS_FAIL(err, VS_ERR_FORMAT, "%s:%d: empty series identifier", path, line);
    if (key) {
        deid_uid_key(key, id, out);
        return VS_OK;
    }
    if (!key_ok(id))
        return VS_FAIL(
            err, VS_ERR_FORMAT,
            "%s:%d: the series is not a pseudonymous key (give the site key to map original UIDs)",
            path, line);
    snprintf(out, LABEL_KEY_MAX, "%s", id);
    return VS_OK;
}

/* ------------------------------------------------------------------------------- CSV */
static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int split(char *line, char **cols) {
    int n = 0;
    for (char *p = line; n < MAX_COLS;) {
        char *c = strchr(p, ',');
        if (c) *c = '\0';
        cols[n++] = trim(p);
        if (!c) break;
        p = c + 1;
    }
    return n;
}

/* Column of the first of the names (comma-separated alternatives) in the header, or -1. */
static int col_find(char **hdr, int n, const char *names) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        for (int i = 0; i < n; i++)
            if (strcasecmp(hdr[i], t) == 0) return i;
    return -1;
}

static int parse_num(const char *s, double *out) {
    return vs_parse_double(s, -DBL_MAX, DBL_MAX, out) ? 0 : -1;
}

typedef vs_status (*row_fn)(label_set *ls, char **cols, const int *ix, const deid_ctx *key,
                            const char *path, int line, vs_error *err);

/* Read a CSV whose header must hold every column of `need` (each "name,alias,..."). */
static vs_status read_csv(label_set *ls, const char *path, const char *const *need, int n_need,
                          row_fn fn, const deid_ctx *key, vs_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char buf[4096], *cols[MAX_COLS];
    int ix[8], line = 0, have_header = 0;
    vs_status st = VS_OK;
    while (st == VS_OK && fgets(buf, sizeof buf, f)) {
        line++;
        if (!strchr(buf, '\n') && !feof(f)) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "%s:%d: line longer than %zu bytes", path, line,
                         sizeof buf);
            break;
        }
        char *l = trim(buf);
        if (!*l || *l == '#') continue;
        int n = split(l, cols);
        if (!have_header) {
            for (int k = 0; k < n_need; k++)
                if ((ix[k] = col_find(cols, n, need[k])) < 0) {
                    st = VS_FAIL(err, VS_ERR_FORMAT, "%s:%d: the header has no column '%s'", path,
                                 line, need[k]);
                    break;
                }
            have_header = 1;
            continue;
        }
        for (int k = 0; k < n_need && st == VS_OK; k++)
            if (ix[k] >= n)
                st = VS_FAIL(err, VS_ERR_FORMAT, "%s:%d: %d columns, the header has more", path,
                             line, n);
        if (st == VS_OK) st = fn(ls, cols, ix, key, path, line, err);
    }
    if (st == VS_OK && ferror(f)) st = VS_FAIL(err, VS_ERR_IO, "cannot read %s", path);
    if (st == VS_OK && !have_header) st = VS_FAIL(err, VS_ERR_FORMAT, "%s: no header line", path);
    fclose(f);
    return st;
}

static vs_status point_row(label_set *ls, char **cols, const int *ix, const deid_ctx *key,
                           const char *path, int line, vs_error *err) {
    char k[LABEL_KEY_MAX];
    vs_status st = map_key(key, cols[ix[0]], k, path, line, err);
    if (st != VS_OK) return st;
    label_lesion l;
    for (int a = 0; a < 3; a++)
        if (parse_num(cols[ix[1 + a]], &l.lps[a]) < 0)
            return VS_FAIL(err, VS_ERR_FORMAT, "%s:%d: coordinate %c is not a number", path, line,
                           "xyz"[a]);
    if (parse_num(cols[ix[4]], &l.diameter) < 0 || !(l.diameter > 0.0))
        return VS_FAIL(err, VS_ERR_FORMAT, "%s:%d: the diameter must be a number > 0", path, line);
    label_series *s = series_get(ls, k, err);
    return s ? lesion_add(s, &l, err) : err->code;
}

static vs_status volume_row(label_set *ls, char **cols, const int *ix, const deid_ctx *key,
                            const char *path, int line, vs_error *err) {
    char k[LABEL_KEY_MAX];
    vs_status st = map_key(key, cols[ix[0]], k, path, line, err);
    if (st != VS_OK) return st;
    const char *v = cols[ix[1]];
    if (strcmp(v, "0") && strcmp(v, "1"))
        return VS_FAIL(err, VS_ERR_FORMAT, "%s:%d: the label must be 0 or 1", path, line);
    label_series *s = series_get(ls, k, err);
    if (!s) return err->code;
    if (s->label >= 0 && s->label != (v[0] == '1'))
        return VS_FAIL(err, VS_ERR_FORMAT, "%s:%d: the series has another label on an earlier line",
                       path, line);
    s->label = v[0] == '1';
    return VS_OK;
}

vs_status labels_read_points(label_set *ls, const char *path, const deid_ctx *key, vs_error *err) {
    static const char *const need[] = {"seriesuid,series", "coordX,x", "coordY,y", "coordZ,z",
                                       "diameter_mm,diameter"};
    return read_csv(ls, path, need, 5, point_row, key, err);
}

vs_status labels_read_volume(label_set *ls, const char *path, const deid_ctx *key, vs_error *err) {
    static const char *const need[] = {"seriesuid,series", "label,class"};
    return read_csv(ls, path, need, 2, volume_row, key, err);
}

/* ----------------------------------------------------------------------------- masks */
static const char *const mask_ext[] = {".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"};

typedef struct mask_walk {
    label_set *ls;
    const char *dir;
    const deid_ctx *key;
    int n;
} mask_walk;

/* A file of the mask folder's walk (walk.h): a mask when its name ends in a mask extension. */
static vs_status mask_file(void *ctx, const char *full, int errno_, vs_error *err) {
    mask_walk *w = ctx;
    const char *name = strrchr(full, '/') ? strrchr(full, '/') + 1 : full;
    size_t len = strlen(name), el = 0;
    for (size_t i = 0; i < sizeof mask_ext / sizeof mask_ext[0] && !el; i++) {
        size_t x = strlen(mask_ext[i]);
        if (len > x && strcasecmp(name + len - x, mask_ext[i]) == 0) el = x;
    }
    if (!el) return VS_OK;
    if (errno_)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot read the mask (%s)", full, strerror(errno_));
    char id[256], k[LABEL_KEY_MAX];
    snprintf(id, sizeof id, "%.*s", (int)(len - el), name);
    vs_status st = map_key(w->key, id, k, w->dir, 0, err);
    label_series *s = st == VS_OK ? series_get(w->ls, k, err) : NULL;
    if (st == VS_OK && !s) st = err->code;
    if (st == VS_OK && s->mask_path)
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: two masks name the same series", w->dir);
    if (st == VS_OK && !(s->mask_path = strdup(full)))
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a mask path");
    if (st == VS_OK) w->n++;
    return st;
}

vs_status labels_scan_masks(label_set *ls, const char *dir, const deid_ctx *key, vs_error *err) {
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return VS_FAIL(err, VS_ERR_IO, "cannot open the mask folder %s: %s", dir,
                       strerror(errno ? errno : ENOTDIR));
    mask_walk w = {ls, dir, key, 0};
    vs_status st = vs_walk(&dir, 1, mask_file, &w, err);
    if (st == VS_OK && w.n == 0)
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s holds no NIfTI, NRRD or MetaImage mask", dir);
    return st;
}

vs_status labels_mask_on_grid(const char *mask_path, const volume *ref, volume *out,
                              vs_error *err) {
    volume m;
    memset(&m, 0, sizeof m);
    memset(out, 0, sizeof *out);
    vs_status st = itkshim_read_image(mask_path, &m, err);
    if (st != VS_OK) return st;
    int64_t size[3] = {ref->n_slices, ref->n_rows, ref->n_cols};
    st = itkshim_resample(&m, size, ref->spacing, ref->origin, ref->direction, 1, out, err);
    volume_free(&m);
    if (st != VS_OK) return vs_error_prefix(err, "%s", mask_path);
    return VS_OK;
}

/* Flood fill of value `val` from seed over 26 neighbours; accumulates count and index sums. */
static vs_status region(const uint8_t *m, int32_t *lab, const int64_t dims[3], size_t seed, int id,
                        double sum[3], size_t *count, size_t *stack, vs_error *err) {
    (void)err;
    size_t top = 0;
    uint8_t val = m[seed];
    stack[top++] = seed;
    lab[seed] = id;
    while (top) {
        size_t i = stack[--top];
        int64_t z = (int64_t)(i / (size_t)(dims[1] * dims[2])),
                y = (int64_t)((i / (size_t)dims[2]) % (size_t)dims[1]),
                x = (int64_t)(i % (size_t)dims[2]);
        sum[0] += (double)z, sum[1] += (double)y, sum[2] += (double)x;
        (*count)++;
        for (int dz = -1; dz <= 1; dz++)
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int64_t q[3] = {z + dz, y + dy, x + dx};
                    if (q[0] < 0 || q[1] < 0 || q[2] < 0 || q[0] >= dims[0] || q[1] >= dims[1] ||
                        q[2] >= dims[2])
                        continue;
                    size_t j = (size_t)((q[0] * dims[1] + q[1]) * dims[2] + q[2]);
                    if (m[j] != val || lab[j]) continue;
                    lab[j] = id; /* each voxel is pushed once: the stack never exceeds the volume */
                    stack[top++] = j;
                }
    }
    return VS_OK;
}

vs_status labels_mask_lesions(label_series *s, const volume *ref, vs_error *err) {
    if (!s->mask_path) return VS_OK;
    volume m;
    vs_status st = labels_mask_on_grid(s->mask_path, ref, &m, err);
    if (st != VS_OK) return st;
    if (m.dtype != VOL_UINT8) {
        volume_free(&m);
        return VS_FAIL(err, VS_ERR_FORMAT, "%s is not a label map (values must be integers 0..255)",
                       s->mask_path);
    }
    size_t n = (size_t)volume_n_voxels(&m);
    int64_t dims[3] = {m.n_slices, m.n_rows, m.n_cols};
    int32_t *lab = calloc(n, sizeof *lab);
    size_t *stack = malloc(n * sizeof *stack);
    double vox_mm3 =
        fabs(ref->affine[0] * (ref->affine[5] * ref->affine[10] - ref->affine[6] * ref->affine[9]) -
             ref->affine[1] * (ref->affine[4] * ref->affine[10] - ref->affine[6] * ref->affine[8]) +
             ref->affine[2] * (ref->affine[4] * ref->affine[9] - ref->affine[5] * ref->affine[8]));
    if (!lab || !stack) st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the mask's regions");
    const uint8_t *mv = m.voxels;
    int id = 0;
    for (size_t i = 0; st == VS_OK && i < n; i++) {
        if (!mv[i] || lab[i]) continue;
        double sum[3] = {0, 0, 0};
        size_t count = 0;
        st = region(mv, lab, dims, i, ++id, sum, &count, stack, err);
        double ijk[3] = {sum[2] / count, sum[1] / count, sum[0] / count};
        label_lesion l;
        volume_index_to_lps(ref, ijk, l.lps);
        l.diameter = 2.0 * cbrt(3.0 * count * vox_mm3 / (4.0 * M_PI));
        if (st == VS_OK) st = lesion_add(s, &l, err);
    }
    free(lab), free(stack);
    volume_free(&m);
    return st;
}

vs_status labels_lesion_zyx(const volume *v, const label_lesion *l, double zyx[3], vs_error *err) {
    double ijk[3];
    vs_status st = volume_lps_to_index(v, l->lps, ijk, err);
    if (st != VS_OK) return st;
    zyx[0] = ijk[2], zyx[1] = ijk[1], zyx[2] = ijk[0];
    return VS_OK;
}
