/* fsdir.h — folders and durable files: create a path with its missing parents (mkdir -p), and
 * write a file so that it is either absent, the old one, or the whole new one, on disk.
 *
 * Every command that writes an output folder goes through vs_mkdirs, so `--out a/b/c` and a
 * study's `output:` work whether or not the parents exist, and a failure names the first
 * component that could not be made.
 */
#ifndef VS_FSDIR_H
#define VS_FSDIR_H

#include <stdio.h>

#include "status.h"

/* Create `path` and any missing parents with `mode` (existing folders are left as they are).
 * Fails, naming the component, when one cannot be created or `path` exists but is not a
 * folder. */
vs_status vs_mkdirs(const char *path, unsigned mode, vs_error *err);

/* Durable files, the one way every output is written: the whole file goes to a temporary name in
 * the same folder, is synced, and is renamed over the final name, whose folder is synced; so a
 * crash or kill leaves either the old file or the whole new one, never a part.
 *
 * vs_atomic: write through `f`, then commit or abort (the temporary file is removed and the
 * final name keeps what it held). The temporary file is PATH.tmp: one writer per path. */
typedef struct vs_atomic {
    FILE *f;
    char tmp[4200];
    char path[4096];
} vs_atomic;

/* Create the temporary file; fails naming it. */
vs_status vs_atomic_open(vs_atomic *a, const char *path, vs_error *err);
/* Make it the file at path; on failure the temporary file is removed and err names path. */
vs_status vs_atomic_commit(vs_atomic *a, vs_error *err);
/* Drop it (safe after a failed open or commit). */
void vs_atomic_abort(vs_atomic *a);
/* The whole of data as the file at path, durably (vs_atomic_open, one write, commit). */
vs_status vs_write_file_atomic(const char *path, const void *data, size_t n, vs_error *err);
/* A temporary file another writer made and closed (a library writing by path: DCMTK, HDF5):
 * sync it, rename it over path, sync the folder. On failure tmp is removed and err names path. */
vs_status vs_commit_file(const char *tmp, const char *path, vs_error *err);

/* Many files at once (anonymize writes one per input): vs_commit_file's guarantee with one
 * filesystem sync per batch instead of two per file. Each temporary file added is renamed over
 * its final name only after a syncfs(2) of its filesystem, and the batch ends with another one
 * for the renames. Thread-safe. A final name never points at data not yet on disk; a process
 * killed mid-batch leaves the batch's temporary files, never a partial final file. */
typedef struct vs_commit_batch vs_commit_batch;
vs_status vs_commit_batch_open(vs_commit_batch **out, int max_pending, vs_error *err);
/* Queue tmp (closed, complete) to become path; flushes when max_pending are queued. */
vs_status vs_commit_batch_add(vs_commit_batch *b, const char *tmp, const char *path, vs_error *err);
/* Sync, rename every queued file, sync again. On failure the files not renamed are removed. */
vs_status vs_commit_batch_flush(vs_commit_batch *b, vs_error *err);
/* Remove the queued temporary files that were not flushed (after a failure) and free b. */
void vs_commit_batch_close(vs_commit_batch *b);

#endif
