/* filelist.c — walk command-line paths with fts(3) into a sorted list of regular files. */
#include "filelist.h"

#include <errno.h>
#include <fts.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int by_name(const FTSENT **a, const FTSENT **b) {
    return strcmp((*a)->fts_name, (*b)->fts_name);
}

static vs_status push(filelist *fl, const char *path, vs_error *err) {
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
    for (int i = 0; i < n_paths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0)
            return VS_FAIL(err, VS_ERR_IO, "%s: %s", paths[i], strerror(errno));
        char *one[2] = {paths[i], NULL};
        FTS *fts = fts_open(one, FTS_PHYSICAL | FTS_NOCHDIR, by_name);
        if (!fts) return VS_FAIL(err, VS_ERR_IO, "%s: cannot walk (%s)", paths[i], strerror(errno));
        vs_status s = VS_OK;
        FTSENT *e;
        while (s == VS_OK && (e = fts_read(fts)) != NULL) {
            if (e->fts_level > 0 && e->fts_name[0] == '.') {
                if (e->fts_info == FTS_D) fts_set(fts, e, FTS_SKIP);
                continue;
            }
            if (e->fts_info == FTS_F)
                s = push(fl, e->fts_path, err);
            else if (e->fts_info == FTS_DNR || e->fts_info == FTS_ERR)
                s = VS_FAIL(err, VS_ERR_IO, "%s: cannot read (%s)", e->fts_path,
                            strerror(e->fts_errno));
        }
        fts_close(fts);
        if (s != VS_OK) return s;
    }
    return VS_OK;
}

void filelist_free(filelist *fl) {
    for (int i = 0; i < fl->n; i++)
        free(fl->paths[i]);
    free(fl->paths);
    memset(fl, 0, sizeof *fl);
}
