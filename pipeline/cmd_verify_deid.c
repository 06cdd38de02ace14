/* cmd_verify_deid.c — `vesalius verify-deid PATH... [--phi-list FILE]`: scan DICOM files,
 * shards, reports, logs and any other file for what de-identification must not leave behind
 * (deid_verify_path). One line per hit on stdout, naming the file, where in it and the kind of
 * hit, never the value. Exit 7 on any hit.
 *
 * The identifier list is compiled once (deid_phi, one pass over each file's bytes whatever its
 * length); --threads threads take files in turn, and each file's lines are printed in file
 * order once it is done, so the output does not depend on the thread count. */
#include "cli.h"
#include "deid.h"
#include "filelist.h"
#include "log.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERIFY_MAX_THREADS 64

/* The lines one file produced (or its error), kept until every earlier file is printed. */
typedef struct file_out {
    char *text; /* hit lines, NULL when none */
    size_t len, cap;
    int n_hits;
    int done, failed;
    vs_error err;
} file_out;

typedef struct verify_job {
    const filelist *files;
    const deid_phi *phi;
    file_out *out;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int next;
} verify_job;

static void keep_hit(const deid_hit *h, void *user) {
    file_out *o = user;
    if (o->failed < 0) return; /* out of memory already: counted, not kept */
    int need = snprintf(NULL, 0, "%s: %s: %s\n", h->path, h->where, h->what);
    if (need < 0) return;
    if (o->len + (size_t)need + 1 > o->cap) {
        size_t cap = (o->cap ? 2 * o->cap : 256) + (size_t)need;
        char *g = realloc(o->text, cap);
        if (!g) {
            o->failed = -1;
            return;
        }
        o->text = g;
        o->cap = cap;
    }
    snprintf(o->text + o->len, o->cap - o->len, "%s: %s: %s\n", h->path, h->where, h->what);
    o->len += (size_t)need;
}

static void *verify_worker(void *arg) {
    verify_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int i = j->next < j->files->n ? j->next++ : -1;
        pthread_mutex_unlock(&j->mu);
        if (i < 0) break;
        file_out *o = &j->out[i];
        if (deid_verify_path(j->files->paths[i], j->phi, keep_hit, o, &o->n_hits, &o->err) != VS_OK)
            o->failed = 1;
        pthread_mutex_lock(&j->mu);
        o->done = 1;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
    }
    return NULL;
}

/* Scan every file with n_threads threads (the caller prints, in file order). */
static void verify_all(const filelist *files, const deid_phi *phi, int n_threads, int *n_hits,
                       int *n_bad) {
    verify_job j = {.files = files, .phi = phi};
    j.out = calloc((size_t)(files->n ? files->n : 1), sizeof *j.out);
    if (!j.out) { /* no room for buffers: one file at a time, printed at once */
        for (int i = 0; i < files->n; i++) {
            file_out o = {0};
            if (deid_verify_path(files->paths[i], phi, keep_hit, &o, &o.n_hits, &o.err) != VS_OK)
                log_error("%s", o.err.msg), (*n_bad)++;
            if (o.text) fwrite(o.text, 1, o.len, stdout);
            *n_hits += o.n_hits;
            free(o.text);
        }
        return;
    }
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    pthread_t th[VERIFY_MAX_THREADS];
    int started = 0;
    while (started < n_threads && started < files->n &&
           pthread_create(&th[started], NULL, verify_worker, &j) == 0)
        started++;
    if (!started) verify_worker(&j); /* the files are scanned all the same */
    for (int i = 0; i < files->n; i++) {
        pthread_mutex_lock(&j.mu);
        while (!j.out[i].done)
            pthread_cond_wait(&j.cv, &j.mu);
        pthread_mutex_unlock(&j.mu);
        file_out *o = &j.out[i];
        if (o->text) fwrite(o->text, 1, o->len, stdout);
        if (o->failed < 0) log_error("%s: out of memory keeping its hits", files->paths[i]);
        if (o->failed > 0) log_error("%s", o->err.msg);
        if (o->failed) (*n_bad)++;
        *n_hits += o->n_hits;
        free(o->text);
        o->text = NULL;
    }
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    free(j.out);
}

int cmd_verify_deid(int argc, char **argv) {
    static const struct option opts[] = {{"phi-list", required_argument, 0, 1000}, {0, 0, 0, 0}};
    const char *phi_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 1000)
            phi_path = optarg;
        else
            return optopt > 0 && optopt < 128
                       ? cli_usage_error("verify-deid", "option '-%c' is unknown", optopt)
                       : cli_usage_error("verify-deid", "option '%s' is unknown or needs a value",
                                         argv[optind - 1]);
    }
    if (optind >= argc) return cli_usage_error("verify-deid", "needs at least one PATH");

    vs_error err;
    deid_phi *phi = NULL;
    filelist files = {0};
    int rc = VS_EXIT_OK, n_hits = 0, n_bad = 0;
    vs_status s = phi_path ? deid_phi_load(phi_path, &phi, &err) : VS_OK;
    if (s == VS_OK) s = filelist_collect(&files, argv + optind, argc - optind, &err);
    if (s != VS_OK) {
        rc = cli_fail("verify-deid", &err);
        goto done;
    }
    int threads = g_cli.threads > 0 ? g_cli.threads : 1;
    verify_all(&files, phi, threads > VERIFY_MAX_THREADS ? VERIFY_MAX_THREADS : threads, &n_hits,
               &n_bad);
    fflush(stdout);
    log_info("%d files scanned for %d listed identifiers, %d hits, %d not readable", files.n,
             deid_phi_count(phi), n_hits, n_bad);
    if (n_hits > 0)
        rc = VS_EXIT_FOUND;
    else if (n_bad > 0)
        rc = VS_EXIT_FAILURE;
done:
    deid_phi_free(phi);
    filelist_free(&files);
    return rc;
}
