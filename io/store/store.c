/* store.c — shards + catalog + lock + crash recovery for one ingest output folder (store.h). */
#include "store.h"
#include "fsdir.h"
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

static vs_status make_dir(const char *path, vs_error *err) { return vs_mkdirs(path, 0700, err); }

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

/* A growing list of names (shards, series keys). */
typedef struct name_list {
    char **v;
    int n, cap;
} name_list;

static int name_push(void *ctx, const char *name) {
    name_list *l = ctx;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **g = realloc(l->v, (size_t)cap * sizeof *g);
        if (!g) return 1;
        l->v = g;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name))) return 1;
    l->n++;
    return 0;
}

static void name_clear(name_list *l) {
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

static void name_free(name_list *l) {
    name_clear(l);
    free(l->v);
}

typedef struct missing_ctx {
    store *s;
    name_list names;
} missing_ctx;

static int note_missing(void *ctx, const char *name) {
    missing_ctx *m = ctx;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", m->s->shard_dir, name);
    if (access(path, F_OK) == 0) return 0;
    return name_push(&m->names, name);
}

/* Catalog shards missing from disk: forget them so their sources are ingested again. */
static vs_status forget_missing(store *s, vs_error *err) {
    missing_ctx m = {s, {NULL, 0, 0}};
    vs_status st = catalog_each_shard(s->cat, note_missing, &m, err);
    for (int i = 0; i < m.names.n && st == VS_OK; i++) {
        log_warn("shard %s/%s is in the catalog but not on disk; its volumes will be "
                 "ingested again",
                 s->shard_dir, m.names.v[i]);
        st = catalog_forget_shard(s->cat, m.names.v[i], err);
        s->sum.n_recovered++;
    }
    name_free(&m.names);
    return st;
}

static vs_status sync_dir(const char *dir, vs_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        if (fd >= 0) close(fd);
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot sync the folder: %s", dir, strerror(errno));
    }
    close(fd);
    return VS_OK;
}

/* Delete the files of shards a compaction took out of the catalog (a run killed between that
 * commit and the unlink leaves them), then take them off the drop list. */
static vs_status delete_dropped(store *s, vs_error *err) {
    name_list l = {NULL, 0, 0};
    vs_status st = catalog_each_dropped_shard(s->cat, name_push, &l, err);
    for (int i = 0; i < l.n && st == VS_OK; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", s->shard_dir, l.v[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            st = VS_FAIL(err, VS_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        else
            log_info("removed %s (compacted)", path);
    }
    if (st == VS_OK && l.n) st = sync_dir(s->shard_dir, err);
    for (int i = 0; i < l.n && st == VS_OK; i++)
        st = catalog_dropped_shard_gone(s->cat, l.v[i], err);
    name_free(&l);
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
        (st = delete_dropped(s, err)) != VS_OK || (st = remove_leftovers(s, err)) != VS_OK ||
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
                               int (*fn)(void *ctx, const char *key), void *ctx, vs_error *err) {
    return catalog_series_sources(s->cat, series_key, fn, ctx, err);
}

static void free_pending(store *s) {
    for (int i = 0; i < s->n_pend; i++) {
        for (int j = 0; j < s->pend[i].n_sources; j++) {
            free((char *)s->pend[i].sources[j].key);
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
        p->sources[i].key = dup_or_null(src[i].key, &oom);
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
        if (!src[i].key) return VS_FAIL(err, VS_ERR_INTERNAL, "a source has no key");
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
                            int (*fn)(void *ctx, const char *key, const char *state,
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

/* ---- compaction ---------------------------------------------------------------------- */

typedef struct usage_row {
    char name[64];
    int64_t live, all;
} usage_row;

typedef struct usage_list {
    usage_row *rows;
    int n, cap;
    double min_live;
    int64_t live, all;
} usage_list;

/* Keep the shards whose live share is below the threshold (and that hold dead voxels). */
static int note_usage(void *ctx, const char *name, int64_t sequence, int64_t live, int64_t all) {
    (void)sequence;
    usage_list *u = ctx;
    u->live += live;
    u->all += all;
    if (live >= all || (double)live >= u->min_live * (double)all) return 0;
    if (u->n == u->cap) {
        int cap = u->cap ? 2 * u->cap : 16;
        usage_row *g = realloc(u->rows, (size_t)cap * sizeof *g);
        if (!g) return 1;
        u->rows = g;
        u->cap = cap;
    }
    usage_row *r = &u->rows[u->n++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->live = live;
    r->all = all;
    return 0;
}

typedef struct compaction {
    store *s;
    name_list moved, emptied; /* keys in the open shard; old shards its commit empties */
    store_compact_summary sum;
} compaction;

/* Seal the open shard (if any) and commit it with the moves and emptied shards so far. */
static vs_status compact_commit(compaction *c, vs_error *err) {
    store *s = c->s;
    char name[64];
    const char *new_name = NULL;
    if (s->writer) {
        shard_writer *w = s->writer;
        s->writer = NULL;
        vs_status st = shard_writer_seal(w, err);
        if (st != VS_OK) return st;
        shard_name((uint64_t)s->writer_sequence, name, sizeof name);
        new_name = name;
    }
    if (!new_name && c->emptied.n == 0) return VS_OK;
    vs_status st = catalog_commit_compaction(s->cat, s->run_id, new_name, s->writer_sequence,
                                             (const char *const *)c->moved.v, c->moved.n,
                                             (const char *const *)c->emptied.v, c->emptied.n, err);
    if (st != VS_OK) return st;
    if (new_name) {
        c->sum.n_shards_written++;
        s->sum.n_shards++;
        log_info("compaction sealed %s/%s with %d volumes", s->shard_dir, new_name, c->moved.n);
    }
    c->sum.n_volumes_moved += c->moved.n;
    name_clear(&c->moved);
    name_clear(&c->emptied);
    return VS_OK;
}

/* Copy one live volume of the old shard into the open compaction shard (opening it). A volume
 * that does not read sets *unreadable (err says why) and is not an error. */
static vs_status compact_move(compaction *c, shard_src *old, const char *key, int *unreadable,
                              vs_error *err) {
    store *s = c->s;
    volume v;
    char prep[256], uid[128];
    if (shard_src_read(old, key, &v, prep, sizeof prep, uid, sizeof uid, err) != VS_OK) {
        *unreadable = 1;
        return VS_OK;
    }
    vs_status st = VS_OK;
    if (!s->writer) {
        s->writer_sequence = s->next_sequence++;
        shard_options o = s->opt.shard;
        o.retain_uids = 1; /* a volume keeps the UID it had: only stored where one was */
        o.params = "{\"compacted\":true}";
        st = shard_writer_open(s->shard_dir, (uint64_t)s->writer_sequence, &o, &s->writer, err);
    }
    shard_extra x = {prep, uid[0] ? uid : NULL};
    if (st == VS_OK) st = shard_writer_add(s->writer, &v, &x, NULL, err);
    volume_free(&v);
    if (st == VS_OK && name_push(&c->moved, key))
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot list the moved volumes");
    if (st == VS_OK && shard_writer_bytes(s->writer) >= s->opt.shard_max_bytes)
        st = compact_commit(c, err);
    return st;
}

/* Move every live volume of one shard; it is emptied with the commit of its last move. A
 * volume that does not read (corrupt) stays where it is, and so does its shard. */
static vs_status compact_shard(compaction *c, const char *name, vs_error *err) {
    store *s = c->s;
    name_list keys = {0};
    vs_status st = catalog_shard_live_keys(s->cat, name, name_push, &keys, err);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", s->shard_dir, name);
    int kept = 0;
    shard_src *old = NULL;
    vs_error e1;
    if (st == VS_OK && keys.n && shard_src_open(path, &old, &e1) != VS_OK)
        log_warn("compaction leaves a shard where it is: %s", e1.msg), kept = 1;
    for (int i = 0; old && i < keys.n && st == VS_OK; i++) {
        int unreadable = 0;
        vs_error e2;
        st = compact_move(c, old, keys.v[i], &unreadable, &e2);
        if (st != VS_OK)
            *err = e2;
        else if (unreadable)
            log_warn("compaction leaves a volume where it is: %s", e2.msg), kept = 1;
    }
    if (st == VS_OK && !kept && name_push(&c->emptied, name))
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot list the emptied shards");
    if (st == VS_OK) c->sum.n_shards_compacted++;
    shard_src_close(old);
    name_free(&keys);
    return st;
}

vs_status store_compact(store *s, double min_live_share, store_compact_summary *sum,
                        vs_error *err) {
    memset(sum, 0, sizeof *sum);
    if (s->writer || s->n_pend)
        return VS_FAIL(err, VS_ERR_INTERNAL, "compaction needs a store with no open shard");
    usage_list u = {NULL, 0, 0, min_live_share, 0, 0};
    compaction c;
    memset(&c, 0, sizeof c);
    c.s = s;
    vs_status st = catalog_each_shard_usage(s->cat, note_usage, &u, err);
    c.sum.dead_voxels_before = u.all - u.live;
    for (int i = 0; i < u.n && st == VS_OK; i++) {
        log_info("compacting %s/%s: %.0f%% live", s->shard_dir, u.rows[i].name,
                 u.rows[i].all ? 100.0 * (double)u.rows[i].live / (double)u.rows[i].all : 0.0);
        st = compact_shard(&c, u.rows[i].name, err);
    }
    if (st == VS_OK) st = compact_commit(&c, err);
    /* Old files go last, after the commits that took them out; recovery finishes the job. */
    if (st == VS_OK) st = delete_dropped(s, err);
    if (st != VS_OK && s->writer) {
        shard_writer_abort(s->writer);
        s->writer = NULL;
    }
    usage_list after = {NULL, 0, 0, 0.0, 0, 0};
    if (st == VS_OK) st = catalog_each_shard_usage(s->cat, note_usage, &after, err);
    c.sum.dead_voxels_after = after.all - after.live;
    *sum = c.sum;
    free(u.rows);
    free(after.rows);
    name_free(&c.moved);
    name_free(&c.emptied);
    return st;
}
