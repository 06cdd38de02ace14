/* cmd_validate.c — `vesalius validate`: read predictions and labels, compute the metrics with
 * bootstrap CIs and write report.json, report.md and report.html under --out.
 * Provenance that lives above validation/ (version, git revision, library versions, BLAS
 * threads, CPU) is gathered here and passed down. */
#include "blas.h"
#include "fsdir.h"
#include "cli.h"
#include "libinfo.h"
#include "log.h"
#include "report.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

extern const char *const vs_git_revision;

#define MAX_FILES 64

typedef struct validate_args {
    const char *predictions[MAX_FILES];
    int n_predictions;
    const char *train_logs[MAX_FILES];
    int n_train_logs;
    const char *previews[MAX_FILES];
    int n_previews;
    report_seed seeds[MAX_FILES];
    int n_seeds;
    const char *labels, *out, *study, *shards;
    report_options opt;
} validate_args;

static const struct option opts[] = {
    {"predictions", required_argument, 0, 'p'}, {"labels", required_argument, 0, 'l'},
    {"out", required_argument, 0, 'o'},         {"train-log", required_argument, 0, 't'},
    {"preview", required_argument, 0, 'v'},     {"study", required_argument, 0, 's'},
    {"shards", required_argument, 0, 'd'},      {"bootstrap", required_argument, 0, 'b'},
    {"seed", required_argument, 0, 'S'},        {"operating-point", required_argument, 0, 'P'},
    {"record-seed", required_argument, 0, 'R'}, {0, 0, 0, 0},
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
    char *end = NULL;
    unsigned long long v = 0;
    if (ok) {
        errno = 0;
        v = strtoull(eq + 1, &end, 10);
        ok = !errno && end && !*end && eq[1] >= '0' && eq[1] <= '9';
    }
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

static int parse_args(int argc, char **argv, validate_args *a) {
    memset(a, 0, sizeof *a);
    a->opt.n_bootstrap = 1000;
    a->opt.seed = 1;
    int opt;
    char *end;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            if (add_file(a->predictions, &a->n_predictions, optarg, "--predictions")) return -1;
            break;
        case 't':
            if (add_file(a->train_logs, &a->n_train_logs, optarg, "--train-log")) return -1;
            break;
        case 'v':
            if (add_file(a->previews, &a->n_previews, optarg, "--preview")) return -1;
            break;
        case 'l': a->labels = optarg; break;
        case 'o': a->out = optarg; break;
        case 's': a->study = optarg; break;
        case 'd': a->shards = optarg; break;
        case 'b': {
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || optarg[0] == '-' || v > 1000000)
                return cli_usage_error("validate", "--bootstrap wants 0 to 1000000, not '%s'",
                                       optarg);
            a->opt.n_bootstrap = (uint32_t)v;
            break;
        }
        case 'S': {
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || *end || optarg[0] == '-' || !optarg[0])
                return cli_usage_error("validate", "--seed wants a whole number, not '%s'", optarg);
            a->opt.seed = v;
            break;
        }
        case 'P': {
            double v = strtod(optarg, &end);
            if (*end || !(v >= 0 && v <= 1) || a->opt.n_ops >= REPORT_MAX_OPS)
                return cli_usage_error("validate",
                                       "--operating-point wants a probability in [0, 1] (at most "
                                       "%d), not '%s'",
                                       REPORT_MAX_OPS, optarg);
            a->opt.ops[a->opt.n_ops++] = v;
            break;
        }
        case 'R':
            if (parse_seed(optarg, a) != 0) return VS_EXIT_USAGE;
            break;
        default:
            return cli_usage_error("validate", "unknown option or missing value '%s'",
                                   argv[optind - 1]);
        }
    }
    /* `--predictions a.csv b.jsonl`: files after the option (left over by getopt) are more
     * predictions, as the usage line FILE... promises. */
    if (optind < argc && !a->n_predictions)
        return cli_usage_error("validate", "unexpected argument '%s'", argv[optind]);
    for (; optind < argc; optind++)
        if (add_file(a->predictions, &a->n_predictions, argv[optind], "--predictions")) return -1;
    if (!a->n_predictions || !a->labels || !a->out)
        return cli_usage_error("validate", "--predictions, --labels and --out are required");
    if (a->opt.n_ops == 0) a->opt.ops[a->opt.n_ops++] = 0.5;
    return 0;
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
    if (s == VS_OK && a->study) s = report_add_file(in, "study", a->study, err);
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

static void utc_now(char *buf, size_t n) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static vs_status make_dir(const char *dir, vs_error *err) { return vs_mkdirs(dir, 0755, err); }

static void log_headline(const report_results *res) {
    for (int a = 0; a < REPORT_N_ARMS; a++) {
        const report_arm_result *ar = &res->arms[a];
        if (!ar->present) continue;
        log_info("%s: AUC %.3f [%.3f, %.3f], CPM %.3f [%.3f, %.3f]", report_arm_names[a],
                 ar->auc.value, ar->auc.lo, ar->auc.hi, ar->cpm.value, ar->cpm.lo, ar->cpm.hi);
    }
}

int cmd_validate(int argc, char **argv) {
    validate_args a;
    if (parse_args(argc, argv, &a) != 0) return VS_EXIT_USAGE;
    char start[32], end[32], cpu[256];
    utc_now(start, sizeof start);
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

    vs_status s = make_dir(a.out, &err);
    if (s == VS_OK) s = read_inputs(&a, &in, &err);
    if (s == VS_OK && a.shards) {
        s = report_sha256_shards(a.shards, prov.shards_sha256, &prov.n_shards, &err);
        prov.have_shards = s == VS_OK;
    }
    if (s == VS_OK) s = report_compute(&in, &a.opt, &res, &err);
    if (s == VS_OK) {
        utc_now(end, sizeof end);
        s = report_write(a.out, &in, &res, &prov, start, end, &err);
    }
    if (s == VS_OK) {
        log_headline(&res);
        log_info("wrote %s/report.json, report.md and report.html", a.out);
    }
    report_results_free(&res);
    report_input_free(&in);
    return s == VS_OK ? VS_EXIT_OK : cli_fail("validate", &err);
}
