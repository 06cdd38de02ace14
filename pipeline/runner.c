/* runner.c — the stage runner behind `vesalius run` (see runner.h for the layout and
 * invariants). Each stage is one row of `stages`: which settings it reads (studies/study.h),
 * which upstream stages it consumes, what it works on (its command line: folders only, the
 * settings come from the study file itself), which files it produces. */
#include "runner.h"
#include "fsdir.h"

#include "cli.h"
#include "log.h"
#include "report.h"
#include "settings_cli.h"
#include "splits.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 128
#define MAX_LAUNCHER 64 /* words of distributed.launcher */
#define MAX_OUTPUTS 8
#define HEX 65

/* ---- small helpers ----------------------------------------------------------------------- */
typedef struct arglist {
    char *v[MAX_ARGS + 1];
    int n;
    char buf[16384];
    size_t used;
} arglist;

static void arg_add(arglist *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg_add(arglist *a, const char *fmt, ...) {
    if (a->n >= MAX_ARGS || a->used >= sizeof a->buf) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(a->buf + a->used, sizeof a->buf - a->used, fmt, ap);
    va_end(ap);
    if (k < 0 || a->used + (size_t)k + 1 > sizeof a->buf) return;
    a->v[a->n++] = a->buf + a->used;
    a->v[a->n] = NULL;
    a->used += (size_t)k + 1;
}

static int arg_overflow(const arglist *a) {
    return a->n >= MAX_ARGS || a->used >= sizeof a->buf - 1;
}

enum { N_STAGE_MAX = 6 };

typedef struct run_ctx {
    study *s;
    const char *study_path;
    const runner_options *opt;
    char out[PATH_MAX], self[PATH_MAX];
    FILE *runlog;
    char shards_hash[HEX]; /* output of ingest: SHA-256 of the shard set */
    /* each stage's identity for the stages after it: the SHA-256 of its record; "" when it is
     * about to run (dry run: not known yet), "-" when it does not apply or never ran */
    char identity[N_STAGE_MAX][HEX];
} run_ctx;

/* One event: a human line on stderr (unless quiet) and a JSON line in OUT/run.jsonl. */
static void run_event(run_ctx *c, const char *stage, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void run_event(run_ctx *c, const char *stage, const char *event, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *fields[] = {"stage", stage ? stage : "", NULL};
    log_event(LOG_INFO, event, msg, stage ? fields : NULL);
    if (!c->runlog) return;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(c->runlog, "{\"time\":\"%s\",\"event\":", ts);
    log_json_string(c->runlog, event);
    if (stage) {
        fputs(",\"stage\":", c->runlog);
        log_json_string(c->runlog, stage);
    }
    fputs(",\"msg\":", c->runlog);
    log_json_string(c->runlog, msg);
    fputs("}\n", c->runlog);
    fflush(c->runlog);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static vs_status rm_rf(const char *path, vs_error *err) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return VS_OK;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot remove the stale stage output (%s)", path,
                       strerror(errno));
    return VS_OK;
}

static vs_status read_small(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return VS_ERR_IO;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return VS_OK;
}

static vs_status write_atomic(const char *path, const char *text, vs_error *err) {
    return vs_write_file_atomic(path, text, strlen(text), err);
}

/* ---- the stages ---------------------------------------------------------------------------- */
typedef struct stage {
    const char *name;
    unsigned reads;  /* ST_* bit: the settings it reads (studies/study.h), = its own bit */
    int incremental; /* runs every time (it skips what it already did itself) */
    int (*applies)(const run_ctx *c); /* NULL: always; 0: the study does not call for it */
    /* What the stage works on: its command line (folders; the settings come from the study). */
    vs_status (*command)(run_ctx *c, arglist *a, vs_error *err);
    unsigned upstream; /* ST_* bits of the stages whose results it consumes */
    /* ST_SPLIT when it consumes only the split's test patients (pretraining leaves them out):
     * its identity of the split is then the SHA-256 of their keys, so a split that changes only
     * dev or train roles does not rerun it (split_test_identity) */
    unsigned upstream_test_set;
    const char *outputs[MAX_OUTPUTS]; /* files below OUT/<dir>/ whose hashes the record keeps */
    const char *dir;                  /* the stage's output folder below OUT (NULL: its name) */
    vs_status (*after)(run_ctx *c, vs_error *err); /* after a run, before its record */
} stage;

static void common_args(run_ctx *c, arglist *a) {
    arg_add(a, "--study=%s", c->study_path);
    arg_add(a, "--threads=%d", c->s->top.threads);
    arg_add(a, "--log-json");
}

static vs_status ingest_command(run_ctx *c, arglist *a, vs_error *err) {
    const study *s = c->s;
    if (s->ingest.sources.n == 0)
        return VS_FAIL(err, VS_ERR_CONFIG, "%s: key 'ingest.sources' is missing: nothing to ingest",
                       c->study_path);
    if (!s->deid.key_file)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "%s: key 'deid.key_file' is missing: pseudonyms need the site key",
                       c->study_path);
    arg_add(a, "ingest");
    arg_add(a, "--out=%s/ingest", c->out);
    common_args(c, a);
    return VS_OK;
}

static vs_status ingest_after(run_ctx *c, vs_error *err) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/ingest/shards", c->out);
    size_t n = 0;
    return report_sha256_shards(dir, c->shards_hash, &n, err);
}

/* Fine-tuning needs labels; without them the split and the stages after pretraining do not
 * apply. */
static int has_labels(const run_ctx *c) {
    return c->s->labels.file != NULL || c->s->labels.volumes != NULL;
}
static int has_scratch(const run_ctx *c) {
    return has_labels(c) && c->s->finetune.scratch_baseline;
}
/* Pretraining leaves the split's test patients out (unless pretrain.include_test). */
static int pretrain_uses_split(const run_ctx *c) {
    return has_labels(c) && !c->s->pretrain.include_test;
}

static vs_status split_command(run_ctx *c, arglist *a, vs_error *err) {
    if (!c->s->deid.key_file)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "%s: key 'deid.key_file' is missing: labels name original UIDs",
                       c->study_path);
    arg_add(a, "split");
    arg_add(a, "--shards=%s/ingest/shards", c->out);
    arg_add(a, "--out=%s/split", c->out);
    common_args(c, a);
    return VS_OK;
}

/* The split as pretraining sees it: SHA-256 over the lines "KEY\n" of its test patients in key
 * order, or "-" when pretraining does not leave them out. */
static vs_status split_test_identity(run_ctx *c, char out[HEX], vs_error *err) {
    if (!pretrain_uses_split(c)) {
        snprintf(out, HEX, "-");
        return VS_OK;
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/split/splits.csv", c->out);
    split_table *t = NULL;
    vs_status st = splits_load(path, &t, err);
    if (st != VS_OK) return st;
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    for (uint32_t i = 0; i < t->n; i++)
        if (t->role[i] == SPLIT_TEST) {
            crypto_hash_sha256_update(&h, (const unsigned char *)t->patient[i],
                                      strlen(t->patient[i]));
            crypto_hash_sha256_update(&h, (const unsigned char *)"\n", 1);
        }
    unsigned char d[32];
    crypto_hash_sha256_final(&h, d);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    splits_free(t);
    return VS_OK;
}

static vs_status pretrain_command(run_ctx *c, arglist *a, vs_error *err) {
    (void)err;
    arg_add(a, "pretrain");
    arg_add(a, "--shards=%s/ingest", c->out);
    arg_add(a, "--out=%s/pretrain", c->out);
    if (pretrain_uses_split(c)) arg_add(a, "--split=%s/split/splits.csv", c->out);
    arg_add(a, "--resume"); /* continues a checkpoint left with the same inputs (invariant 2) */
    common_args(c, a);
    return VS_OK;
}

/* The training curve for the report: every pretrain.step event of every attempt, one per step
 * (a resumed run logs again the steps after its checkpoint, with the same losses), sorted. */
static vs_status write_curve(run_ctx *c, const char *stage_name, const char *event, vs_error *err) {
    char src[PATH_MAX + 32], dst[PATH_MAX + 32];
    snprintf(src, sizeof src, "%s/logs/%s.jsonl", c->out, stage_name);
    snprintf(dst, sizeof dst, "%s/logs/%s.curve.jsonl", c->out, stage_name);
    FILE *f = fopen(src, "r");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read the stage log", src);
    enum { MAX_STEPS = 1 << 20 };
    char **loss = calloc(MAX_STEPS, sizeof *loss);
    if (!loss) {
        fclose(f);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    char line[4096], pat[96];
    snprintf(pat, sizeof pat, "\"event\":\"%s\"", event);
    long max_step = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, pat)) continue;
        const char *sp = strstr(line, "\"step\":\""), *lp = strstr(line, "\"loss\":\"");
        if (!sp || !lp) continue;
        long step = strtol(sp + 8, NULL, 10);
        const char *end = strchr(lp + 8, '"');
        if (step < 0 || step >= MAX_STEPS || !end) continue;
        free(loss[step]);
        loss[step] = strndup(lp + 8, (size_t)(end - lp - 8));
        if (step > max_step) max_step = step;
    }
    fclose(f);
    size_t cap = 4096, used = 0;
    char *text = malloc(cap);
    vs_status st = text ? VS_OK : VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (long s = 0; st == VS_OK && s <= max_step; s++) {
        if (!loss[s]) continue;
        char row[256];
        int k =
            snprintf(row, sizeof row,
                     "{\"component\":\"%s\",\"event\":\"%s\",\"step\":\"%ld\",\"loss\":\"%s\"}\n",
                     stage_name, event, s, loss[s]);
        if (used + (size_t)k + 1 > cap) {
            char *bigger = realloc(text, cap * 2 + (size_t)k);
            if (!bigger) {
                st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
                break;
            }
            text = bigger;
            cap = cap * 2 + (size_t)k;
        }
        memcpy(text + used, row, (size_t)k + 1);
        used += (size_t)k;
    }
    if (st == VS_OK) st = write_atomic(dst, used ? text : "", err);
    for (long s = 0; s <= max_step; s++)
        free(loss[s]);
    free(loss);
    free(text);
    return st;
}

static vs_status pretrain_after(run_ctx *c, vs_error *err) {
    return write_curve(c, "pretrain", "pretrain.step", err);
}

static vs_status finetune_command(run_ctx *c, arglist *a, int mae, vs_error *err) {
    if (!c->s->deid.key_file)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "%s: key 'deid.key_file' is missing: labels name original UIDs",
                       c->study_path);
    arg_add(a, "finetune");
    arg_add(a, "--shards=%s/ingest/shards", c->out);
    arg_add(a, "--out=%s/finetune-%s", c->out, mae ? "mae" : "scratch");
    arg_add(a, "--arm=%s", mae ? "mae" : "scratch");
    arg_add(a, "--split=%s/split/splits.csv", c->out);
    if (mae) arg_add(a, "--init=%s/pretrain/checkpoint.ckpt", c->out);
    common_args(c, a);
    return VS_OK;
}

static vs_status finetune_mae_command(run_ctx *c, arglist *a, vs_error *err) {
    return finetune_command(c, a, 1, err);
}
static vs_status finetune_scratch_command(run_ctx *c, arglist *a, vs_error *err) {
    return finetune_command(c, a, 0, err);
}

/* The largest label budget in training patients (finetune.budgets, 0: the whole train role). */
static vs_status largest_budget(run_ctx *c, int *out, vs_error *err) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/split/splits.csv", c->out);
    split_table *t = NULL;
    vs_status st = splits_load(path, &t, err);
    if (st != VS_OK) return st;
    int n_train = (int)splits_count(t, SPLIT_TRAIN);
    splits_free(t);
    *out = 0;
    for (unsigned i = 0; i < c->s->finetune.budgets.n; i++) {
        int b = c->s->finetune.budgets.v[i] ? c->s->finetune.budgets.v[i] : n_train;
        if (b > *out) *out = b;
    }
    return VS_OK;
}

static vs_status validate_command(run_ctx *c, arglist *a, vs_error *err) {
    int top = 0;
    vs_error ignored; /* no split yet (a dry run, or a run of earlier stages only): the command
                         is not used then */
    if (largest_budget(c, &top, &ignored) != VS_OK) top = 0;
    (void)err;
    arg_add(a, "validate");
    const char *arms[2] = {"mae", has_scratch(c) ? "scratch" : NULL};
    for (int i = 0; i < 2 && arms[i]; i++) {
        arg_add(a, "--predictions=%s/finetune-%s/predictions-%s.csv", c->out, arms[i], arms[i]);
        arg_add(a, "--train-log=finetune-%s=%s/finetune-%s/train-%s-b%d-s0.jsonl", arms[i], c->out,
                arms[i], arms[i], top);
    }
    arg_add(a, "--labels=%s/finetune-mae/labels.csv", c->out);
    arg_add(a, "--train-log=pretrain=%s/logs/pretrain.curve.jsonl", c->out);
    arg_add(a, "--preview=mae=%s/pretrain/preview.png", c->out);
    arg_add(a, "--out=%s/report", c->out);
    arg_add(a, "--shards=%s/ingest/shards", c->out);
    arg_add(a, "--record-seed=study=%lld", (long long)c->s->top.seed);
    static const char *const ran[] = {"ingest", "split", "pretrain", "finetune-mae",
                                      "finetune-scratch"};
    for (int i = 0; i < 5; i++)
        if (i < 4 || has_scratch(c))
            arg_add(a, "--stage-settings=%s=%s/%s/settings.json", ran[i], c->out, ran[i]);
    common_args(c, a);
    return VS_OK;
}

/* The stages in order; a stage's bit (ST_*) is 1 << its index. */
static const stage stages[] = {
    {"ingest",
     ST_INGEST,
     1,
     NULL,
     ingest_command,
     0,
     0,
     {"settings.json", NULL},
     NULL,
     ingest_after},
    {"split",
     ST_SPLIT,
     0,
     has_labels,
     split_command,
     ST_INGEST,
     0,
     {"splits.csv", "settings.json", NULL},
     NULL,
     NULL},
    {"pretrain",
     ST_PRETRAIN,
     0,
     NULL,
     pretrain_command,
     ST_INGEST,
     ST_SPLIT,
     {"model.safetensors", "checkpoint.ckpt", "preview.png", "pool.json", "settings.json", NULL},
     NULL,
     pretrain_after},
    {"finetune-mae",
     ST_FT_MAE,
     0,
     has_labels,
     finetune_mae_command,
     ST_INGEST | ST_SPLIT | ST_PRETRAIN,
     0,
     {"predictions-mae.csv", "labels.csv", "splits.csv", "fits.csv", "settings.json", NULL},
     NULL,
     NULL},
    {"finetune-scratch",
     ST_FT_SCRATCH,
     0,
     has_scratch,
     finetune_scratch_command,
     ST_INGEST | ST_SPLIT,
     0,
     {"predictions-scratch.csv", "labels.csv", "splits.csv", "fits.csv", "settings.json", NULL},
     NULL,
     NULL},
    {"validate",
     ST_VALIDATE,
     0,
     has_labels,
     validate_command,
     ST_INGEST | ST_SPLIT | ST_PRETRAIN | ST_FINETUNE,
     0,
     {"report.json", "report.html", "report.md", "settings.json", NULL},
     "report",
     NULL},
};
enum { N_STAGES = (int)(sizeof stages / sizeof stages[0]) };
_Static_assert((int)N_STAGES == (int)N_STAGE_MAX, "one identity per stage");

const char *const runner_stage_names[] = {"ingest",           "split",   "pretrain", "finetune-mae",
                                          "finetune-scratch", "validate"};
const int runner_n_stages = N_STAGES;

/* ---- records ------------------------------------------------------------------------------- */
static void hex_of(const unsigned char *h, char out[HEX]) {
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void sha256_text(const char *text, char out[HEX]) {
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
    hex_of(h, out);
}

/* What a stage consumes now: its settings (the text of the settings.json it will write) and
 * the identities of the stages it consumes, as "name identity" lines. */
typedef struct stage_inputs {
    study_kv settings;
    char *settings_text; /* study_settings_text */
    char upstream[512];
    const char *unknown; /* an upstream stage about to run (dry run), or NULL */
    char hash[HEX];      /* SHA-256 of version, stage, settings text and upstream lines */
} stage_inputs;

static void inputs_free(stage_inputs *in) {
    study_kv_free(&in->settings);
    free(in->settings_text);
    in->settings_text = NULL;
}

static vs_status inputs_now(run_ctx *c, int i, stage_inputs *in, vs_error *err) {
    const stage *sg = &stages[i];
    memset(in, 0, sizeof *in);
    vs_status st = settings_cli_resolve(c->s, sg->reads, &in->settings, err);
    if (st != VS_OK) return st;
    if (!(in->settings_text = study_settings_text(sg->name, &in->settings)))
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    size_t used = 0;
    for (int u = 0; u < N_STAGES; u++) {
        int test_set = (sg->upstream_test_set & stages[u].reads) != 0;
        if (!((sg->upstream | sg->upstream_test_set) & stages[u].reads) ||
            strcmp(c->identity[u], "-") == 0)
            continue;
        char id[HEX];
        snprintf(id, sizeof id, "%s", c->identity[u][0] ? c->identity[u] : "?");
        if (!c->identity[u][0] && !in->unknown) in->unknown = stages[u].name;
        if (test_set && c->identity[u][0] && (st = split_test_identity(c, id, err)) != VS_OK)
            return st;
        if (strcmp(id, "-") == 0) continue;
        used += (size_t)snprintf(in->upstream + used, sizeof in->upstream - used, "%s%s %s\n",
                                 stages[u].name, test_set ? ":test" : "", id);
    }
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    char head[128];
    snprintf(head, sizeof head, "vesalius %s\nstage %s\n", VESALIUS_VERSION, sg->name);
    crypto_hash_sha256_update(&h, (const unsigned char *)head, strlen(head));
    crypto_hash_sha256_update(&h, (const unsigned char *)in->settings_text,
                              strlen(in->settings_text));
    crypto_hash_sha256_update(&h, (const unsigned char *)in->upstream, strlen(in->upstream));
    unsigned char out[32];
    crypto_hash_sha256_final(&h, out);
    hex_of(out, in->hash);
    return VS_OK;
}

/* The record a stage would have now: its inputs (hash, settings, upstream identities) and the
 * hashes of its outputs. Returns VS_ERR_IO when an output is missing. free() *text. */
static vs_status record_now(run_ctx *c, const stage *sg, const stage_inputs *in, char **text,
                            vs_error *err) {
    size_t len = 0;
    *text = NULL;
    FILE *f = open_memstream(text, &len);
    if (!f) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    fprintf(f, "{\n  \"stage\": \"%s\",\n  \"inputs_sha256\": \"%s\",\n  \"settings\": {", sg->name,
            in->hash);
    for (int k = 0; k < in->settings.n; k++) {
        fputs(k ? ",\n    " : "\n    ", f);
        log_json_string(f, in->settings.key[k]);
        fputs(": ", f);
        log_json_string(f, in->settings.value[k]);
    }
    fputs("\n  },\n  \"upstream\": {", f);
    int first = 1;
    for (const char *p = in->upstream; *p; first = 0) {
        const char *sp = strchr(p, ' '), *nl = strchr(p, '\n');
        fprintf(f, "%s\n    \"%.*s\": \"%.*s\"", first ? "" : ",", (int)(sp - p), p,
                (int)(nl - sp - 1), sp + 1);
        p = nl + 1;
    }
    fputs("\n  },\n  \"outputs\": {", f);
    vs_status s = VS_OK;
    first = 1;
    if (sg->incremental) {
        fprintf(f, "\n    \"shards\": \"%s\"", c->shards_hash);
        first = 0;
    }
    for (int i = 0; s == VS_OK && i < MAX_OUTPUTS && sg->outputs[i]; i++, first = 0) {
        char path[PATH_MAX + 64], h[HEX];
        snprintf(path, sizeof path, "%s/%s/%s", c->out, sg->dir ? sg->dir : sg->name,
                 sg->outputs[i]);
        s = report_sha256_file(path, h, err);
        fprintf(f, "%s\n    \"%s\": \"%s\"", first ? "" : ",", sg->outputs[i], h);
    }
    fputs("\n  }\n}\n", f);
    if (fclose(f) != 0 && s == VS_OK) s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (s != VS_OK) {
        free(*text);
        *text = NULL;
    }
    return s;
}

/* The stored record of a stage, or NULL (free() it). */
static char *stored_record(run_ctx *c, const stage *sg) {
    char path[PATH_MAX + 32], *buf = malloc(65536);
    snprintf(path, sizeof path, "%s/stages/%s.json", c->out, sg->name);
    if (buf && read_small(path, buf, 65536) == VS_OK) return buf;
    free(buf);
    return NULL;
}

/* Why the stage must run, in words: what differs between its stored record and now. Returns
 * 1 when it is up to date (invariant 1: the stored record equals the record it would have now). */
static int explain(run_ctx *c, const stage *sg, const stage_inputs *in, const char *stored,
                   char *why, size_t cap) {
    if (in->unknown) {
        snprintf(why, cap, "upstream stage %s runs first", in->unknown);
        return 0;
    }
    if (!stored) {
        snprintf(why, cap, "no finished run");
        return 0;
    }
    char *now = NULL;
    vs_error err;
    int same = record_now(c, sg, in, &now, &err) == VS_OK && strcmp(stored, now) == 0;
    free(now);
    if (same) return 1;
    why[0] = '\0';
    study_kv old, up_old, up_now;
    size_t n = 0;
    if (study_kv_parse(stored, "settings", &old, &err) == VS_OK) {
        study_kv_diff(&old, &in->settings, why, cap);
        study_kv_free(&old);
        n = strlen(why);
    }
    /* the upstream block of the record is "name": "identity" lines, like the settings */
    char *up_text = NULL;
    size_t up_len = 0;
    FILE *f = open_memstream(&up_text, &up_len);
    if (f) {
        fputs("\"upstream\": {\n", f);
        for (const char *p = in->upstream; *p;) {
            const char *sp = strchr(p, ' '), *nl = strchr(p, '\n');
            fprintf(f, "    \"%.*s\": \"%.*s\",\n", (int)(sp - p), p, (int)(nl - sp - 1), sp + 1);
            p = nl + 1;
        }
        fputs("  }\n", f);
        fclose(f);
    }
    if (up_text && study_kv_parse(stored, "upstream", &up_old, &err) == VS_OK) {
        if (study_kv_parse(up_text, "upstream", &up_now, &err) == VS_OK) {
            for (int k = 0; k < up_now.n; k++) {
                int found = 0;
                for (int j = 0; j < up_old.n; j++)
                    found |= strcmp(up_old.key[j], up_now.key[k]) == 0 &&
                             strcmp(up_old.value[j], up_now.value[k]) == 0;
                if (!found)
                    n += (size_t)snprintf(why + n, n < cap ? cap - n : 0, "%supstream %s changed",
                                          n ? "; " : "", up_now.key[k]);
            }
            study_kv_free(&up_now);
        }
        study_kv_free(&up_old);
    }
    free(up_text);
    if (n == 0) snprintf(why, cap, "its outputs changed or are missing since its last run");
    return 0;
}

/* ---- child processes ------------------------------------------------------------------------ */
/* The processes a stage's command runs as: distributed.ranks for a command that runs across
 * ranks (cli.h CLI_RANKS: ingest, pretrain and the finetune stages), started as LAUNCHER...
 * -n RANKS vesalius COMMAND ...; 1 for every other stage, which runs as one process
 * (pipeline/dist.h). The results of ingest and of the finetune stages do not depend on the
 * rank count, so distributed.ranks is not one of their settings (studies/study.h: it is read
 * by pretrain alone) and a rerun at another count skips them. */
static int stage_ranks(const run_ctx *c, const arglist *a) {
    const study_distributed *d = &c->s->distributed;
    const cli_command *cmd = a->n ? cli_find(a->v[0]) : NULL;
    return cmd && (cmd->flags & CLI_RANKS) && d->launcher.n > 0 && d->ranks > 1 ? d->ranks : 1;
}

/* Before a stage that runs across ranks starts: a launcher to start them, and an accumulation
 * they can split (pretrain would refuse it too, but from inside the launcher). Not in the dry
 * run, whose plan is what changed. */
static vs_status check_launch(const run_ctx *c, const arglist *a, vs_error *err) {
    const study_distributed *d = &c->s->distributed;
    const cli_command *cmd = a->n ? cli_find(a->v[0]) : NULL;
    if (!cmd || !(cmd->flags & CLI_RANKS) || d->ranks == 1) return VS_OK;
    if (d->launcher.n == 0)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "%s: key 'distributed.ranks' is %d but 'distributed.launcher' is empty: "
                       "say how the ranks start, e.g. [mpirun] or [srun]",
                       c->study_path, d->ranks);
    if (d->launcher.n > MAX_LAUNCHER)
        return VS_FAIL(err, VS_ERR_CONFIG, "%s: key 'distributed.launcher' has more than %d words",
                       c->study_path, MAX_LAUNCHER);
    if (strcmp(cmd->name, "pretrain") == 0 && c->s->pretrain.accumulate % d->ranks != 0)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "%s: %d ranks cannot split pretrain.accumulate %d: each rank runs whole "
                       "micro-batches, so accumulate must be a multiple of distributed.ranks",
                       c->study_path, d->ranks, c->s->pretrain.accumulate);
    return VS_OK;
}

static int run_child(run_ctx *c, const stage *sg, arglist *a, vs_error *err) {
    char log_path[PATH_MAX + 32];
    snprintf(log_path, sizeof log_path, "%s/logs/%s.jsonl", c->out, sg->name);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        VS_FAIL(err, VS_ERR_IO, "%s: cannot open the stage log (%s)", log_path, strerror(errno));
        return -1;
    }
    const study_distributed *d = &c->s->distributed;
    int spread = stage_ranks(c, a) > 1;
    char *argv[MAX_ARGS + 2 + MAX_LAUNCHER + 2], ranks[16];
    int k = 0;
    if (spread) { /* check_launch: at most MAX_LAUNCHER words */
        snprintf(ranks, sizeof ranks, "%d", d->ranks);
        for (unsigned i = 0; i < d->launcher.n; i++)
            argv[k++] = d->launcher.v[i];
        argv[k++] = "-n";
        argv[k++] = ranks;
    }
    argv[k++] = c->self;
    for (int i = 0; i <= a->n; i++)
        argv[k + i] = a->v[i];
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        VS_FAIL(err, VS_ERR_ENV, "cannot start the %s stage (%s)", sg->name, strerror(errno));
        return -1;
    }
    if (pid == 0) { /* invariant 3: the stage dies with the runner; a launcher is asked to end
                       its ranks (mpirun and srun pass SIGTERM on, pretrain stops at a step) */
        if (prctl(PR_SET_PDEATHSIG, spread ? SIGTERM : SIGKILL) != 0 || getppid() != parent)
            _exit(VS_EXIT_FAILURE);
        if (dup2(fd, STDERR_FILENO) < 0) _exit(VS_EXIT_ENV);
        if (spread) {
            execvp(argv[0], argv);
            dprintf(STDERR_FILENO, "vesalius run: cannot start the launcher '%s' (%s)\n", argv[0],
                    strerror(errno));
        } else {
            execv(c->self, argv);
        }
        _exit(VS_EXIT_ENV);
    }
    close(fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            VS_FAIL(err, VS_ERR_ENV, "lost the %s stage (%s)", sg->name, strerror(errno));
            return -1;
        }
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* ---- the run -------------------------------------------------------------------------------- */
/* Where the report is and its headline (the per-arm AUC and CPM lines `vesalius validate`
 * logged last), at the end of every run that has a report. */
static void print_headline(run_ctx *c) {
    char path[PATH_MAX + 32], line[4096], last[2][512] = {"", ""};
    snprintf(path, sizeof path, "%s/report/report.html", c->out);
    if (access(path, F_OK) != 0) return;
    snprintf(path, sizeof path, "%s/logs/validate.jsonl", c->out);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        static const char *const arms[2] = {"\"msg\":\"mae: AUC", "\"msg\":\"scratch: AUC"};
        for (int a = 0; a < 2; a++) {
            const char *m = strstr(line, arms[a]);
            const char *end = m ? strchr(m + 7, '"') : NULL;
            if (end) snprintf(last[a], sizeof last[a], "%.*s", (int)(end - m - 7), m + 7);
        }
    }
    if (f) fclose(f);
    run_event(c, NULL, "run.report", "report: %s/report/report.html (report.json beside it)",
              c->out);
    for (int a = 0; a < 2; a++)
        if (last[a][0]) run_event(c, NULL, "run.headline", "%s", last[a]);
}

static int selected(const runner_options *o, const char *name) {
    if (!o->stages) return 1;
    size_t n = strlen(name);
    for (const char *p = o->stages; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p += len + (comma ? 1 : 0);
    }
    return 0;
}

static vs_status take_lock(run_ctx *c, int *fd_out, vs_error *err) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/.run.lock", c->out);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot open the lock (%s)", path, strerror(errno));
    for (int waited = 0;; waited += 200) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
        if (errno != EWOULDBLOCK || waited >= c->opt->lock_timeout_s * 1000) {
            close(fd);
            return VS_FAIL(err, VS_ERR_BUSY, "%s: another run holds this output folder", c->out);
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    *fd_out = fd;
    return VS_OK;
}

static int fail_with(run_ctx *c, const char *stage, const vs_error *err) {
    if (c->runlog) run_event(c, stage, "run.failed", "%s", err->msg);
    return cli_fail("run", err);
}

static int validate_names(const runner_options *o) {
    if (o->from) {
        int ok = 0;
        for (int i = 0; i < N_STAGES; i++)
            ok |= strcmp(o->from, stages[i].name) == 0;
        if (!ok) return cli_usage_error("run", "--from: unknown stage '%s'", o->from);
    }
    for (const char *p = o->stages; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int ok = 0;
        for (int i = 0; i < N_STAGES; i++)
            ok |= strlen(stages[i].name) == len && strncmp(p, stages[i].name, len) == 0;
        if (!ok) return cli_usage_error("run", "--stages: unknown stage '%.*s'", (int)len, p);
        p += len + (comma ? 1 : 0);
    }
    return 0;
}

/* 1 when the child wrote the settings the runner hashed (it read the same study file). */
static int settings_as_planned(run_ctx *c, const stage *sg, const stage_inputs *in) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s/settings.json", c->out, sg->dir ? sg->dir : sg->name);
    size_t n = strlen(in->settings_text);
    char *buf = malloc(n + 2);
    int same = buf && read_small(path, buf, n + 2) == VS_OK && strcmp(buf, in->settings_text) == 0;
    free(buf);
    return same;
}

/* Run one stage that must run: start over when what it consumed changed (invariant 2), run
 * the child, check and record. Returns the child's exit code, or -1 with err filled. */
static int run_stage(run_ctx *c, int i, const stage_inputs *in, const char *stored, arglist *a,
                     const char *why, vs_error *err) {
    const stage *sg = &stages[i];
    if (check_launch(c, a, err) != VS_OK) return -1; /* before anything of the stage changes */
    char started_path[PATH_MAX + 32], started[HEX + 2] = "", dir[PATH_MAX + 32];
    snprintf(started_path, sizeof started_path, "%s/stages/%s.started", c->out, sg->name);
    snprintf(dir, sizeof dir, "%s/%s", c->out, sg->dir ? sg->dir : sg->name);
    read_small(started_path, started, sizeof started);
    /* the inputs the stage's folder holds results of: an interrupted run's, else the last
     * finished run's (ingest adds to those; the other stages start over unless resuming) */
    const char *prev = started;
    char last[HEX] = "";
    const char *h = stored ? strstr(stored, "\"inputs_sha256\": \"") : NULL;
    if (!started[0] && h) snprintf(last, sizeof last, "%.64s", h + 18), prev = last;
    if (sg->incremental ? prev[0] && strcmp(prev, in->hash) != 0 : strcmp(started, in->hash) != 0) {
        if (sg->incremental)
            run_event(c, sg->name, "stage.restart", "%s: starts over (%s)", sg->name, why);
        if (rm_rf(dir, err) != VS_OK) return -1;
        char log_path[PATH_MAX + 32];
        snprintf(log_path, sizeof log_path, "%s/logs/%s.jsonl", c->out, sg->name);
        unlink(log_path);
    }
    if (write_atomic(started_path, in->hash, err) != VS_OK) return -1;
    int ranks = stage_ranks(c, a);
    if (ranks > 1)
        run_event(c, sg->name, "stage.start", "%s: running on %d ranks through %s (%s)", sg->name,
                  ranks, c->s->distributed.launcher.v[0], why);
    else
        run_event(c, sg->name, "stage.start", "%s: running (%s)", sg->name, why);
    int rc = run_child(c, sg, a, err);
    if (rc < 0) return -1;
    int ok =
        rc == VS_EXIT_OK || (sg->incremental && (rc == VS_EXIT_REJECTS || rc == VS_EXIT_NOTHING));
    if (!ok) return rc;
    if (!settings_as_planned(c, sg, in)) {
        VS_FAIL(err, VS_ERR_CONFIG,
                "%s/settings.json differs from the settings planned for %s: was %s edited during "
                "the run?",
                dir, sg->name, c->study_path);
        return -1;
    }
    char *record = NULL, rpath[PATH_MAX + 32];
    vs_status st = sg->after ? sg->after(c, err) : VS_OK;
    if (st == VS_OK) st = record_now(c, sg, in, &record, err);
    snprintf(rpath, sizeof rpath, "%s/stages/%s.json", c->out, sg->name);
    if (st == VS_OK) st = write_atomic(rpath, record, err);
    if (st == VS_OK) sha256_text(record, c->identity[i]);
    free(record);
    if (st != VS_OK) return -1;
    unlink(started_path);
    run_event(c, sg->name, "stage.done", "%s: done (exit %d)", sg->name, rc);
    return rc;
}

int runner_run(study *s, const char *study_path, const runner_options *opt) {
    if (validate_names(opt)) return VS_EXIT_USAGE;
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s, c.study_path = study_path, c.opt = opt;
    vs_error err = {0};
    if (sodium_init() < 0) {
        VS_FAIL(&err, VS_ERR_LIBRARY, "libsodium failed to initialise");
        return fail_with(&c, NULL, &err);
    }
    /* -j N is the setting `threads` (settings_cli.h, invariant 2). 0 (all cores, the default)
     * resolves here, before any stage's command line: a stage is never handed --threads=0 */
    s->top.threads = settings_cli_threads(s);
    if (!realpath(s->top.output, c.out) && errno != ENOENT)
        snprintf(c.out, sizeof c.out, "%s", s->top.output);
    if (!c.out[0]) snprintf(c.out, sizeof c.out, "%s", s->top.output);
    ssize_t n = readlink("/proc/self/exe", c.self, sizeof c.self - 1);
    if (n <= 0) {
        VS_FAIL(&err, VS_ERR_ENV, "cannot find the vesalius binary (/proc/self/exe)");
        return fail_with(&c, NULL, &err);
    }
    c.self[n] = 0;
    char sub[PATH_MAX + 16];
    int lock_fd = -1;
    vs_status st = VS_OK;
    if (!opt->dry_run) {
        snprintf(sub, sizeof sub, "%s/stages", c.out); /* vs_mkdirs makes the parents */
        st = vs_mkdirs(sub, 0755, &err);
        snprintf(sub, sizeof sub, "%s/logs", c.out);
        if (st == VS_OK) st = vs_mkdirs(sub, 0755, &err);
        if (st == VS_OK) st = take_lock(&c, &lock_fd, &err);
        if (st == VS_OK) st = settings_cli_ensure_key(s, &err);
        if (st != VS_OK) {
            if (lock_fd >= 0) close(lock_fd);
            return fail_with(&c, NULL, &err);
        }
        snprintf(sub, sizeof sub, "%s/run.jsonl", c.out);
        c.runlog = fopen(sub, "a");
        if (!c.runlog) {
            VS_FAIL(&err, VS_ERR_IO, "%s: cannot open the run log (%s)", sub, strerror(errno));
            close(lock_fd);
            return fail_with(&c, NULL, &err);
        }
        run_event(&c, NULL, "run.start", "study %s, output %s", s->top.name, c.out);
    }
    int forced = 0, worked = 0, rejects = 0, code = VS_EXIT_OK;
    for (int i = 0; i < N_STAGES && code == VS_EXIT_OK; i++) {
        const stage *sg = &stages[i];
        if (opt->from && strcmp(opt->from, sg->name) == 0) forced = 1;
        snprintf(c.identity[i], HEX, "-");
        if (sg->applies && !sg->applies(&c)) {
            if (opt->dry_run) printf("%-16s %s\n", sg->name, "does not apply to this study");
            continue;
        }
        arglist a = {{0}, 0, {0}, 0};
        stage_inputs in;
        char why[1024];
        st = sg->command(&c, &a, &err);
        if (st == VS_OK && arg_overflow(&a))
            st = VS_FAIL(&err, VS_ERR_CONFIG, "the %s command line is too long", sg->name);
        if (st == VS_OK) st = inputs_now(&c, i, &in, &err);
        if (st != VS_OK) {
            code = fail_with(&c, sg->name, &err);
            break;
        }
        char *stored = stored_record(&c, sg);
        int fresh = explain(&c, sg, &in, stored, why, sizeof why);
        if (stored && fresh) sha256_text(stored, c.identity[i]);
        if (sg->incremental) { /* ingest adds what is new, or starts over when its settings changed
                                */
            const char *h = stored ? strstr(stored, "\"inputs_sha256\": \"") : NULL;
            if (h && strncmp(h + 18, in.hash, 64) != 0) {
                char diff[1024];
                snprintf(diff, sizeof diff, "starts over: %s", why);
                snprintf(why, sizeof why, "%s", diff);
            } else {
                snprintf(why, sizeof why, "ingests what is new in the sources (incremental)");
            }
        }
        int sel = selected(opt, sg->name);
        if (!sel || (fresh && !sg->incremental && !forced)) {
            if (stored && !fresh && !sel)
                sha256_text(stored, c.identity[i]); /* not selected: as it is */
            if (opt->dry_run)
                printf("%-16s %s\n", sg->name, !sel ? "not selected" : "up to date: skip");
            else
                run_event(&c, sg->name, "stage.skip", "%s: %s", sg->name,
                          !sel ? "not selected" : "up to date");
            free(stored);
            inputs_free(&in);
            continue;
        }
        if (forced && !sg->incremental) snprintf(why, sizeof why, "forced by --from");
        if (opt->dry_run) {
            int ranks = stage_ranks(&c, &a);
            if (ranks > 1)
                printf("%-16s run: %s (on %d ranks through %s)\n", sg->name, why, ranks,
                       c.s->distributed.launcher.v[0]);
            else
                printf("%-16s run: %s\n", sg->name, why);
            c.identity[i][0] = '\0'; /* the stages after it cannot know their inputs yet */
            if (sg->incremental && stored && strncmp(why, "starts over", 11) != 0)
                sha256_text(stored, c.identity[i]);
            free(stored);
            inputs_free(&in);
            continue;
        }
        int rc = run_stage(&c, i, &in, stored, &a, why, &err);
        free(stored);
        inputs_free(&in);
        if (rc < 0) {
            code = fail_with(&c, sg->name, &err);
            break;
        }
        int ok = rc == VS_EXIT_OK ||
                 (sg->incremental && (rc == VS_EXIT_REJECTS || rc == VS_EXIT_NOTHING));
        if (!ok) {
            VS_FAIL(&err, VS_ERR_INTERNAL,
                    "stage %s failed with exit %d (its log: %s/logs/%s.jsonl)", sg->name, rc, c.out,
                    sg->name);
            code = fail_with(&c, sg->name, &err);
            if (rc == VS_EXIT_USAGE || rc == VS_EXIT_ENV || rc == VS_EXIT_BUSY ||
                rc == VS_EXIT_PEER)
                code = rc; /* what cron must tell apart: a PACS that did not answer */
            break;
        }
        rejects |= rc == VS_EXIT_REJECTS;
        /* a rerun of ingest that found nothing new leaves the same record: no work done */
        worked |= rc != VS_EXIT_NOTHING;
    }
    if (!opt->dry_run && code == VS_EXIT_OK) {
        code = rejects ? VS_EXIT_REJECTS : worked ? VS_EXIT_OK : VS_EXIT_NOTHING;
        print_headline(&c);
        run_event(&c, NULL, "run.done", "%s",
                  code == VS_EXIT_NOTHING ? "nothing to do"
                  : rejects ? "done, with rejected inputs (see ingest/ingest-summary.json)"
                            : "done");
    }
    if (c.runlog) fclose(c.runlog);
    if (lock_fd >= 0) close(lock_fd);
    return code;
}
