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

/* A file written durably under its final name: write through `f`, then commit (flush, fsync,
 * rename over the final name, fsync of the folder) or abort (the temporary file is removed and
 * the final name keeps what it held). The temporary file is PATH.tmp in the same folder. */
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

#endif
