/* fsdir.c — see fsdir.h. */
#include "fsdir.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

vs_status vs_mkdirs(const char *path, unsigned mode, vs_error *err) {
    char p[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof p)
        return VS_FAIL(err, VS_ERR_IO, "folder path is empty or longer than %zu bytes", sizeof p - 1);
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
