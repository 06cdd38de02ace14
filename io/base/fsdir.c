/* fsdir.c — see fsdir.h. */
#include "fsdir.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

vs_status vs_mkdirs(const char *path, unsigned mode, vs_error *err) {
    char p[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof p)
        return VS_FAIL(err, VS_ERR_IO, "folder path is empty or longer than %zu bytes",
                       sizeof p - 1);
    memcpy(p, path, n + 1);
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0') continue;
        char keep = *c;
        *c = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
            return VS_FAIL(err, VS_ERR_IO, "%s: cannot create the folder (%s)", p, strerror(errno));
        *c = keep;
        if (!keep) break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return VS_FAIL(err, VS_ERR_IO, "%s: exists and is not a folder", path);
    return VS_OK;
}

vs_status vs_atomic_open(vs_atomic *a, const char *path, vs_error *err) {
    a->f = NULL;
    if ((size_t)snprintf(a->path, sizeof a->path, "%s", path) >= sizeof a->path ||
        (size_t)snprintf(a->tmp, sizeof a->tmp, "%s.tmp", path) >= sizeof a->tmp)
        return VS_FAIL(err, VS_ERR_IO, "file path is longer than %zu bytes", sizeof a->path - 1);
    if (!(a->f = fopen(a->tmp, "wb")))
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot create (%s)", a->tmp, strerror(errno));
    return VS_OK;
}

vs_status vs_commit_file(const char *tmp, const char *path, vs_error *err) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    int e = 0;
    if (fd < 0 || fsync(fd) != 0) e = errno ? errno : EIO;
    if (fd >= 0) close(fd);
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        remove(tmp);
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot write (%s)", path, strerror(e));
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot open its folder to sync it (%s)", path,
                       strerror(errno));
    int synced = fsync(fd) == 0;
    e = errno;
    close(fd);
    if (!synced)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot sync its folder (%s)", path, strerror(e));
    return VS_OK;
}

vs_status vs_atomic_commit(vs_atomic *a, vs_error *err) {
    if (!a->f) return VS_FAIL(err, VS_ERR_IO, "%s: not open", a->tmp);
    int bad = ferror(a->f) || fflush(a->f) != 0;
    int e = errno;
    bad |= fclose(a->f) != 0;
    a->f = NULL;
    if (bad) {
        remove(a->tmp);
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot write (%s)", a->path, strerror(e ? e : EIO));
    }
    return vs_commit_file(a->tmp, a->path, err);
}

void vs_atomic_abort(vs_atomic *a) {
    if (a->f) {
        fclose(a->f);
        a->f = NULL;
        remove(a->tmp);
    }
}

vs_status vs_write_file_atomic(const char *path, const void *data, size_t n, vs_error *err) {
    vs_atomic a;
    vs_status s = vs_atomic_open(&a, path, err);
    if (s != VS_OK) return s;
    if (n && fwrite(data, 1, n, a.f) != n) {
        vs_atomic_abort(&a);
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot write (%s)", path, strerror(errno));
    }
    return vs_atomic_commit(&a, err);
}

struct vs_commit_batch {
    pthread_mutex_t lock;
    int n, cap;
    char **tmp, **path;
};

vs_status vs_commit_batch_open(vs_commit_batch **out, int max_pending, vs_error *err) {
    vs_commit_batch *b = calloc(1, sizeof *b);
    if (b && max_pending > 0) {
        b->cap = max_pending;
        b->tmp = calloc((size_t)max_pending, sizeof *b->tmp);
        b->path = calloc((size_t)max_pending, sizeof *b->path);
    }
    if (!b || !b->tmp || !b->path) {
        if (b) free(b->tmp), free(b->path);
        free(b);
        *out = NULL;
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for a batch of %d files", max_pending);
    }
    pthread_mutex_init(&b->lock, NULL);
    *out = b;
    return VS_OK;
}

/* syncfs of the filesystem holding path's folder. */
static vs_status sync_fs_of(const char *path, vs_error *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot open its folder to sync it (%s)", path,
                       strerror(errno));
    int ok = syncfs(fd) == 0;
    int e = errno;
    close(fd);
    return ok ? VS_OK
              : VS_FAIL(err, VS_ERR_IO, "%s: cannot sync its filesystem (%s)", path, strerror(e));
}

/* With b->lock held: one sync for the queued files' data, every rename, the queue emptied (on
 * failure the files not renamed are removed). The caller syncs again for the renames. */
static vs_status flush_locked(vs_commit_batch *b, vs_error *err) {
    if (b->n == 0) return VS_OK;
    vs_status s = sync_fs_of(b->tmp[0], err);
    int done = 0;
    for (; s == VS_OK && done < b->n; done++)
        if (rename(b->tmp[done], b->path[done]) != 0) {
            s = VS_FAIL(err, VS_ERR_IO, "%s: cannot write (%s)", b->path[done], strerror(errno));
            break;
        }
    for (int i = 0; i < b->n; i++) {
        if (i >= done) remove(b->tmp[i]);
        free(b->tmp[i]), free(b->path[i]);
    }
    b->n = 0;
    return s;
}

vs_status vs_commit_batch_add(vs_commit_batch *b, const char *tmp, const char *path,
                              vs_error *err) {
    char *t = strdup(tmp), *p = strdup(path);
    pthread_mutex_lock(&b->lock);
    vs_status s = VS_OK;
    if (!t || !p) {
        free(t), free(p);
        remove(tmp);
        s = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
    } else {
        b->tmp[b->n] = t, b->path[b->n] = p;
        b->n++;
        if (b->n == b->cap) {
            char first[4096];
            snprintf(first, sizeof first, "%s", p);
            s = flush_locked(b, err);
            if (s == VS_OK) s = sync_fs_of(first, err); /* the renames */
        }
    }
    pthread_mutex_unlock(&b->lock);
    return s;
}

vs_status vs_commit_batch_flush(vs_commit_batch *b, vs_error *err) {
    pthread_mutex_lock(&b->lock);
    char first[4096] = "";
    if (b->n) snprintf(first, sizeof first, "%s", b->path[0]);
    vs_status s = flush_locked(b, err);
    if (s == VS_OK && first[0]) s = sync_fs_of(first, err); /* the renames */
    pthread_mutex_unlock(&b->lock);
    return s;
}

void vs_commit_batch_close(vs_commit_batch *b) {
    if (!b) return;
    for (int i = 0; i < b->n; i++) {
        remove(b->tmp[i]);
        free(b->tmp[i]), free(b->path[i]);
    }
    pthread_mutex_destroy(&b->lock);
    free(b->tmp), free(b->path);
    free(b);
}
