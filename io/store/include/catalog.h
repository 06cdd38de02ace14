/* catalog.h — the ingest catalog (SQLite, WAL): which input file produced which volume in
 * which shard, what was skipped or rejected and why, and the runs. It makes a rerun
 * incremental and idempotent. Schema and its version: io/shard/SHARD_SCHEMA.md ("Catalog").
 *
 * Invariants:
 *   1. A volume row exists only for a shard that was sealed (renamed) before the transaction
 *      that inserted it committed (catalog_commit_shard is called after shard_writer_seal).
 *   2. At most one volume per series key is 'live'; re-ingesting a series retires the older
 *      one in the same transaction that adds the new one.
 *   3. Every source file has at most one row, by its key, with its state: used, skipped or
 *      rejected.
 *   4. No patient data: keyed hashes of file paths (archives name folders and files after
 *      patients), sizes, times, hashes, pseudonymous keys and reasons that name tags, never
 *      header values or paths.
 *   5. Every write is one transaction; journal_mode=WAL and synchronous=FULL, so a process
 *      killed at any point leaves the last committed state.
 */
#ifndef VS_CATALOG_H
#define VS_CATALOG_H

#include <stdint.h>

#include "status.h"

#define CATALOG_SCHEMA_VERSION 2 /* 2: files by a keyed hash of their path (1: by path) */

typedef struct catalog catalog;

/* One input file as the ingest loop saw it. */
typedef struct catalog_source {
    const char *key;          /* identifies the file: ingest gives a keyed hash of its path
                                 (deid_source_key), never the path, which may name a patient */
    int64_t size;             /* bytes */
    int64_t mtime_ns;         /* modification time, ns since the epoch */
    const char *content_hash; /* "sha256:<hex>" of the file bytes, or NULL when not computed */
    const char *instance_key; /* keyed hash of the SOP Instance UID (io/deid), or NULL */
} catalog_source;

typedef enum catalog_state { CATALOG_USED = 0, CATALOG_SKIPPED, CATALOG_REJECTED } catalog_state;
const char *catalog_state_name(catalog_state s);

typedef enum catalog_file_status {
    CATALOG_FILE_NEW = 0,   /* never seen at this path */
    CATALOG_FILE_UNCHANGED, /* same size and mtime, or same content hash */
    CATALOG_FILE_CHANGED,   /* seen, but its size/mtime/content differ */
} catalog_file_status;

/* A volume of a sealed shard, with the files it was built from. */
typedef struct catalog_volume {
    const char *series_key;
    const char *modality;
    const char *checksum;
    int64_t shape[3];
    const catalog_source *sources;
    int n_sources;
} catalog_volume;

/* Open (creating the schema if needed) the catalog at path. Refuses a newer schema. */
vs_status catalog_open(const char *path, catalog **out, vs_error *err);
void catalog_close(catalog *c);

/* Start a run record (marking runs left 'running' by a killed process 'interrupted': call it
 * only while holding the output folder's lock). */
vs_status catalog_run_begin(catalog *c, const char *params_json, int64_t *run_id, vs_error *err);
vs_status catalog_run_end(catalog *c, int64_t run_id, const char *status, int n_volumes,
                          int n_rejected, int n_skipped, vs_error *err);

/* Whether a file needs work. A differing mtime with an equal content hash counts as unchanged. */
vs_status catalog_file_check(catalog *c, const catalog_source *src, catalog_file_status *status,
                             vs_error *err);
/* Record a skipped or rejected file with its reason (one committed transaction). */
vs_status catalog_record_file(catalog *c, int64_t run_id, const catalog_source *src,
                              catalog_state state, const char *reason, vs_error *err);

/* One transaction: the shard, its volumes (live; retiring older live ones of the same
 * series) and their sources (used). Call only after the shard was sealed. */
vs_status catalog_commit_shard(catalog *c, int64_t run_id, const char *shard_name, int64_t sequence,
                               const catalog_volume *vols, int n, vs_error *err);

/* The next free shard sequence number (1 + the largest committed). */
vs_status catalog_next_sequence(catalog *c, int64_t *sequence, vs_error *err);
/* 1 if the catalog holds a shard of that file name. */
vs_status catalog_shard_known(catalog *c, const char *shard_name, int *known, vs_error *err);
/* Call fn for every shard name the catalog holds; fn returns non-zero to stop. */
vs_status catalog_each_shard(catalog *c, int (*fn)(void *ctx, const char *name), void *ctx,
                             vs_error *err);
/* Forget a shard lost from disk: its volumes and their source rows go, so a rerun re-ingests
 * them (one transaction). */
vs_status catalog_forget_shard(catalog *c, const char *shard_name, vs_error *err);
/* Call fn for each source key of the live volume of series_key (sorted). */
vs_status catalog_series_sources(catalog *c, const char *series_key,
                                 int (*fn)(void *ctx, const char *key), void *ctx, vs_error *err);
/* Call fn for each file skipped or rejected in run_id (0: in any run), sorted by key, with
 * its state and reason: the reject list of a run summary. */
vs_status catalog_each_reject(catalog *c, int64_t run_id,
                              int (*fn)(void *ctx, const char *key, const char *state,
                                        const char *reason),
                              void *ctx, vs_error *err);
/* 1 if series_key has a live volume. */
vs_status catalog_series_live(catalog *c, const char *series_key, int *live, vs_error *err);
/* Counts for summaries and tests. */
vs_status catalog_count(catalog *c, const char *what /* "live", "retired", "used",
                        "skipped", "rejected", "shards" */
                        ,
                        int64_t *n, vs_error *err);

/* ---- compaction (io/store: store_compact) ----------------------------------------------
 * A shard whose volumes were all superseded or moved leaves the catalog in the same
 * transaction that moves its last live volume, and goes onto a drop list; its file is deleted
 * after that commit, and only then does its name leave the drop list. */

/* fn(ctx, shard, sequence, live voxels, all voxels) for every shard, by sequence; the voxels
 * count every volume row the shard holds (live and retired). fn returns non-zero to stop. */
typedef int (*catalog_usage_fn)(void *ctx, const char *shard_name, int64_t sequence,
                                int64_t live_voxels, int64_t all_voxels);
vs_status catalog_each_shard_usage(catalog *c, catalog_usage_fn fn, void *ctx, vs_error *err);
/* The series keys of the live volumes of a shard, in the order they were written. */
vs_status catalog_shard_live_keys(catalog *c, const char *shard_name,
                                  int (*fn)(void *ctx, const char *key), void *ctx, vs_error *err);
/* One transaction: record shard_name (NULL: no new shard) holding the live volumes of keys,
 * which move there, then take the emptied shards (no live volume may remain in them) out of
 * the catalog with their retired volumes, onto the drop list. Call after the shard is sealed. */
vs_status catalog_commit_compaction(catalog *c, int64_t run_id, const char *shard_name,
                                    int64_t sequence, const char *const *keys, int n_keys,
                                    const char *const *emptied, int n_emptied, vs_error *err);
/* The drop list: shards out of the catalog whose file may still be on disk. */
vs_status catalog_each_dropped_shard(catalog *c, int (*fn)(void *ctx, const char *name), void *ctx,
                                     vs_error *err);
vs_status catalog_dropped_shard_gone(catalog *c, const char *shard_name, vs_error *err);

#endif
