/* pacs_spool.c — anonymous files for retrieved instances (pacs_spool.h). */
#include "pacs_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct spool_file {
    int fd;
    int whole; /* 0 while arriving */
    int64_t size;
    char path[32];
    char key[65];
} spool_file;

struct pacs_spool {
    pthread_mutex_t mu;
    char *dir; /* NULL: memory */
    spool_file *files;
    int n, cap;
    char error[200];
};

vs_status pacs_spool_open(const char *dir, pacs_spool **out, vs_error *err) {
    *out = NULL;
    pacs_spool *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    if (dir && dir[0]) {
        struct stat sb;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            pacs_spool_close(s);
            return VS_FAIL(err, VS_ERR_ENV, "%s: cannot create the spool folder (%s)", dir,
                           strerror(errno));
        }
        if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
            (sb.st_mode & 0777) != 0700) {
            pacs_spool_close(s);
            return VS_FAIL(err, VS_ERR_ENV,
                           "%s: the spool must be a folder of ours with mode 0700 (it holds "
                           "identifiable instances while a series is ingested)",
                           dir);
        }
        int probe = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (probe < 0) {
            pacs_spool_close(s);
            return VS_FAIL(err, VS_ERR_ENV,
                           "%s: the spool's file system cannot hold unnamed files (O_TMPFILE: %s)",
                           dir, strerror(errno));
        }
        close(probe);
        if (!(s->dir = strdup(dir))) {
            pacs_spool_close(s);
            return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        }
    }
    *out = s;
    return VS_OK;
}

void pacs_spool_close(pacs_spool *s) {
    if (!s) return;
    pacs_spool_clear(s);
    free(s->files);
    free(s->dir);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *pacs_spool_add(pacs_spool *s, const char *instance_key, int *token) {
    pthread_mutex_lock(&s->mu);
    const char *path = NULL;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        spool_file *f = realloc(s->files, (size_t)cap * sizeof *f);
        if (!f) {
            snprintf(s->error, sizeof s->error, "out of memory");
            goto done;
        }
        s->files = f;
        s->cap = cap;
    }
    int fd = s->dir ? open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)
                    : memfd_create("vesalius-pacs", MFD_CLOEXEC);
    if (fd < 0) {
        if (!s->error[0])
            snprintf(s->error, sizeof s->error, "cannot make a spool file (%s)", strerror(errno));
        goto done;
    }
    spool_file *f = &s->files[s->n];
    memset(f, 0, sizeof *f);
    f->fd = fd;
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", fd);
    snprintf(f->key, sizeof f->key, "%s", instance_key ? instance_key : "");
    *token = s->n++;
    path = f->path;
done:
    pthread_mutex_unlock(&s->mu);
    return path;
}

void pacs_spool_done(pacs_spool *s, int token, int ok) {
    pthread_mutex_lock(&s->mu);
    if (token >= 0 && token < s->n) {
        spool_file *f = &s->files[token];
        struct stat sb;
        if (ok && fstat(f->fd, &sb) == 0) {
            f->whole = 1;
            f->size = (int64_t)sb.st_size;
        } else {
            close(f->fd);
            f->fd = -1;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* Files taken whole are compacted to the front on each query; callers query between
 * retrievals, when no file is arriving. */
static void compact(pacs_spool *s) {
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (s->files[i].fd >= 0 && s->files[i].whole)
            s->files[k++] = s->files[i];
        else if (s->files[i].fd >= 0)
            close(s->files[i].fd);
    s->n = k;
}

int pacs_spool_count(pacs_spool *s) {
    pthread_mutex_lock(&s->mu);
    compact(s);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

const char *pacs_spool_path(pacs_spool *s, int i) { return s->files[i].path; }
const char *pacs_spool_key(pacs_spool *s, int i) { return s->files[i].key; }
int64_t pacs_spool_size(pacs_spool *s, int i) { return s->files[i].size; }

void pacs_spool_drop(pacs_spool *s, int i) {
    pthread_mutex_lock(&s->mu);
    if (i >= 0 && i < s->n && s->files[i].fd >= 0) {
        close(s->files[i].fd);
        s->files[i].fd = -1;
    }
    pthread_mutex_unlock(&s->mu);
}

uint64_t pacs_spool_bytes(pacs_spool *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t b = 0;
    for (int i = 0; i < s->n; i++)
        if (s->files[i].fd >= 0 && s->files[i].whole) b += (uint64_t)s->files[i].size;
    pthread_mutex_unlock(&s->mu);
    return b;
}

int pacs_spool_find(pacs_spool *s, const char *path) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->files[i].path, path) == 0) return i;
    return -1;
}

const char *pacs_spool_error(pacs_spool *s) { return s->error; }

void pacs_spool_clear(pacs_spool *s) {
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++)
        if (s->files[i].fd >= 0) close(s->files[i].fd);
    s->n = 0;
    s->error[0] = 0;
    pthread_mutex_unlock(&s->mu);
}
