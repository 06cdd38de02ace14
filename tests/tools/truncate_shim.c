/* truncate_shim.c — LD_PRELOAD library for test_truncated_source: the first time the process
 * maps (mmap) or reads (pread) the file named by VS_TRUNCATE_PATH, that file is cut to
 * VS_TRUNCATE_TO bytes (default 200) just before: what another process truncating a source
 * during a run does, made deterministic. A mapped file cut that way raises SIGBUS on the next
 * access past its new end; a read file comes back short. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

static int done;

static void maybe_truncate(int fd) {
    const char *want = getenv("VS_TRUNCATE_PATH");
    if (done || !want || fd < 0) return;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = '\0';
    char real[4096];
    if (!realpath(want, real) || strcmp(real, path) != 0) return;
    done = 1;
    const char *to = getenv("VS_TRUNCATE_TO");
    if (truncate(path, to ? atol(to) : 200) != 0) perror("truncate_shim");
}

/* dlsym's result as a function (ISO C has no cast from object to function pointer). */
typedef union real_fn {
    void *sym;
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    ssize_t (*pread)(int, void *, size_t, off_t);
} real_fn;

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    static real_fn real;
    if (!real.sym) real.sym = dlsym(RTLD_NEXT, "mmap");
    void *p = real.mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED) maybe_truncate(fd);
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return mmap(addr, len, prot, flags, fd, off);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
    static real_fn real;
    if (!real.sym) real.sym = dlsym(RTLD_NEXT, "pread");
    maybe_truncate(fd);
    return real.pread(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) { return pread(fd, buf, n, off); }
