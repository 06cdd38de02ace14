/* store.h — the ingest output folder: shards written and sealed in turn, the catalog committed
 * after each seal, one run at a time. This is the API `vesalius ingest` calls per volume.
 *
 *   OUT/shards/shard-NNNNNN.h5   sealed shards (shard.h)
 *   OUT/catalog.sqlite           the catalog (catalog.h), WAL mode
 *   OUT/.lock                    flock'ed by the run in progress
 *
 * Invariants:
 *   1. Only one process writes OUT at a time (flock on OUT/.lock; a second waits up to the
 *      timeout, then fails with VS_ERR_BUSY).
 *   2. Volumes are committed to the catalog only after their shard was sealed (renamed and
 *      synced); the catalog never names a volume that is not on disk in a sealed shard.
 *   3. store_open recovers from a killed run: it removes `.tmp` shards and the sealed shard the
 *      catalog does not know whose sequence is the next one (sealed but killed before the
 *      commit), and forgets catalog shards missing from disk (their sources are ingested
 *      again). Any other shard unknown to the catalog stops the run (VS_ERR_ENV): a lost or
 *      foreign catalog never makes it delete shards. After recovery, an ingest of the
 *      same inputs in the same order gives the same shards and catalog as an uninterrupted run.
 *   4. Memory is bounded by one volume plus the index of the open shard.
 *
 * The ingest loop (one series in flight):
 *   store_open(OUT, opt)                       opt.shard.threads = --threads, lock timeout, ...
 *   for each input file: store_file_check      UNCHANGED → skip (no read at all)
 *   for each series with a NEW or CHANGED file:
 *       store_series_sources(series_key)       the files it was built from before, to rebuild
 *       read + de-identify (io/dicom, io/deid) → volume; prep_apply(volume, study's options)
 *       store_put(volume, {applied, uid}, all its files)   VS_ERR_FORMAT: refused, go on
 *   store_record(file, REJECTED|SKIPPED, reason) for files that made no volume
 *   store_each_reject → the run summary's reject list; store_close → counts
 *   (nothing written and nothing rejected → exit 5; rejects → exit 4; VS_ERR_BUSY → exit 6)
 */
#ifndef VS_STORE_H
#define VS_STORE_H

#include <stdint.h>

#include "catalog.h"
#include "shard.h"
#include "status.h"
#include "volume.h"

typedef struct store store;

typedef struct store_options {
    shard_options shard;
    uint64_t shard_max_bytes; /* seal a shard once its file reaches this size */
    int lock_timeout_ms;      /* how long to wait for another run's lock (0: fail at once) */
    const char *run_params;   /* JSON recorded with the run, or NULL */
} store_options;

/* Default shard options, 1 GiB shards, no lock wait. */
void store_options_default(store_options *o);

typedef struct store_summary {
    int n_volumes;             /* volumes written this run (a rebuilt series counts once) */
    int n_replaced;            /* of those, series that superseded an older volume */
    int n_rejected, n_skipped; /* files recorded as rejected / skipped this run */
    int n_shards;              /* shards sealed this run */
    int n_recovered;           /* leftover files removed or shards forgotten by recovery */
} store_summary;

/* Create OUT (and OUT/shards) if needed, take the lock, open the catalog, recover, start a run. */
vs_status store_open(const char *out_dir, const store_options *opt, store **out, vs_error *err);

/* Whether a file still needs ingesting (catalog_file_check). */
vs_status store_file_check(store *s, const catalog_source *src, catalog_file_status *status,
                           vs_error *err);
/* The source keys of the live volume of a series (catalog_source.key). */
vs_status store_series_sources(store *s, const char *series_key,
                               int (*fn)(void *ctx, const char *key), void *ctx, vs_error *err);

/* Write one volume built from n_src files. It becomes visible (catalog and readers) when its
 * shard is sealed: when the shard is full, or at store_close. VS_ERR_FORMAT means the volume
 * was refused (shard_writer_add) and nothing was written: record its files as rejected and go
 * on. After any other failure the store is unusable except for store_abort. */
vs_status store_put(store *s, const volume *v, const shard_extra *extra, const catalog_source *src,
                    int n_src, vs_error *err);
/* Record a file skipped or rejected with its reason (committed at once). */
vs_status store_record(store *s, const catalog_source *src, catalog_state state, const char *reason,
                       vs_error *err);

/* Call fn for each file skipped or rejected by this run (for the run summary), by its key. */
vs_status store_each_reject(store *s,
                            int (*fn)(void *ctx, const char *key, const char *state,
                                      const char *reason),
                            void *ctx, vs_error *err);

/* Compaction: volumes superseded by a rebuilt series leave dead data in older shards. Every
 * shard whose live share (live voxels / all voxels it holds, from the catalog) is below
 * min_live_share has its live volumes copied (checksums checked) into new shards, sealed like
 * ingest's; each new shard is committed in one transaction that moves its volumes and takes
 * the shards it emptied out of the catalog (onto a drop list); the emptied files are deleted
 * last. Killed at any point, store_open's recovery (invariant 3, plus the drop list) leaves
 * every live volume in exactly one catalogued shard. Call right after store_open, instead
 * of store_put; then store_close. A shard with a volume that fails its checksum is left as is.
 * Readers that opened the folder before may lose the files they hold: compact between runs. */
typedef struct store_compact_summary {
    int n_shards_compacted; /* old shards rewritten or dropped */
    int n_shards_written;   /* new shards */
    int n_volumes_moved;
    int64_t dead_voxels_before, dead_voxels_after; /* voxels of retired volumes in shards */
} store_compact_summary;
vs_status store_compact(store *s, double min_live_share, store_compact_summary *sum, vs_error *err);

/* Seal the open shard, commit it, close the run record and release the lock; frees s. */
vs_status store_close(store *s, store_summary *summary, vs_error *err);
/* Drop the open shard (its volumes are not committed), release everything; frees s. */
void store_abort(store *s);

#endif
