/* cmd_verify_deid.c — `vesalius verify-deid PATH... [--phi-list FILE]`: scan DICOM files,
 * shards, reports, logs and any other file for what de-identification must not leave behind
 * (deid_verify_path). One line per hit on stdout, naming the file, where in it and the kind of
 * hit, never the value. Exit 7 on any hit. */
#include "cli.h"
#include "deid.h"
#include "filelist.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct phi_list {
    char **items;
    int n;
} phi_list;

static void phi_free(phi_list *p) {
    for (int i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
}

/* One identifier per line; blank lines skipped; CR/LF stripped. */
static vs_status phi_load(const char *path, phi_list *p, vs_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read the identifier list", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int alloc = 0;
    vs_status s = VS_OK;
    while (s == VS_OK && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0) continue;
        if (p->n == alloc) {
            alloc = alloc ? alloc * 2 : 64;
            char **items = realloc(p->items, (size_t)alloc * sizeof *items);
            if (!items) {
                s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory reading %s", path);
                break;
            }
            p->items = items;
        }
        if (!(p->items[p->n] = strdup(line)))
            s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory reading %s", path);
        else
            p->n++;
    }
    free(line);
    fclose(f);
    return s;
}

static void print_hit(const deid_hit *h, void *user) {
    (void)user;
    printf("%s: %s: %s\n", h->path, h->where, h->what);
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
    phi_list phi = {0};
    filelist files = {0};
    int rc = VS_EXIT_OK, n_hits = 0, n_bad = 0;
    vs_status s = phi_path ? phi_load(phi_path, &phi, &err) : VS_OK;
    if (s == VS_OK) s = filelist_collect(&files, argv + optind, argc - optind, &err);
    if (s != VS_OK) {
        rc = cli_fail("verify-deid", &err);
        goto done;
    }
    for (int i = 0; i < files.n; i++) {
        s = deid_verify_path(files.paths[i], (const char *const *)phi.items, phi.n, print_hit, NULL,
                             &n_hits, &err);
        if (s != VS_OK) {
            log_error("%s", err.msg);
            n_bad++;
        }
    }
    fflush(stdout);
    log_info("%d files scanned, %d hits, %d not readable", files.n, n_hits, n_bad);
    if (n_hits > 0)
        rc = VS_EXIT_FOUND;
    else if (n_bad > 0)
        rc = VS_EXIT_FAILURE;
done:
    phi_free(&phi);
    filelist_free(&files);
    return rc;
}
