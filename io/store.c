/* store.c — shards + catalog + lock + crash recovery for one ingest output folder (store.h). */
#include "store.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A volume written to the open shard, waiting for the seal to be committed. */
typedef struct pending {
    char key[SHARD_KEY_MAX];
    char modality[17];
    char checksum[SHARD_CHECKSUM_MAX];
    int64_t shape[3];
    catalog_source *sources; /* deep copies */
    int n_sources;
} pending;

struct store {
    char out_dir[4096];
    char shard_dir[4200];
    store_options opt;
    int lock_fd;
    catalog *cat;
    int64_t run_id;
    int64_t next_sequence;
    shard_writer *writer; /* the open shard, or NULL */
    int64_t writer_sequence;
    pending *pend;
    int n_pend, cap_pend;
    store_summary sum;
};

void store_options_default(store_options *o) {
    memset(o, 0, sizeof *o);
    shard_options_default(&o->shard);
    o->shard_max_bytes = (uint64_t)1 << 30;
}

static vs_status make_dir(const char *path, vs_error *err) {
    if (mkdir(path, 0700) == 0 || errno == EEXIST) return VS_OK;
    return VS_FAIL(err, VS_ERR_IO, "%s: cannot create the folder: %s", path, strerror(errno));
}

static vs_status take_lock(store *s, vs_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/.lock", s->out_dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot open the lock file: %s", path, strerror(errno));
    for (int waited = 0;; waited += 50) {
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0) return VS_OK;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return VS_FAIL(err, VS_ERR_IO, "%s: cannot lock: %s", path, strerror(errno));
        if (waited >= s->opt.lock_timeout_ms)
            return VS_FAIL(err, VS_ERR_BUSY, "%s: another vesalius run is writing this folder",
                           s->out_dir);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- recovery ------------------------------------------------------------------------ */

typedef struct missing_ctx {
    store *s;
    char **names;
    int n, cap;
} missing_ctx;

static int note_missing(void *ctx, const char *name) {
    missing_ctx *m = ctx;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", m->s->shard_dir, name);
    if (access(path, F_OK) == 0) return 0;
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 8;
        char **g = realloc(m->names, (size_t)cap * sizeof *g);
        if (!g) return 1;
        m->names = g;
        m->cap = cap;
    }
    if (!(m->names[m->n] = strdup(name))) return 1;
    m->n++;
    return 0;
}

/* Catalog shards missing from disk: forget them so their sources are ingested again. */
static vs_status forget_missing(store *s, vs_error *err) {
    missing_ctx m = {s, NULL, 0, 0};
    vs_status st = catalog_each_shard(s->cat, note_missing, &m, err);
    for (int i = 0; i < m.n; i++) {
        if (st == VS_OK) {
            log_warn("shard %s/%s is in the catalog but not on disk; its volumes will be "
                     "ingested again",
                     s->shard_dir, m.names[i]);
            st = catalog_forget_shard(s->cat, m.names[i], err);
            s->sum.n_recovered++;
        }
        free(m.names[i]);
    }
    free(m.names);
    return st;
}

/* Remove .tmp shards, and the one sealed shard a run killed between rename and commit leaves:
 * the catalog does not know it and its sequence is the next one. Any other unknown shard means
 * the catalog is not this folder's (lost or replaced): refuse rather than delete data. */
static vs_status remove_leftovers(store *s, vs_error *err) {
    struct dirent **names = NULL;
    int n = scandir(s->shard_dir, &names, NULL, alphasort);
    if (n < 0) return VS_FAIL(err, VS_ERR_IO, "%s: cannot list the folder", s->shard_dir);
    vs_status st = VS_OK;
    /* Pass 0 checks every unknown sealed shard before pass 1 removes anything. */
    for (int pass = 0; pass < 2 && st == VS_OK; pass++)
        for (int i = 0; i < n && st == VS_OK; i++) {
            const char *name = names[i]->d_name;
            size_t len = strlen(name);
            if (strncmp(name, "shard-", 6) != 0) continue;
            int tmp = len > 7 && strcmp(name + len - 7, ".h5.tmp") == 0;
            int sealed = len > 3 && strcmp(name + len - 3, ".h5") == 0;
            if (!tmp && !sealed) continue;
            int known = 0;
            if (sealed && (st = catalog_shard_known(s->cat, name, &known, err)) != VS_OK) break;
            if (known) continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", s->shard_dir, name);
            unsigned long long seq = 0;
            if (pass == 0) {
                if (sealed && (sscanf(name, "shard-%llu.h5", &seq) != 1 ||
                               seq != (unsigned long long)s->next_sequence))
                    st = VS_FAIL(err, VS_ERR_ENV,
                                 "%s: the catalog does not know this shard; restore "
                                 "%s/catalog.sqlite or move the shards away",
                                 path, s->out_dir);
                continue;
            }
            log_info("removing %s left by an interrupted run", path);
            if (unlink(path) != 0)
                st = VS_FAIL(err, VS_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
            s->sum.n_recovered++;
        }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

/* ---- open / put / close -------------------------------------------------------------- */

vs_status store_open(const char *out_dir, const store_options *opt, store **out, vs_error *err) {
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a store");
    s->lock_fd = -1;
    s->opt = *opt;
    s->opt.run_params = NULL; /* not kept past open */
    snprintf(s->out_dir, sizeof s->out_dir, "%s", out_dir);
    snprintf(s->shard_dir, sizeof s->shard_dir, "%s/shards", out_dir);
    char cat_path[4200];
    snprintf(cat_path, sizeof cat_path, "%s/catalog.sqlite", out_dir);
    vs_status st;
    if ((st = make_dir(s->out_dir, err)) != VS_OK || (st = make_dir(s->shard_dir, err)) != VS_OK ||
        (st = take_lock(s, err)) != VS_OK || (st = catalog_open(cat_path, &s->cat, err)) != VS_OK ||
        (st = forget_missing(s, err)) != VS_OK ||
        (st = catalog_next_sequence(s->cat, &s->next_sequence, err)) != VS_OK ||
        (st = remove_leftovers(s, err)) != VS_OK ||
        (st = catalog_run_begin(s->cat, opt->run_params, &s->run_id, err)) != VS_OK)
        goto fail;
    *out = s;
    return VS_OK;
fail:
    store_abort(s);
    return st;
}

vs_status store_file_check(store *s, const catalog_source *src, catalog_file_status *status,
                           vs_error *err) {
    return catalog_file_check(s->cat, src, status, err);
}

vs_status store_series_sources(store *s, const char *series_key,
                               int (*fn)(void *ctx, const char *path), void *ctx, vs_error *err) {
    return catalog_series_sources(s->cat, series_key, fn, ctx, err);
}

static void free_pending(store *s) {
    for (int i = 0; i < s->n_pend; i++) {
        for (int j = 0; j < s->pend[i].n_sources; j++) {
            free((char *)s->pend[i].sources[j].path);
            free((char *)s->pend[i].sources[j].content_hash);
            free((char *)s->pend[i].sources[j].instance_key);
        }
        free(s->pend[i].sources);
    }
    s->n_pend = 0;
}

/* Seal the open shard and commit its volumes (invariant 2). */
static vs_status seal(store *s, vs_error *err) {
    if (!s->writer) return VS_OK;
    shard_writer *w = s->writer;
    s->writer = NULL;
    if (s->n_pend == 0) { /* every volume offered to it was refused: no empty shards */
        shard_writer_abort(w);
        s->next_sequence = s->writer_sequence;
        return VS_OK;
    }
    vs_status st = shard_writer_seal(w, err);
    if (st != VS_OK) return st;
    catalog_volume *cv = calloc((size_t)(s->n_pend ? s->n_pend : 1), sizeof *cv);
    if (!cv) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the catalog rows");
    for (int i = 0; i < s->n_pend; i++) {
        const pending *p = &s->pend[i];
        cv[i] = (catalog_volume){p->key,      p->modality,
                                 p->checksum, {p->shape[0], p->shape[1], p->shape[2]},
                                 p->sources,  p->n_sources};
    }
    char name[64];
    shard_name((uint64_t)s->writer_sequence, name, sizeof name);
    st = catalog_commit_shard(s->cat, s->run_id, name, s->writer_sequence, cv, s->n_pend, err);
    free(cv);
    if (st == VS_OK) {
        s->sum.n_shards++;
        log_info("sealed %s/%s with %d volumes", s->shard_dir, name, s->n_pend);
    }
    free_pending(s);
    return st;
}

static int pending_has(const store *s, const char *key) {
    for (int i = 0; i < s->n_pend; i++)
        if (strcmp(s->pend[i].key, key) == 0) return 1;
    return 0;
}

static char *dup_or_null(const char *x, int *oom) {
    if (!x) return NULL;
    char *d = strdup(x);
    if (!d) *oom = 1;
    return d;
}

static vs_status add_pending(store *s, const shard_entry *e, const catalog_source *src, int n_src,
                             vs_error *err) {
    if (s->n_pend == s->cap_pend) {
        int cap = s->cap_pend ? 2 * s->cap_pend : 16;
        pending *g = realloc(s->pend, (size_t)cap * sizeof *g);
        if (!g) return VS_FAIL(err, VS_ERR_NOMEM, "cannot grow the pending list");
        s->pend = g;
        s->cap_pend = cap;
    }
    pending *p = &s->pend[s->n_pend];
    memset(p, 0, sizeof *p);
    memcpy(p->key, e->key, sizeof p->key);
    memcpy(p->modality, e->modality, sizeof p->modality);
    memcpy(p->checksum, e->checksum, sizeof p->checksum);
    memcpy(p->shape, e->shape, sizeof p->shape);
    s->n_pend++; /* counted now so free_pending releases partial copies */
    if (n_src > 0 && !(p->sources = calloc((size_t)n_src, sizeof *p->sources)))
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot copy the source list");
    int oom = 0;
    for (int i = 0; i < n_src; i++, p->n_sources++) {
        p->sources[i] = src[i];
        p->sources[i].path = dup_or_null(src[i].path, &oom);
        p->sources[i].content_hash = dup_or_null(src[i].content_hash, &oom);
        p->sources[i].instance_key = dup_or_null(src[i].instance_key, &oom);
    }
    if (oom) return VS_FAIL(err, VS_ERR_NOMEM, "cannot copy the source list");
    return VS_OK;
}

vs_status store_put(store *s, const volume *v, const shard_extra *extra, const catalog_source *src,
                    int n_src, vs_error *err) {
    vs_status st = VS_OK;
    for (int i = 0; i < n_src; i++)
        if (!src[i].path) return VS_FAIL(err, VS_ERR_INTERNAL, "a source has no path");
    /* A series already in the open shard: seal first, so the newer copy lands in a later one. */
    if (s->writer && pending_has(s, v->series_key) && (st = seal(s, err)) != VS_OK) return st;
    if (!s->writer) {
        s->writer_sequence = s->next_sequence++;
        st = shard_writer_open(s->shard_dir, (uint64_t)s->writer_sequence, &s->opt.shard,
                               &s->writer, err);
        if (st != VS_OK) return st;
    }
    shard_entry e;
    if ((st = shard_writer_add(s->writer, v, extra, &e, err)) != VS_OK) return st;
    if ((st = add_pending(s, &e, src, n_src, err)) != VS_OK) return st;
    int live = 0;
    if ((st = catalog_series_live(s->cat, v->series_key, &live, err)) != VS_OK) return st;
    if (live) s->sum.n_replaced++;
    s->sum.n_volumes++;
    if (shard_writer_bytes(s->writer) >= s->opt.shard_max_bytes) st = seal(s, err);
    return st;
}

vs_status store_record(store *s, const catalog_source *src, catalog_state state, const char *reason,
                       vs_error *err) {
    vs_status st = catalog_record_file(s->cat, s->run_id, src, state, reason, err);
    if (st == VS_OK && state == CATALOG_REJECTED) s->sum.n_rejected++;
    if (st == VS_OK && state == CATALOG_SKIPPED) s->sum.n_skipped++;
    return st;
}

vs_status store_each_reject(store *s,
                            int (*fn)(void *ctx, const char *path, const char *state,
                                      const char *reason),
                            void *ctx, vs_error *err) {
    return catalog_each_reject(s->cat, s->run_id, fn, ctx, err);
}

vs_status store_close(store *s, store_summary *summary, vs_error *err) {
    vs_status st = seal(s, err);
    if (st == VS_OK)
        st = catalog_run_end(s->cat, s->run_id, "done", s->sum.n_volumes, s->sum.n_rejected,
                             s->sum.n_skipped, err);
    if (summary) *summary = s->sum;
    store_abort(s);
    return st;
}

void store_abort(store *s) {
    if (!s) return;
    if (s->writer) shard_writer_abort(s->writer);
    free_pending(s);
    free(s->pend);
    catalog_close(s->cat);
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    free(s);
}
