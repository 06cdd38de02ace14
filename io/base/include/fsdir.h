/* fsdir.h — folders: create a path with its missing parents (mkdir -p), one error convention.
 *
 * Every command that writes an output folder goes through vs_mkdirs, so `--out a/b/c` and a
 * study's `output:` work whether or not the parents exist, and a failure names the first
 * component that could not be made.
 */
#ifndef VS_FSDIR_H
#define VS_FSDIR_H

#include "status.h"

/* Create `path` and any missing parents with `mode` (existing folders are left as they are).
 * Fails, naming the component, when one cannot be created or `path` exists but is not a
 * folder. */
vs_status vs_mkdirs(const char *path, unsigned mode, vs_error *err);

#endif
