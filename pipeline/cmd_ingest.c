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
            source_of(r, dcmfile_path(dcm_series_file(v, i)), 1, &it->srcs[i], it->skeys[i], err);
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
        unchanged = path_unchanged(r, dcmfile_path(dcm_series_file(v, i)));
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

/* Read, group and ingest the files under paths[0..n): folders and files given on the command
 * line, or the instances of one series retrieved from a PACS. */
static vs_status ingest_files(ingest_run *r, char *const *paths, int n, vs_error *err) {
    dcm_scan *scan = NULL;
    vs_status s = dcm_scan_open(&r->cfg->dcm, &scan, err);
    for (int i = 0; s == VS_OK && i < n; i++)
        s = dcm_scan_add(scan, paths[i], err);
    if (s == VS_OK) s = dcm_scan_group(scan, err);
    r->scan = scan;
    if (s == VS_OK) s = note_unchanged(r, err);
    if (s == VS_OK) dcm_scan_set_known(scan, volume_known, r);
    progress bar;
    progress_begin(&bar, "ingest", (uint64_t)(s == VS_OK ? dcm_scan_n_groups(scan) : 0), "volumes");
    if (s == VS_OK) s = run_pipeline(r, &bar, err);
    progress_end(&bar);
    if (scan) r->n_unchanged += dcm_scan_n_known(scan);
    if (s == VS_OK) s = record_scan_states(r, scan, err);
    if (scan) {
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
        s = ingest_files(r, (char *const *)paths, n, err);
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

static vs_status run_ingest(const ingest_config *cfg, int *exit_code, vs_error *err) {
    ingest_run r = {.cfg = cfg};
    vs_status s = store_open(cfg->out, &cfg->store, &r.st, err);
    if (s == VS_OK) s = check_settings(cfg, err);
    if (s == VS_OK) s = deid_open(&cfg->deid, cfg->key, &r.deid, err);
    /* folders and files first, in one scan; then each PACS, series by series */
    char **local = s == VS_OK ? calloc((size_t)cfg->n_sources + 1, sizeof *local) : NULL;
    int n_local = 0;
    if (s == VS_OK && !local) s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int i = 0; s == VS_OK && i < cfg->n_sources; i++)
        if (!pacs_url_is(cfg->sources[i])) local[n_local++] = cfg->sources[i];
    if (s == VS_OK && n_local) s = ingest_files(&r, local, n_local, err);
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
    if (code == VS_EXIT_OK && (settings_cli_ensure_key(st, &err) != VS_OK ||
                               settings_cli_resolve(st, ST_INGEST, &cfg.settings, &err) != VS_OK))
        code = cli_fail("ingest", &err);
    if (code == VS_EXIT_OK && run_ingest(&cfg, &code, &err) != VS_OK)
        code = cli_fail("ingest", &err);
    study_kv_free(&cfg.settings);
    study_free(st);
    return code;
}
