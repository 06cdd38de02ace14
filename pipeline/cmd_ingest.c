/* cmd_ingest.c — `vesalius ingest SRC... --out DIR --key FILE [--study FILE] [options]`.
 *
 * One streaming pass, one series in flight: read and assemble a volume (io/dicom), de-identify
 * its headers in memory (io/deid) to get the pseudonymous keys (and to apply the burned-in
 * policy), preprocess it (io/prep), write it to a shard and commit it to the catalog
 * (io/store). Nothing un-anonymized reaches disk: shards hold voxels, geometry and keys only.
 *
 * A rerun is incremental: a volume whose files are all unchanged in the catalog is not
 * written again; a series that gained files is rebuilt and replaces its older volume.
 * Every file ends used, skipped or rejected (with its reason) in the catalog and in the run
 * summary DIR/ingest-summary.json. Exit 4 when something was rejected, 5 when nothing was new.
 */
#include "cli.h"
#include "deid.h"
#include "dicom.h"
#include "log.h"
#include "prep.h"
#include "progress.h"
#include "store.h"
#include "study.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct ingest_config {
    const char *out, *key, *summary;
    char **sources;
    int n_sources;
    deid_options deid;
    prep_options prep;
    store_options store;
    dcm_options dcm;
    int keep_localizers;
} ingest_config;

typedef struct ingest_run {
    const ingest_config *cfg;
    store *st;
    deid_ctx *deid;
    int n_written, n_unchanged, n_rejected_volumes;
} ingest_run;

static void source_of(const char *path, catalog_source *src) {
    struct stat sb;
    memset(src, 0, sizeof *src);
    src->path = path;
    if (stat(path, &sb) == 0) {
        src->size = (int64_t)sb.st_size;
        src->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    }
}

/* Record every file of a volume with one state and reason. */
static vs_status record_all(ingest_run *r, dcm_series *v, catalog_state state, const char *reason,
                            vs_error *err) {
    for (int i = 0; i < dcm_series_n_files(v); i++) {
        catalog_source src;
        source_of(dcmfile_path(dcm_series_file(v, i)), &src);
        vs_status s = store_record(r->st, &src, state, reason, err);
        if (s != VS_OK) return s;
    }
    return VS_OK;
}

/* 1 when every file of v is already in the catalog, unchanged. */
static vs_status all_unchanged(ingest_run *r, dcm_series *v, int *yes, vs_error *err) {
    *yes = 1;
    for (int i = 0; i < dcm_series_n_files(v) && *yes; i++) {
        catalog_source src;
        catalog_file_status fs;
        source_of(dcmfile_path(dcm_series_file(v, i)), &src);
        vs_status s = store_file_check(r->st, &src, &fs, err);
        if (s != VS_OK) return s;
        *yes = fs == CATALOG_FILE_UNCHANGED;
    }
    return VS_OK;
}

/* De-identify every header of v in memory; fill the volume's keys. *reason is set (and the
 * volume must be rejected) when de-identification refuses a file. */
static vs_status deidentify(ingest_run *r, dcm_series *v, char *reason, size_t cap,
                            catalog_source *srcs, char (*instance_keys)[DEID_KEY_MAX], vs_error *err) {
    volume *vol = dcm_series_volume_mut(v);
    reason[0] = 0;
    for (int i = 0; i < dcm_series_n_files(v); i++) {
        deid_file_result res;
        vs_status s = deid_apply(r->deid, dcm_series_file(v, i), &res, err);
        if (s != VS_OK) return s;
        if (!res.accepted) {
            snprintf(reason, cap, "%s", res.reason);
            return VS_OK;
        }
        if (i == 0) {
            snprintf(vol->patient_key, sizeof vol->patient_key, "%s", res.patient_key);
            snprintf(vol->study_key, sizeof vol->study_key, "%s", res.study_key);
            snprintf(vol->series_key, sizeof vol->series_key, "%s", res.series_key);
        }
        memcpy(instance_keys[i], res.instance_key, DEID_KEY_MAX);
        source_of(dcmfile_path(dcm_series_file(v, i)), &srcs[i]);
        srcs[i].instance_key = instance_keys[i];
    }
    return VS_OK;
}

static vs_status ingest_volume(ingest_run *r, dcm_series *v, vs_error *err) {
    const ingest_config *cfg = r->cfg;
    if (dcm_series_kind(v) == DCM_KIND_LOCALIZER && !cfg->keep_localizers)
        return record_all(r, v, CATALOG_SKIPPED, "localizer image", err);
    int unchanged = 0;
    vs_status s = all_unchanged(r, v, &unchanged, err);
    if (s != VS_OK || unchanged) {
        if (unchanged) r->n_unchanged++;
        return s;
    }
    int n = dcm_series_n_files(v);
    catalog_source *srcs = calloc((size_t)n, sizeof *srcs);
    char(*keys)[DEID_KEY_MAX] = calloc((size_t)n, DEID_KEY_MAX);
    if (!srcs || !keys) {
        free(srcs);
        free(keys);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    char reason[192];
    s = deidentify(r, v, reason, sizeof reason, srcs, keys, err);
    if (s == VS_OK && reason[0]) {
        r->n_rejected_volumes++;
        log_warn("volume %d rejected by de-identification: %s", dcm_series_index(v), reason);
        s = record_all(r, v, CATALOG_REJECTED, reason, err);
        goto done;
    }
    char applied[256] = "none";
    volume *vol = dcm_series_volume_mut(v);
    if (s == VS_OK && !prep_is_none(&cfg->prep)) {
        vs_error perr;
        if (prep_apply(vol, &cfg->prep, applied, sizeof applied, &perr) != VS_OK) {
            r->n_rejected_volumes++;
            log_warn("volume %d rejected: preprocessing failed: %s", dcm_series_index(v), perr.msg);
            snprintf(reason, sizeof reason, "preprocessing failed");
            s = record_all(r, v, CATALOG_REJECTED, reason, err);
            goto done;
        }
    }
    if (s == VS_OK) {
        shard_extra extra = {applied, cfg->deid.option[DEID_OPT_RETAIN_UIDS] ? dcm_series_uid(v) : NULL};
        vs_error perr;
        s = store_put(r->st, vol, &extra, srcs, n, &perr);
        if (s == VS_ERR_FORMAT) { /* the shard writer refused this volume; the rest goes on */
            r->n_rejected_volumes++;
            log_warn("volume %d rejected: %s", dcm_series_index(v), perr.msg);
            s = record_all(r, v, CATALOG_REJECTED, "refused by the shard writer", err);
        } else if (s != VS_OK) {
            *err = perr;
        } else {
            r->n_written++;
        }
    }
done:
    free(srcs);
    free(keys);
    return s;
}

/* Files the reader skipped or rejected go to the catalog too. */
static vs_status record_scan_states(ingest_run *r, dcm_scan *scan, vs_error *err) {
    for (int64_t i = 0; i < dcm_scan_n_files(scan); i++) {
        dcm_state st = dcm_scan_file_state(scan, i);
        if (st != DCM_SKIPPED && st != DCM_REJECTED) continue;
        catalog_source src;
        source_of(dcm_scan_file_path(scan, i), &src);
        catalog_file_status fs;
        vs_status s = store_file_check(r->st, &src, &fs, err);
        if (s != VS_OK) return s;
        if (fs == CATALOG_FILE_UNCHANGED) continue;
        s = store_record(r->st, &src, st == DCM_SKIPPED ? CATALOG_SKIPPED : CATALOG_REJECTED,
                         dcm_scan_file_reason(scan, i), err);
        if (s != VS_OK) return s;
    }
    return VS_OK;
}

typedef struct summary_ctx {
    FILE *f;
    int first;
} summary_ctx;

static int summary_reject(void *ctx, const char *path, const char *state, const char *reason) {
    summary_ctx *c = ctx;
    fprintf(c->f, "%s\n    {\"path\": ", c->first ? "" : ",");
    log_json_string(c->f, path);
    fprintf(c->f, ", \"state\": \"%s\", \"reason\": ", state);
    log_json_string(c->f, reason);
    fputc('}', c->f);
    c->first = 0;
    return 0;
}

static vs_status write_summary(ingest_run *r, dcm_scan *scan, const char *path, vs_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot write the run summary (%s)", tmp, strerror(errno));
    dcm_counts c;
    dcm_scan_counts(scan, &c);
    fprintf(f, "{\n  \"schema\": \"vesalius.ingest-summary/1\",\n");
    fprintf(f, "  \"files\": %lld,\n  \"volumes_written\": %d,\n  \"volumes_unchanged\": %d,\n",
            (long long)c.files, r->n_written, r->n_unchanged);
    fprintf(f, "  \"volumes_rejected\": %d,\n  \"files_skipped\": %lld,\n  \"files_rejected_by_reader\": %lld,\n",
            r->n_rejected_volumes, (long long)c.skipped, (long long)c.rejected);
    fprintf(f, "  \"skipped_or_rejected_this_run\": [");
    summary_ctx sc = {f, 1};
    vs_status s = store_each_reject(r->st, summary_reject, &sc, err);
    fprintf(f, "%s]\n}\n", sc.first ? "" : "\n  ");
    if (fclose(f) != 0 && s == VS_OK) s = VS_FAIL(err, VS_ERR_IO, "%s: cannot write the run summary", tmp);
    if (s == VS_OK && rename(tmp, path) != 0)
        s = VS_FAIL(err, VS_ERR_IO, "%s: cannot write the run summary (%s)", path, strerror(errno));
    return s;
}

static vs_status run_ingest(const ingest_config *cfg, int *exit_code, vs_error *err) {
    ingest_run r = {cfg, NULL, NULL, 0, 0, 0};
    dcm_scan *scan = NULL;
    vs_status s = store_open(cfg->out, &cfg->store, &r.st, err);
    if (s == VS_OK) s = deid_open(&cfg->deid, cfg->key, &r.deid, err);
    if (s == VS_OK) s = dcm_scan_open(&cfg->dcm, &scan, err);
    for (int i = 0; s == VS_OK && i < cfg->n_sources; i++) s = dcm_scan_add(scan, cfg->sources[i], err);
    if (s == VS_OK) s = dcm_scan_group(scan, err);
    progress bar;
    progress_begin(&bar, "ingest", (uint64_t)(s == VS_OK ? dcm_scan_n_groups(scan) : 0), "volumes");
    for (uint64_t done = 0; s == VS_OK;) {
        dcm_series *v = NULL;
        s = dcm_scan_next(scan, &v, err);
        if (s != VS_OK || !v) break;
        s = ingest_volume(&r, v, err);
        dcm_series_free(v);
        progress_update(&bar, ++done);
    }
    progress_end(&bar);
    if (s == VS_OK) s = record_scan_states(&r, scan, err);
    char summary_path[4200];
    snprintf(summary_path, sizeof summary_path, "%s/ingest-summary.json", cfg->out);
    if (s == VS_OK) s = write_summary(&r, scan, cfg->summary ? cfg->summary : summary_path, err);
    store_summary ss = {0};
    if (s == VS_OK) s = store_close(r.st, &ss, err);
    else if (r.st) store_abort(r.st);
    dcm_counts c = {0};
    if (scan) dcm_scan_counts(scan, &c);
    if (s == VS_OK) {
        log_info("%lld files: %d volumes written (%d replaced), %d unchanged, %d rejected; %lld files "
                 "skipped, %lld rejected by the reader; %d shards sealed",
                 (long long)c.files, r.n_written, ss.n_replaced, r.n_unchanged, r.n_rejected_volumes,
                 (long long)c.skipped, (long long)c.rejected, ss.n_shards);
        *exit_code = r.n_rejected_volumes || c.rejected ? VS_EXIT_REJECTS
                     : r.n_written == 0               ? VS_EXIT_NOTHING
                                                      : VS_EXIT_OK;
    }
    dcm_scan_close(scan);
    deid_close(r.deid);
    return s;
}

/* ---- options: study file first, then flags ---------------------------------------------- */
enum {
    OPT_OUT = 1000, OPT_KEY, OPT_STUDY, OPT_SUMMARY, OPT_PREP, OPT_SHARD_MB, OPT_CHUNK,
    OPT_DEFLATE, OPT_MAX_VOXELS, OPT_RESAMPLE, OPT_LOCK, OPT_LOCALIZERS, OPT_LINKAGE,
    OPT_BURNED, OPT_FIRST_DEID
};

static void config_default(ingest_config *c) {
    memset(c, 0, sizeof *c);
    store_options_default(&c->store);
    c->store.shard.threads = g_cli.threads > 0 ? g_cli.threads : 1;
}

/* The study's ingest, deid, preprocess and shards sections. */
static vs_status config_from_study(ingest_config *c, const study *s, vs_error *err) {
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
    for (int o = 0; o < DEID_N_OPTIONS; o++) c->deid.option[o] = (unsigned char)(flags[o] != 0);
    c->deid.accept_burned_in = d->accept_burned_in;
    c->deid.linkage_path = d->linkage;
    if (d->key_file) c->key = d->key_file;
    c->sources = s->ingest.sources;
    c->n_sources = (int)s->ingest.sources_count;
    c->dcm.limits.max_voxels = (uint64_t)s->ingest.max_voxels;
    c->dcm.max_volume_voxels = (uint64_t)s->ingest.max_voxels;
    c->dcm.resample_uneven = s->ingest.missing_slices == STUDY_MISSING_RESAMPLE;
    const study_preprocess *p = &s->preprocess;
    memset(&c->prep, 0, sizeof c->prep);
    if (p->mode == STUDY_PREP_STANDARD) {
        c->prep.reorient = p->reorient;
        memcpy(c->prep.spacing, p->spacing, sizeof c->prep.spacing);
        c->prep.ct_window = 1;
        memcpy(c->prep.window, p->ct_window, sizeof c->prep.window);
        c->prep.n4 = p->n4;
        c->prep.percentile = 1;
        memcpy(c->prep.pct, p->mr_percentiles, sizeof c->prep.pct);
        c->prep.crop = p->foreground_crop;
    }
    memcpy(c->store.shard.chunk, s->shards.chunk, sizeof c->store.shard.chunk);
    c->store.shard.deflate_level = s->shards.deflate;
    c->store.shard.retain_uids = d->retain_uids;
    c->store.shard_max_bytes = (uint64_t)s->shards.max_mb << 20;
    (void)err;
    return VS_OK;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end || s[0] == '-' || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int cmd_ingest(int argc, char **argv) {
    struct option opts[OPT_FIRST_DEID - OPT_OUT + DEID_N_OPTIONS + 1];
    int n = 0;
    static const char *const names[] = {"out", "key", "study", "summary", "preprocess", "shard-mb",
                                        "chunk", "deflate", "max-voxels", "resample", "lock-timeout",
                                        "keep-localizers", "linkage", "accept-burned-in"};
    for (int i = 0; i < OPT_FIRST_DEID - OPT_OUT; i++) {
        int takes = !(OPT_OUT + i == OPT_RESAMPLE || OPT_OUT + i == OPT_LOCALIZERS || OPT_OUT + i == OPT_BURNED);
        opts[n++] = (struct option){names[i], takes ? required_argument : no_argument, 0, OPT_OUT + i};
    }
    for (int o = 0; o < DEID_N_OPTIONS; o++)
        opts[n++] = (struct option){deid_option_flag((deid_option)o), no_argument, 0, OPT_FIRST_DEID + o};
    opts[n] = (struct option){0, 0, 0, 0};

    ingest_config cfg;
    config_default(&cfg);
    /* pass 1: the study file, whose values the flags then override */
    const char *study_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == OPT_STUDY) study_path = optarg;
        if (c == '?') return cli_usage_error("ingest", "option '%s' is unknown or needs a value", argv[optind - 1]);
    }
    study *st = NULL;
    vs_error err = {0};
    if (study_path) {
        if (study_load(study_path, &st, &err) != VS_OK) return cli_fail("ingest", &err);
        config_from_study(&cfg, st, &err);
        if (st->threads > 0 && g_cli.threads == 0) cfg.store.shard.threads = st->threads;
    }
    optind = 0;
    uint64_t u;
    int code = -1;
    while (code < 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_OUT: cfg.out = optarg; break;
        case OPT_KEY: cfg.key = optarg; break;
        case OPT_STUDY: break;
        case OPT_SUMMARY: cfg.summary = optarg; break;
        case OPT_PREP:
            if (prep_parse(optarg, &cfg.prep, &err) != VS_OK) code = cli_usage_error("ingest", "%s", err.msg);
            break;
        case OPT_SHARD_MB:
            if (!parse_u64(optarg, 1, 1u << 20, &u)) code = cli_usage_error("ingest", "--shard-mb wants 1 to 1048576");
            else cfg.store.shard_max_bytes = u << 20;
            break;
        case OPT_CHUNK:
            if (sscanf(optarg, "%d,%d,%d", &cfg.store.shard.chunk[0], &cfg.store.shard.chunk[1],
                       &cfg.store.shard.chunk[2]) != 3 || cfg.store.shard.chunk[0] < 1 ||
                cfg.store.shard.chunk[1] < 1 || cfg.store.shard.chunk[2] < 1)
                code = cli_usage_error("ingest", "--chunk wants S,R,C (three positive numbers)");
            break;
        case OPT_DEFLATE:
            if (!parse_u64(optarg, 0, 9, &u)) code = cli_usage_error("ingest", "--deflate wants 0 to 9");
            else cfg.store.shard.deflate_level = (int)u;
            break;
        case OPT_MAX_VOXELS:
            if (!parse_u64(optarg, 1, UINT64_MAX, &u)) code = cli_usage_error("ingest", "--max-voxels wants a positive number");
            else cfg.dcm.limits.max_voxels = cfg.dcm.max_volume_voxels = u;
            break;
        case OPT_RESAMPLE: cfg.dcm.resample_uneven = 1; break;
        case OPT_LOCK:
            if (!parse_u64(optarg, 0, 86400, &u)) code = cli_usage_error("ingest", "--lock-timeout wants seconds, 0 to 86400");
            else cfg.store.lock_timeout_ms = (int)u * 1000;
            break;
        case OPT_LOCALIZERS: cfg.keep_localizers = 1; break;
        case OPT_LINKAGE: cfg.deid.linkage_path = optarg; break;
        case OPT_BURNED: cfg.deid.accept_burned_in = 1; break;
        default:
            if (c >= OPT_FIRST_DEID && c < OPT_FIRST_DEID + DEID_N_OPTIONS) cfg.deid.option[c - OPT_FIRST_DEID] = 1;
            else code = cli_usage_error("ingest", "option '%s' is unknown or needs a value", argv[optind - 1]);
        }
    }
    if (code < 0 && optind < argc) {
        cfg.sources = argv + optind;
        cfg.n_sources = argc - optind;
    }
    cfg.store.shard.retain_uids = cfg.deid.option[DEID_OPT_RETAIN_UIDS];
    if (code < 0 && (!cfg.out || !cfg.key || cfg.n_sources == 0))
        code = cli_usage_error("ingest", "needs SRC..., --out DIR and --key FILE (or a study file naming them)");
    if (code < 0 && !cfg.out && st) cfg.out = st->output;
    if (code < 0) {
        if (run_ingest(&cfg, &code, &err) != VS_OK) code = cli_fail("ingest", &err);
    }
    study_free(st);
    return code;
}
