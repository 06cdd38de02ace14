/* inspect.h — the parts of `vesalius inspect` (DICOM in cmd_inspect.c, shards here). */
#ifndef VS_INSPECT_H
#define VS_INSPECT_H

#include "cli.h"

/* 1 when path is a shard file (.h5), a folder of shards, or an ingest output folder. */
int inspect_is_shard_path(const char *path);
/* Print every volume and attribute of the shards at path. */
vs_status inspect_shard_path(const char *path, vs_error *err);

#endif
