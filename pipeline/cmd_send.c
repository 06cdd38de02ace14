/* cmd_send.c — `vesalius send PATH... pacs://AET@host:port [--study FILE] [options]`: C-STORE
 * de-identified DICOM files (e.g. `vesalius anonymize` output) to a research PACS.
 *
 * Every file is checked first as verify-deid checks it (deid_verify_file: attributes the
 * profile removes, private elements, UIDs that are not pseudonyms, PatientIdentityRemoved):
 * a file with any finding is refused and never sent, named with its number of findings (never
 * a value). Files that are not DICOM are skipped. Exit 7 when a file was refused, 4 when the
 * peer did not store a file, 8 when it cannot be reached or refuses us, 0 otherwise. */
#include "cli.h"
#include "deid.h"
#include "filelist.h"
#include "log.h"
#include "pacs_cli.h"
#include "settings_cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void count_hit(const deid_hit *h, void *user) {
    (void)h;
    (void)user; /* deid_verify_file counts; the finding's place is not needed here */
}

static int no_own_option(void *ctx, int id, const char *arg, study *s) {
    (void)ctx, (void)id, (void)arg, (void)s;
    return cli_usage_error("send", "unknown option");
}

int cmd_send(int argc, char **argv) {
    study *st = NULL;
    int optind_first = 0;
    int code = settings_cli_parse("send", ST_PACS, NULL, no_own_option, NULL, argc, argv, &st,
                                  &optind_first);
    if (code != VS_EXIT_OK) return code;
    pacs_options opt;
    vs_error err = {0};
    if (pacs_cli_options(st, &opt, &err) != VS_OK) {
        study_free(st);
        return cli_usage_error("send", "%s", err.msg);
    }
    study_free(st);
    optind = optind_first;
    pacs_url url;
    const char *url_text = NULL;
    char **paths = calloc((size_t)argc + 1, sizeof *paths);
    int n_paths = 0;
    if (!paths) return cli_usage_error("send", "out of memory");
    for (int i = optind; i < argc; i++) {
        if (!pacs_url_is(argv[i])) {
            paths[n_paths++] = argv[i];
        } else if (url_text) {
            free(paths);
            return cli_usage_error("send", "one PACS URL, please");
        } else {
            url_text = argv[i];
        }
    }
    if (!url_text || n_paths == 0) {
        free(paths);
        return cli_usage_error("send", "needs PATH... and a pacs://AET@host:port URL");
    }
    if (pacs_url_parse(url_text, &url, &err) != VS_OK) {
        free(paths);
        return cli_usage_error("send", "%s", err.msg);
    }

    filelist files = {0};
    int rc = VS_EXIT_OK, n_refused = 0, n_skipped = 0, n_ok = 0;
    vs_status s = filelist_collect(&files, paths, n_paths, &err);
    free(paths);
    const char **clean = s == VS_OK ? calloc((size_t)files.n + 1, sizeof *clean) : NULL;
    if (s == VS_OK && !clean) s = VS_FAIL(&err, VS_ERR_NOMEM, "out of memory");
    for (int i = 0; s == VS_OK && i < files.n; i++) {
        int hits = 0;
        vs_error verr;
        vs_status v = deid_verify_file(files.paths[i], NULL, count_hit, NULL, &hits, &verr);
        if (v == VS_ERR_FORMAT) {
            n_skipped++;
            log_info("%s: skipped (not DICOM)", files.paths[i]);
        } else if (v != VS_OK) {
            s = v;
            err = verr;
        } else if (hits > 0) {
            n_refused++;
            log_warn("%s: refused, not sent: verify-deid finds %d problem%s in it", files.paths[i],
                     hits, hits == 1 ? "" : "s");
        } else {
            clean[n_ok++] = files.paths[i];
        }
    }
    pacs_send_result res = {0};
    if (s == VS_OK && n_ok) s = pacs_send(&url, &opt, clean, n_ok, &res, &err);
    if (s == VS_OK || s == VS_ERR_PEER)
        log_info("%s: %d files sent, %d not stored by the peer, %d refused (identifying data), %d "
                 "skipped",
                 url.name, res.sent, res.failed, n_refused, n_skipped);
    if (s != VS_OK)
        rc = cli_fail("send", &err);
    else
        rc = n_refused ? VS_EXIT_FOUND : res.failed ? VS_EXIT_REJECTS : VS_EXIT_OK;
    free(clean);
    filelist_free(&files);
    return rc;
}
