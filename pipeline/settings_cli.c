/* settings_cli.c — see settings_cli.h. */
#include "settings_cli.h"

#include "cli.h"
#include "deid.h"
#include "fsdir.h"
#include "nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { ID_SETTING = 10000, ID_NO_SETTING = 20000, ID_STUDY = 30000 };

static char flag_names[2 * STUDY_N_KEYS][72];

/* The getopt rows: the command's own, --study, and every setting the stage reads. */
static struct option *build_options(const struct option *own, unsigned readers) {
    int n_own = 0;
    while (own && own[n_own].name)
        n_own++;
    struct option *o = calloc((size_t)n_own + 2 * STUDY_N_KEYS + 2, sizeof *o);
    if (!o) return NULL;
    int n = 0;
    for (int i = 0; i < n_own; i++)
        o[n++] = own[i];
    o[n++] = (struct option){"study", required_argument, 0, ID_STUDY};
    for (int i = 0; i < STUDY_N_KEYS; i++) {
        const study_setting *r = &study_settings[i];
        char *name = flag_names[2 * i], *no = flag_names[2 * i + 1];
        if (!(r->readers & readers) || !study_setting_flag(r, name, 64)[0]) continue;
        int is_bool = r->kind == STUDY_BOOL;
        o[n++] = (struct option){name, is_bool ? optional_argument : required_argument, 0,
                                 ID_SETTING + i};
        if (is_bool) {
            snprintf(no, sizeof flag_names[0], "no-%s", name);
            o[n++] = (struct option){no, no_argument, 0, ID_NO_SETTING + i};
        }
    }
    return o;
}

int settings_cli_parse(const char *cmd, unsigned readers, const struct option *own,
                       settings_cli_own_fn fn, void *ctx, int argc, char **argv, study **out,
                       int *positional) {
    *out = NULL;
    struct option *opts = build_options(own, readers);
    if (!opts) return cli_usage_error(cmd, "out of memory");
    const char *study_path = NULL;
    int c, code = VS_EXIT_OK;
    /* pass 1: the study file, whose values the options then override */
    optind = 0, opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == ID_STUDY) study_path = optarg;
        if (c == '?') {
            code =
                cli_usage_error(cmd, "option '%s' is unknown or needs a value", argv[optind - 1]);
            break;
        }
    }
    study *s = NULL;
    vs_error err = {0};
    if (code == VS_EXIT_OK &&
        (study_path ? study_load(study_path, &s, &err) : study_defaults(&s, &err)) != VS_OK)
        code = cli_fail(cmd, &err);
    unsigned char given[STUDY_N_KEYS] = {0};
    optind = 0;
    while (code == VS_EXIT_OK && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == ID_STUDY) continue;
        if (c >= ID_SETTING && c < ID_SETTING + STUDY_N_KEYS) {
            const study_setting *r = &study_settings[c - ID_SETTING];
            if (study_set(s, r, optarg ? optarg : "true", given[c - ID_SETTING]++, &err) != VS_OK)
                code = cli_fail(cmd, &err);
        } else if (c >= ID_NO_SETTING && c < ID_NO_SETTING + STUDY_N_KEYS) {
            if (study_set(s, &study_settings[c - ID_NO_SETTING], "false", 0, &err) != VS_OK)
                code = cli_fail(cmd, &err);
        } else {
            code = fn(ctx, c, optarg, s);
        }
    }
    if (code == VS_EXIT_OK && g_cli.threads > 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", g_cli.threads);
        if (study_set(s, &study_settings[STUDY_KEY_top_threads], n, 0, &err) != VS_OK)
            code = cli_fail(cmd, &err);
    }
    if (code == VS_EXIT_OK && study_check(s, &err) != VS_OK) code = cli_fail(cmd, &err);
    free(opts);
    if (code != VS_EXIT_OK) {
        study_free(s);
        return code;
    }
    *positional = optind;
    *out = s;
    return VS_EXIT_OK;
}

int settings_cli_threads(const study *s) {
    if (g_cli.threads > 0) return g_cli.threads;
    if (s && s->top.threads > 0) return s->top.threads;
    return nn_threads();
}

vs_status settings_cli_resolve(study *s, unsigned stage, study_kv *out, vs_error *err) {
    s->top.threads = settings_cli_threads(s);
    return study_resolve(s, stage, out, err);
}

vs_status settings_cli_record(const study_kv *kv, const char *stage, const char *out_dir,
                              vs_error *err) {
    vs_status st = vs_mkdirs(out_dir, 0755, err);
    char path[4200];
    snprintf(path, sizeof path, "%s/settings.json", out_dir);
    if (st == VS_OK) st = study_settings_write(path, stage, kv, err);
    return st;
}

vs_status settings_cli_ensure_key(const study *s, vs_error *err) {
    if (!s->deid.key_file || access(s->deid.key_file, F_OK) == 0) return VS_OK;
    deid_options none;
    memset(&none, 0, sizeof none);
    deid_ctx *ctx = NULL;
    vs_status st = deid_open(&none, s->deid.key_file, &ctx, err);
    deid_close(ctx);
    return st;
}
