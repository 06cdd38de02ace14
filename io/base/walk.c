/* walk.c — see walk.h. */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* (device, inode) pairs seen, in an open-addressing table. */
typedef struct id_set {
    uint64_t *dev, *ino;
    size_t n, cap;
} id_set;

static size_t slot_of(uint64_t dev, uint64_t ino, size_t cap) {
    uint64_t h = (ino * 0x9e3779b97f4a7c15ull) ^ (dev + 0x632be59bd9b4e019ull);
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

/* 1 when (dev, ino) was new (now added), 0 when seen, -1 out of memory. */
static int id_add(id_set *s, uint64_t dev, uint64_t ino) {
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        uint64_t *d = calloc(cap, sizeof *d), *i = calloc(cap, sizeof *i);
        if (!d || !i) {
            free(d), free(i);
            return -1;
        }
        for (size_t k = 0; k < s->cap; k++) /* slots hold ino + 1; 0 is empty */
            if (s->ino[k]) {
                size_t j = slot_of(s->dev[k], s->ino[k] - 1, cap);
                while (i[j])
                    j = (j + 1) & (cap - 1);
                d[j] = s->dev[k], i[j] = s->ino[k];
            }
        free(s->dev), free(s->ino);
        s->dev = d, s->ino = i, s->cap = cap;
    }
    size_t j = slot_of(dev, ino, s->cap);
    for (; s->ino[j]; j = (j + 1) & (s->cap - 1))
        if (s->dev[j] == dev && s->ino[j] == ino + 1) return 0;
    s->dev[j] = dev, s->ino[j] = ino + 1;
    s->n++;
    return 1;
}

typedef struct walker {
    vs_walk_fn fn;
    void *ctx;
    id_set dirs, files;
} walker;

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static vs_status visit(walker *w, const char *path, int depth, vs_error *err);

static vs_status walk_dir(walker *w, const char *path, int depth, vs_error *err) {
    struct dirent **names = NULL;
    int n = scandir(path, &names, NULL, by_name);
    if (n < 0) return w->fn(w->ctx, path, errno ? errno : EIO, err);
    vs_status s = VS_OK;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (s == VS_OK && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            char child[PATH_MAX];
            if ((size_t)snprintf(child, sizeof child, "%s%s%s", path,
                                 path[strlen(path) - 1] == '/' ? "" : "/", name) >= sizeof child)
                s = w->fn(w->ctx, path, ENAMETOOLONG, err);
            else
                s = visit(w, child, depth + 1, err);
        }
        free(names[i]);
    }
    free(names);
    return s;
}

static vs_status visit(walker *w, const char *path, int depth, vs_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) return w->fn(w->ctx, path, errno, err); /* e.g. a broken link */
    if (S_ISDIR(sb.st_mode)) {
        int added = id_add(&w->dirs, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino);
        if (added < 0) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory walking %s", path);
        if (!added) return VS_OK; /* walked already: a loop or a second way in */
        if (depth > 512) return w->fn(w->ctx, path, ELOOP, err);
        return walk_dir(w, path, depth, err);
    }
    if (!S_ISREG(sb.st_mode)) return VS_OK; /* a socket, pipe or device is not a file */
    int added = id_add(&w->files, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino);
    if (added < 0) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory walking %s", path);
    return added ? w->fn(w->ctx, path, 0, err) : VS_OK;
}

vs_status vs_walk(const char *const *paths, int n, vs_walk_fn fn, void *ctx, vs_error *err) {
    walker w = {fn, ctx, {NULL, NULL, 0, 0}, {NULL, NULL, 0, 0}};
    vs_status s = VS_OK;
    for (int i = 0; i < n && s == VS_OK; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) != 0)
            s = VS_FAIL(err, VS_ERR_IO, "%s: no such file or folder (%s)", paths[i],
                        strerror(errno));
        else
            s = visit(&w, paths[i], 0, err);
    }
    free(w.dirs.dev), free(w.dirs.ino), free(w.files.dev), free(w.files.ino);
    return s;
}
