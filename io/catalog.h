/* catalog.h — the ingest catalog (SQLite, WAL): which input file produced which volume in
 * which shard, what was skipped or rejected and why, and the runs. It makes a rerun
 * incremental and idempotent. Schema and its version: io/SHARD_SCHEMA.md ("Catalog").
 *
 * Invariants:
 *   1. A volume row exists only for a shard that was sealed (renamed) before the transaction
 *      that inserted it committed (catalog_commit_shard is called after shard_writer_seal).
 *   2. At most one volume per series key is 'live'; re-ingesting a series retires the older
 *      one in the same transaction that adds the new one.
 *   3. Every source path has at most one row, with its state: used, skipped or rejected.
 *   4. No patient data: local file paths, sizes, times, hashes, pseudonymous keys and reasons
 *      that name tags, never header values.
 *   5. Every write is one transaction; journal_mode=WAL and synchronous=FULL, so a process
 *      killed at any point leaves the last committed state.
 */
#ifndef VS_CATALOG_H
#define VS_CATALOG_H

#include <stdint.h>

#include "status.h"

#define CATALOG_SCHEMA_VERSION 1

typedef struct catalog catalog;

/* One input file as the ingest loop saw it. */
typedef struct catalog_source {
    const char *path;         /* local path (the operator's own; not patient data) */
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
/* Call fn for each source path of the live volume of series_key (sorted by path). */
vs_status catalog_series_sources(catalog *c, const char *series_key,
                                 int (*fn)(void *ctx, const char *path), void *ctx, vs_error *err);
/* Call fn for each file skipped or rejected in run_id (0: in any run), sorted by path, with
 * its state and reason: the reject list of a run summary. */
vs_status catalog_each_reject(catalog *c, int64_t run_id,
                              int (*fn)(void *ctx, const char *path, const char *state,
                                        const char *reason),
                              void *ctx, vs_error *err);
/* 1 if series_key has a live volume. */
vs_status catalog_series_live(catalog *c, const char *series_key, int *live, vs_error *err);
/* Counts for summaries and tests. */
vs_status catalog_count(catalog *c, const char *what /* "live", "retired", "used",
                        "skipped", "rejected", "shards" */
                        ,
                        int64_t *n, vs_error *err);

#endif
