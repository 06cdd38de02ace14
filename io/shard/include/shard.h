/* shard.h — training shards: HDF5 files of de-identified volumes (schema: SHARD_SCHEMA.md).
 *
 * A shard writer fills ONE file, `DIR/shard-NNNNNN.h5`, written as `shard-NNNNNN.h5.tmp` and
 * renamed only when sealed; the caller (io/store) decides when a shard is full and opens the
 * next one. A shard set is every sealed `shard-*.h5` in a folder, read through an index.
 *
 * Invariants:
 *   1. A file named `*.h5` in a shard folder is complete: it was closed, fsync'ed, then renamed,
 *      and the folder fsync'ed (shard_writer_seal). A killed writer leaves only a `.tmp`.
 *   2. Each volume is one dataset `/volumes/<series_key>`, shape (slice, row, column), with the
 *      geometry of volume.h and `checksum` = SHA-256 of its voxels (little-endian, C order).
 *   3. The bits of a shard depend only on the volumes, their order and the options: no time
 *      stamps are stored, so the same inputs give byte-identical files.
 *   4. Within a shard set a series key is live in exactly one place: the shard with the highest
 *      sequence number holding it (a re-ingested series supersedes its older copies).
 *   5. Readers refuse a shard whose schema_version is newer than SHARD_SCHEMA_VERSION, and
 *      skip (with one line naming the file and the reason) a shard that does not open, whose
 *      index is inconsistent, or whose data fails a checksum.
 */
#ifndef VS_SHARD_H
#define VS_SHARD_H

#include <stdint.h>

#include "rng.h"
#include "status.h"
#include "volume.h"

#define SHARD_SCHEMA_VERSION 1
#define SHARD_KEY_MAX 65      /* series keys: 1..64 characters of [A-Za-z0-9._-] */
#define SHARD_CHECKSUM_MAX 72 /* "sha256:" + 64 hex digits */

typedef struct shard_options {
    int chunk[3];      /* chunk edge per axis (slice, row, column), clipped to the volume */
    int deflate_level; /* zlib level 0..9 after the shuffle filter (libdeflate) */
    int retain_uids;   /* 1: store series_instance_uid (the Retain UIDs option) */
    int threads; /* threads filtering chunks (+1 for the SHA-256); bytes do not depend on it */
    const char *params; /* creation parameters recorded on the shard (JSON text), or NULL */
} shard_options;

/* chunk 32³, deflate 1, no UIDs, 1 thread, no params. */
void shard_options_default(shard_options *o);

/* What the shard records about a volume besides the volume itself. */
typedef struct shard_extra {
    const char *preprocessing;       /* what prep applied, e.g. "none" (NULL: "none") */
    const char *series_instance_uid; /* written only when options.retain_uids; may be NULL */
} shard_extra;

/* One index row: where a volume is and what it is. */
typedef struct shard_entry {
    char key[SHARD_KEY_MAX];
    char modality[17];
    char body_part[65];
    vol_dtype dtype;
    int64_t shape[3];    /* (slice, row, column) */
    double spacing[3];   /* (column, row, slice) mm, index order as volume.h */
    int64_t first_voxel; /* voxels stored before this volume in its shard */
    char checksum[SHARD_CHECKSUM_MAX];
} shard_entry;

/* ---- writing ------------------------------------------------------------------------ */

typedef struct shard_writer shard_writer;

/* The file name of shard `sequence` ("shard-000012.h5"); buf holds at least 32 bytes. */
void shard_name(uint64_t sequence, char *buf, size_t cap);

/* Create DIR/shard-<sequence>.h5.tmp (replacing a stale one). Fails with VS_ERR_IO when the
 * folder is not writable, VS_ERR_LIBRARY when HDF5 refuses. */
vs_status shard_writer_open(const char *dir, uint64_t sequence, const shard_options *opt,
                            shard_writer **out, vs_error *err);
/* Append one volume. Refuses with VS_ERR_FORMAT, before touching the file (the shard stays
 * usable), a bad series key, a key already in this shard, an empty volume, an unknown voxel
 * type or an affine that does not match its geometry. After any other failure the shard is
 * unusable: abort it. `entry` (may be NULL) receives the index row. */
vs_status shard_writer_add(shard_writer *w, const volume *v, const shard_extra *extra,
                           shard_entry *entry, vs_error *err);
/* Bytes in the file so far (what the caller compares with its shard size limit). */
uint64_t shard_writer_bytes(const shard_writer *w);
int shard_writer_count(const shard_writer *w);
/* Write the index and the shard attributes, close, fsync, rename to the final name, fsync
 * the folder, and free w (whatever the outcome). On failure the .tmp is removed. */
vs_status shard_writer_seal(shard_writer *w, vs_error *err);
/* Close and remove the .tmp; frees w. */
void shard_writer_abort(shard_writer *w);

/* ---- reading ------------------------------------------------------------------------ */

typedef struct shard_set shard_set;

typedef struct shard_filter {
    const char *modality;       /* NULL or "": any; else exact match, e.g. "CT" */
    const char *body_part;      /* NULL or "": any */
    int64_t min_shape[3];       /* (slice, row, column) lower bounds; 0: none */
    const char *const *exclude; /* series keys left out, sorted by strcmp (NULL: none) */
    int n_exclude;
} shard_filter;

/* Open every sealed shard in DIR. A shard that cannot be used is skipped with one warning
 * line naming the file and the reason (counted in shard_set_n_skipped); a newer schema is
 * such a reason. Fails only when DIR cannot be listed. filter may be NULL. */
vs_status shard_set_open(const char *dir, const shard_filter *filter, shard_set **out,
                         vs_error *err);
void shard_set_close(shard_set *s);
/* Keep up to `bytes` of decompressed chunks between reads (0: none, the default). Random crops
 * of a set that fits mostly become copies; results do not depend on it. Call before crops. */
vs_status shard_set_cache(shard_set *s, size_t bytes, vs_error *err);
/* Inflate the chunks of one box or crop in n threads (the caller's included; default 1,
 * at most 16). Results do not depend on it. A prefetch stream with T threads and n here
 * runs up to T*n threads. */
void shard_set_read_threads(shard_set *s, int n);
/* Keep at most n shard files open (least recently used closed first, reopened on demand; at
 * least 1). The default is 64, or an eighth of the soft limit on open files when that is less,
 * so a set over thousands of shards stays under the fd limit. Results do not depend on it.
 * While every open file is being read, a reader opens one more instead of waiting: the count
 * may exceed n by the number of threads reading at that moment. */
void shard_set_max_open(shard_set *s, int n);
int shard_set_n_open(shard_set *s); /* files open now */
void shard_set_cache_stats(const shard_set *s, uint64_t *hits, uint64_t *misses);
int shard_set_count(const shard_set *s);
int shard_set_n_shards(const shard_set *s);
int shard_set_n_skipped(const shard_set *s);
const shard_entry *shard_set_entry(const shard_set *s, int i);
/* The file holding volume i (a path under DIR). */
const char *shard_set_file(const shard_set *s, int i);

/* Read volume i whole: voxels, geometry and text attributes, checking its checksum
 * (VS_ERR_FORMAT naming the file on mismatch). `preprocessing` (may be NULL, cap bytes)
 * receives the preprocessing attribute. The caller frees with volume_free. */
vs_status shard_set_read(shard_set *s, int i, volume *out, char *preprocessing, size_t cap,
                         vs_error *err);
/* Volume i's geometry and text attributes (keys, modality, spacing, affine) with its shape and
 * type from the index, without its voxels (out->voxels stays NULL; volume_free is harmless). */
vs_status shard_set_read_meta(shard_set *s, int i, volume *out, vs_error *err);
/* One shard file opened on its own (compaction copies its volumes into another shard): open
 * once, read volumes by key, close. shard_src_read reads the volume `key` whole (checksum
 * checked, as shard_set_read), with its preprocessing (prep_cap bytes) and its
 * series_instance_uid ("" when the shard has none, uid_cap bytes). */
typedef struct shard_src shard_src;
vs_status shard_src_open(const char *path, shard_src **out, vs_error *err);
vs_status shard_src_read(shard_src *s, const char *key, volume *out, char *prep, size_t prep_cap,
                         char *uid, size_t uid_cap, vs_error *err);
void shard_src_close(shard_src *s);
/* Read the box start..start+size (slice, row, column) of volume i as float32; the box must lie
 * inside the volume. Touches only the chunks the box covers. */
vs_status shard_set_read_box(shard_set *s, int i, const int64_t start[3], const int64_t size[3],
                             float *out /* (size0, size1, size2) */, vs_error *err);

/* Where a crop came from. */
typedef struct shard_crop_info {
    int volume;        /* index in the set */
    int64_t start[3];  /* first voxel read (slice, row, column) */
    int64_t offset[3]; /* where that voxel lands in the crop (non-zero only when padded) */
} shard_crop_info;

/* One random crop of size (Sz, Sy, Sx): a volume drawn uniformly, then a uniform position.
 * Along an axis where the volume is smaller than the crop, the whole extent is placed at a
 * uniform offset and the rest is pad_value. A volume that fails to read is reported once
 * (one line), dropped from the set, and another is drawn. Deterministic for the rng state. */
vs_status shard_set_crop(shard_set *s, rng *r, const int size[3], float pad_value,
                         float *out /* (Sz, Sy, Sx) */, shard_crop_info *info, vs_error *err);

/* shard_set_crop drawing the volume uniformly from `candidates` (n_candidates volume indices,
 * repeats allowed) instead of from the whole set; NULL or 0 candidates is shard_set_crop, with
 * the same draws. Candidates that fail to read are dropped as there; when none is left, the
 * volume is drawn from the whole set. */
vs_status shard_set_crop_from(shard_set *s, rng *r, const int *candidates, int n_candidates,
                              const int size[3], float pad_value, float *out /* (Sz, Sy, Sx) */,
                              shard_crop_info *info, vs_error *err);

/* Re-read every volume of every shard in DIR and compare with its checksum; reports each
 * corrupt volume or unreadable shard as a warning line and counts them. */
typedef struct shard_verify_result {
    int n_shards, n_volumes, n_bad_shards, n_bad_volumes;
} shard_verify_result;
vs_status shard_verify_dir(const char *dir, shard_verify_result *res, vs_error *err);

/* Call fn for every attribute of a shard file and every string of its index, as text:
 * object is "/", "/volumes/<key>" or "/index/<row>"; numbers are printed with %.17g separated
 * by spaces; each volume also gets pseudo-attributes "dtype" and "shape". For `inspect` and
 * for verify-deid's scan of shards. fn returns non-zero to stop. */
typedef int (*shard_text_fn)(void *ctx, const char *object, const char *name, const char *value);
vs_status shard_each_text(const char *path, shard_text_fn fn, void *ctx, vs_error *err);

/* ---- the working-set sampler (io/shard/shard_sample.c) ------------------------------------- */

/* Crop n draws from a window of W volumes that slides by one every R crops along seeded
 * permutations of the whole set (one per epoch): every volume enters once per epoch of N*R
 * crops and stays for W*R, so a chunk cache holding W+1 volumes inflates each chunk about once
 * per visit instead of once per crop. The window depends only on (N, seed, W, R, n). */
#define SHARD_WORKING_SET_MAX 4096
typedef struct shard_working_set {
    int volumes;    /* W: 0 (or >= the number of volumes) is the uniform sampler over all */
    int swap_every; /* R: crops between two swaps, >= 1 when volumes > 0 */
} shard_working_set;

typedef struct shard_sampler shard_sampler;
/* Fails with VS_ERR_USAGE for no volumes, W outside 0..SHARD_WORKING_SET_MAX, or R < 1 when
 * W > 0. */
vs_status shard_sampler_create(int n_volumes, uint64_t seed, const shard_working_set *ws,
                               shard_sampler **out, vs_error *err);
/* Write the window of crop n (W volume indices, out holds W) and return W; 0 when there is no
 * working set (W = 0 or W >= N: draw from every volume). Thread-safe. */
int shard_sampler_window(shard_sampler *s, uint64_t n, int *out);
void shard_sampler_destroy(shard_sampler *s);

/* ---- a prefetching crop stream for training --------------------------------------------- */

/* Crop n of the stream is shard_set_crop_from with rng_seed(seed, n) and the working set's
 * window of crop n (ws NULL or ws->volumes 0: shard_set_crop, uniform over every volume): the
 * sequence depends only on (seed, n), not on threads or timing, so a trainer saves n
 * (shard_stream_position) and resumes with shard_stream_seek. `threads` background threads
 * keep up to `depth` crops ready (they decompress in parallel); depth 0 makes each crop on
 * demand in the caller's thread. While a stream runs, only it may use the shard set. */
typedef struct shard_stream shard_stream;

vs_status shard_stream_open(shard_set *s, uint64_t seed, const int size[3], float pad_value,
                            const shard_working_set *ws, int depth, int threads, shard_stream **out,
                            vs_error *err);
/* Copy the next crop of the plan to out (blocking until it is ready). */
vs_status shard_stream_next(shard_stream *st, float *out /* (Sz, Sy, Sx) */, shard_crop_info *info,
                            vs_error *err);
/* The number of the crop shard_stream_next hands out next. */
uint64_t shard_stream_position(const shard_stream *st);
/* Hand out crops first, first+1, ..., first+take-1, then first+every, ... (runs of `take` every
 * `every` crops; 1 <= take <= every): the crops of one data-parallel rank. A new stream's plan
 * is first 0, take = every = 1. Prefetched crops are dropped. */
vs_status shard_stream_plan(shard_stream *st, uint64_t first, uint64_t take, uint64_t every,
                            vs_error *err);
/* Restart the plan at crop n (n must begin a run of the plan: any n when take = every). */
vs_status shard_stream_seek(shard_stream *st, uint64_t n, vs_error *err);
void shard_stream_close(shard_stream *st);

#endif
