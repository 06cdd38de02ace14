/* runner.c — the stage runner behind `vesalius run` (see runner.h for the layout and
 * invariants). Each stage is one row of `stages`: how to build its command line from the
 * study, which upstream hashes it consumes, which files it produces. */
#include "runner.h"
#include "fsdir.h"

#include "cli.h"
#include "log.h"
#include "report.h"

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

static int arg_overflow(const arglist *a) { return a->n >= MAX_ARGS || a->used >= sizeof a->buf - 1; }

typedef struct run_ctx {
    const study *s;
    const char *study_path;
    const runner_options *opt;
    char out[PATH_MAX], self[PATH_MAX];
    FILE *runlog;
    char shards_hash[HEX]; /* output of ingest: SHA-256 of the shard set */
    char pretrain_hash[HEX];
    int ingest_exit;
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

static vs_status mkdir_one(const char *path, vs_error *err) { return vs_mkdirs(path, 0755, err); }

static vs_status mkdir_p(const char *path, vs_error *err) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            vs_status s = mkdir_one(tmp, err);
            *p = '/';
            if (s != VS_OK) return s;
        }
    return mkdir_one(tmp, err);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static vs_status rm_rf(const char *path, vs_error *err) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return VS_OK;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot remove the stale stage output (%s)", path, strerror(errno));
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
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot write (%s)", tmp, strerror(errno));
    int bad = fputs(text, f) < 0;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return VS_FAIL(err, VS_ERR_IO, "%s: cannot write (%s)", path, strerror(errno));
    }
    return VS_OK;
}

/* ---- the stages ---------------------------------------------------------------------------- */
typedef struct stage {
    const char *name;
    int incremental; /* runs every time (it skips what it already did itself) */
    int (*applies)(const run_ctx *c); /* NULL: always; 0: the study does not call for it */
    /* Build the command line and list the upstream hashes it consumes ("name hash\n" lines). */
    vs_status (*command)(run_ctx *c, arglist *a, char *inputs, size_t cap, vs_error *err);
    const char *outputs[MAX_OUTPUTS]; /* files below OUT/<dir>/ whose hashes the record keeps */
    const char *dir;                  /* the stage's output folder below OUT (NULL: its name) */
    vs_status (*after)(run_ctx *c, vs_error *err); /* publish this stage's hashes downstream */
} stage;

static void common_args(run_ctx *c, arglist *a) {
    int threads = g_cli.threads > 0 ? g_cli.threads : c->s->threads;
    if (threads > 0) arg_add(a, "--threads=%d", threads);
    arg_add(a, "--log-json");
}

static vs_status ingest_command(run_ctx *c, arglist *a, char *inputs, size_t cap, vs_error *err) {
    (void)inputs, (void)cap;
    const study *s = c->s;
    if (s->ingest.sources_count == 0)
        return VS_FAIL(err, VS_ERR_CONFIG, "%s: key 'ingest.sources' is missing: nothing to ingest", c->study_path);
    arg_add(a, "ingest");
    for (unsigned i = 0; i < s->ingest.sources_count; i++) arg_add(a, "%s", s->ingest.sources[i]);
    arg_add(a, "--out");
    arg_add(a, "%s/ingest", c->out);
    arg_add(a, "--study");
    arg_add(a, "%s", c->study_path);
    common_args(c, a);
    return VS_OK;
}

static vs_status ingest_after(run_ctx *c, vs_error *err) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/ingest/shards", c->out);
    size_t n = 0;
    return report_sha256_shards(dir, c->shards_hash, &n, err);
}

static vs_status pretrain_command(run_ctx *c, arglist *a, char *inputs, size_t cap, vs_error *err) {
    (void)err;
    const study_pretrain *p = &c->s->pretrain;
    arg_add(a, "pretrain");
    arg_add(a, "--shards");
    arg_add(a, "%s/ingest", c->out);
    arg_add(a, "--out");
    arg_add(a, "%s/pretrain", c->out);
    arg_add(a, "--resume"); /* continues a checkpoint left with the same inputs (invariant 2) */
    if (p->modalities_count == 1) {
        arg_add(a, "--modality");
        arg_add(a, "%s", p->modalities[0]);
    }
    arg_add(a, "--crop=%d,%d,%d", p->crop[0], p->crop[1], p->crop[2]);
    arg_add(a, "--patch=%d,%d,%d", p->patch[0], p->patch[1], p->patch[2]);
    arg_add(a, "--dim=%d", p->dim);
    arg_add(a, "--depth=%d", p->depth);
    arg_add(a, "--heads=%d", p->heads);
    arg_add(a, "--dec-dim=%d", p->dec_dim);
    arg_add(a, "--dec-depth=%d", p->dec_depth);
    arg_add(a, "--dec-heads=%d", p->dec_heads);
    arg_add(a, "--mlp-ratio=%d", p->mlp_ratio);
    arg_add(a, "--mask-ratio=%.17g", p->mask_ratio);
    arg_add(a, "--target=%s", p->target == STUDY_TARGET_PLAIN ? "plain" : "norm");
    arg_add(a, "--visible-weight=%.17g", p->visible_loss_weight);
    arg_add(a, "--batch=%d", p->batch);
    arg_add(a, "--accum=%d", p->accumulate);
    arg_add(a, "--steps=%d", p->steps);
    arg_add(a, "--lr=%.17g", p->lr);
    arg_add(a, "--min-lr=%.17g", p->min_lr);
    arg_add(a, "--warmup=%d", p->warmup_steps);
    arg_add(a, "--weight-decay=%.17g", p->weight_decay);
    if (!p->decay_norms_and_biases) arg_add(a, "--no-decay-norms");
    arg_add(a, "--clip=%.17g", p->clip);
    arg_add(a, "--flip=%s", p->flips ? "0.5" : "0");
    arg_add(a, "--scale=%.17g", p->intensity_scale);
    arg_add(a, "--shift=%.17g", p->intensity_shift);
    arg_add(a, "--working-set=%d", p->working_set);
    arg_add(a, "--swap-every=%d", p->swap_every);
    arg_add(a, "--chunk-cache=%d", p->chunk_cache_mb);
    arg_add(a, "--seed=%lld", (long long)c->s->seed);
    arg_add(a, "--checkpoint-every=%d", p->checkpoint_every);
    arg_add(a, "--log-every=%d", p->steps >= 100 ? 10 : 1);
    common_args(c, a);
    snprintf(inputs, cap, "shards %s\n", c->shards_hash);
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
        int k = snprintf(row, sizeof row, "{\"component\":\"%s\",\"event\":\"%s\",\"step\":\"%ld\",\"loss\":\"%s\"}\n",
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
    for (long s = 0; s <= max_step; s++) free(loss[s]);
    free(loss);
    free(text);
    return st;
}

static vs_status pretrain_after(run_ctx *c, vs_error *err) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/pretrain/model.safetensors", c->out);
    vs_status st = report_sha256_file(path, c->pretrain_hash, err);
    if (st == VS_OK) st = write_curve(c, "pretrain", "pretrain.step", err);
    return st;
}

/* Fine-tuning needs labels; without them the stages after pretraining do not apply. */
static int has_labels(const run_ctx *c) { return c->s->labels.file != NULL; }

static vs_status finetune_command(run_ctx *c, arglist *a, char *inputs, size_t cap, int mae, vs_error *err) {
    const study *s = c->s;
    const study_pretrain *p = &s->pretrain;
    if (!s->deid.key_file)
        return VS_FAIL(err, VS_ERR_CONFIG, "%s: key 'deid.key_file' is missing: labels name original UIDs", c->study_path);
    arg_add(a, "finetune");
    arg_add(a, "--study=%s", c->study_path); /* the finetune section's settings */
    arg_add(a, "--shards=%s/ingest/shards", c->out);
    arg_add(a, "--out=%s/finetune-%s", c->out, mae ? "mae" : "scratch");
    arg_add(a, "--key=%s", s->deid.key_file);
    arg_add(a, "--%s=%s", s->labels.format == STUDY_LABELS_MASKS ? "masks"
                          : s->labels.format == STUDY_LABELS_VOLUME ? "volume-labels" : "labels",
            s->labels.file);
    if (s->labels.volumes) arg_add(a, "--volume-labels=%s", s->labels.volumes);
    arg_add(a, "--arm=%s", mae ? "mae" : "scratch");
    arg_add(a, "--seed=%lld", (long long)s->seed);
    arg_add(a, "--eval-every=%d", s->finetune.eval_every);
    if (s->finetune.mode == STUDY_TUNE_PROBE) arg_add(a, "--probe");
    if (mae) {
        arg_add(a, "--init=%s/pretrain/checkpoint.ckpt", c->out);
    } else { /* the same architecture as the pretrained encoder, from random weights */
        arg_add(a, "--crop=%d,%d,%d", p->crop[0], p->crop[1], p->crop[2]);
        arg_add(a, "--patch=%d,%d,%d", p->patch[0], p->patch[1], p->patch[2]);
        arg_add(a, "--dim=%d", p->dim);
        arg_add(a, "--depth=%d", p->depth);
        arg_add(a, "--heads=%d", p->heads);
    }
    common_args(c, a);
    snprintf(inputs, cap, "shards %s\npretrain %s\n", c->shards_hash, mae ? c->pretrain_hash : "-");
    return VS_OK;
}

static vs_status finetune_mae_command(run_ctx *c, arglist *a, char *inputs, size_t cap, vs_error *err) {
    return finetune_command(c, a, inputs, cap, 1, err);
}

static vs_status finetune_scratch_command(run_ctx *c, arglist *a, char *inputs, size_t cap, vs_error *err) {
    return finetune_command(c, a, inputs, cap, 0, err);
}

static vs_status validate_command(run_ctx *c, arglist *a, char *inputs, size_t cap, vs_error *err) {
    (void)err;
    const study *s = c->s;
    char h[HEX];
    vs_error ignore;
    size_t used = 0;
    arg_add(a, "validate");
    const char *arms[2] = {"mae", s->finetune.scratch_baseline ? "scratch" : NULL};
    for (int i = 0; i < 2 && arms[i]; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/finetune-%s/predictions-%s.csv", c->out, arms[i], arms[i]);
        arg_add(a, "--predictions=%s", path);
        arg_add(a, "--train-log=finetune-%s=%s/finetune-%s/train-%s-fold0.jsonl", arms[i], c->out, arms[i], arms[i]);
        if (report_sha256_file(path, h, &ignore) != VS_OK) snprintf(h, sizeof h, "-");
        used += (size_t)snprintf(inputs + used, cap - used, "predictions-%s %s\n", arms[i], h);
    }
    arg_add(a, "--labels=%s/finetune-mae/labels.csv", c->out);
    arg_add(a, "--train-log=pretrain=%s/logs/pretrain.curve.jsonl", c->out);
    arg_add(a, "--preview=mae=%s/pretrain/preview.png", c->out);
    arg_add(a, "--out=%s/report", c->out);
    arg_add(a, "--study=%s", c->study_path);
    arg_add(a, "--shards=%s/ingest/shards", c->out);
    arg_add(a, "--bootstrap=%d", s->validate.bootstrap);
    arg_add(a, "--seed=%lld", (long long)s->seed);
    arg_add(a, "--record-seed=study=%lld", (long long)s->seed);
    for (unsigned i = 0; i < s->validate.operating_points_count; i++)
        arg_add(a, "--operating-point=%.17g", s->validate.operating_points[i]);
    common_args(c, a);
    snprintf(inputs + used, cap - used, "shards %s\npretrain %s\n", c->shards_hash, c->pretrain_hash);
    return VS_OK;
}

static const stage stages[] = {
    {"ingest", 1, NULL, ingest_command, {NULL}, NULL, ingest_after},
    {"pretrain", 0, NULL, pretrain_command, {"model.safetensors", "checkpoint.ckpt", "preview.png", NULL}, NULL, pretrain_after},
    {"finetune-mae", 0, has_labels, finetune_mae_command, {"predictions-mae.csv", "labels.csv", "splits.csv", NULL}, NULL, NULL},
    {"finetune-scratch", 0, has_labels, finetune_scratch_command, {"predictions-scratch.csv", "labels.csv", "splits.csv", NULL}, NULL, NULL},
    {"validate", 0, has_labels, validate_command, {"report.json", "report.html", "report.md", NULL}, "report", NULL},
};
enum { N_STAGES = (int)(sizeof stages / sizeof stages[0]) };

const char *const runner_stage_names[] = {"ingest", "pretrain", "finetune-mae", "finetune-scratch", "validate"};
const int runner_n_stages = N_STAGES;

/* ---- records ------------------------------------------------------------------------------- */
static void hex_of(const unsigned char *h, char out[HEX]) {
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* SHA-256 over the version, the command line and the upstream hashes. */
static void inputs_hash(const arglist *a, const char *inputs, char out[HEX]) {
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    const char *v = "vesalius " VESALIUS_VERSION "\n";
    crypto_hash_sha256_update(&st, (const unsigned char *)v, strlen(v));
    for (int i = 0; i < a->n; i++) {
        crypto_hash_sha256_update(&st, (const unsigned char *)a->v[i], strlen(a->v[i]) + 1);
    }
    crypto_hash_sha256_update(&st, (const unsigned char *)inputs, strlen(inputs));
    unsigned char h[32];
    crypto_hash_sha256_final(&st, h);
    hex_of(h, out);
}

/* The record a stage would have now: its inputs hash and the hashes of its outputs. Returns
 * VS_ERR_IO when an output is missing. */
static vs_status record_now(run_ctx *c, const stage *sg, const char *in_hash, char *buf, size_t cap,
                            vs_error *err) {
    size_t used = (size_t)snprintf(buf, cap, "{\n  \"stage\": \"%s\",\n  \"inputs_sha256\": \"%s\",\n  \"outputs\": {",
                                   sg->name, in_hash);
    if (sg->incremental) {
        used += (size_t)snprintf(buf + used, cap - used, "\n    \"shards\": \"%s\"", c->shards_hash);
    }
    for (int i = 0; i < MAX_OUTPUTS && sg->outputs[i]; i++) {
        char path[PATH_MAX + 64], h[HEX];
        snprintf(path, sizeof path, "%s/%s/%s", c->out, sg->dir ? sg->dir : sg->name, sg->outputs[i]);
        vs_status s = report_sha256_file(path, h, err);
        if (s != VS_OK) return s;
        used += (size_t)snprintf(buf + used, cap - used, "%s\n    \"%s\": \"%s\"", i ? "," : "", sg->outputs[i], h);
        if (used >= cap) return VS_FAIL(err, VS_ERR_INTERNAL, "stage record too long");
    }
    snprintf(buf + used, cap - used, "\n  }\n}\n");
    return VS_OK;
}

/* Invariant 1: up to date when the stored record equals the record it would have now. */
static int up_to_date(run_ctx *c, const stage *sg, const char *in_hash) {
    char path[PATH_MAX + 32], stored[4096], now[4096];
    snprintf(path, sizeof path, "%s/stages/%s.json", c->out, sg->name);
    if (read_small(path, stored, sizeof stored) != VS_OK) return 0;
    vs_error err;
    if (record_now(c, sg, in_hash, now, sizeof now, &err) != VS_OK) return 0;
    return strcmp(stored, now) == 0;
}

/* ---- child processes ------------------------------------------------------------------------ */
static int run_child(run_ctx *c, const stage *sg, arglist *a, vs_error *err) {
    char log_path[PATH_MAX + 32];
    snprintf(log_path, sizeof log_path, "%s/logs/%s.jsonl", c->out, sg->name);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        VS_FAIL(err, VS_ERR_IO, "%s: cannot open the stage log (%s)", log_path, strerror(errno));
        return -1;
    }
    char *argv[MAX_ARGS + 2];
    argv[0] = c->self;
    for (int i = 0; i <= a->n; i++) argv[i + 1] = a->v[i];
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        VS_FAIL(err, VS_ERR_ENV, "cannot start the %s stage (%s)", sg->name, strerror(errno));
        return -1;
    }
    if (pid == 0) { /* invariant 3: the stage dies with the runner */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(VS_EXIT_FAILURE);
        if (dup2(fd, STDERR_FILENO) < 0) _exit(VS_EXIT_ENV);
        execv(c->self, argv);
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
    run_event(c, NULL, "run.report", "report: %s/report/report.html (report.json beside it)", c->out);
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
    if (fd < 0) return VS_FAIL(err, VS_ERR_IO, "%s: cannot open the lock (%s)", path, strerror(errno));
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
        for (int i = 0; i < N_STAGES; i++) ok |= strcmp(o->from, stages[i].name) == 0;
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

int runner_run(const study *s, const char *study_path, const runner_options *opt) {
    if (validate_names(opt)) return VS_EXIT_USAGE;
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s, c.study_path = study_path, c.opt = opt;
    vs_error err = {0};
    if (sodium_init() < 0) {
        VS_FAIL(&err, VS_ERR_LIBRARY, "libsodium failed to initialise");
        return fail_with(&c, NULL, &err);
    }
    if (!realpath(s->output, c.out) && errno != ENOENT) snprintf(c.out, sizeof c.out, "%s", s->output);
    if (!c.out[0]) snprintf(c.out, sizeof c.out, "%s", s->output);
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
        st = mkdir_p(c.out, &err);
        snprintf(sub, sizeof sub, "%s/stages", c.out);
        if (st == VS_OK) st = mkdir_one(sub, &err);
        snprintf(sub, sizeof sub, "%s/logs", c.out);
        if (st == VS_OK) st = mkdir_one(sub, &err);
        if (st == VS_OK) st = take_lock(&c, &lock_fd, &err);
        if (st != VS_OK) return fail_with(&c, NULL, &err);
        snprintf(sub, sizeof sub, "%s/run.jsonl", c.out);
        c.runlog = fopen(sub, "a");
        if (!c.runlog) {
            VS_FAIL(&err, VS_ERR_IO, "%s: cannot open the run log (%s)", sub, strerror(errno));
            close(lock_fd);
            return fail_with(&c, NULL, &err);
        }
        run_event(&c, NULL, "run.start", "study %s, output %s", s->name, c.out);
    }
    int forced = 0, worked = 0, rejects = 0, code = VS_EXIT_OK;
    for (int i = 0; i < N_STAGES && code == VS_EXIT_OK; i++) {
        const stage *sg = &stages[i];
        if (opt->from && strcmp(opt->from, sg->name) == 0) forced = 1;
        if ((sg->applies && !sg->applies(&c)) ||
            (strcmp(sg->name, "finetune-scratch") == 0 && !s->finetune.scratch_baseline)) {
            if (opt->dry_run) printf("%-16s %s\n", sg->name, "does not apply to this study");
            continue;
        }
        arglist a = {{0}, 0, {0}, 0};
        char inputs[1024] = "", in_hash[HEX];
        st = sg->command(&c, &a, inputs, sizeof inputs, &err);
        if (st == VS_OK && arg_overflow(&a)) st = VS_FAIL(&err, VS_ERR_CONFIG, "the %s command line is too long", sg->name);
        if (st != VS_OK) {
            code = fail_with(&c, sg->name, &err);
            break;
        }
        inputs_hash(&a, inputs, in_hash);
        int sel = selected(opt, sg->name);
        int fresh = !sg->incremental && !forced && up_to_date(&c, sg, in_hash);
        if (!sel || fresh) {
            vs_error ignore;
            if (sg->after) sg->after(&c, &ignore); /* downstream still needs this stage's hashes */
            if (opt->dry_run) printf("%-16s %s\n", sg->name, !sel ? "not selected" : "up to date: skip");
            else run_event(&c, sg->name, "stage.skip", "%s: %s", sg->name, !sel ? "not selected" : "up to date");
            continue;
        }
        if (opt->dry_run) {
            vs_error ignore;
            printf("%-16s %s\n", sg->name,
                   sg->incremental ? "run: ingests what is new in the sources (incremental)"
                   : forced        ? "run: forced by --from"
                                   : "run: inputs or settings changed, or no finished run");
            if (sg->after) sg->after(&c, &ignore);
            continue;
        }
        /* invariant 2: a started stage with other inputs starts over */
        char started_path[PATH_MAX + 32], started[HEX + 2] = "", dir[PATH_MAX + 32];
        snprintf(started_path, sizeof started_path, "%s/stages/%s.started", c.out, sg->name);
        snprintf(dir, sizeof dir, "%s/%s", c.out, sg->dir ? sg->dir : sg->name);
        read_small(started_path, started, sizeof started);
        if (!sg->incremental && strcmp(started, in_hash) != 0) {
            st = rm_rf(dir, &err);
            char log_path[PATH_MAX + 32];
            snprintf(log_path, sizeof log_path, "%s/logs/%s.jsonl", c.out, sg->name);
            unlink(log_path);
        }
        if (st == VS_OK) st = write_atomic(started_path, in_hash, &err);
        if (st != VS_OK) {
            code = fail_with(&c, sg->name, &err);
            break;
        }
        run_event(&c, sg->name, "stage.start", "%s: running", sg->name);
        int rc = run_child(&c, sg, &a, &err);
        if (rc < 0) {
            code = fail_with(&c, sg->name, &err);
            break;
        }
        int ok = rc == VS_EXIT_OK || (sg->incremental && (rc == VS_EXIT_REJECTS || rc == VS_EXIT_NOTHING));
        if (!ok) {
            VS_FAIL(&err, VS_ERR_INTERNAL, "stage %s failed with exit %d (its log: %s/logs/%s.jsonl)", sg->name, rc,
                    c.out, sg->name);
            code = fail_with(&c, sg->name, &err);
            if (rc == VS_EXIT_USAGE || rc == VS_EXIT_ENV || rc == VS_EXIT_BUSY) code = rc;
            break;
        }
        rejects |= rc == VS_EXIT_REJECTS;
        worked |= rc != VS_EXIT_NOTHING;
        char record[4096], rpath[PATH_MAX + 32];
        st = sg->after ? sg->after(&c, &err) : VS_OK;
        if (st == VS_OK) st = record_now(&c, sg, in_hash, record, sizeof record, &err);
        snprintf(rpath, sizeof rpath, "%s/stages/%s.json", c.out, sg->name);
        if (st == VS_OK) st = write_atomic(rpath, record, &err);
        if (st != VS_OK) {
            code = fail_with(&c, sg->name, &err);
            break;
        }
        unlink(started_path);
        run_event(&c, sg->name, "stage.done", "%s: done (exit %d)", sg->name, rc);
    }
    if (!opt->dry_run && code == VS_EXIT_OK) {
        code = rejects ? VS_EXIT_REJECTS : worked ? VS_EXIT_OK : VS_EXIT_NOTHING;
        print_headline(&c);
        run_event(&c, NULL, "run.done", "%s", code == VS_EXIT_NOTHING ? "nothing to do" : rejects ? "done, with rejected inputs (see ingest/ingest-summary.json)" : "done");
    }
    if (c.runlog) fclose(c.runlog);
    if (lock_fd >= 0) close(lock_fd);
    return code;
}
