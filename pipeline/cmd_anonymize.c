/* cmd_anonymize.c — `vesalius anonymize SRC... --out DIR --key FILE [options]`: write a
 * de-identified copy of every DICOM file under SRC (same transfer syntax, pixel data
 * untouched) as DIR/<series pseudonym>/<instance pseudonym>.dcm, so that no output name
 * carries patient data. Files are written to temporary names and renamed into place in batches,
 * each after one sync of the filesystem (io/base fsdir.h vs_commit_batch). */
#include "fsdir.h"
#include "cli.h"
#include "deid.h"
#include "filelist.h"
#include "log.h"
#include "progress.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OPT_OUT = 1100, OPT_KEY, OPT_LINKAGE, OPT_BURNED, OPT_FIRST_DEID = 1200 };

typedef struct job {
    deid_ctx *ctx;
    const filelist *files;
    const char *out_dir;
    atomic_int next;
    atomic_int n_written, n_rejected, n_flagged;
    vs_commit_batch *batch; /* the written copies, renamed into place after a sync (fsdir.h) */
    pthread_mutex_t lock;   /* guards err, failed and the progress bar */
    int failed;
    vs_error err;
    progress bar;
    int n_done;
} job;

/* The series folder dir, created once per worker for a run of files of one series: the file
 * list is sorted, so a series' files mostly come one after another; made holds the last
 * folder this worker created (a miss costs one vs_mkdirs, as every file did before). */
static vs_status series_dir(const char *dir, char made[4096], vs_error *err) {
    if (strcmp(dir, made) == 0) return VS_OK;
    vs_status s = vs_mkdirs(dir, 0700, err);
    if (s == VS_OK) snprintf(made, 4096, "%s", dir);
    return s;
}

/* One file: load, de-identify, write to a temporary name, rename. A file that is not DICOM
 * or is rejected is logged and skipped; a write or library failure stops the run. made: the
 * worker's last series folder (series_dir). */
static vs_status do_file(job *jb, int i, char made[4096], vs_error *err) {
    const char *src = jb->files->paths[i];
    dcm_file *f = NULL;
    vs_error e;
    if (dcm_file_load_open(src, NULL, &f, &e) != VS_OK) {
        log_warn("%s: rejected: %s", src, e.msg);
        atomic_fetch_add(&jb->n_rejected, 1);
        return VS_OK;
    }
    deid_file_result res;
    vs_status s = deid_apply(jb->ctx, f, &res, err);
    if (s == VS_OK && !res.accepted) {
        log_warn("%s: rejected: %s", src, res.reason);
        atomic_fetch_add(&jb->n_rejected, 1);
    } else if (s == VS_OK) {
        char dir[4096], tmp[4200], dst[4200];
        snprintf(dir, sizeof dir, "%s/%s", jb->out_dir, res.series_key);
        snprintf(dst, sizeof dst, "%s/%s.dcm", dir, res.instance_key);
        /* per input: two inputs holding one instance must not share a temporary file */
        snprintf(tmp, sizeof tmp, "%s/.%s.%d.tmp", dir, res.instance_key, i);
        s = series_dir(dir, made, err);
        if (s == VS_OK) s = dcm_file_save_copy(f, tmp, NULL, err);
        if (s == VS_OK)
            s = vs_commit_batch_add(jb->batch, tmp, dst, err);
        else
            unlink(tmp);
        if (s == VS_OK) {
            atomic_fetch_add(&jb->n_written, 1);
            if (res.burned_in_flagged) {
                log_warn("%s: accepted although it may carry burned-in text (flagged)", src);
                atomic_fetch_add(&jb->n_flagged, 1);
            }
            if (res.graphics_kept)
                log_info("%s: overlay or curve bitmaps kept under the clean-graphics option", src);
        }
    }
    dcm_file_free(f);
    return s;
}

static void *worker(void *arg) {
    job *jb = arg;
    char made[4096] = "";
    for (;;) {
        pthread_mutex_lock(&jb->lock);
        int stop = jb->failed;
        pthread_mutex_unlock(&jb->lock);
        int i = atomic_fetch_add(&jb->next, 1);
        if (stop || i >= jb->files->n) break;
        vs_error e;
        vs_status s = do_file(jb, i, made, &e);
        pthread_mutex_lock(&jb->lock);
        if (s != VS_OK && !jb->failed) {
            jb->failed = 1;
            jb->err = e;
        }
        progress_update(&jb->bar, (uint64_t)++jb->n_done);
        pthread_mutex_unlock(&jb->lock);
    }
    return NULL;
}

static const char usage_hint[] = "needs SRC..., --out DIR and --key FILE";

int cmd_anonymize(int argc, char **argv) {
    struct option opts[DEID_N_OPTIONS + 5];
    int n_opts = 0;
    opts[n_opts++] = (struct option){"out", required_argument, 0, OPT_OUT};
    opts[n_opts++] = (struct option){"key", required_argument, 0, OPT_KEY};
    opts[n_opts++] = (struct option){"linkage", required_argument, 0, OPT_LINKAGE};
    opts[n_opts++] = (struct option){"accept-burned-in", no_argument, 0, OPT_BURNED};
    for (int o = 0; o < DEID_N_OPTIONS; o++)
        opts[n_opts++] =
            (struct option){deid_option_flag((deid_option)o), no_argument, 0, OPT_FIRST_DEID + o};
    opts[n_opts] = (struct option){0, 0, 0, 0};

    deid_options dopt;
    memset(&dopt, 0, sizeof dopt);
    const char *out_dir = NULL, *key = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == OPT_OUT)
            out_dir = optarg;
        else if (c == OPT_KEY)
            key = optarg;
        else if (c == OPT_LINKAGE)
            dopt.linkage_path = optarg;
        else if (c == OPT_BURNED)
            dopt.accept_burned_in = 1;
        else if (c >= OPT_FIRST_DEID && c < OPT_FIRST_DEID + DEID_N_OPTIONS)
            dopt.option[c - OPT_FIRST_DEID] = 1;
        else
            return optopt > 0 && optopt < 128
                       ? cli_usage_error("anonymize", "option '-%c' is unknown", optopt)
                       : cli_usage_error("anonymize", "option '%s' is unknown or needs a value",
                                         argv[optind - 1]);
    }
    if (!out_dir || !key || optind >= argc) return cli_usage_error("anonymize", "%s", usage_hint);

    vs_error err;
    filelist files = {0};
    deid_ctx *ctx = NULL;
    int rc = VS_EXIT_OK;
    vs_status s = vs_mkdirs(out_dir, 0700, &err);
    if (s == VS_OK) s = filelist_collect(&files, argv + optind, argc - optind, &err);
    if (s == VS_OK) s = deid_open(&dopt, key, &ctx, &err);
    if (s != VS_OK) {
        rc = cli_fail("anonymize", &err);
        goto done;
    }

    job jb = {.ctx = ctx, .files = &files, .out_dir = out_dir};
    if ((s = vs_commit_batch_open(&jb.batch, 128, &err)) != VS_OK) {
        rc = cli_fail("anonymize", &err);
        goto done;
    }
    pthread_mutex_init(&jb.lock, NULL);
    int n_threads = g_cli.threads > 0 ? g_cli.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    if (n_threads > files.n) n_threads = files.n > 0 ? files.n : 1;
    progress_begin(&jb.bar, "anonymize", (uint64_t)files.n, "files");
    pthread_t th[64];
    int started = 0;
    for (; started < n_threads; started++)
        if (pthread_create(&th[started], NULL, worker, &jb) != 0) break;
    if (started == 0) worker(&jb);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    progress_end(&jb.bar);
    pthread_mutex_destroy(&jb.lock);
    vs_error ferr;
    if (!jb.failed && vs_commit_batch_flush(jb.batch, &ferr) != VS_OK) jb.failed = 1, jb.err = ferr;
    vs_commit_batch_close(jb.batch);

    int n_written = atomic_load(&jb.n_written), n_rejected = atomic_load(&jb.n_rejected);
    log_info("%d of %d files de-identified into %s, %d rejected, %d flagged", n_written, files.n,
             out_dir, n_rejected, atomic_load(&jb.n_flagged));
    if (jb.failed)
        rc = cli_fail("anonymize", &jb.err);
    else if (n_rejected > 0)
        rc = VS_EXIT_REJECTS;
done:
    deid_close(ctx);
    filelist_free(&files);
    return rc;
}
