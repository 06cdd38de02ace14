/* pacs_spool.h — where retrieved instances live until their series is ingested: anonymous
 * files that no folder names.
 *
 * In memory (memfd_create, the default) or, for series too large for memory, in a spool
 * folder of mode 0700 as O_TMPFILE files: either way a file has no name on any file system,
 * only a descriptor, so when the process ends — normally, on an error or by kill -9 — the
 * kernel frees it and nothing identifiable stays on disk. The reader opens each instance as
 * /proc/self/fd/N, like any file.
 *
 * Invariants:
 *   1. Every file of the spool is anonymous (memfd or O_TMPFILE, never linked) and open only
 *      in this process; pacs_spool_clear closes them all.
 *   2. The spool folder, when used, is a folder owned by us with mode 0700 (created so, or
 *      refused otherwise); nothing is ever written into it by name.
 *   3. Thread-safe: the C-MOVE receiver adds files from its thread.
 */
#ifndef VS_PACS_SPOOL_H
#define VS_PACS_SPOOL_H

#include <stdint.h>

#include "status.h"

typedef struct pacs_spool pacs_spool;

/* dir NULL or "": memory. Otherwise the folder (created 0700 when missing; refused with
 * VS_ERR_ENV when it is not ours, not 0700, or cannot hold O_TMPFILE files). */
vs_status pacs_spool_open(const char *dir, pacs_spool **out, vs_error *err);
void pacs_spool_close(pacs_spool *s);

/* A new empty file; its path ("/proc/self/fd/N") stays valid until pacs_spool_clear. The
 * instance key (a pseudonym) is kept with it. Returns NULL (and sets the spool's error) when
 * the file cannot be made. */
const char *pacs_spool_add(pacs_spool *s, const char *instance_key, int *token);
/* The file arrived whole (ok) or not (then it is dropped at once). */
void pacs_spool_done(pacs_spool *s, int token, int ok);

/* Files taken whole, in arrival order. */
int pacs_spool_count(pacs_spool *s);
const char *pacs_spool_path(pacs_spool *s, int i);
const char *pacs_spool_key(pacs_spool *s, int i);
int64_t pacs_spool_size(pacs_spool *s, int i);
/* Drop file i (of those taken whole): its bytes are gone; indexes shift at the next count. */
void pacs_spool_drop(pacs_spool *s, int i);
/* Bytes of the files taken whole. */
uint64_t pacs_spool_bytes(pacs_spool *s);
/* The index of the file whose path is path, or -1. */
int pacs_spool_find(pacs_spool *s, const char *path);
/* The first failure to make a file since the last clear ("" when none). */
const char *pacs_spool_error(pacs_spool *s);

/* Close every file: their bytes are gone. */
void pacs_spool_clear(pacs_spool *s);

#endif
