/* filelist.h — the files named by command-line paths, as a list: the walk of io/base walk.h
 * (the rule every command follows: arguments in order, entries in byte order, hidden ones
 * included, links followed, each folder and file once), plus paths that could not be read,
 * for the command to report by name. */
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
