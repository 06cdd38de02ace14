/* shard_reader.c — open a shard set, list its volumes, read whole volumes, boxes and random
 * crops, and verify checksums (shard.h invariants 4 and 5).
 *
 * Open files: a set over thousands of shards keeps at most max_open HDF5 files open, least
 * recently used closed first (reopened on demand). A file being read is pinned and never
 * closed; when every open file is pinned, a reader opens one more rather than wait, so the
 * count exceeds max_open by at most the number of threads reading at that instant. */
#include "shard.h"
#include "shard_h5.h"
#include "log.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

typedef struct shard_file {
    char path[4200];
    hid_t file; /* -1 while closed */
    int64_t sequence;
    int pins;           /* readers using file now */
    uint64_t last_used; /* s->clock at the last acquire */
} shard_file;

struct shard_set {
    shard_file *files;
    int n_files, n_skipped;
    shard_entry *entries; /* live volumes after dedup and filter, in (sequence, position) order */
    int *entry_file;      /* index into files */
    int n;
    unsigned char *bad; /* volumes that failed to read: crops skip them */
    int n_bad;
    shard_chunk_layout *layout; /* per volume, filled on first read */
    unsigned char *layout_known;
    pthread_mutex_t mu;   /* guards bad, n_bad, layout (crops run in several threads) */
    shard_cache *cache;   /* decompressed chunks, or NULL */
    int read_threads;     /* threads inflating the chunks of one box (1: the caller's alone) */
    int max_open, n_open; /* open HDF5 files: limit and count (guarded by mu) */
    uint64_t clock;
};

/* ---- open files: a least-recently-used set of at most max_open ----------------------- */

/* Close the least recently used unpinned open file; 0 when there is none. Holds s->mu. */
static int evict_one(shard_set *s) {
    int victim = -1;
    for (int i = 0; i < s->n_files; i++) {
        const shard_file *f = &s->files[i];
        if (f->file >= 0 && f->pins == 0 &&
            (victim < 0 || f->last_used < s->files[victim].last_used))
            victim = i;
    }
    if (victim < 0) return 0;
    H5Fclose(s->files[victim].file);
    s->files[victim].file = -1;
    s->n_open--;
    return 1;
}

/* The open handle of file fi, pinned until file_release (opening it, and closing others
 * beyond max_open, as needed). */
static vs_status file_acquire(shard_set *s, int fi, hid_t *out, vs_error *err) {
    vs_status st = VS_OK;
    pthread_mutex_lock(&s->mu);
    shard_file *f = &s->files[fi];
    if (f->file < 0) {
        while (s->n_open >= s->max_open && evict_one(s)) {
        }
        if ((f->file = H5Fopen(f->path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
            f->file = -1;
            st = shard_h5_fail(err, f->path, "cannot reopen the shard");
        } else {
            s->n_open++;
        }
    }
    if (st == VS_OK) {
        f->pins++;
        f->last_used = ++s->clock;
        *out = f->file;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void file_release(shard_set *s, int fi) {
    pthread_mutex_lock(&s->mu);
    s->files[fi].pins--;
    pthread_mutex_unlock(&s->mu);
}

/* The default limit: 64, or an eighth of the soft limit on open files when that is less. */
static int default_max_open(void) {
    struct rlimit r;
    int n = 64;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY && r.rlim_cur / 8 < 64)
        n = (int)(r.rlim_cur / 8);
    return n < 1 ? 1 : n;
}

void shard_set_max_open(shard_set *s, int n) {
    pthread_mutex_lock(&s->mu);
    s->max_open = n < 1 ? 1 : n;
    while (s->n_open > s->max_open && evict_one(s)) {
    }
    pthread_mutex_unlock(&s->mu);
}

int shard_set_n_open(shard_set *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_open;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- listing and loading ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_shard_name(const char *name) {
    size_t n = strlen(name);
    return strncmp(name, "shard-", 6) == 0 && n > 9 && strcmp(name + n - 3, ".h5") == 0;
}

/* Sorted names of the sealed shards in dir; *out is freed with free_names. */
static vs_status list_shards(const char *dir, char ***out, int *n_out, vs_error *err) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return VS_FAIL(err, VS_ERR_IO, "%s: cannot list the shard folder", dir);
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    vs_status st = VS_OK;
    while ((e = readdir(d))) {
        if (!is_shard_name(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **g = realloc(names, (size_t)cap * sizeof *g);
            if (!g) {
                st = VS_FAIL(err, VS_ERR_NOMEM, "cannot list %s", dir);
                break;
            }
            names = g;
        }
        if (!(names[n] = strdup(e->d_name))) {
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot list %s", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (st == VS_OK && n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names;
    *n_out = n;
    return st;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Open one shard, check its header and read its index into *rows (malloc'ed). */
static vs_status load_shard(const char *path, hid_t *file_out, int64_t *sequence,
                            shard_index_row **rows_out, int *n_out, vs_error *err) {
    *file_out = -1;
    *rows_out = NULL;
    *n_out = 0;
    vs_status st = VS_OK;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = -1, space = -1, t = -1;
    shard_index_row *rows = NULL;
    if (f < 0) return shard_h5_fail(err, path, "not a readable HDF5 file");
    char format[64];
    int64_t version = 0, n_volumes = 0;
    if (shard_h5_read_attr_string(f, "format", format, sizeof format) < 0 ||
        strcmp(format, "vesalius-shard") != 0 ||
        shard_h5_read_attr_int64(f, "schema_version", &version) < 0) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: not a vesalius shard (no format/schema_version)",
                     path);
        goto fail;
    }
    if (version > SHARD_SCHEMA_VERSION || version < 1) {
        st = VS_FAIL(err, VS_ERR_FORMAT,
                     "%s: shard schema version %lld is newer than this vesalius reads (%d); "
                     "upgrade vesalius",
                     path, (long long)version, SHARD_SCHEMA_VERSION);
        goto fail;
    }
    if (shard_h5_read_attr_int64(f, "sequence", sequence) < 0 ||
        shard_h5_read_attr_int64(f, "n_volumes", &n_volumes) < 0) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: shard attributes are missing", path);
        goto fail;
    }
    if ((d = H5Dopen2(f, "index", H5P_DEFAULT)) < 0 || (space = H5Dget_space(d)) < 0 ||
        (t = shard_h5_index_type()) < 0) {
        st = shard_h5_fail(err, path, "cannot open the index");
        goto fail;
    }
    hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n < 0 || n != n_volumes || n > 10000000) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: the index does not match n_volumes", path);
        goto fail;
    }
    if (n > 0) {
        if (!(rows = calloc((size_t)n, sizeof *rows))) {
            st = VS_FAIL(err, VS_ERR_NOMEM, "%s: cannot allocate the index", path);
            goto fail;
        }
        if (H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0) {
            st = shard_h5_fail(err, path, "cannot read the index");
            goto fail;
        }
    }
    for (hssize_t i = 0; i < n; i++) {
        shard_index_row *r = &rows[i];
        r->key[SHARD_KEY_MAX - 1] = r->dtype[7] = r->modality[16] = r->body_part[64] = 0;
        r->checksum[SHARD_CHECKSUM_MAX - 1] = 0;
        vol_dtype dt;
        if (!shard_key_valid(r->key) || !shard_dtype_parse(r->dtype, &dt) || r->shape[0] < 1 ||
            r->shape[1] < 1 || r->shape[2] < 1) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "%s: index row %lld is invalid", path, (long long)i);
            goto fail;
        }
    }
    H5Tclose(t);
    H5Sclose(space);
    H5Dclose(d);
    *file_out = f;
    *rows_out = rows;
    *n_out = (int)n;
    return VS_OK;
fail:
    free(rows);
    if (t >= 0) H5Tclose(t);
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    (void)H5Eclear2(H5E_DEFAULT);
    return st;
}

static void entry_from_row(const shard_index_row *r, shard_entry *e) {
    memset(e, 0, sizeof *e);
    memcpy(e->key, r->key, sizeof e->key);
    memcpy(e->modality, r->modality, sizeof e->modality);
    memcpy(e->body_part, r->body_part, sizeof e->body_part);
    shard_dtype_parse(r->dtype, &e->dtype);
    memcpy(e->shape, r->shape, sizeof e->shape);
    memcpy(e->spacing, r->spacing, sizeof e->spacing);
    e->first_voxel = r->first_voxel;
    memcpy(e->checksum, r->checksum, sizeof e->checksum);
}

static int cmp_excluded(const void *key, const void *elem) {
    return strcmp((const char *)key, *(const char *const *)elem);
}

static int passes(const shard_entry *e, const shard_filter *f) {
    if (!f) return 1;
    if (f->modality && f->modality[0] && strcmp(f->modality, e->modality) != 0) return 0;
    if (f->body_part && f->body_part[0] && strcmp(f->body_part, e->body_part) != 0) return 0;
    for (int a = 0; a < 3; a++)
        if (e->shape[a] < f->min_shape[a]) return 0;
    if (f->n_exclude > 0 &&
        bsearch(e->key, f->exclude, (size_t)f->n_exclude, sizeof *f->exclude, cmp_excluded))
        return 0;
    return 1;
}

/* A candidate volume before dedup: its entry, file and position. */
typedef struct candidate {
    shard_entry e;
    int file;
    int64_t sequence;
    int pos;
} candidate;

static int cmp_key_seq(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    int c = strcmp(x->e.key, y->e.key);
    if (c) return c;
    return (x->sequence > y->sequence) - (x->sequence < y->sequence);
}

static int cmp_seq_pos(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->sequence != y->sequence) return (x->sequence > y->sequence) ? 1 : -1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Keep, per series key, the copy in the highest sequence; then filter; store in s. */
static vs_status resolve(shard_set *s, candidate *c, int n, const shard_filter *filter,
                         vs_error *err) {
    if (n > 1) qsort(c, (size_t)n, sizeof *c, cmp_key_seq);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (i + 1 < n && strcmp(c[i].e.key, c[i + 1].e.key) == 0) continue; /* superseded */
        if (!passes(&c[i].e, filter)) continue;
        c[kept++] = c[i];
    }
    if (kept > 1) qsort(c, (size_t)kept, sizeof *c, cmp_seq_pos);
    s->entries = calloc((size_t)(kept ? kept : 1), sizeof *s->entries);
    s->entry_file = calloc((size_t)(kept ? kept : 1), sizeof *s->entry_file);
    s->bad = calloc((size_t)(kept ? kept : 1), 1);
    s->layout = calloc((size_t)(kept ? kept : 1), sizeof *s->layout);
    s->layout_known = calloc((size_t)(kept ? kept : 1), 1);
    if (!s->entries || !s->entry_file || !s->bad || !s->layout || !s->layout_known)
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the shard set index");
    for (int i = 0; i < kept; i++) {
        s->entries[i] = c[i].e;
        s->entry_file[i] = c[i].file;
    }
    s->n = kept;
    return VS_OK;
}

/* Append the rows of one loaded shard to the candidate list. */
static vs_status add_candidates(candidate **c, int *n, int *cap, const shard_index_row *rows,
                                int n_rows, int file, int64_t sequence, vs_error *err) {
    if (*n + n_rows > *cap) {
        int nc = *cap ? *cap : 64;
        while (nc < *n + n_rows)
            nc *= 2;
        candidate *g = realloc(*c, (size_t)nc * sizeof *g);
        if (!g) return VS_FAIL(err, VS_ERR_NOMEM, "cannot grow the shard set index");
        *c = g;
        *cap = nc;
    }
    for (int i = 0; i < n_rows; i++) {
        candidate *x = &(*c)[(*n)++];
        entry_from_row(&rows[i], &x->e);
        x->file = file;
        x->sequence = sequence;
        x->pos = i;
    }
    return VS_OK;
}

vs_status shard_set_open(const char *dir, const shard_filter *filter, shard_set **out,
                         vs_error *err) {
    *out = NULL;
    shard_h5_quiet();
    char **names = NULL;
    int n_names = 0;
    vs_status st = list_shards(dir, &names, &n_names, err);
    if (st != VS_OK) {
        free_names(names, n_names);
        return st;
    }
    shard_set *s = calloc(1, sizeof *s);
    candidate *cands = NULL;
    int n_c = 0, cap_c = 0;
    if (s) pthread_mutex_init(&s->mu, NULL), s->read_threads = 1, s->max_open = default_max_open();
    if (!s || !(s->files = calloc((size_t)(n_names ? n_names : 1), sizeof *s->files))) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a shard set");
        goto fail;
    }
    for (int i = 0; i < n_names; i++) {
        shard_file *f = &s->files[s->n_files];
        snprintf(f->path, sizeof f->path, "%s/%s", dir, names[i]);
        shard_index_row *rows = NULL;
        int n_rows = 0;
        vs_error e2;
        if (load_shard(f->path, &f->file, &f->sequence, &rows, &n_rows, &e2) != VS_OK) {
            log_warn("skipping shard %s", e2.msg);
            s->n_skipped++;
            continue;
        }
        st = add_candidates(&cands, &n_c, &cap_c, rows, n_rows, s->n_files, f->sequence, err);
        free(rows);
        /* keep the first max_open files open; later ones reopen on demand */
        if (s->n_open < s->max_open)
            s->n_open++, f->last_used = ++s->clock;
        else
            H5Fclose(f->file), f->file = -1;
        s->n_files++;
        if (st != VS_OK) goto fail;
    }
    if ((st = resolve(s, cands, n_c, filter, err)) != VS_OK) goto fail;
    free(cands);
    free_names(names, n_names);
    *out = s;
    return VS_OK;
fail:
    free(cands);
    free_names(names, n_names);
    shard_set_close(s);
    return st;
}

void shard_set_close(shard_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++)
        if (s->files[i].file >= 0) H5Fclose(s->files[i].file);
    free(s->files);
    free(s->entries);
    free(s->entry_file);
    free(s->bad);
    free(s->layout);
    free(s->layout_known);
    pthread_mutex_destroy(&s->mu);
    shard_cache_destroy(s->cache);
    free(s);
}

vs_status shard_set_cache(shard_set *s, size_t bytes, vs_error *err) {
    shard_cache_destroy(s->cache);
    s->cache = NULL;
    if (bytes && !(s->cache = shard_cache_create(bytes)))
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a chunk cache");
    return VS_OK;
}

void shard_set_read_threads(shard_set *s, int n) {
    s->read_threads = n < 1 ? 1 : n > SHARD_READ_MAX_THREADS ? SHARD_READ_MAX_THREADS : n;
}

void shard_set_cache_stats(const shard_set *s, uint64_t *hits, uint64_t *misses) {
    *hits = *misses = 0;
    if (s->cache) shard_cache_stats(s->cache, hits, misses);
}

int shard_set_count(const shard_set *s) { return s->n; }
int shard_set_n_shards(const shard_set *s) { return s->n_files; }
int shard_set_n_skipped(const shard_set *s) { return s->n_skipped; }
const shard_entry *shard_set_entry(const shard_set *s, int i) { return &s->entries[i]; }
const char *shard_set_file(const shard_set *s, int i) { return s->files[s->entry_file[i]].path; }

/* ---- reading volumes ----------------------------------------------------------------- */

static hid_t open_volume(hid_t file, const char *key) {
    char name[SHARD_KEY_MAX + 16];
    snprintf(name, sizeof name, "/volumes/%s", key);
    return H5Dopen2(file, name, H5P_DEFAULT);
}

/* Geometry and text attributes of dataset d into v (voxels untouched). */
static vs_status read_volume_attrs(hid_t d, const char *path, volume *v, char *prep, size_t cap,
                                   vs_error *err) {
    double affine[16];
    if (shard_h5_read_attr_doubles(d, "spacing", v->spacing, 3) < 0 ||
        shard_h5_read_attr_doubles(d, "origin", v->origin, 3) < 0 ||
        shard_h5_read_attr_doubles(d, "direction", v->direction, 9) < 0 ||
        shard_h5_read_attr_doubles(d, "affine", affine, 16) < 0 ||
        shard_h5_read_attr_string(d, "modality", v->modality, sizeof v->modality) < 0 ||
        shard_h5_read_attr_string(d, "body_part", v->body_part, sizeof v->body_part) < 0 ||
        shard_h5_read_attr_string(d, "units", v->units, sizeof v->units) < 0 ||
        shard_h5_read_attr_string(d, "patient_key", v->patient_key, sizeof v->patient_key) < 0 ||
        shard_h5_read_attr_string(d, "study_key", v->study_key, sizeof v->study_key) < 0 ||
        shard_h5_read_attr_string(d, "series_key", v->series_key, sizeof v->series_key) < 0)
        return shard_h5_fail(err, path, "a volume attribute is missing");
    if (prep && shard_h5_read_attr_string(d, "preprocessing", prep, cap) < 0)
        return shard_h5_fail(err, path, "the preprocessing attribute is missing");
    volume_update_affine(v);
    for (int i = 0; i < 16; i++)
        if (!(fabs(affine[i] - v->affine[i]) <= 1e-9 * (1.0 + fabs(affine[i]))))
            return VS_FAIL(err, VS_ERR_FORMAT, "%s: volume %s: affine disagrees with its geometry",
                           path, v->series_key);
    return VS_OK;
}

/* Read the volume `e` of an open shard whole and check its checksum. */
static vs_status read_volume_at(hid_t file, const char *path, const shard_entry *e, volume *out,
                                char *prep, size_t cap, vs_error *err) {
    memset(out, 0, sizeof *out);
    hid_t d = open_volume(file, e->key), space = -1;
    vs_status st = VS_OK;
    if (d < 0) return shard_h5_fail(err, path, "cannot open a volume dataset");
    hsize_t dims[3];
    if ((space = H5Dget_space(d)) < 0 || H5Sget_simple_extent_ndims(space) != 3 ||
        H5Sget_simple_extent_dims(space, dims, NULL) < 0 || (int64_t)dims[0] != e->shape[0] ||
        (int64_t)dims[1] != e->shape[1] || (int64_t)dims[2] != e->shape[2]) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: volume %s: shape disagrees with the index", path,
                     e->key);
        goto done;
    }
    if ((st = volume_alloc(out, e->shape[0], e->shape[1], e->shape[2], e->dtype, 0, err)) != VS_OK)
        goto done;
    if (H5Dread(d, shard_dtype_mem_type(e->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out->voxels) <
        0) {
        st = shard_h5_fail(err, path, "cannot read voxels (corrupt data)");
        goto done;
    }
    if ((st = read_volume_attrs(d, path, out, prep, cap, err)) != VS_OK) goto done;
    char sum[SHARD_CHECKSUM_MAX];
    shard_checksum(out->voxels, volume_n_voxels(out) * vol_dtype_size(out->dtype), sum);
    if (strcmp(sum, e->checksum) != 0)
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: volume %s: voxel checksum mismatch", path, e->key);
done:
    if (space >= 0) H5Sclose(space);
    H5Dclose(d);
    if (st != VS_OK) {
        volume_free(out);
        (void)H5Eclear2(H5E_DEFAULT);
    }
    return st;
}

vs_status shard_set_read(shard_set *s, int i, volume *out, char *preprocessing, size_t cap,
                         vs_error *err) {
    shard_h5_quiet();
    if (i < 0 || i >= s->n) return VS_FAIL(err, VS_ERR_USAGE, "volume %d is not in the set", i);
    int fi = s->entry_file[i];
    hid_t file;
    vs_status st = file_acquire(s, fi, &file, err);
    if (st != VS_OK) return st;
    st = read_volume_at(file, s->files[fi].path, &s->entries[i], out, preprocessing, cap, err);
    file_release(s, fi);
    return st;
}

vs_status shard_set_read_meta(shard_set *s, int i, volume *out, vs_error *err) {
    shard_h5_quiet();
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= s->n) return VS_FAIL(err, VS_ERR_USAGE, "volume %d is not in the set", i);
    int fi = s->entry_file[i];
    hid_t file;
    vs_status st = file_acquire(s, fi, &file, err);
    if (st != VS_OK) return st;
    const shard_entry *e = &s->entries[i];
    hid_t d = open_volume(file, e->key);
    if (d < 0)
        st = shard_h5_fail(err, s->files[fi].path, "cannot open a volume dataset");
    else
        st = read_volume_attrs(d, s->files[fi].path, out, NULL, 0, err);
    if (d >= 0) H5Dclose(d);
    file_release(s, fi);
    if (st != VS_OK) {
        (void)H5Eclear2(H5E_DEFAULT);
        memset(out, 0, sizeof *out);
        return st;
    }
    out->n_slices = e->shape[0], out->n_rows = e->shape[1], out->n_cols = e->shape[2];
    out->dtype = e->dtype;
    return VS_OK;
}

/* shard_set_read_box on the open (pinned) file of volume i. */
static vs_status read_box_in(shard_set *s, hid_t file, int i, const int64_t start[3],
                             const int64_t size[3], float *out, vs_error *err) {
    const shard_entry *e = &s->entries[i];
    const shard_file *f = &s->files[s->entry_file[i]];
    vs_status st = VS_OK;
    hid_t d = open_volume(file, e->key), fs = -1, ms = -1;
    if (d < 0) return shard_h5_fail(err, f->path, "cannot open a volume dataset");
    pthread_mutex_lock(&s->mu);
    if (!s->layout_known[i] && shard_chunk_layout_of(d, &s->layout[i]) == 0) s->layout_known[i] = 1;
    shard_chunk_layout l = s->layout[i];
    pthread_mutex_unlock(&s->mu);
    if (l.fast) {
        st = shard_read_box_chunks(d, f->path, &l, e->dtype, start, size, out, s->cache, i,
                                   s->read_threads, err);
        H5Dclose(d);
        return st;
    }
    hsize_t off[3], cnt[3];
    for (int a = 0; a < 3; a++)
        off[a] = (hsize_t)start[a], cnt[a] = (hsize_t)size[a];
    if ((fs = H5Dget_space(d)) < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
        (ms = H5Screate_simple(3, cnt, NULL)) < 0) {
        st = shard_h5_fail(err, f->path, "cannot select a box");
        goto done;
    }
    if (H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out) < 0)
        st = shard_h5_fail(err, f->path, "cannot read a box (corrupt data)");
done:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return st;
}

vs_status shard_set_read_box(shard_set *s, int i, const int64_t start[3], const int64_t size[3],
                             float *out, vs_error *err) {
    shard_h5_quiet();
    if (i < 0 || i >= s->n) return VS_FAIL(err, VS_ERR_USAGE, "volume %d is not in the set", i);
    const shard_entry *e = &s->entries[i];
    for (int a = 0; a < 3; a++)
        if (start[a] < 0 || size[a] < 1 || start[a] + size[a] > e->shape[a])
            return VS_FAIL(err, VS_ERR_USAGE, "box outside volume %s", e->key);
    int fi = s->entry_file[i];
    hid_t file;
    vs_status st = file_acquire(s, fi, &file, err);
    if (st != VS_OK) return st;
    st = read_box_in(s, file, i, start, size, out, err);
    file_release(s, fi);
    return st;
}

struct shard_src {
    char path[4200];
    hid_t file;
    shard_index_row *rows;
    int n;
};

vs_status shard_src_open(const char *path, shard_src **out, vs_error *err) {
    shard_h5_quiet();
    *out = NULL;
    shard_src *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a shard reader");
    snprintf(s->path, sizeof s->path, "%s", path);
    int64_t seq;
    vs_status st = load_shard(path, &s->file, &seq, &s->rows, &s->n, err);
    if (st != VS_OK) {
        free(s);
        return st;
    }
    *out = s;
    return VS_OK;
}

vs_status shard_src_read(shard_src *s, const char *key, volume *out, char *prep, size_t prep_cap,
                         char *uid, size_t uid_cap, vs_error *err) {
    shard_h5_quiet();
    memset(out, 0, sizeof *out);
    int at = -1;
    for (int i = 0; i < s->n && at < 0; i++)
        if (strcmp(s->rows[i].key, key) == 0) at = i;
    if (at < 0) return VS_FAIL(err, VS_ERR_FORMAT, "%s: no volume with the key asked for", s->path);
    shard_entry e;
    entry_from_row(&s->rows[at], &e);
    vs_status st = read_volume_at(s->file, s->path, &e, out, prep, prep_cap, err);
    if (st != VS_OK) return st;
    uid[0] = 0;
    hid_t d = open_volume(s->file, key);
    htri_t has = d >= 0 ? H5Aexists(d, "series_instance_uid") : -1;
    if (has < 0 ||
        (has > 0 && shard_h5_read_attr_string(d, "series_instance_uid", uid, uid_cap) < 0))
        st = shard_h5_fail(err, s->path, "cannot read series_instance_uid");
    if (d >= 0) H5Dclose(d);
    if (st != VS_OK) volume_free(out);
    return st;
}

void shard_src_close(shard_src *s) {
    if (!s) return;
    free(s->rows);
    if (s->file >= 0) H5Fclose(s->file);
    free(s);
}

/* ---- random crops -------------------------------------------------------------------- */

static int is_bad(shard_set *s, int v) {
    pthread_mutex_lock(&s->mu);
    int bad = s->bad[v];
    pthread_mutex_unlock(&s->mu);
    return bad;
}

/* Draw the volume among the candidates (all volumes when there are none, or when every
 * candidate is known bad), skipping ones known bad, then the box for one crop (no I/O). */
static void draw_crop(shard_set *s, rng *r, const int *cand, int n_cand, const int size[3],
                      shard_crop_info *info, int64_t count[3]) {
    int any = 0;
    for (int j = 0; j < n_cand && !any; j++)
        any = !is_bad(s, cand[j]);
    int v;
    do
        v = any ? cand[rng_below(r, (uint32_t)n_cand)] : (int)rng_below(r, (uint32_t)s->n);
    while (is_bad(s, v));
    const shard_entry *e = &s->entries[v];
    info->volume = v;
    for (int a = 0; a < 3; a++) {
        int64_t dim = e->shape[a], want = size[a];
        if (dim >= want) {
            info->start[a] = (int64_t)rng_below(r, (uint32_t)(dim - want + 1));
            info->offset[a] = 0;
            count[a] = want;
        } else {
            info->start[a] = 0;
            info->offset[a] = (int64_t)rng_below(r, (uint32_t)(want - dim + 1));
            count[a] = dim;
        }
    }
}

/* Mark v bad; 1 if this call marked it (so the warning is printed once). */
static int mark_bad(shard_set *s, int v) {
    pthread_mutex_lock(&s->mu);
    int first = !s->bad[v];
    if (first) s->bad[v] = 1, s->n_bad++;
    pthread_mutex_unlock(&s->mu);
    return first;
}

static int all_bad(shard_set *s) {
    pthread_mutex_lock(&s->mu);
    int all = s->n_bad >= s->n;
    pthread_mutex_unlock(&s->mu);
    return all;
}

/* Copy a (count) box into the (size) crop at offset, padding the rest. */
static void place_box(const float *box, const int64_t count[3], const int size[3],
                      const int64_t offset[3], float pad_value, float *out) {
    size_t n_out = (size_t)size[0] * (size_t)size[1] * (size_t)size[2];
    for (size_t k = 0; k < n_out; k++)
        out[k] = pad_value;
    for (int64_t z = 0; z < count[0]; z++)
        for (int64_t y = 0; y < count[1]; y++)
            memcpy(out +
                       ((size_t)(z + offset[0]) * (size_t)size[1] + (size_t)(y + offset[1])) *
                           (size_t)size[2] +
                       (size_t)offset[2],
                   box + ((size_t)z * (size_t)count[1] + (size_t)y) * (size_t)count[2],
                   (size_t)count[2] * sizeof *box);
}

vs_status shard_set_crop(shard_set *s, rng *r, const int size[3], float pad_value, float *out,
                         shard_crop_info *info, vs_error *err) {
    return shard_set_crop_from(s, r, NULL, 0, size, pad_value, out, info, err);
}

vs_status shard_set_crop_from(shard_set *s, rng *r, const int *candidates, int n_candidates,
                              const int size[3], float pad_value, float *out, shard_crop_info *info,
                              vs_error *err) {
    shard_crop_info tmp;
    if (!info) info = &tmp;
    memset(info, 0, sizeof *info);
    for (int a = 0; a < 3; a++)
        if (size[a] < 1 || size[a] > 4096)
            return VS_FAIL(err, VS_ERR_USAGE, "crop edge %d is outside 1..4096", size[a]);
    for (int j = 0; candidates && j < n_candidates; j++)
        if (candidates[j] < 0 || candidates[j] >= s->n)
            return VS_FAIL(err, VS_ERR_USAGE, "volume %d is not in the set", candidates[j]);
    while (!all_bad(s)) {
        int64_t count[3];
        draw_crop(s, r, candidates, candidates ? n_candidates : 0, size, info, count);
        int padded = count[0] != size[0] || count[1] != size[1] || count[2] != size[2];
        float *box = out;
        if (padded) {
            box = malloc((size_t)count[0] * (size_t)count[1] * (size_t)count[2] * sizeof *box);
            if (!box) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a crop buffer");
        }
        vs_error e2;
        vs_status st = shard_set_read_box(s, info->volume, info->start, count, box, &e2);
        if (st == VS_OK && padded) place_box(box, count, size, info->offset, pad_value, out);
        if (padded) free(box);
        if (st == VS_OK) return VS_OK;
        if (st == VS_ERR_NOMEM)
            return vs_error_set(err, st, e2.src_file, e2.src_line, "%s", e2.msg);
        /* A volume that fails always fails: skipping it keeps crops deterministic. */
        if (mark_bad(s, info->volume))
            log_warn("skipping volume %s: %s", s->entries[info->volume].key, e2.msg);
    }
    return VS_FAIL(err, VS_ERR_FORMAT, "no readable volume is left in the shard set");
}

/* ---- verification -------------------------------------------------------------------- */

vs_status shard_verify_dir(const char *dir, shard_verify_result *res, vs_error *err) {
    shard_h5_quiet();
    memset(res, 0, sizeof *res);
    char **names = NULL;
    int n_names = 0;
    vs_status st = list_shards(dir, &names, &n_names, err);
    if (st != VS_OK) {
        free_names(names, n_names);
        return st;
    }
    for (int i = 0; i < n_names; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        res->n_shards++;
        hid_t f;
        int64_t seq;
        shard_index_row *rows = NULL;
        int n_rows = 0;
        vs_error e2;
        if (load_shard(path, &f, &seq, &rows, &n_rows, &e2) != VS_OK) {
            log_warn("corrupt shard %s", e2.msg);
            res->n_bad_shards++;
            continue;
        }
        for (int j = 0; j < n_rows; j++) {
            shard_entry e;
            entry_from_row(&rows[j], &e);
            volume v;
            res->n_volumes++;
            if (read_volume_at(f, path, &e, &v, NULL, 0, &e2) != VS_OK) {
                log_warn("corrupt volume %s", e2.msg);
                res->n_bad_volumes++;
                continue;
            }
            volume_free(&v);
        }
        free(rows);
        H5Fclose(f);
    }
    free_names(names, n_names);
    return VS_OK;
}

/* ---- every attribute as text --------------------------------------------------------- */

typedef struct text_walk {
    shard_text_fn fn;
    void *ctx;
    const char *object;
    int stop;
} text_walk;

/* One attribute as text: strings as they are, numbers joined by spaces. */
static herr_t attr_as_text(hid_t obj, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    text_walk *w = data;
    char value[2048] = {0};
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = -1, sp = -1;
    if (a < 0) return -1;
    herr_t rc = -1;
    if ((t = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0) goto done;
    H5T_class_t cls = H5Tget_class(t);
    if (cls == H5T_STRING) {
        if (shard_h5_read_attr_string(obj, name, value, sizeof value) < 0) goto done;
    } else if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        if (n < 1 || n > 64) goto done;
        double x[64];
        if (H5Aread(a, H5T_NATIVE_DOUBLE, x) < 0) goto done;
        size_t used = 0;
        for (hssize_t i = 0; i < n && used < sizeof value; i++)
            used +=
                (size_t)snprintf(value + used, sizeof value - used, "%s%.17g", i ? " " : "", x[i]);
    } else {
        snprintf(value, sizeof value, "(unsupported type)");
    }
    rc = 0;
    if (w->fn(w->ctx, w->object, name, value)) w->stop = 1, rc = 1;
done:
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static vs_status walk_attrs(hid_t obj, const char *path, text_walk *w, vs_error *err) {
    hsize_t idx = 0;
    if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_as_text, w) < 0)
        return shard_h5_fail(err, path, "cannot read attributes");
    return VS_OK;
}

vs_status shard_each_text(const char *path, shard_text_fn fn, void *ctx, vs_error *err) {
    shard_h5_quiet();
    hid_t f;
    int64_t seq;
    shard_index_row *rows = NULL;
    int n = 0;
    vs_status st = load_shard(path, &f, &seq, &rows, &n, err);
    if (st != VS_OK) return st;
    text_walk w = {fn, ctx, "/", 0};
    st = walk_attrs(f, path, &w, err);
    for (int i = 0; i < n && st == VS_OK && !w.stop; i++) {
        char object[SHARD_KEY_MAX + 16], shape[96];
        snprintf(object, sizeof object, "/volumes/%s", rows[i].key);
        snprintf(shape, sizeof shape, "%lld %lld %lld", (long long)rows[i].shape[0],
                 (long long)rows[i].shape[1], (long long)rows[i].shape[2]);
        w.object = object;
        if (fn(ctx, object, "dtype", rows[i].dtype) || fn(ctx, object, "shape", shape)) break;
        hid_t d = open_volume(f, rows[i].key);
        if (d < 0) {
            st = shard_h5_fail(err, path, "cannot open a volume dataset");
            break;
        }
        st = walk_attrs(d, path, &w, err);
        H5Dclose(d);
        snprintf(object, sizeof object, "/index/%d", i);
        if (st == VS_OK && !w.stop &&
            (fn(ctx, object, "key", rows[i].key) || fn(ctx, object, "modality", rows[i].modality) ||
             fn(ctx, object, "body_part", rows[i].body_part) ||
             fn(ctx, object, "checksum", rows[i].checksum)))
            break;
    }
    free(rows);
    H5Fclose(f);
    return st;
}
