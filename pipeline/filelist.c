/* filelist.c — the files named by command-line paths, walked by the one rule (walk.h). */
#include "filelist.h"

#include "walk.h"

#include <stdlib.h>
#include <string.h>

/* Every path of the walk, also one that cannot be read: the command opens it and reports it
 * by name with the reason. */
static vs_status push(void *ctx, const char *path, int errno_, vs_error *err) {
    (void)errno_;
    filelist *fl = ctx;
    if (fl->n == fl->cap) {
        int cap = fl->cap ? fl->cap * 2 : 64;
        char **p = realloc(fl->paths, (size_t)cap * sizeof *p);
        if (!p) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory listing files");
        fl->paths = p;
        fl->cap = cap;
    }
    if (!(fl->paths[fl->n] = strdup(path)))
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory listing files");
    fl->n++;
    return VS_OK;
}

vs_status filelist_collect(filelist *fl, char *const *paths, int n_paths, vs_error *err) {
    return vs_walk((const char *const *)paths, n_paths, push, fl, err);
}

void filelist_free(filelist *fl) {
    for (int i = 0; i < fl->n; i++)
        free(fl->paths[i]);
    free(fl->paths);
    memset(fl, 0, sizeof *fl);
}
