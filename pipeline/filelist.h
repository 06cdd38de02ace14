/* filelist.h — the regular files named by command-line paths (folders walked recursively,
 * symbolic links not followed), in a fixed order: arguments in order, each folder's entries
 * sorted by name. Hidden files (".name") inside folders are skipped. */
#ifndef VS_FILELIST_H
#define VS_FILELIST_H

#include "status.h"

typedef struct filelist {
    char **paths;
    int n, cap;
} filelist;

/* Append the files under each of paths[0..n_paths) to fl. A path that does not exist is
 * VS_ERR_IO naming it. */
vs_status filelist_collect(filelist *fl, char *const *paths, int n_paths, vs_error *err);
void filelist_free(filelist *fl);

#endif
