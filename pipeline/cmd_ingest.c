/* cmd_ingest.c — `vesalius ingest SRC... --out DIR --key FILE [--study FILE] [options]`.
 *
 * One streaming pass, two series in flight: a producer thread reads and assembles a volume
 * (io/dicom), de-identifies its headers in memory (io/deid) to get the pseudonymous keys (and
 * to apply the burned-in policy) and preprocesses it (io/prep), while the writer compresses
 * the previous one into a shard and commits it to the catalog (io/store). Nothing
 * un-anonymized reaches disk: shards hold voxels, geometry and keys only.
 *
 * A rerun is incremental: a volume whose files are all unchanged in the catalog is not
 * written again; a series that gained files is rebuilt and replaces its older volume.
 * Every file ends used, skipped or rejected (with its reason) in the catalog and in the run
 * summary DIR/ingest-summary.json. Exit 4 when something was rejected, 5 when nothing was new.
 */
#include "cli.h"
#include "deid.h"
#include "dicom.h"
#include "dist.h"
#include "fsdir.h"
#include "log.h"
#include "pacs_cli.h"
#include "parse.h"
#include "prep.h"
#include "progress.h"
#include "store.h"
#include "settings_cli.h"
#include "study.h"

#include <errno.h>
#include <stdint.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct ingest_config {
    const char *out, *key, *summary;
    char **sources;
    int n_sources;
    deid_options deid;
    prep_options prep;
    store_options store;
    dcm_options dcm;
    int keep_localizers;
    pacs_options pacs; /* for pacs:// sources */
    study_kv settings; /* recorded in OUT/settings.json; a folder made with others is refused */
} ingest_config;

/* One series made ready to store: de-identified and preprocessed in memory by the producer,
 * stored or recorded by the one writer. It owns its volume and source list (no DCMTK object),
 * so it can come from another thread, or another process. */
typedef struct ingest_item {
    int index;                   /* the volume's number in the scan, for log lines */
    catalog_state state;         /* CATALOG_USED: store the volume; else record every source */
    char reason[192];            /* why skipped or rejected; never a header value */
    volume vol;                  /* CATALOG_USED only */
    char applied[256];           /* what prep applied */
    char uid[65];                /* SeriesInstanceUID under Retain UIDs, else "" */
    catalog_source *srcs;        /* [n_src] */
    char (*keys)[DEID_KEY_MAX];  /* instance keys, [n_src] */
    char (*skeys)[DEID_KEY_MAX]; /* keyed hashes of the source paths, [n_src] */
    int n_src;
} ingest_item;

typedef struct ingest_run {
    const ingest_config *cfg;
    store *st;
    deid_ctx *deid;
    int n_written, n_unchanged, n_rejected_volumes;
    dcm_counts counts; /* over every scan of the run */
    pacs_pull *pull;   /* the PACS pull whose series is being ingested, or NULL */
    pacs_pull **pulls; /* every pull of the run, closed after the store commits */
    int n_pulls;
    dcm_scan *scan;           /* the scan being ingested */
    unsigned char *unchanged; /* per file of the scan (sorted paths): 1 when catalogued as is */
} ingest_run;

/* The catalog's view of the file at path: its keyed path hash in key (never the path: archives
 * name folders and files after patients), size and time; a file retrieved from a PACS goes by its
 * name pacs://AET@host:port/SERIES_KEY/INSTANCE_KEY, of pseudonyms only (io/pacs/include/pacs.h).
 * `link`: also record path -> key in the linkage table, when one is open (for files that end in
 * the catalog). */
static vs_status source_of(ingest_run *r, const char *path, int link, catalog_source *src,
                           char key[DEID_KEY_MAX], vs_error *err) {
    struct stat sb;
    memset(src, 0, sizeof *src);
    if (r->pull && pacs_pull_source(r->pull, path, &src->key, &src->size)) return VS_OK;
    vs_status s = deid_source_key(r->deid, path, link, key, err);
    src->key = key;
    if (stat(path, &sb) == 0) {
        src->size = (int64_t)sb.st_size;
        src->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    }
    return s;
}

static void item_free(ingest_item *it) {
    if (!it) return;
    volume_free(&it->vol);
    free(it->srcs);
    free(it->keys);
    free(it->skeys);
    free(it);
}

/* ---- the catalog's answers, asked once before the pipeline starts ---------------------- */

/* Whether each scanned file is in the catalog unchanged (the producer must not query the
 * store while the writer commits to it). */
static vs_status note_unchanged(ingest_run *r, vs_error *err) {
    int64_t n = dcm_scan_n_files(r->scan);
    if (!(r->unchanged = calloc((size_t)(n ? n : 1), 1)))
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        catalog_source src;
        catalog_file_status fs;
        char key[DEID_KEY_MAX];
        vs_status s = source_of(r, dcm_scan_file_path(r->scan, i), 0, &src, key, err);
        if (s == VS_OK) s = store_file_check(r->st, &src, &fs, err);
        if (s != VS_OK) return s;
        r->unchanged[i] = fs == CATALOG_FILE_UNCHANGED;
    }
    return VS_OK;
}

/* The note for path (the scan's paths are sorted); 0 for a path the scan does not hold. */
static int path_unchanged(const ingest_run *r, const char *path) {
    int64_t lo = 0, hi = dcm_scan_n_files(r->scan);
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(dcm_scan_file_path(r->scan, mid), path);
        if (c == 0) return r->unchanged[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* dcm_scan's question before it reads a volume's pixels: are all its files in the catalog,
 * unchanged? Then the volume is already in a shard and is not read again. */
static int volume_known(void *ctx, const char *const *paths, int n) {
    const ingest_run *r = ctx;
    for (int i = 0; i < n; i++)
        if (!path_unchanged(r, paths[i])) return 0;
    return 1;
}

/* ---- the producer: read, de-identify, preprocess ---------------------------------------- */

static vs_status item_sources(ingest_run *r, ingest_item *it, dcm_series *v, vs_error *err) {
    it->n_src = dcm_series_n_files(v);
    it->srcs = calloc((size_t)it->n_src, sizeof *it->srcs);
    it->keys = calloc((size_t)it->n_src, DEID_KEY_MAX);
    it->skeys = calloc((size_t)it->n_src, DEID_KEY_MAX);
    if (!it->srcs || !it->keys || !it->skeys) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < it->n_src; i++) { /* every one ends in the catalog: linked */
        vs_status s =
            source_of(r, dcm_file_path(dcm_series_file(v, i)), 1, &it->srcs[i], it->skeys[i], err);
        if (s != VS_OK) return s;
    }
    return VS_OK;
}

/* De-identify every header of v in memory; fill the volume's keys and the instance keys.
 * it->reason is set (and the volume must be rejected) when de-identification refuses a file. */
static vs_status deidentify(ingest_run *r, dcm_series *v, ingest_item *it, vs_error *err) {
    volume *vol = dcm_series_volume_mut(v);
    for (int i = 0; i < dcm_series_n_files(v); i++) {
        deid_file_result res;
        vs_status s = deid_apply(r->deid, dcm_series_file(v, i), &res, err);
        if (s != VS_OK) return s;
        if (!res.accepted) {
            snprintf(it->reason, sizeof it->reason, "%s", res.reason);
            return VS_OK;
        }
        if (i == 0) {
            snprintf(vol->patient_key, sizeof vol->patient_key, "%s", res.patient_key);
            snprintf(vol->study_key, sizeof vol->study_key, "%s", res.study_key);
            snprintf(vol->series_key, sizeof vol->series_key, "%s", res.series_key);
        }
        memcpy(it->keys[i], res.instance_key, DEID_KEY_MAX);
        it->srcs[i].instance_key = it->keys[i];
    }
    return VS_OK;
}

/* One assembled series to an item (NULL with *out when every file is unchanged). Failures
 * here stop the run; what refuses a volume is an item with its reason. */
static vs_status prepare(ingest_run *r, dcm_series *v, ingest_item **out, vs_error *err) {
    const ingest_config *cfg = r->cfg;
    *out = NULL;
    int localizer = dcm_series_kind(v) == DCM_KIND_LOCALIZER && !cfg->keep_localizers;
    int unchanged = !localizer;
    for (int i = 0; i < dcm_series_n_files(v) && unchanged; i++)
        unchanged = path_unchanged(r, dcm_file_path(dcm_series_file(v, i)));
    if (unchanged) {
        r->n_unchanged++;
        return VS_OK;
    }
    ingest_item *it = calloc(1, sizeof *it);
    if (!it) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    it->index = dcm_series_index(v);
    it->state = CATALOG_USED;
    snprintf(it->applied, sizeof it->applied, "none");
    vs_status s = item_sources(r, it, v, err);
    if (s == VS_OK && localizer) {
        it->state = CATALOG_SKIPPED;
        snprintf(it->reason, sizeof it->reason, "localizer image");
    } else if (s == VS_OK) {
        s = deidentify(r, v, it, err);
        if (s == VS_OK && it->reason[0]) {
            it->state = CATALOG_REJECTED;
            log_warn("volume %d rejected by de-identification: %s", it->index, it->reason);
        }
    }
    volume *vol = dcm_series_volume_mut(v);
    if (s == VS_OK && it->state == CATALOG_USED && !prep_is_none(&cfg->prep)) {
        vs_error perr;
        if (prep_apply(vol, &cfg->prep, it->applied, sizeof it->applied, &perr) != VS_OK) {
            it->state = CATALOG_REJECTED;
            log_warn("volume %d rejected: preprocessing failed: %s", it->index, perr.msg);
            snprintf(it->reason, sizeof it->reason, "preprocessing failed");
        }
    }
    if (s == VS_OK && it->state != CATALOG_USED) /* recorded by path alone, as they always were */
        for (int i = 0; i < it->n_src; i++)
            it->srcs[i].instance_key = NULL;
    if (s == VS_OK && it->state == CATALOG_USED) {
        if (cfg->deid.option[DEID_OPT_RETAIN_UIDS])
            snprintf(it->uid, sizeof it->uid, "%s", dcm_series_uid(v));
        it->vol = *vol; /* the item takes the voxels; the series keeps its DCMTK files */
        vol->voxels = NULL;
    }
    if (s != VS_OK) {
        item_free(it);
        return s;
    }
    *out = it;
    return VS_OK;
}

/* ---- the writer: one series at a time into the store ------------------------------------ */

static vs_status record_item(ingest_run *r, const ingest_item *it, catalog_state state,
                             const char *reason, vs_error *err) {
    for (int i = 0; i < it->n_src; i++) {
        vs_status s = store_record(r->st, &it->srcs[i], state, reason, err);
        if (s != VS_OK) return s;
    }
    return VS_OK;
}

static vs_status commit(ingest_run *r, const ingest_item *it, vs_error *err) {
    if (it->state != CATALOG_USED) {
        if (it->state == CATALOG_REJECTED) r->n_rejected_volumes++;
        return record_item(r, it, it->state, it->reason, err);
    }
    shard_extra extra = {it->applied, it->uid[0] ? it->uid : NULL};
    vs_error perr;
    vs_status s = store_put(r->st, &it->vol, &extra, it->srcs, it->n_src, &perr);
    if (s == VS_ERR_FORMAT) { /* the shard writer refused this volume; the rest goes on */
        r->n_rejected_volumes++;
        log_warn("volume %d rejected: %s", it->index, perr.msg);
        return record_item(r, it, CATALOG_REJECTED, "refused by the shard writer", err);
    }
    if (s != VS_OK) {
        *err = perr;
        return s;
    }
    r->n_written++;
    return VS_OK;
}

/* ---- the pipeline: a producer thread hands items to the writer, one slot between them ---- *
 * While the writer compresses and commits series k, the producer reads, de-identifies and
 * preprocesses series k+1: at most two series in memory (the writer's and the one waiting).
 * Items keep the scan's order, so shards and catalog are those of a one-thread run. The
 * producer is the seam for other sources of series (PACS, other ranks): anything that fills
 * the slot in order. */
typedef struct ingest_pipe {
    ingest_run *r;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ingest_item *slot; /* the item handed over, or NULL */
    int done;          /* the producer has finished (st, err say how) */
    int stop;          /* the writer failed: the producer stops at the next item */
    vs_status st;
    vs_error err;
} ingest_pipe;

static void *producer(void *arg) {
    ingest_pipe *p = arg;
    ingest_run *r = p->r;
    vs_status s = VS_OK;
    vs_error err;
    for (;;) {
        dcm_series *v = NULL;
        ingest_item *it = NULL;
        s = dcm_scan_next(r->scan, &v, &err);
        if (s != VS_OK || !v) break;
        s = prepare(r, v, &it, &err);
        dcm_series_free(v);
        if (s != VS_OK) break;
        pthread_mutex_lock(&p->mu);
        while (p->slot && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        int stop = p->stop;
        if (!stop) p->slot = it;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (stop) {
            item_free(it);
            break;
        }
    }
    pthread_mutex_lock(&p->mu);
    p->done = 1;
    p->st = s;
    if (s != VS_OK) p->err = err;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Run the producer in its own thread (in this one if it cannot start) and commit its items. */
static vs_status run_pipeline(ingest_run *r, progress *bar, vs_error *err) {
    ingest_pipe p = {.r = r, .st = VS_OK};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_t th;
    int threaded = pthread_create(&th, NULL, producer, &p) == 0;
    vs_status s = VS_OK;
    uint64_t done = 0;
    if (!threaded) { /* the same items in the same order, without overlap */
        for (;;) {
            dcm_series *v = NULL;
            ingest_item *it = NULL;
            if ((s = dcm_scan_next(r->scan, &v, err)) != VS_OK || !v) break;
            s = prepare(r, v, &it, err);
            dcm_series_free(v);
            if (s == VS_OK && it) s = commit(r, it, err);
            item_free(it);
            progress_update(bar, ++done);
            if (s != VS_OK) break;
        }
    }
    while (threaded) {
        pthread_mutex_lock(&p.mu);
        while (!p.slot && !p.done)
            pthread_cond_wait(&p.cv, &p.mu);
        ingest_item *it = p.slot;
        p.slot = NULL;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        if (!it) break; /* done, nothing left in the slot */
        if (s == VS_OK) s = commit(r, it, err);
        item_free(it);
        progress_update(bar, ++done);
        if (s != VS_OK) {
            pthread_mutex_lock(&p.mu);
            p.stop = 1;
            pthread_cond_broadcast(&p.cv);
            pthread_mutex_unlock(&p.mu);
        }
    }
    if (threaded) {
        pthread_join(th, NULL);
        if (s == VS_OK && p.st != VS_OK) {
            s = p.st;
            *err = p.err;
        }
    }
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    return s;
}

/* ---- across ranks (pipeline/dist.h): rank 0 writes, the other ranks produce ---------------- *
 * Every rank scans and groups the folders alike (io/dicom invariant 3; the digests are
 * compared before any work). Rank 0 takes the groups in the order dcm_scan_next would and
 * hands each to whichever worker is free; the worker assembles, de-identifies and
 * preprocesses it exactly as the producer thread does (prepare) and answers with a head (the
 * item's fields and sizes) and a body (its sources' keys, then the voxels). Rank 0 settles and
 * commits strictly in the order it took the groups, and pulls a body only when its turn has
 * come: it holds one volume at a time, each worker at most its finished one. What crosses is
 * what one process writes: keyed pseudonyms, de-identified voxels and geometry, reasons that
 * name no header value (the SeriesInstanceUID only under Retain UIDs, for the shard). */
enum { TAG_CMD = 41, TAG_HEAD = 42, TAG_BODY = 43 };
enum { CMD_SERIES = 1, CMD_STOP = 2 };
enum { ANS_ITEM = 1, ANS_NONE = 2, ANS_FAILED = 3 }; /* NONE: nothing to store (see head) */

typedef struct wire_cmd {
    int32_t op, group, seq, pad;
} wire_cmd;

typedef struct wire_head {
    int32_t answer, seq, state, n_src;
    dcm_assembly assembly; /* what became of the group (dicom.h) */
    char reason[192], applied[256], uid[65];
    volume vol; /* ANS_ITEM; its voxels pointer is not sent (zero) */
    uint64_t voxel_bytes;
    int32_t err_code, err_line; /* ANS_FAILED: the worker's error */
    char err_msg[VS_ERROR_MSG_MAX];
} wire_head;

typedef struct wire_src {
    int64_t size, mtime_ns;
    int32_t has_instance_key, pad;
    char key[DEID_KEY_MAX], instance_key[DEID_KEY_MAX];
} wire_src;

/* Worker: one group, from assembly to the answer sent. A failure that stops the run is
 * answered too (ANS_FAILED) and returned. */
static vs_status worker_series(ingest_run *r, const wire_cmd *c, vs_error *err) {
    static wire_head h; /* large: kept off the stack */
    memset(&h, 0, sizeof h);
    h.seq = c->seq;
    dcm_series *v = NULL;
    ingest_item *it = NULL;
    vs_status s = dcm_scan_assemble(r->scan, c->group, c->group, &v, &h.assembly, err);
    if (s == VS_OK && v) s = prepare(r, v, &it, err);
    dcm_series_free(v);
    wire_src *ws = NULL;
    if (s == VS_OK && it && !(ws = calloc((size_t)it->n_src + 1, sizeof *ws)))
        s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (s != VS_OK) {
        h.answer = ANS_FAILED;
        h.err_code = (int32_t)s, h.err_line = err->src_line;
        snprintf(h.err_msg, sizeof h.err_msg, "%s", err->msg);
    } else if (!it) {
        h.answer = ANS_NONE;
    } else {
        h.answer = ANS_ITEM;
        h.state = (int32_t)it->state, h.n_src = it->n_src;
        memcpy(h.reason, it->reason, sizeof h.reason);
        memcpy(h.applied, it->applied, sizeof h.applied);
        memcpy(h.uid, it->uid, sizeof h.uid);
        if (it->state == CATALOG_USED) {
            h.vol = it->vol;
            h.vol.voxels = NULL;
            h.voxel_bytes = volume_n_voxels(&it->vol) * vol_dtype_size(it->vol.dtype);
        }
        for (int i = 0; i < it->n_src; i++) {
            ws[i].size = it->srcs[i].size, ws[i].mtime_ns = it->srcs[i].mtime_ns;
            snprintf(ws[i].key, sizeof ws[i].key, "%s", it->srcs[i].key);
            ws[i].has_instance_key = it->srcs[i].instance_key != NULL;
            if (it->srcs[i].instance_key)
                snprintf(ws[i].instance_key, sizeof ws[i].instance_key, "%s",
                         it->srcs[i].instance_key);
        }
    }
    dist_send(0, TAG_HEAD, &h, sizeof h);
    dist_send(0, TAG_BODY, ws, ws ? (size_t)h.n_src * sizeof *ws : 0);
    dist_send(0, TAG_BODY, h.voxel_bytes ? it->vol.voxels : NULL, (size_t)h.voxel_bytes);
    free(ws);
    item_free(it);
    return s;
}

/* Worker: answer rank 0's commands until it says stop. After a failure every later command
 * is answered with the same failure (rank 0 hands out nothing more once it has seen one). */
static vs_status worker_serve(ingest_run *r, vs_error *err) {
    vs_status failed = VS_OK;
    for (;;) {
        wire_cmd c;
        dist_recv(0, TAG_CMD, &c, sizeof c);
        if (c.op == CMD_STOP) return failed;
        if (failed == VS_OK) failed = worker_series(r, &c, err);
    }
}

/* Rank 0's view of one group taken from the scan, until it is settled. */
typedef struct ranks_slot {
    int group, known, worker, have_head;
    wire_head head;
} ranks_slot;

typedef struct ranks_writer {
    ingest_run *r;
    int n_ranks;
    int *busy; /* [n_ranks]: 1 while the worker holds a group */
    ranks_slot *q;
    int n_q, cap_q, next;    /* slots taken; the next to settle */
    int no_more;             /* the scan has no group left */
    int in_flight;           /* workers holding a group */
    vs_status worker_failed; /* a worker answered with a failure: nothing more is handed out */
    int failed_in_order;     /* ...and its turn has come: nothing more is committed */
} ranks_writer;

static vs_status slot_push(ranks_writer *w, int group, int known, int worker, vs_error *err) {
    if (w->n_q == w->cap_q) {
        int cap = w->cap_q ? 2 * w->cap_q : 16;
        ranks_slot *q = realloc(w->q, (size_t)cap * sizeof *q);
        if (!q) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        w->q = q, w->cap_q = cap;
    }
    ranks_slot *sl = &w->q[w->n_q++];
    memset(sl, 0, sizeof *sl);
    sl->group = group, sl->known = known, sl->worker = worker;
    return VS_OK;
}

/* Give every free worker the next group it has to assemble (groups the catalog already holds
 * are queued for settling without one); nothing once a failure has been seen. */
static vs_status hand_out(ranks_writer *w, vs_status s, vs_error *err) {
    for (int k = 1; k < w->n_ranks && s == VS_OK && w->worker_failed == VS_OK; k++) {
        while (!w->busy[k] && !w->no_more && s == VS_OK) {
            int known = 0, g = dcm_scan_take(w->r->scan, &known);
            if (g < 0) {
                w->no_more = 1;
                break;
            }
            s = slot_push(w, g, known, known ? 0 : k, err);
            if (s != VS_OK || known) continue;
            wire_cmd c = {CMD_SERIES, g, w->n_q - 1, 0};
            dist_send(k, TAG_CMD, &c, sizeof c);
            w->busy[k] = 1, w->in_flight++;
        }
    }
    return s;
}

/* A head's sizes, checked before they size a buffer (the worker runs this same binary). */
static int head_valid(const wire_head *h) {
    if (h->answer != ANS_ITEM) return 1;
    if (h->n_src < 0 || h->n_src > (1 << 24)) return 0;
    if (h->state != CATALOG_USED) return h->voxel_bytes == 0;
    const volume *v = &h->vol;
    if (v->n_slices <= 0 || v->n_rows <= 0 || v->n_cols <= 0 || vol_dtype_size(v->dtype) == 0)
        return 0;
    uint64_t n = (uint64_t)v->n_slices;
    if (n > UINT64_MAX / (uint64_t)v->n_rows) return 0;
    n *= (uint64_t)v->n_rows;
    if (n > UINT64_MAX / (uint64_t)v->n_cols) return 0;
    n *= (uint64_t)v->n_cols;
    if (n > UINT64_MAX / vol_dtype_size(v->dtype)) return 0;
    return n * vol_dtype_size(v->dtype) == h->voxel_bytes;
}

/* The body of slot sl (its turn has come): as an item, or NULL for an answer without one. */
static ingest_item *receive_body(const ranks_slot *sl) {
    const wire_head *h = &sl->head;
    if (!head_valid(h)) dist_fail("an ingest answer with inconsistent sizes (a bug)");
    ingest_item *it = NULL;
    wire_src *ws = NULL;
    void *voxels = NULL;
    int ok = 1;
    if (h->answer == ANS_ITEM) {
        it = calloc(1, sizeof *it);
        ws = calloc((size_t)h->n_src + 1, sizeof *ws);
        voxels = malloc(h->voxel_bytes ? (size_t)h->voxel_bytes : 1);
        ok = it && ws && voxels;
        if (ok) {
            it->n_src = h->n_src;
            it->srcs = calloc((size_t)h->n_src + 1, sizeof *it->srcs);
            it->keys = calloc((size_t)h->n_src + 1, DEID_KEY_MAX);
            it->skeys = calloc((size_t)h->n_src + 1, DEID_KEY_MAX);
            ok = it->srcs && it->keys && it->skeys;
        }
    }
    if (!ok) dist_fail("out of memory for a series from a worker");
    dist_recv(sl->worker, TAG_BODY, ws, ws ? (size_t)h->n_src * sizeof *ws : 0);
    dist_recv(sl->worker, TAG_BODY, voxels, it ? (size_t)h->voxel_bytes : 0);
    if (!it) return NULL;
    it->state = (catalog_state)h->state;
    memcpy(it->reason, h->reason, sizeof it->reason);
    memcpy(it->applied, h->applied, sizeof it->applied);
    memcpy(it->uid, h->uid, sizeof it->uid);
    it->reason[sizeof it->reason - 1] = it->applied[sizeof it->applied - 1] =
        it->uid[sizeof it->uid - 1] = '\0';
    for (int i = 0; i < it->n_src; i++) {
        memcpy(it->skeys[i], ws[i].key, DEID_KEY_MAX);
        it->skeys[i][DEID_KEY_MAX - 1] = '\0';
        it->srcs[i].key = it->skeys[i];
        it->srcs[i].size = ws[i].size, it->srcs[i].mtime_ns = ws[i].mtime_ns;
        if (ws[i].has_instance_key) {
            memcpy(it->keys[i], ws[i].instance_key, DEID_KEY_MAX);
            it->keys[i][DEID_KEY_MAX - 1] = '\0';
            it->srcs[i].instance_key = it->keys[i];
        }
    }
    free(ws);
    if (it->state == CATALOG_USED) {
        it->vol = h->vol;
        it->vol.voxels = voxels;
    } else {
        free(voxels);
    }
    return it;
}

/* Settle slot sl in rank 0's scan and commit its item, as run_pipeline's writer does. */
static vs_status settle_slot(ranks_writer *w, ranks_slot *sl, ingest_item *it, vs_error *err) {
    ingest_run *r = w->r;
    dcm_assembly known;
    const dcm_assembly *a = &sl->head.assembly;
    if (sl->known) {
        memset(&known, 0, sizeof known);
        known.outcome = DCM_GROUP_KNOWN;
        a = &known;
    }
    int index = -1;
    vs_status s = dcm_scan_settle(r->scan, sl->group, a, &index, err);
    if (s != VS_OK || sl->known || a->outcome != DCM_GROUP_ASSEMBLED) return s;
    if (!it) { /* assembled, and prepare found every file unchanged */
        r->n_unchanged++;
        return VS_OK;
    }
    it->index = index;
    return commit(r, it, err);
}

/* Rank 0: hand out, settle and commit every group of the scan; then tell the workers to stop.
 * Returns rank 0's own status; a worker's failure stops the hand-out and is the worker's to
 * report (the ranks agree on it next). */
static vs_status ranks_write(ingest_run *r, progress *bar, vs_error *err) {
    ranks_writer w = {.r = r, .n_ranks = dist_size(), .worker_failed = VS_OK};
    vs_status s = VS_OK;
    uint64_t done = 0;
    if (!(w.busy = calloc((size_t)w.n_ranks, sizeof *w.busy)))
        s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (s == VS_OK) s = hand_out(&w, s, err);
    while (w.next < w.n_q || w.in_flight) {
        ranks_slot *sl = w.next < w.n_q ? &w.q[w.next] : NULL;
        if (!sl || (!sl->known && !sl->have_head)) { /* wait for any worker's head */
            static wire_head h;
            int from = dist_recv(DIST_ANY, TAG_HEAD, &h, sizeof h);
            if (h.seq < 0 || h.seq >= w.n_q || w.q[h.seq].worker != from || w.q[h.seq].have_head)
                dist_fail("an ingest answer for a series not handed out (a bug)");
            w.q[h.seq].head = h;
            w.q[h.seq].have_head = 1;
            if (h.answer == ANS_FAILED && w.worker_failed == VS_OK)
                w.worker_failed = (vs_status)h.err_code;
            continue;
        }
        ingest_item *it = NULL;
        if (!sl->known) { /* its turn: the body, then the worker is free for the next group */
            it = receive_body(sl);
            w.busy[sl->worker] = 0, w.in_flight--;
            s = hand_out(&w, s, err);
            sl = &w.q[w.next]; /* hand_out may have moved the queue */
        }
        /* in order up to a worker's failure, as one process commits up to its own */
        if (!sl->known && sl->head.answer == ANS_FAILED) w.failed_in_order = 1;
        if (s == VS_OK && !w.failed_in_order) {
            s = settle_slot(&w, sl, it, err);
            if (!sl->known && sl->head.assembly.outcome == DCM_GROUP_ASSEMBLED)
                progress_update(bar, ++done);
        }
        item_free(it);
        w.next++;
        if (s != VS_OK) w.no_more = 1;
    }
    for (int k = 1; k < w.n_ranks; k++) {
        wire_cmd c = {CMD_STOP, -1, -1, 0};
        dist_send(k, TAG_CMD, &c, sizeof c);
    }
    free(w.q);
    free(w.busy);
    return s;
}

/* Files the reader skipped or rejected go to the catalog too. */
static vs_status record_scan_states(ingest_run *r, dcm_scan *scan, vs_error *err) {
    for (int64_t i = 0; i < dcm_scan_n_files(scan); i++) {
        dcm_state st = dcm_scan_file_state(scan, i);
        if (st != DCM_SKIPPED && st != DCM_REJECTED) continue;
        catalog_source src;
        char key[DEID_KEY_MAX];
        catalog_file_status fs;
        vs_status s = source_of(r, dcm_scan_file_path(scan, i), 0, &src, key, err);
        if (s == VS_OK) s = store_file_check(r->st, &src, &fs, err);
        if (s != VS_OK) return s;
        if (fs == CATALOG_FILE_UNCHANGED) continue;
        s = source_of(r, dcm_scan_file_path(scan, i), 1, &src, key, err);
        const char *path = dcm_scan_file_path(scan, i), *reason = dcm_scan_file_reason(scan, i);
        size_t n = strlen(path);
        if (src.key != key && strncmp(reason, path, n) == 0 && reason[n] == ':' && reason[n + 1])
            reason += n + 2; /* "/proc/self/fd/N: why" of a retrieved file: its name says where */
        if (s == VS_OK)
            s = store_record(r->st, &src, st == DCM_SKIPPED ? CATALOG_SKIPPED : CATALOG_REJECTED,
                             reason, err);
        if (s != VS_OK) return s;
    }
    return VS_OK;
}

typedef struct summary_ctx {
    FILE *f;
    int first;
} summary_ctx;

static int summary_reject(void *ctx, const char *key, const char *state, const char *reason) {
    summary_ctx *c = ctx;
    fprintf(c->f, "%s\n    {\"source\": ", c->first ? "" : ",");
    log_json_string(c->f, key);
    fprintf(c->f, ", \"state\": \"%s\", \"reason\": ", state);
    log_json_string(c->f, reason);
    fputc('}', c->f);
    c->first = 0;
    return 0;
}

static vs_status write_summary(ingest_run *r, const char *path, vs_error *err) {
    vs_atomic a;
    vs_status s = vs_atomic_open(&a, path, err);
    if (s != VS_OK) return s;
    FILE *f = a.f;
    const dcm_counts c = r->counts;
    fprintf(f, "{\n  \"schema\": \"vesalius.ingest-summary/2\",\n");
    fprintf(f, "  \"files\": %lld,\n  \"volumes_written\": %d,\n  \"volumes_unchanged\": %d,\n",
            (long long)c.files, r->n_written, r->n_unchanged);
    fprintf(f,
            "  \"volumes_rejected\": %d,\n  \"files_skipped\": %lld,\n  "
            "\"files_rejected_by_reader\": %lld,\n",
            r->n_rejected_volumes, (long long)c.skipped, (long long)c.rejected);
    fprintf(f, "  \"skipped_or_rejected_this_run\": [");
    summary_ctx sc = {f, 1};
    s = store_each_reject(r->st, summary_reject, &sc, err);
    fprintf(f, "%s]", sc.first ? "" : "\n  ");
    if (r->n_pulls) { /* one object per PACS source (io/pacs/include/pacs.h) */
        fprintf(f, ",\n  \"pacs\": [");
        for (int i = 0; i < r->n_pulls; i++) {
            fprintf(f, "%s\n    ", i ? "," : "");
            pacs_pull_write_json(r->pulls[i], f, "    ");
        }
        fprintf(f, "\n  ]");
    }
    fprintf(f, "\n}\n");
    if (s != VS_OK) {
        vs_atomic_abort(&a);
        return s;
    }
    return vs_atomic_commit(&a, err);
}

/* Shards made with other settings must not be mixed with these: a folder whose settings.json
 * differs is refused, naming what differs; a new folder gets this run's settings before any
 * shard (under the store's lock). */
static vs_status check_settings(const ingest_config *cfg, vs_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/settings.json", cfg->out);
    if (access(path, F_OK) != 0)
        return settings_cli_record(&cfg->settings, "ingest", cfg->out, err);
    study_kv old;
    vs_status s = study_kv_read(path, "settings", &old, err);
    if (s != VS_OK) return s;
    char diff[1024];
    if (study_kv_diff(&old, &cfg->settings, diff, sizeof diff))
        s = VS_FAIL(err, VS_ERR_CONFIG,
                    "%s holds shards made with other settings (%s): choose another --out, or "
                    "remove the folder to ingest everything again",
                    cfg->out, diff);
    study_kv_free(&old);
    return s;
}

static void add_counts(dcm_counts *sum, const dcm_counts *c) {
    sum->files += c->files;
    sum->used += c->used;
    sum->skipped += c->skipped;
    sum->rejected += c->rejected;
    sum->pending += c->pending;
    sum->volumes += c->volumes;
}

/* Across ranks the scan's first steps are agreed one by one: every rank grouped the same files
 * alike, and rank 0's catalog answers (which files are unchanged) reached every worker. */
static vs_status ranks_scan_begin(ingest_run *r, vs_status s, vs_error *err) {
    const vs_group *g = dist_group();
    s = vs_group_agree(g, s, err);
    uint64_t mine = s == VS_OK ? dcm_scan_digest(r->scan) : 0, first = mine;
    if (s == VS_OK) g->bcast(g->ctx, &first, sizeof first);
    if (s == VS_OK && mine != first)
        s = VS_FAIL(err, VS_ERR_ENV,
                    "this rank's scan of the sources differs from rank 0's (files changed while "
                    "the ranks read them, or the nodes see different folders)");
    s = vs_group_agree(g, s, err);
    int64_t n = s == VS_OK ? dcm_scan_n_files(r->scan) : 0;
    if (s == VS_OK && g->rank == 0) s = note_unchanged(r, err);
    if (s == VS_OK && g->rank > 0 && !(r->unchanged = calloc((size_t)(n ? n : 1), 1)))
        s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    s = vs_group_agree(g, s, err);
    if (s == VS_OK && n) g->bcast(g->ctx, r->unchanged, (size_t)n);
    return s;
}

/* Read, group and ingest the files under paths[0..n): folders and files given on the command
 * line, or the instances of one series retrieved from a PACS. `across`: every rank runs this
 * with the same paths; rank 0 writes what the other ranks produce. */
static vs_status ingest_files(ingest_run *r, char *const *paths, int n, int across, vs_error *err) {
    const vs_group *g = dist_group();
    int worker = across && g->rank > 0;
    dcm_scan *scan = NULL;
    vs_status s = dcm_scan_open(&r->cfg->dcm, &scan, err);
    for (int i = 0; s == VS_OK && i < n; i++)
        s = dcm_scan_add(scan, paths[i], err);
    if (s == VS_OK) s = dcm_scan_group(scan, err);
    r->scan = scan;
    if (across)
        s = ranks_scan_begin(r, s, err);
    else if (s == VS_OK)
        s = note_unchanged(r, err);
    if (s == VS_OK && !worker) dcm_scan_set_known(scan, volume_known, r);
    progress bar;
    progress_begin(&bar, "ingest", (uint64_t)(s == VS_OK && !worker ? dcm_scan_n_groups(scan) : 0),
                   "volumes");
    if (s == VS_OK)
        s = worker   ? worker_serve(r, err)
            : across ? ranks_write(r, &bar, err)
                     : run_pipeline(r, &bar, err);
    if (across) s = vs_group_agree(g, s, err);
    progress_end(&bar);
    if (scan && !worker) r->n_unchanged += dcm_scan_n_known(scan);
    if (s == VS_OK && !worker) s = record_scan_states(r, scan, err);
    if (scan && !worker) {
        dcm_counts c;
        dcm_scan_counts(scan, &c);
        add_counts(&r->counts, &c);
    }
    dcm_scan_close(scan);
    r->scan = NULL;
    free(r->unchanged);
    r->unchanged = NULL;
    return s;
}

static void uid_key(void *ctx, const char *uid, char out[65]) { deid_uid_key(ctx, uid, out); }

/* A PACS source: each series it retrieves whole goes through ingest_files like a folder. */
static vs_status ingest_pacs(ingest_run *r, const char *url_text, vs_error *err) {
    pacs_url url;
    vs_status s = pacs_url_parse(url_text, &url, err);
    pacs_pull **v = s == VS_OK ? realloc(r->pulls, (size_t)(r->n_pulls + 1) * sizeof *v) : NULL;
    if (s == VS_OK && !v) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (s != VS_OK) return s;
    r->pulls = v;
    char catalog[4200];
    snprintf(catalog, sizeof catalog, "%s/catalog.sqlite", r->cfg->out);
    s = pacs_pull_open(&url, &r->cfg->pacs, catalog, uid_key, r->deid, &r->pull, err);
    if (s != VS_OK) return s;
    r->pulls[r->n_pulls++] = r->pull;
    for (;;) {
        int n = 0;
        const char *const *paths = NULL;
        s = pacs_pull_next(r->pull, &n, &paths, err);
        if (s != VS_OK || n == 0) break;
        s = ingest_files(r, (char *const *)paths, n, 0, err);
        if (s == VS_OK) s = pacs_pull_series_done(r->pull, err);
        if (s != VS_OK) break;
    }
    r->pull = NULL;
    return s;
}

/* 1 when a pull left something for a later run to retry (partial series, unlisted windows). */
static int pulls_incomplete(const ingest_run *r) {
    for (int i = 0; i < r->n_pulls; i++) {
        pacs_pull_summary ps;
        pacs_pull_summary_get(r->pulls[i], &ps);
        if (ps.series_partial || ps.windows_unlisted || ps.studies_unlisted) return 1;
    }
    return 0;
}

/* The folders and files among the sources (PACS URLs are not), into *local (NULL: none). */
static vs_status local_sources(const ingest_config *cfg, char ***local, int *n_local,
                               vs_error *err) {
    *local = calloc((size_t)cfg->n_sources + 1, sizeof **local);
    *n_local = 0;
    if (!*local) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < cfg->n_sources; i++)
        if (!pacs_url_is(cfg->sources[i])) (*local)[(*n_local)++] = cfg->sources[i];
    return VS_OK;
}

/* A worker rank's part of run_ingest (rank 0's below): the same agreements in the same order;
 * between them it produces what rank 0 hands it from the folders' scan. PACS sources are rank
 * 0's alone (their files are in its memory or spool). */
static vs_status run_worker(const ingest_config *cfg, vs_error *err) {
    const vs_group *g = dist_group();
    ingest_run r = {.cfg = cfg};
    char **local = NULL;
    int n_local = 0;
    vs_status s = local_sources(cfg, &local, &n_local, err);
    s = vs_group_agree(g, s, err); /* rank 0 opened the store and the key */
    if (s == VS_OK) s = deid_open(&cfg->deid, cfg->key, &r.deid, err);
    s = vs_group_agree(g, s, err);
    if (s == VS_OK && n_local) s = ingest_files(&r, local, n_local, 1, err);
    free(local);
    deid_close(r.deid);
    return vs_group_agree(g, s, err); /* rank 0's end of the run */
}

static vs_status run_ingest(const ingest_config *cfg, int *exit_code, vs_error *err) {
    const vs_group *g = dist_group();
    if (g->size > 1 && g->rank > 0) {
        vs_status s = run_worker(cfg, err);
        int32_t code = 0;
        if (s == VS_OK) g->bcast(g->ctx, &code, sizeof code);
        *exit_code = code;
        return s;
    }
    ingest_run r = {.cfg = cfg};
    char **local = NULL;
    int n_local = 0;
    vs_status s = local_sources(cfg, &local, &n_local, err);
    if (s == VS_OK) s = store_open(cfg->out, &cfg->store, &r.st, err);
    if (s == VS_OK) s = check_settings(cfg, err);
    if (s == VS_OK) s = deid_open(&cfg->deid, cfg->key, &r.deid, err);
    /* the workers open the key only now: rank 0 may have just created it */
    s = vs_group_agree(g, s, err);
    s = vs_group_agree(g, s, err); /* the workers' keys */
    /* folders and files first, in one scan (across the ranks); then each PACS, series by
     * series, on this rank alone */
    if (s == VS_OK && n_local) s = ingest_files(&r, local, n_local, g->size > 1, err);
    free(local);
    /* A peer that fails mid-run does not lose what was ingested: the store still commits it,
     * and the peer's error is the run's result. */
    vs_status peer = VS_OK;
    vs_error peer_err;
    for (int i = 0; s == VS_OK && i < cfg->n_sources; i++) {
        if (!pacs_url_is(cfg->sources[i])) continue;
        vs_error e;
        vs_status ps = ingest_pacs(&r, cfg->sources[i], &e);
        if (ps == VS_ERR_PEER) { /* the next PACS may answer; the first error is the result */
            if (peer == VS_OK)
                peer_err = e;
            else
                log_error("%s", e.msg);
            peer = ps;
        } else if (ps != VS_OK) {
            s = ps;
            *err = e;
        }
    }
    char summary_path[4200];
    snprintf(summary_path, sizeof summary_path, "%s/ingest-summary.json", cfg->out);
    if (s == VS_OK) s = write_summary(&r, cfg->summary ? cfg->summary : summary_path, err);
    store_summary ss = {0};
    if (s == VS_OK)
        s = store_close(r.st, &ss, err);
    else if (r.st)
        store_abort(r.st);
    int incomplete = pulls_incomplete(&r);
    for (int i = 0; i < r.n_pulls; i++) {
        vs_error perr;
        if (pacs_pull_close(r.pulls[i], s == VS_OK && peer == VS_OK, &perr) != VS_OK &&
            s == VS_OK) {
            s = perr.code;
            *err = perr;
        }
    }
    free(r.pulls);
    const dcm_counts c = r.counts;
    if (s == VS_OK) {
        log_info(
            "%lld files: %d volumes written (%d replaced), %d unchanged, %d rejected; %lld files "
            "skipped, %lld rejected by the reader; %d shards sealed",
            (long long)c.files, r.n_written, ss.n_replaced, r.n_unchanged, r.n_rejected_volumes,
            (long long)c.skipped, (long long)c.rejected, ss.n_shards);
        *exit_code = r.n_rejected_volumes || c.rejected || incomplete ? VS_EXIT_REJECTS
                     : r.n_written == 0                               ? VS_EXIT_NOTHING
                                                                      : VS_EXIT_OK;
    }
    if (s == VS_OK && peer != VS_OK) {
        *err = peer_err;
        s = peer;
    }
    deid_close(r.deid);
    s = vs_group_agree(g, s, err); /* every rank leaves with rank 0's result and exit code */
    if (s == VS_OK && g->size > 1) {
        int32_t code = *exit_code;
        g->bcast(g->ctx, &code, sizeof code);
        *exit_code = code;
    }
    return s;
}

/* ---- options: study file first, then flags (pipeline/settings_cli.h) ---------------------- */

/* The ingest stage's configuration from the study's deid, ingest, preprocess and shards
 * settings. */
static void ingest_config_from(ingest_config *c, const study *s) {
    const study_deid *d = &s->deid;
    const int flags[DEID_N_OPTIONS] = {
        [DEID_OPT_RETAIN_SAFE_PRIVATE] = d->retain_safe_private,
        [DEID_OPT_RETAIN_UIDS] = d->retain_uids,
        [DEID_OPT_RETAIN_DEVICE_ID] = d->retain_device_identity,
        [DEID_OPT_RETAIN_INSTITUTION_ID] = d->retain_institution_identity,
        [DEID_OPT_RETAIN_PATIENT_CHARS] = d->retain_patient_characteristics,
        [DEID_OPT_RETAIN_FULL_DATES] = d->retain_long_full_dates,
        [DEID_OPT_RETAIN_MODIFIED_DATES] = d->retain_long_modified_dates,
        [DEID_OPT_CLEAN_DESCRIPTORS] = d->clean_descriptors,
        [DEID_OPT_CLEAN_STRUCTURED_CONTENT] = d->clean_structured_content,
        [DEID_OPT_CLEAN_GRAPHICS] = d->clean_graphics,
    };
    for (int o = 0; o < DEID_N_OPTIONS; o++)
        c->deid.option[o] = (unsigned char)(flags[o] != 0);
    c->deid.accept_burned_in = d->accept_burned_in;
    c->deid.linkage_path = d->linkage;
    c->key = d->key_file;
    c->sources = s->ingest.sources.v;
    c->n_sources = (int)s->ingest.sources.n;
    c->dcm.limits.max_voxels = (uint64_t)s->ingest.max_voxels;
    c->dcm.max_volume_voxels = (uint64_t)s->ingest.max_voxels;
    c->dcm.resample_uneven = s->ingest.missing_slices == STUDY_MISSING_RESAMPLE;
    c->keep_localizers = s->ingest.keep_localizers;
    const study_preprocess *p = &s->preprocess;
    memset(&c->prep, 0, sizeof c->prep);
    if (p->mode == STUDY_PREP_STANDARD) {
        c->prep.reorient = p->reorient;
        memcpy(c->prep.spacing, p->spacing, sizeof c->prep.spacing);
        c->prep.nearest = p->interpolation == STUDY_INTERP_NEAREST;
        c->prep.ct_window = 1;
        memcpy(c->prep.window, p->ct_window, sizeof c->prep.window);
        c->prep.n4 = p->n4;
        c->prep.percentile = 1;
        memcpy(c->prep.pct, p->mr_percentiles, sizeof c->prep.pct);
        c->prep.crop = p->foreground_crop;
        c->prep.crop_threshold = p->crop_threshold;
        c->prep.crop_margin = p->crop_margin;
    }
    store_options_default(&c->store);
    memcpy(c->store.shard.chunk, s->shards.chunk, sizeof c->store.shard.chunk);
    c->store.shard.deflate_level = s->shards.deflate;
    c->store.shard.retain_uids = d->retain_uids;
    c->store.shard_max_bytes = (uint64_t)s->shards.max_mb << 20;
    /* threads change speed only: not a setting of this stage */
    c->store.shard.threads = settings_cli_threads(s);
}

enum { OPT_OUT = 1000, OPT_SUMMARY, OPT_LOCK };
static const struct option ingest_own[] = {
    {"out", required_argument, 0, OPT_OUT},
    {"summary", required_argument, 0, OPT_SUMMARY},
    {"lock-timeout", required_argument, 0, OPT_LOCK},
    {0, 0, 0, 0},
};

typedef struct ingest_args {
    const char *out, *summary;
    int lock_timeout_ms;
} ingest_args;

static int own_option(void *ctx, int id, const char *arg, study *s) {
    (void)s;
    ingest_args *a = ctx;
    uint64_t u;
    switch (id) {
    case OPT_OUT: a->out = arg; return 0;
    case OPT_SUMMARY: a->summary = arg; return 0;
    case OPT_LOCK:
        if (!vs_parse_u64(arg, 0, 86400, &u))
            return cli_usage_error("ingest", "--lock-timeout wants seconds, 0 to 86400");
        a->lock_timeout_ms = (int)u * 1000;
        return 0;
    }
    return cli_usage_error("ingest", "unknown option");
}

int cmd_ingest(int argc, char **argv) {
    ingest_args a = {NULL, NULL, 0};
    study *st = NULL;
    int first = 0;
    int code = settings_cli_parse("ingest", ST_INGEST | ST_PACS, ingest_own, own_option, &a, argc,
                                  argv, &st, &first);
    if (code != VS_EXIT_OK) return code;
    vs_error err = {0};
    char out_buf[4200];
    if (first < argc &&
        study_set_list(st, &study_settings[STUDY_KEY_ingest_sources],
                       (const char *const *)argv + first, argc - first, &err) != VS_OK)
        code = cli_fail("ingest", &err);
    if (!a.out && st->path) { /* the study's folder, unless given */
        snprintf(out_buf, sizeof out_buf, "%s/ingest", st->top.output);
        a.out = out_buf;
    }
    ingest_config cfg;
    memset(&cfg, 0, sizeof cfg);
    ingest_config_from(&cfg, st);
    cfg.out = a.out, cfg.summary = a.summary;
    cfg.store.lock_timeout_ms = a.lock_timeout_ms;
    if (code == VS_EXIT_OK && (!cfg.out || !cfg.key || cfg.n_sources == 0))
        code = cli_usage_error(
            "ingest", "needs SRC..., --out DIR and --key FILE (or a study file naming them)");
    for (int i = 0; code == VS_EXIT_OK && i < cfg.n_sources; i++) { /* a bad PACS URL: usage */
        pacs_url u;
        if (pacs_url_is(cfg.sources[i]) && pacs_url_parse(cfg.sources[i], &u, &err) != VS_OK)
            code = cli_usage_error("ingest", "%s", err.msg);
    }
    if (code == VS_EXIT_OK && pacs_cli_options(st, &cfg.pacs, &err) != VS_OK)
        code = cli_usage_error("ingest", "%s", err.msg);
    cfg.dcm.threads = cfg.store.shard.threads; /* decoding uses the writer's thread count */
    if (code == VS_EXIT_OK) { /* a new key is made once, by rank 0, before any rank reads it */
        const vs_group *g = dist_group();
        vs_status s = g->rank == 0 ? settings_cli_ensure_key(st, &err) : VS_OK;
        s = vs_group_agree(g, s, &err);
        if (s == VS_OK) s = settings_cli_resolve(st, ST_INGEST, &cfg.settings, &err);
        if (vs_group_agree(g, s, &err) != VS_OK) code = cli_fail("ingest", &err);
    }
    if (code == VS_EXIT_OK && run_ingest(&cfg, &code, &err) != VS_OK)
        code = cli_fail("ingest", &err);
    study_kv_free(&cfg.settings);
    study_free(st);
    return code;
}
