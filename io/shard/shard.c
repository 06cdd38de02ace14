/* shard.c — the shard writer and the HDF5 helpers it shares with the reader.
 * Schema: io/SHARD_SCHEMA.md. Every HDF5 call is checked for < 0. */
#include "shard.h"
#include "shard_h5.h"
#include "fsdir.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef VESALIUS_VERSION
#define VESALIUS_VERSION "unknown"
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shard checksums are defined on little-endian voxel bytes; add a byte swap for this host"
#endif

/* ---- HDF5 helpers -------------------------------------------------------------------- */

void shard_h5_quiet(void) { (void)H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static herr_t innermost(unsigned n, const H5E_error2_t *e, void *ctx) {
    (void)n;
    char *buf = ctx;
    /* Walking upward, the last frame seen is the outermost; keep the first (innermost). */
    if (buf[0] == 0 && e->desc) snprintf(buf, 200, "%s", e->desc);
    return 0;
}

vs_status shard_h5_fail(vs_error *err, const char *path, const char *what) {
    char detail[200] = {0};
    (void)H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, innermost, detail);
    (void)H5Eclear2(H5E_DEFAULT);
    return VS_FAIL(err, VS_ERR_LIBRARY, "%s: %s: %s", path, what,
                   detail[0] ? detail : "HDF5 error");
}

static hid_t fixed_string(size_t n) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, n) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

hid_t shard_h5_index_type(void) {
    hid_t t = -1, s_key = -1, s_mod = -1, s_body = -1, s_dtype = -1, s_sum = -1, a_i64 = -1,
          a_f64 = -1;
    hsize_t three = 3;
    s_key = fixed_string(SHARD_KEY_MAX);
    s_mod = fixed_string(17);
    s_body = fixed_string(65);
    s_dtype = fixed_string(8);
    s_sum = fixed_string(SHARD_CHECKSUM_MAX);
    a_i64 = H5Tarray_create2(H5T_STD_I64LE, 1, &three);
    a_f64 = H5Tarray_create2(H5T_IEEE_F64LE, 1, &three);
    if (s_key < 0 || s_mod < 0 || s_body < 0 || s_dtype < 0 || s_sum < 0 || a_i64 < 0 || a_f64 < 0)
        goto done;
    t = H5Tcreate(H5T_COMPOUND, sizeof(shard_index_row));
    if (t < 0) goto done;
    if (H5Tinsert(t, "key", HOFFSET(shard_index_row, key), s_key) < 0 ||
        H5Tinsert(t, "modality", HOFFSET(shard_index_row, modality), s_mod) < 0 ||
        H5Tinsert(t, "body_part", HOFFSET(shard_index_row, body_part), s_body) < 0 ||
        H5Tinsert(t, "dtype", HOFFSET(shard_index_row, dtype), s_dtype) < 0 ||
        H5Tinsert(t, "shape", HOFFSET(shard_index_row, shape), a_i64) < 0 ||
        H5Tinsert(t, "spacing", HOFFSET(shard_index_row, spacing), a_f64) < 0 ||
        H5Tinsert(t, "first_voxel", HOFFSET(shard_index_row, first_voxel), H5T_STD_I64LE) < 0 ||
        H5Tinsert(t, "checksum", HOFFSET(shard_index_row, checksum), s_sum) < 0) {
        H5Tclose(t);
        t = -1;
    }
done:
    if (s_key >= 0) H5Tclose(s_key);
    if (s_mod >= 0) H5Tclose(s_mod);
    if (s_body >= 0) H5Tclose(s_body);
    if (s_dtype >= 0) H5Tclose(s_dtype);
    if (s_sum >= 0) H5Tclose(s_sum);
    if (a_i64 >= 0) H5Tclose(a_i64);
    if (a_f64 >= 0) H5Tclose(a_f64);
    return t;
}

/* Write one attribute of type `file_type` from `mem_type` values over `space`. */
static herr_t write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, hid_t space,
                         const void *values) {
    hid_t a = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t rc = H5Awrite(a, mem_type, values);
    if (H5Aclose(a) < 0) rc = -1;
    return rc;
}

herr_t shard_h5_attr_string(hid_t obj, const char *name, const char *value) {
    /* Variable-length UTF-8, which h5py returns as str. */
    hid_t t = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
    herr_t rc = -1;
    if (t >= 0 && space >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 &&
        H5Tset_cset(t, H5T_CSET_UTF8) >= 0)
        rc = write_attr(obj, name, t, t, space, &value);
    if (t >= 0 && H5Tclose(t) < 0) rc = -1;
    if (space >= 0 && H5Sclose(space) < 0) rc = -1;
    return rc;
}

herr_t shard_h5_attr_doubles(hid_t obj, const char *name, int rank, const hsize_t *dims,
                             const double *values) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    if (space < 0) return -1;
    herr_t rc = write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space, values);
    if (H5Sclose(space) < 0) rc = -1;
    return rc;
}

herr_t shard_h5_attr_int64(hid_t obj, const char *name, int64_t value) {
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) return -1;
    herr_t rc = write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space, &value);
    if (H5Sclose(space) < 0) rc = -1;
    return rc;
}

herr_t shard_h5_read_attr_string(hid_t obj, const char *name, char *buf, size_t cap) {
    herr_t rc = -1;
    hid_t a = -1, ft = -1, mt = -1;
    buf[0] = 0;
    if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0) goto done;
    if ((ft = H5Aget_type(a)) < 0 || H5Tget_class(ft) != H5T_STRING) goto done;
    htri_t vlen = H5Tis_variable_str(ft);
    if (vlen < 0) goto done;
    H5T_cset_t cset = H5Tget_cset(ft); /* HDF5 does not convert between ASCII and UTF-8 */
    if (cset < 0 || (mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_cset(mt, cset) < 0) goto done;
    if (vlen) {
        char *s = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &s) < 0) goto done;
        snprintf(buf, cap, "%s", s ? s : "");
        H5free_memory(s);
    } else {
        size_t n = H5Tget_size(ft);
        if (n == 0 || n > 1 << 20) goto done;
        char *tmp = calloc(n + 1, 1);
        if (!tmp) goto done;
        if (H5Tset_size(mt, n + 1) < 0 || H5Aread(a, mt, tmp) < 0) {
            free(tmp);
            goto done;
        }
        snprintf(buf, cap, "%s", tmp);
        free(tmp);
    }
    rc = 0;
done:
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return rc;
}

herr_t shard_h5_read_attr_doubles(hid_t obj, const char *name, double *values, size_t n) {
    herr_t rc = -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), space = -1;
    if (a < 0) return -1;
    if ((space = H5Aget_space(a)) < 0) goto done;
    hssize_t count = H5Sget_simple_extent_npoints(space);
    if (count < 0 || (size_t)count != n) goto done;
    rc = H5Aread(a, H5T_NATIVE_DOUBLE, values);
done:
    if (space >= 0) H5Sclose(space);
    H5Aclose(a);
    return rc;
}

herr_t shard_h5_read_attr_int64(hid_t obj, const char *name, int64_t *value) {
    herr_t rc = -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), space = -1;
    if (a < 0) return -1;
    if ((space = H5Aget_space(a)) < 0) goto done;
    if (H5Sget_simple_extent_npoints(space) != 1) goto done;
    rc = H5Aread(a, H5T_NATIVE_INT64, value);
done:
    if (space >= 0) H5Sclose(space);
    H5Aclose(a);
    return rc;
}

/* OpenSSL's SHA-256 uses the CPU's SHA extensions: 5-8x libsodium's portable code, which made
 * the checksum a sixth of an ingest's CPU. */
void shard_checksum(const void *bytes, size_t n, char out[SHARD_CHECKSUM_MAX]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    /* EVP_Digest fails only without memory for its context: "" (the writer refuses it, and it
     * matches no stored sum). */
    if (EVP_Digest(bytes, n, h, &len, EVP_sha256(), NULL) != 1 || len != 32) {
        out[0] = 0;
        return;
    }
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[h[i] >> 4];
        out[8 + 2 * i] = hex[h[i] & 15];
    }
    out[7 + 64] = 0;
}

int shard_key_valid(const char *key) {
    size_t n = strlen(key);
    if (n == 0 || n >= SHARD_KEY_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return key[0] != '.';
}

static const struct {
    vol_dtype t;
    const char *name;
} dtype_names[] = {{VOL_INT16, "int16"}, {VOL_FLOAT32, "float32"}, {VOL_UINT8, "uint8"}};

int shard_dtype_parse(const char *name, vol_dtype *out) {
    for (size_t i = 0; i < sizeof dtype_names / sizeof dtype_names[0]; i++)
        if (strcmp(dtype_names[i].name, name) == 0) {
            *out = dtype_names[i].t;
            return 1;
        }
    return 0;
}

hid_t shard_dtype_file_type(vol_dtype t) {
    switch (t) {
    case VOL_INT16: return H5T_STD_I16LE;
    case VOL_FLOAT32: return H5T_IEEE_F32LE;
    case VOL_UINT8: return H5T_STD_U8LE;
    }
    return -1;
}

hid_t shard_dtype_mem_type(vol_dtype t) {
    switch (t) {
    case VOL_INT16: return H5T_NATIVE_INT16;
    case VOL_FLOAT32: return H5T_NATIVE_FLOAT;
    case VOL_UINT8: return H5T_NATIVE_UINT8;
    }
    return -1;
}

/* ---- the writer ---------------------------------------------------------------------- */

struct shard_writer {
    char dir[4096];
    char tmp_path[4200];
    char final_path[4200];
    uint64_t sequence;
    shard_options opt;
    char *params;        /* owned copy of opt.params */
    hid_t file, volumes; /* the file and its /volumes group */
    shard_index_row *rows;
    int n_rows, cap_rows;
    int64_t n_voxels;
};

void shard_options_default(shard_options *o) {
    memset(o, 0, sizeof *o);
    o->chunk[0] = o->chunk[1] = o->chunk[2] =
        32;               /* bench/shards.sh: 96³ crops read ~1.7x faster than with 64³ */
    o->deflate_level = 1; /* bench/README.md: libdeflate's level table on CT */
    o->threads = 1;
}

void shard_name(uint64_t sequence, char *buf, size_t cap) {
    snprintf(buf, cap, "shard-%06llu.h5", (unsigned long long)sequence);
}

static vs_status check_options(const shard_options *o, vs_error *err) {
    for (int a = 0; a < 3; a++)
        if (o->chunk[a] < 1 || o->chunk[a] > 4096)
            return VS_FAIL(err, VS_ERR_CONFIG, "shard chunk edge %d is outside 1..4096",
                           o->chunk[a]);
    if (o->threads < 1 || o->threads > 64)
        return VS_FAIL(err, VS_ERR_CONFIG, "shard writer threads %d is outside 1..64", o->threads);
    if (o->deflate_level < 0 || o->deflate_level > 9)
        return VS_FAIL(err, VS_ERR_CONFIG, "shard deflate level %d is outside 0..9",
                       o->deflate_level);
    return VS_OK;
}

vs_status shard_writer_open(const char *dir, uint64_t sequence, const shard_options *opt,
                            shard_writer **out, vs_error *err) {
    *out = NULL;
    shard_h5_quiet();
    if (sodium_init() < 0) return VS_FAIL(err, VS_ERR_LIBRARY, "libsodium failed to initialise");
    vs_status st = check_options(opt, err);
    if (st != VS_OK) return st;
    hid_t gcpl = -1;
    shard_writer *w = calloc(1, sizeof *w);
    if (!w) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a shard writer");
    w->file = w->volumes = -1;
    w->sequence = sequence;
    w->opt = *opt;
    if (opt->params && !(w->params = strdup(opt->params))) {
        free(w);
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot copy shard parameters");
    }
    w->opt.params = w->params;
    char name[64];
    shard_name(sequence, name, sizeof name);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    snprintf(w->final_path, sizeof w->final_path, "%s/%s", dir, name);
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s/%s.tmp", dir, name);
    if (unlink(w->tmp_path) != 0 && errno != ENOENT) {
        st = VS_FAIL(err, VS_ERR_IO, "%s: cannot remove a stale temporary shard: %s", w->tmp_path,
                     strerror(errno));
        goto fail;
    }
    w->file = H5Fcreate(w->tmp_path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        st = shard_h5_fail(err, w->tmp_path, "cannot create the shard");
        goto fail;
    }
    /* No modification times anywhere, so identical inputs give identical bytes. */
    if ((gcpl = H5Pcreate(H5P_GROUP_CREATE)) < 0 || H5Pset_obj_track_times(gcpl, 0) < 0 ||
        (w->volumes = H5Gcreate2(w->file, "volumes", H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0) {
        st = shard_h5_fail(err, w->tmp_path, "cannot create /volumes");
        if (gcpl >= 0) H5Pclose(gcpl);
        goto fail;
    }
    if (H5Pclose(gcpl) < 0) {
        st = shard_h5_fail(err, w->tmp_path, "cannot close a property list");
        goto fail;
    }
    *out = w;
    return VS_OK;
fail:
    shard_writer_abort(w);
    return st;
}

/* The affine must be the one volume_update_affine gives (volume.h invariant 2). */
static int affine_consistent(const volume *v) {
    volume tmp;
    memcpy(tmp.spacing, v->spacing, sizeof tmp.spacing);
    memcpy(tmp.origin, v->origin, sizeof tmp.origin);
    memcpy(tmp.direction, v->direction, sizeof tmp.direction);
    volume_update_affine(&tmp);
    for (int i = 0; i < 16; i++)
        if (!(fabs(tmp.affine[i] - v->affine[i]) <= 1e-9 * (1.0 + fabs(tmp.affine[i])))) return 0;
    return 1;
}

static vs_status check_volume(const shard_writer *w, const volume *v, vs_error *err) {
    if (!shard_key_valid(v->series_key))
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "series key '%.64s' is not 1-64 characters of [A-Za-z0-9._-]",
                       v->series_key);
    for (int i = 0; i < w->n_rows; i++)
        if (strcmp(w->rows[i].key, v->series_key) == 0)
            return VS_FAIL(err, VS_ERR_FORMAT, "series %s is already in %s", v->series_key,
                           w->tmp_path);
    if (!v->voxels || v->n_slices < 1 || v->n_rows < 1 || v->n_cols < 1)
        return VS_FAIL(err, VS_ERR_FORMAT, "series %s: the volume is empty", v->series_key);
    if (shard_dtype_file_type(v->dtype) < 0)
        return VS_FAIL(err, VS_ERR_FORMAT, "series %s: unknown voxel type", v->series_key);
    if (!affine_consistent(v))
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "series %s: the affine does not match spacing/origin/direction",
                       v->series_key);
    return VS_OK;
}

static void chunk_dims(const shard_writer *w, const hsize_t dims[3], hsize_t chunk[3]) {
    for (int a = 0; a < 3; a++)
        chunk[a] = dims[a] < (hsize_t)w->opt.chunk[a] ? dims[a] : (hsize_t)w->opt.chunk[a];
}

static hid_t dataset_create_plist(const shard_writer *w, const hsize_t chunk[3]) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0) return -1;
    if (H5Pset_chunk(dcpl, 3, chunk) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 || H5Pset_shuffle(dcpl) < 0 ||
        (w->opt.deflate_level > 0 && H5Pset_deflate(dcpl, (unsigned)w->opt.deflate_level) < 0) ||
        H5Pset_fletcher32(dcpl) < 0) {
        H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}

typedef struct checksum_job {
    const void *bytes;
    size_t n;
    char *out;
} checksum_job;

static void *checksum_thread(void *p) {
    checksum_job *j = p;
    shard_checksum(j->bytes, j->n, j->out);
    return NULL;
}

/* The per-volume attributes of SHARD_SCHEMA.md. */
static herr_t write_volume_attrs(const shard_writer *w, hid_t d, const volume *v,
                                 const shard_extra *extra, const char *checksum) {
    hsize_t three = 3, mat3[2] = {3, 3}, mat4[2] = {4, 4};
    const char *prep = extra && extra->preprocessing ? extra->preprocessing : "none";
    if (shard_h5_attr_doubles(d, "spacing", 1, &three, v->spacing) < 0 ||
        shard_h5_attr_doubles(d, "origin", 1, &three, v->origin) < 0 ||
        shard_h5_attr_doubles(d, "direction", 2, mat3, v->direction) < 0 ||
        shard_h5_attr_doubles(d, "affine", 2, mat4, v->affine) < 0 ||
        shard_h5_attr_string(d, "modality", v->modality) < 0 ||
        shard_h5_attr_string(d, "body_part", v->body_part) < 0 ||
        shard_h5_attr_string(d, "units", v->units) < 0 ||
        shard_h5_attr_string(d, "preprocessing", prep) < 0 ||
        shard_h5_attr_string(d, "patient_key", v->patient_key) < 0 ||
        shard_h5_attr_string(d, "study_key", v->study_key) < 0 ||
        shard_h5_attr_string(d, "series_key", v->series_key) < 0 ||
        shard_h5_attr_string(d, "checksum", checksum) < 0)
        return -1;
    if (w->opt.retain_uids && extra && extra->series_instance_uid &&
        shard_h5_attr_string(d, "series_instance_uid", extra->series_instance_uid) < 0)
        return -1;
    return 0;
}

static vs_status grow_rows(shard_writer *w, vs_error *err) {
    if (w->n_rows < w->cap_rows) return VS_OK;
    int cap = w->cap_rows ? 2 * w->cap_rows : 16;
    shard_index_row *r = realloc(w->rows, (size_t)cap * sizeof *r);
    if (!r) return VS_FAIL(err, VS_ERR_NOMEM, "cannot grow the shard index");
    w->rows = r;
    w->cap_rows = cap;
    return VS_OK;
}

vs_status shard_writer_add(shard_writer *w, const volume *v, const shard_extra *extra,
                           shard_entry *entry, vs_error *err) {
    shard_h5_quiet();
    vs_status st = check_volume(w, v, err);
    if (st != VS_OK || (st = grow_rows(w, err)) != VS_OK) return st;
    hsize_t dims[3] = {(hsize_t)v->n_slices, (hsize_t)v->n_rows, (hsize_t)v->n_cols};
    hid_t space = -1, dcpl = -1, d = -1;
    shard_index_row *row = &w->rows[w->n_rows];
    memset(row, 0, sizeof *row);
    snprintf(row->key, sizeof row->key, "%s", v->series_key);
    snprintf(row->modality, sizeof row->modality, "%s", v->modality);
    snprintf(row->body_part, sizeof row->body_part, "%s", v->body_part);
    snprintf(row->dtype, sizeof row->dtype, "%s", vol_dtype_name(v->dtype));
    row->shape[0] = v->n_slices, row->shape[1] = v->n_rows, row->shape[2] = v->n_cols;
    memcpy(row->spacing, v->spacing, sizeof row->spacing);
    row->first_voxel = w->n_voxels;
    hsize_t chunk[3];
    chunk_dims(w, dims, chunk);
    /* The SHA-256 runs in its own thread beside the chunk filters (it only reads voxels). */
    checksum_job cj = {v->voxels, volume_n_voxels(v) * vol_dtype_size(v->dtype), row->checksum};
    pthread_t sum_thread;
    int threaded = pthread_create(&sum_thread, NULL, checksum_thread, &cj) == 0;
    if (!threaded) checksum_thread(&cj);

    if ((space = H5Screate_simple(3, dims, NULL)) < 0 ||
        (dcpl = dataset_create_plist(w, chunk)) < 0) {
        st = shard_h5_fail(err, w->tmp_path, "cannot set up a dataset");
        goto done;
    }
    d = H5Dcreate2(w->volumes, v->series_key, shard_dtype_file_type(v->dtype), space, H5P_DEFAULT,
                   dcpl, H5P_DEFAULT);
    if (d < 0) {
        st = shard_h5_fail(err, w->tmp_path, "cannot create a volume dataset");
        goto done;
    }
    st = shard_write_chunks(d, w->tmp_path, v->voxels, dims, chunk, vol_dtype_size(v->dtype),
                            w->opt.deflate_level, w->opt.threads, err);
    if (threaded) pthread_join(sum_thread, NULL);
    threaded = 0;
    if (st != VS_OK) goto done;
    if (!row->checksum[0]) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "%s: cannot compute the voxel checksum", w->tmp_path);
        goto done;
    }
    if (write_volume_attrs(w, d, v, extra, row->checksum) < 0) {
        st = shard_h5_fail(err, w->tmp_path, "cannot write volume attributes");
        goto done;
    }
    w->n_voxels += (int64_t)volume_n_voxels(v);
    w->n_rows++;
    if (entry) {
        memset(entry, 0, sizeof *entry);
        memcpy(entry->key, row->key, sizeof entry->key);
        memcpy(entry->modality, row->modality, sizeof entry->modality);
        memcpy(entry->body_part, row->body_part, sizeof entry->body_part);
        entry->dtype = v->dtype;
        memcpy(entry->shape, row->shape, sizeof entry->shape);
        memcpy(entry->spacing, row->spacing, sizeof entry->spacing);
        entry->first_voxel = row->first_voxel;
        memcpy(entry->checksum, row->checksum, sizeof entry->checksum);
    }
done:
    if (threaded) pthread_join(sum_thread, NULL);
    if (d >= 0 && H5Dclose(d) < 0 && st == VS_OK)
        st = shard_h5_fail(err, w->tmp_path, "cannot close a dataset");
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return st;
}

uint64_t shard_writer_bytes(const shard_writer *w) {
    hsize_t size = 0;
    if (H5Fget_filesize(w->file, &size) < 0) return 0;
    return (uint64_t)size;
}

int shard_writer_count(const shard_writer *w) { return w->n_rows; }

static herr_t write_index(shard_writer *w) {
    hsize_t n = (hsize_t)w->n_rows;
    hid_t t = shard_h5_index_type(), space = -1, dcpl = -1, d = -1;
    herr_t rc = -1;
    if (t < 0) return -1;
    if ((space = H5Screate_simple(1, &n, NULL)) < 0) goto done;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0)
        goto done;
    if ((d = H5Dcreate2(w->file, "index", t, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0) goto done;
    rc = n ? H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->rows) : 0;
done:
    if (d >= 0 && H5Dclose(d) < 0) rc = -1;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    H5Tclose(t);
    return rc;
}

static herr_t write_shard_attrs(shard_writer *w) {
    char params[1024];
    snprintf(params, sizeof params,
             "{\"chunk\":[%d,%d,%d],\"deflate\":%d,\"compressor\":\"%s\","
             "\"shuffle\":true,\"fletcher32\":true,\"retain_uids\":%s,\"caller\":%s}",
             w->opt.chunk[0], w->opt.chunk[1], w->opt.chunk[2], w->opt.deflate_level,
             shard_deflate_name(w->opt.deflate_level), w->opt.retain_uids ? "true" : "false",
             w->params ? w->params : "null");
    if (shard_h5_attr_string(w->file, "format", "vesalius-shard") < 0 ||
        shard_h5_attr_int64(w->file, "schema_version", SHARD_SCHEMA_VERSION) < 0 ||
        shard_h5_attr_string(w->file, "vesalius_version", VESALIUS_VERSION) < 0 ||
        shard_h5_attr_int64(w->file, "sequence", (int64_t)w->sequence) < 0 ||
        shard_h5_attr_int64(w->file, "n_volumes", w->n_rows) < 0 ||
        shard_h5_attr_string(w->file, "creation_parameters", params) < 0)
        return -1;
    return 0;
}

vs_status shard_writer_seal(shard_writer *w, vs_error *err) {
    shard_h5_quiet();
    vs_status st = VS_OK;
    if (write_index(w) < 0) {
        st = shard_h5_fail(err, w->tmp_path, "cannot write the index");
        goto fail;
    }
    if (write_shard_attrs(w) < 0) {
        st = shard_h5_fail(err, w->tmp_path, "cannot write shard attributes");
        goto fail;
    }
    hid_t vol = w->volumes, file = w->file;
    w->volumes = w->file = -1;
    if (H5Gclose(vol) < 0 || H5Fclose(file) < 0) {
        st = shard_h5_fail(err, w->tmp_path, "cannot close the shard");
        goto fail;
    }
    if ((st = vs_commit_file(w->tmp_path, w->final_path, err)) != VS_OK) goto fail;
    free(w->rows);
    free(w->params);
    free(w);
    return st;
fail:
    shard_writer_abort(w);
    return st;
}

void shard_writer_abort(shard_writer *w) {
    if (!w) return;
    if (w->volumes >= 0) H5Gclose(w->volumes);
    if (w->file >= 0) H5Fclose(w->file);
    (void)H5Eclear2(H5E_DEFAULT);
    if (w->tmp_path[0]) unlink(w->tmp_path);
    free(w->rows);
    free(w->params);
    free(w);
}
