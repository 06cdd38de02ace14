/* cmd_validate.c — `vesalius validate`: read predictions and labels, compute the metrics with
 * bootstrap CIs and write report.json, report.md and report.html under --out.
 * Provenance that lives above validation/ (version, git revision, library versions, BLAS
 * threads, CPU) is gathered here and passed down. */
#include "blas.h"
#include "fsdir.h"
#include "cli.h"
#include "libinfo.h"
#include "log.h"
#include "parse.h"
#include "report.h"
#include "report_gallery.h"
#include "settings_cli.h"
#include "utc.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern const char *const vs_git_revision;

#define MAX_FILES 64

typedef struct validate_args {
    const char *predictions[MAX_FILES];
    int n_predictions;
    const char *train_logs[MAX_FILES];
    int n_train_logs;
    const char *previews[MAX_FILES];
    int n_previews;
    const char *stage_files[MAX_FILES]; /* --stage-settings NAME=FILE */
    int n_stage_files;
    report_seed seeds[MAX_FILES];
    int n_seeds;
    const char *labels, *out, *shards;
    report_options opt;
    study *st;   /* the settings (studies/study.h): seed, validate.* */
    study_kv kv; /* as recorded in OUT/settings.json */
} validate_args;

enum { O_PRED = 1000, O_LABELS, O_OUT, O_TRAIN_LOG, O_PREVIEW, O_SHARDS, O_RECORD_SEED, O_STAGE };
static const struct option own_opts[] = {
    {"predictions", required_argument, 0, O_PRED},
    {"labels", required_argument, 0, O_LABELS},
    {"out", required_argument, 0, O_OUT},
    {"train-log", required_argument, 0, O_TRAIN_LOG},
    {"preview", required_argument, 0, O_PREVIEW},
    {"shards", required_argument, 0, O_SHARDS},
    {"record-seed", required_argument, 0, O_RECORD_SEED},
    {"stage-settings", required_argument, 0, O_STAGE},
    {0, 0, 0, 0},
};

static int add_file(const char **list, int *n, const char *arg, const char *opt) {
    if (*n >= MAX_FILES)
        return cli_usage_error("validate", "at most %d %s options", MAX_FILES, opt);
    list[(*n)++] = arg;
    return 0;
}

/* --record-seed NAME=N: a seed used upstream, kept in the provenance block. The name takes
 * the key alphabet and must not clash with "bootstrap" or an earlier name. */
static int parse_seed(const char *arg, validate_args *a) {
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : 0;
    int ok =
        eq && len > 0 && len <= REPORT_NAME_MAX && a->n_seeds < MAX_FILES &&
        strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
    uint64_t v = 0;
    if (ok) ok = vs_parse_u64(eq + 1, 0, UINT64_MAX, &v);
    if (ok) {
        report_seed *s = &a->seeds[a->n_seeds];
        memcpy(s->name, arg, len);
        s->name[len] = '\0';
        ok = strcmp(s->name, "bootstrap") != 0;
        for (int i = 0; ok && i < a->n_seeds; i++)
            ok = strcmp(a->seeds[i].name, s->name) != 0;
        s->value = v;
    }
    if (!ok)
        return cli_usage_error("validate",
                               "--record-seed wants NAME=N (NAME: 1-64 of A-Z a-z 0-9 . _ -, not "
                               "'bootstrap' and not repeated; N: a whole number), not '%s'",
                               arg);
    a->n_seeds++;
    return 0;
}

static int own_option(void *ctx, int id, const char *arg, study *s) {
    (void)s;
    validate_args *a = ctx;
    switch (id) {
    case O_PRED: return add_file(a->predictions, &a->n_predictions, arg, "--predictions");
    case O_TRAIN_LOG: return add_file(a->train_logs, &a->n_train_logs, arg, "--train-log");
    case O_PREVIEW: return add_file(a->previews, &a->n_previews, arg, "--preview");
    case O_STAGE:
        if (!strchr(arg, '='))
            return cli_usage_error("validate", "--stage-settings wants NAME=FILE, not '%s'", arg);
        return add_file(a->stage_files, &a->n_stage_files, arg, "--stage-settings");
    case O_LABELS: a->labels = arg; return 0;
    case O_OUT: a->out = arg; return 0;
    case O_SHARDS: a->shards = arg; return 0;
    case O_RECORD_SEED: return parse_seed(arg, a) != 0 ? VS_EXIT_USAGE : 0;
    }
    return cli_usage_error("validate", "unknown option");
}

static int parse_args(int argc, char **argv, validate_args *a) {
    memset(a, 0, sizeof *a);
    int first = 0;
    int rc = settings_cli_parse("validate", ST_VALIDATE, own_opts, own_option, a, argc, argv,
                                &a->st, &first);
    if (rc != VS_EXIT_OK) return rc;
    /* `--predictions a.csv b.jsonl`: files after the option (left over by getopt) are more
     * predictions, as the usage line FILE... promises. */
    if (first < argc && !a->n_predictions)
        return cli_usage_error("validate", "unexpected argument '%s'", argv[first]);
    for (; first < argc; first++)
        if (add_file(a->predictions, &a->n_predictions, argv[first], "--predictions"))
            return VS_EXIT_USAGE;
    if (!a->n_predictions || !a->labels || !a->out)
        return cli_usage_error("validate", "--predictions, --labels and --out are required");
    const study_dbls *ops = &a->st->validate.operating_points;
    if (ops->n > REPORT_MAX_OPS)
        return cli_usage_error("validate", "at most %d operating points", REPORT_MAX_OPS);
    a->opt.n_bootstrap = (uint32_t)a->st->validate.bootstrap;
    a->opt.dev_sensitivity = a->st->validate.dev_sensitivity;
    a->opt.seed = (uint64_t)a->st->top.seed;
    for (unsigned i = 0; i < ops->n; i++)
        a->opt.ops[a->opt.n_ops++] = ops->v[i];
    vs_error err;
    if (settings_cli_resolve(a->st, ST_VALIDATE, &a->kv, &err) != VS_OK)
        return cli_fail("validate", &err);
    return VS_EXIT_OK;
}

/* NAME=FILE, or FILE alone (name NULL). */
static void split_named(const char *arg, char *name, size_t n, const char **file) {
    const char *eq = strchr(arg, '=');
    if (!eq || (size_t)(eq - arg) >= n) {
        *file = arg;
        name[0] = '\0';
        return;
    }
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = '\0';
    *file = eq + 1;
}

static vs_status read_inputs(const validate_args *a, report_input *in, vs_error *err) {
    vs_status s = report_read_labels(in, a->labels, err);
    for (int i = 0; s == VS_OK && i < a->n_predictions; i++)
        s = report_read_predictions(in, a->predictions[i], err);
    if (s == VS_OK) s = report_inputs_check(in, err);
    for (int i = 0; s == VS_OK && i < a->n_train_logs; i++) {
        char name[REPORT_NAME_MAX + 2];
        const char *file;
        split_named(a->train_logs[i], name, sizeof name, &file);
        s = report_read_train_log(in, name[0] ? name : NULL, file, err);
    }
    for (int i = 0; s == VS_OK && i < a->n_previews; i++) {
        char name[REPORT_NAME_MAX + 2];
        const char *file;
        split_named(a->previews[i], name, sizeof name, &file);
        s = report_read_preview(in, name[0] ? name : NULL, file, err);
    }
    if (s == VS_OK && a->st->path) s = report_add_file(in, "study", a->st->path, err);
    return s;
}

static void cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(buf, n, "%s", v);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

static void log_headline(const report_results *res) {
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        if (!ar->present) continue;
        log_info("%s: AUC %.3f [%.3f, %.3f], CPM %.3f [%.3f, %.3f]", report_arm_names[a],
                 ar->auc.value, ar->auc.lo, ar->auc.hi, ar->cpm.value, ar->cpm.lo, ar->cpm.hi);
    }
}

/* The settings of every stage for the provenance: each --stage-settings NAME=FILE, then this
 * stage's own. */
static vs_status read_stage_settings(const validate_args *a, study_kv *kv,
                                     report_stage_settings *rs, int *n, vs_error *err) {
    *n = 0;
    for (int i = 0; i < a->n_stage_files; i++) {
        char name[REPORT_NAME_MAX + 2];
        const char *file;
        split_named(a->stage_files[i], name, sizeof name, &file);
        vs_status s = study_kv_read(file, "settings", &kv[i], err);
        if (s != VS_OK) return s;
        snprintf(rs[i].stage, sizeof rs[i].stage, "%s", name);
        rs[i].n = kv[i].n, rs[i].key = kv[i].key, rs[i].value = kv[i].value;
        (*n)++;
    }
    snprintf(rs[*n].stage, sizeof rs[*n].stage, "validate");
    rs[*n].n = a->kv.n, rs[*n].key = a->kv.key, rs[*n].value = a->kv.value;
    (*n)++;
    return VS_OK;
}

int cmd_validate(int argc, char **argv) {
    validate_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != VS_EXIT_OK) {
        study_kv_free(&a.kv);
        study_free(a.st);
        return rc;
    }
    char start[32], end[32], cpu[256];
    vs_utc_now(start, sizeof start, 0);
    vs_error err;
    report_input in;
    report_input_init(&in);
    report_results res;
    memset(&res, 0, sizeof res);
    report_provenance prov;
    memset(&prov, 0, sizeof prov);
    report_lib libs[20];
    lib_version lv[16];
    int n_lv = libinfo_io(lv, 16);
    for (int i = 0; i < n_lv; i++) {
        snprintf(libs[i].name, sizeof libs[i].name, "%s", lv[i].name);
        snprintf(libs[i].version, sizeof libs[i].version, "%s", lv[i].version);
    }
    snprintf(libs[n_lv].name, sizeof libs[n_lv].name, "OpenBLAS");
    snprintf(libs[n_lv].version, sizeof libs[n_lv].version, "%s", blas_version());
    cpu_model(cpu, sizeof cpu);
    prov.vesalius_version = VESALIUS_VERSION;
    prov.git_revision = vs_git_revision;
    prov.libs = libs;
    prov.n_libs = n_lv + 1;
    prov.seeds = a.seeds;
    prov.n_seeds = a.n_seeds;
    prov.cpu_model = cpu;
    prov.threads = g_cli.threads;
    prov.blas_threads = blas_get_threads();

    static study_kv stage_kv[MAX_FILES];
    report_stage_settings stage_settings[MAX_FILES + 1];
    vs_status s = vs_mkdirs(a.out, 0755, &err);
    if (s == VS_OK)
        s = read_stage_settings(&a, stage_kv, stage_settings, &prov.n_stage_settings, &err);
    prov.stage_settings = stage_settings;
    if (s == VS_OK) s = read_inputs(&a, &in, &err);
    if (s == VS_OK && a.shards) {
        s = report_sha256_shards(a.shards, prov.shards_sha256, &prov.n_shards, &err);
        prov.have_shards = s == VS_OK;
    }
    if (s == VS_OK) s = report_compute(&in, &a.opt, &res, &err);
    if (s == VS_OK && a.shards) s = report_gallery_build(a.shards, &res, 4, &in, &err);
    if (s == VS_OK) {
        vs_utc_now(end, sizeof end, 0);
        s = report_write(a.out, &in, &res, &prov, start, end, &err);
    }
    if (s == VS_OK) s = settings_cli_record(&a.kv, "validate", a.out, &err);
    if (s == VS_OK) {
        log_headline(&res);
        log_info("wrote %s/report.json, report.md and report.html", a.out);
    }
    report_results_free(&res);
    report_input_free(&in);
    for (int i = 0; i < a.n_stage_files; i++)
        study_kv_free(&stage_kv[i]);
    study_kv_free(&a.kv);
    study_free(a.st);
    return s == VS_OK ? VS_EXIT_OK : cli_fail("validate", &err);
}
