/* shard_h5.h — private helpers shared by the shard writer and reader (not a public header).
 * HDF5 errors become vs_error messages; the on-disk index row and its compound type. */
#ifndef VS_SHARD_H5_H
#define VS_SHARD_H5_H

#include <hdf5.h>

#include "shard.h"

/* The index row exactly as stored in /index (fixed-size strings, NUL-terminated). */
typedef struct shard_index_row {
    char key[SHARD_KEY_MAX];
    char modality[17];
    char body_part[65];
    char dtype[8];
    int64_t shape[3];
    double spacing[3];
    int64_t first_voxel;
    char checksum[SHARD_CHECKSUM_MAX];
} shard_index_row;

/* Turn off HDF5's automatic error printing for the calling thread (the setting is
 * per-thread in a thread-safe HDF5). Call at every public entry point. */
void shard_h5_quiet(void);

/* Fill err with "PATH: WHAT: <innermost HDF5 message>" and return VS_ERR_LIBRARY. */
vs_status shard_h5_fail(vs_error *err, const char *path, const char *what);

/* The compound type of shard_index_row (memory layout == file layout, little-endian ints).
 * Returns < 0 on failure; the caller closes it with H5Tclose. */
hid_t shard_h5_index_type(void);

/* Attribute helpers: each returns < 0 on failure. */
herr_t shard_h5_attr_string(hid_t obj, const char *name, const char *value);
herr_t shard_h5_attr_doubles(hid_t obj, const char *name, int rank, const hsize_t *dims,
                             const double *values);
herr_t shard_h5_attr_int64(hid_t obj, const char *name, int64_t value);
/* Read a string attribute (fixed or variable length) into buf; < 0 when absent or bad. */
herr_t shard_h5_read_attr_string(hid_t obj, const char *name, char *buf, size_t cap);
/* Read n doubles; < 0 when absent or the element count differs. */
herr_t shard_h5_read_attr_doubles(hid_t obj, const char *name, double *values, size_t n);
herr_t shard_h5_read_attr_int64(hid_t obj, const char *name, int64_t *value);

/* "sha256:<hex>" of n bytes ("" when OpenSSL cannot allocate its context). */
void shard_checksum(const void *bytes, size_t n, char out[SHARD_CHECKSUM_MAX]);

/* 1 if key is 1..64 characters of [A-Za-z0-9._-]. */
int shard_key_valid(const char *key);

/* dtype <-> its name and HDF5 types (file: little-endian; memory: native). */
int shard_dtype_parse(const char *name, vol_dtype *out);
hid_t shard_dtype_file_type(vol_dtype t);
hid_t shard_dtype_mem_type(vol_dtype t);

/* Write every chunk of the chunked dataset d (filters shuffle [+ deflate level] + Fletcher-32,
 * as its creation property list says) from voxels (dims, element size es), filtering in
 * n_threads threads and writing in chunk order (io/shard/shard_chunks.c). */
vs_status shard_write_chunks(hid_t d, const char *path, const void *voxels, const hsize_t dims[3],
                             const hsize_t chunk[3], size_t es, int level, int n_threads,
                             vs_error *err);

/* The deflate step of the chunk writer (io/shard/shard_chunks.c): a compressor for one thread at
 * a zlib-style level 1..9; shard_deflate returns the zlib stream's length, 0 on failure
 * (cap below shard_deflate_bound(n)). shard_deflate_name(level) is the implementation and
 * version the bytes depend on ("libdeflate 1.14", "none" for level 0). */
typedef struct shard_deflater shard_deflater;
shard_deflater *shard_deflater_new(int level);
void shard_deflater_free(shard_deflater *z);
size_t shard_deflate_bound(size_t n);
size_t shard_deflate(shard_deflater *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap);
const char *shard_deflate_name(int level);

/* How a volume dataset is chunked and filtered, for the fast box reader. */
typedef struct shard_chunk_layout {
    int fast; /* 1: shuffle [+ deflate] + Fletcher-32, which shard_read_box_chunks undoes */
    hsize_t chunk[3];
    int filter_at[3]; /* pipeline position of shuffle, deflate, Fletcher-32 (-1: absent) */
} shard_chunk_layout;
int shard_chunk_layout_of(hid_t d, shard_chunk_layout *l);
/* Decompressed chunks kept between crops (io/shard/shard_cache.c), thread-safe. */
typedef struct shard_cache shard_cache;
shard_cache *shard_cache_create(size_t budget); /* NULL when out of memory */
void shard_cache_destroy(shard_cache *c);
/* The cached bytes of (volume, chunk), pinned until shard_cache_release; NULL on a miss. */
const uint8_t *shard_cache_get(shard_cache *c, int volume, uint64_t chunk);
void shard_cache_release(shard_cache *c, int volume, uint64_t chunk);
/* Offer raw (malloc'ed): 1 if the cache took it (and will free it), 0 if the caller keeps it. */
int shard_cache_put(shard_cache *c, int volume, uint64_t chunk, uint8_t *raw, size_t bytes);
void shard_cache_stats(shard_cache *c, uint64_t *hits, uint64_t *misses);

/* Read the box start..start+size of dataset d as float32 by reading raw chunks and undoing
 * their filters outside HDF5 (libdeflate), the box's chunks shared among n_threads threads
 * (the caller's included). On failure out is partly written. */
#define SHARD_READ_MAX_THREADS 16
vs_status shard_read_box_chunks(hid_t d, const char *path, const shard_chunk_layout *l, vol_dtype t,
                                const int64_t start[3], const int64_t size[3],
                                float *out /* (size0, size1, size2) */,
                                shard_cache *cache /* or NULL */, int volume, int n_threads,
                                vs_error *err);

#endif
