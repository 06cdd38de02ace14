/* mae_train.c — the pretraining loop and its checkpoints (see mae_train.h). */
#include "mae_train.h"

#include "log.h"
#include "fsdir.h"
#include "nn.h"
#include "progress.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoints and safetensors are written in host order, which must be little-endian"
#endif

struct mae_trainer {
    mae_train_config cfg;
    mae *m;
    adamw opt;
    mae_source *src;
    float *batch;    /* (B, Sz, Sy, Sx) */
    int32_t *ids;    /* (B, K) */
    int rank, size;  /* of the group */
    int mine;        /* micro-batches per update on this rank: accum / size */
    float *losses;   /* (accum) the update's micro-batch losses, rank order = micro-batch order */
    double reduce_s; /* time in the gradient sum */
    long reduce_n;
};

/* ----------------------------------------------------------------------------- config */
void mae_train_config_default(mae_train_config *c) {
    memset(c, 0, sizeof *c);
    mae_config_default(&c->model);
    adamw_config_default(&c->opt);
    c->aug.flip[0] = c->aug.flip[1] = c->aug.flip[2] = 0.5f;
    c->aug.scale = 0.1f;
    c->aug.shift = 0.1f;
    c->accum = 1;
    c->steps = 1000;
    c->seed = 0;
    c->ckpt_every = 500;
    c->log_every = 10;
}

vs_status mae_train_config_check(const mae_train_config *c, vs_error *err) {
    vs_status st = mae_config_check(&c->model, err);
    if (st == VS_OK) st = adamw_config_check(&c->opt, err);
    if (st != VS_OK) return st;
    if (c->accum < 1 || c->accum > 4096)
        return VS_FAIL(err, VS_ERR_CONFIG, "gradient accumulation must be 1..4096, not %d",
                       c->accum);
    int ranks = vs_group_size(c->group);
    if (c->accum % ranks != 0)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "%d ranks cannot split an accumulation of %d micro-batches: each rank runs "
                       "whole micro-batches of %d crops, so accumulate must be a multiple of %d "
                       "(e.g. %d, a global batch of %d crops)",
                       ranks, c->accum, c->model.batch, ranks, (c->accum / ranks + 1) * ranks,
                       (c->accum / ranks + 1) * ranks * c->model.batch);
    if (c->steps < 1) return VS_FAIL(err, VS_ERR_CONFIG, "steps must be >= 1, not %ld", c->steps);
    if (c->ckpt_every < 0 || c->log_every < 0)
        return VS_FAIL(err, VS_ERR_CONFIG, "checkpoint and log intervals must be >= 0");
    return VS_OK;
}

/* The checkpointed configuration: one row per field, stored as 8 bytes each. */
enum { CF_INT, CF_LONG, CF_U64, CF_FLOAT, CF_DOUBLE };
typedef struct cfg_field {
    const char *name;
    int type;
    size_t off;
} cfg_field;

#define CFG(name, type, member)                                                                    \
    { name, type, offsetof(mae_train_config, member) }
static const cfg_field cfg_fields[] = {
    CFG("crop_z", CF_INT, model.crop[0]),
    CFG("crop_y", CF_INT, model.crop[1]),
    CFG("crop_x", CF_INT, model.crop[2]),
    CFG("patch_z", CF_INT, model.patch[0]),
    CFG("patch_y", CF_INT, model.patch[1]),
    CFG("patch_x", CF_INT, model.patch[2]),
    CFG("dim", CF_INT, model.dim),
    CFG("depth", CF_INT, model.depth),
    CFG("heads", CF_INT, model.heads),
    CFG("dec_dim", CF_INT, model.dec_dim),
    CFG("dec_depth", CF_INT, model.dec_depth),
    CFG("dec_heads", CF_INT, model.dec_heads),
    CFG("mlp_ratio", CF_INT, model.mlp_ratio),
    CFG("mask_ratio", CF_DOUBLE, model.mask_ratio),
    CFG("norm_pix", CF_INT, model.norm_pix),
    CFG("vis_weight", CF_FLOAT, model.vis_weight),
    CFG("batch", CF_INT, model.batch),
    CFG("lr", CF_DOUBLE, opt.lr),
    CFG("min_lr", CF_DOUBLE, opt.min_lr),
    CFG("warmup_steps", CF_LONG, opt.warmup_steps),
    CFG("total_steps", CF_LONG, opt.total_steps),
    CFG("beta1", CF_DOUBLE, opt.beta1),
    CFG("beta2", CF_DOUBLE, opt.beta2),
    CFG("eps", CF_DOUBLE, opt.eps),
    CFG("weight_decay", CF_DOUBLE, opt.weight_decay),
    CFG("decay_all", CF_INT, opt.decay_all),
    CFG("clip", CF_DOUBLE, opt.clip),
    CFG("flip_z", CF_FLOAT, aug.flip[0]),
    CFG("flip_y", CF_FLOAT, aug.flip[1]),
    CFG("flip_x", CF_FLOAT, aug.flip[2]),
    CFG("scale", CF_FLOAT, aug.scale),
    CFG("shift", CF_FLOAT, aug.shift),
    CFG("accum", CF_INT, accum),
    CFG("steps", CF_LONG, steps),
    CFG("seed", CF_U64, seed),
};
#define N_CFG_FIELDS ((int)(sizeof cfg_fields / sizeof cfg_fields[0]))

/* Field i as 8 bytes (int64 for integers, double for reals) and as text for messages. */
static void cfg_get(const mae_train_config *c, int i, uint8_t out[8], char *txt, size_t n) {
    const char *p = (const char *)c + cfg_fields[i].off;
    int64_t iv = 0;
    double dv = 0.0;
    int is_int = 1;
    switch (cfg_fields[i].type) {
    case CF_INT: iv = *(const int *)p; break;
    case CF_LONG: iv = *(const long *)p; break;
    case CF_U64: memcpy(&iv, p, 8); break;
    case CF_FLOAT: dv = *(const float *)p, is_int = 0; break;
    default: dv = *(const double *)p, is_int = 0; break;
    }
    if (is_int) {
        memcpy(out, &iv, 8);
        if (cfg_fields[i].type == CF_U64)
            snprintf(txt, n, "%llu", (unsigned long long)iv);
        else
            snprintf(txt, n, "%lld", (long long)iv);
    } else {
        memcpy(out, &dv, 8);
        snprintf(txt, n, "%.9g", dv);
    }
}

static void cfg_text(const uint8_t v[8], int i, char *txt, size_t n) {
    int64_t iv;
    double dv;
    memcpy(&iv, v, 8), memcpy(&dv, v, 8);
    int t = cfg_fields[i].type;
    if (t == CF_FLOAT || t == CF_DOUBLE)
        snprintf(txt, n, "%.9g", dv);
    else if (t == CF_U64)
        snprintf(txt, n, "%llu", (unsigned long long)iv);
    else
        snprintf(txt, n, "%lld", (long long)iv);
}

/* ---------------------------------------------------------------------------- trainer */
/* Tell the source which crops this rank asks for from update `step` on (mae_data.h plan). */
static vs_status plan_crops(mae_trainer *t, long step, vs_error *err) {
    if (!t->src->plan) return VS_OK;
    uint64_t B = (uint64_t)t->cfg.model.batch, take = (uint64_t)t->mine * B;
    uint64_t every = (uint64_t)t->cfg.accum * B;
    return t->src->plan(t->src->ctx, (uint64_t)step * every + (uint64_t)t->rank * take, take, every,
                        err);
}

vs_status mae_trainer_create(mae_trainer **out, const mae_train_config *cfg, mae_source *src,
                             vs_error *err) {
    *out = NULL;
    vs_status st = mae_train_config_check(cfg, err);
    if (st != VS_OK) return st;
    mae_trainer *t = calloc(1, sizeof *t);
    if (!t) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the trainer");
    t->cfg = *cfg;
    t->src = src;
    t->rank = vs_group_rank(cfg->group), t->size = vs_group_size(cfg->group);
    t->mine = cfg->accum / t->size;
    st = mae_create(&t->m, &cfg->model, err);
    if (st != VS_OK) goto fail;
    int n_seg = mae_n_tensors(t->m);
    adamw_segment *segs = calloc((size_t)n_seg, sizeof *segs);
    if (!segs) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the optimizer's table");
        goto fail;
    }
    for (int i = 0; i < n_seg; i++) {
        const mae_tensor *tt = mae_tensor_at(t->m, i);
        segs[i] = (adamw_segment){tt->offset, tt->size, tt->no_decay};
    }
    st = adamw_init(&t->opt, &cfg->opt, mae_n_params(t->m), segs, n_seg, err);
    free(segs);
    if (st != VS_OK) goto fail;
    t->batch = malloc(mae_crop_voxels(&cfg->model) * (size_t)cfg->model.batch * sizeof(float));
    t->ids = malloc((size_t)cfg->model.batch * mae_n_keep(&cfg->model) * sizeof(int32_t));
    t->losses = calloc((size_t)cfg->accum, sizeof *t->losses);
    if (!t->batch || !t->ids || !t->losses) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a batch of %d crops", cfg->model.batch);
        goto fail;
    }
    rng init;
    rng_seed(&init, cfg->seed, 0); /* weights: their own stream, independent of the data */
    mae_init_weights(t->m, &init);
    st = plan_crops(t, 0, err);
    if (st != VS_OK) goto fail;
    *out = t;
    return VS_OK;
fail:
    mae_trainer_destroy(t);
    return st;
}

void mae_trainer_destroy(mae_trainer *t) {
    if (!t) return;
    mae_destroy(t->m);
    adamw_free(&t->opt);
    free(t->batch), free(t->ids), free(t->losses);
    free(t);
}

mae *mae_trainer_model(mae_trainer *t) { return t->m; }
long mae_trainer_step(const mae_trainer *t) { return t->opt.step; }

void mae_trainer_reduce_time(const mae_trainer *t, double *seconds, long *updates) {
    *seconds = t->reduce_s;
    *updates = t->reduce_n;
}

/* One log line; reduce_ms: the mean time of the gradient sum per update since the last line
 * (0 on one rank). */
static void log_step(const mae_trainer *t, float loss, double lr, double gnorm, double sps,
                     double reduce_ms) {
    char s_step[32], s_loss[32], s_lr[32], s_gn[32], s_sps[32], s_red[32], msg[160];
    snprintf(s_step, sizeof s_step, "%ld", t->opt.step);
    snprintf(s_loss, sizeof s_loss, "%.6f", loss);
    snprintf(s_lr, sizeof s_lr, "%.4g", lr);
    snprintf(s_gn, sizeof s_gn, "%.4g", gnorm);
    snprintf(s_sps, sizeof s_sps, "%.2f", sps);
    snprintf(s_red, sizeof s_red, "%.3f", reduce_ms);
    snprintf(msg, sizeof msg, "step %ld/%ld loss %.5f lr %.3g", t->opt.step, t->cfg.steps, loss,
             lr);
    /* clang-format off */
    const char *fields[] = {"step", s_step, "loss", s_loss, "lr", s_lr, "grad_norm", s_gn,
                            "samples_per_s", s_sps, "reduce_ms", s_red, NULL};
    /* clang-format on */
    log_event(LOG_INFO, "pretrain.step", msg, fields);
}

/* Micro-batch a of update `step` (crops (step * accum + a) * B + b): forward and backward,
 * adding into the gradients; *loss its mean loss. */
static vs_status micro_batch(mae_trainer *t, long step, int a, float *loss, vs_error *err) {
    const mae_config *mc = &t->cfg.model;
    size_t cv = mae_crop_voxels(mc), K = mae_n_keep(mc);
    uint64_t n0 = ((uint64_t)step * (uint64_t)t->cfg.accum + (uint64_t)a) * (uint64_t)mc->batch;
    vs_status st = VS_OK;
    for (int b = 0; b < mc->batch && st == VS_OK; b++) {
        rng r; /* crop n's own draws: the source's, then the mask's */
        mae_crop_rng(&r, t->cfg.seed, n0 + (uint64_t)b);
        st = t->src->fill(t->src->ctx, n0 + (uint64_t)b, &r, mc->crop, t->batch + (size_t)b * cv,
                          err);
        if (st == VS_OK) st = mae_sample_mask_row(t->m, &r, t->ids + (size_t)b * K, err);
    }
    if (st == VS_OK) st = mae_forward(t->m, t->batch, t->ids, loss, err);
    if (st != VS_OK) return st;
    if (!isfinite(*loss))
        return VS_FAIL(
            err, VS_ERR_INTERNAL,
            "the loss is not finite at step %ld (lower the learning rate or enable clipping)",
            step + 1);
    mae_backward(t->m);
    return VS_OK;
}

/* One update: this rank's micro-batches, the group's vote (a failure or a stop anywhere is
 * everyone's), the rank-order gradient sum, then AdamW (replicated). *stopping: a rank has
 * seen a stop request. */
static vs_status train_step(mae_trainer *t, int want_norm, volatile sig_atomic_t *stop,
                            int *stopping, float *loss_out, double *lr, double *gnorm,
                            vs_error *err) {
    const vs_group *g = t->cfg.group;
    long step = t->opt.step;
    mae_zero_grad(t->m);
    float *mine = t->losses + (size_t)t->rank * t->mine;
    vs_status st = VS_OK;
    for (int j = 0; j < t->mine && st == VS_OK; j++)
        st = micro_batch(t, step, t->rank * t->mine + j, &mine[j], err);
    *stopping = stop && *stop;
    if (t->size > 1) {
        st = vs_group_agree(g, st, err);
        if (st != VS_OK) return st;
        /* the losses and the stop flags in one gather: (mine floats, flag) per rank */
        size_t rec = ((size_t)t->mine + 1) * sizeof(float);
        float *all = malloc(rec * (size_t)t->size), *own = malloc(rec);
        if (!all || !own) abort(); /* the others wait in the gather: nothing to return to */
        memcpy(own, mine, (size_t)t->mine * sizeof *own);
        own[t->mine] = (float)*stopping;
        g->gather(g->ctx, own, all, rec);
        for (int r = 0; r < t->size; r++) {
            memcpy(t->losses + (size_t)r * t->mine, all + (size_t)r * (t->mine + 1),
                   (size_t)t->mine * sizeof(float));
            if (all[(size_t)r * (t->mine + 1) + t->mine] != 0.0f) *stopping = 1;
        }
        free(all), free(own);
        double t0 = progress_now();
        g->sum_f32(g->ctx, mae_grads(t->m), mae_n_params(t->m));
        t->reduce_s += progress_now() - t0;
        t->reduce_n++;
    }
    if (st != VS_OK) return st;
    double sum = 0.0; /* in micro-batch order, as one process adds them */
    for (int a = 0; a < t->cfg.accum; a++)
        sum += t->losses[a];
    *gnorm = adamw_update(&t->opt, mae_params(t->m), mae_grads(t->m), t->cfg.accum, want_norm, lr);
    *loss_out = (float)(sum / t->cfg.accum);
    return VS_OK;
}

vs_status mae_trainer_run(mae_trainer *t, long until, float *losses, const char *ckpt_path,
                          volatile sig_atomic_t *stop, vs_error *err) {
    if (until > t->cfg.steps) until = t->cfg.steps;
    progress bar;
    progress_begin(&bar, "pretrain", (uint64_t)until, "step");
    progress_update(&bar, (uint64_t)t->opt.step);
    double t_log = progress_now(), r_log = t->reduce_s;
    long s_log = t->opt.step;
    vs_status st = VS_OK;
    while (t->opt.step < until) {
        float loss = 0.0f;
        double lr = 0.0, gnorm = 0.0;
        long next = t->opt.step + 1; /* the norm is computed when logged or clipped */
        int logs = t->cfg.log_every && (next % t->cfg.log_every == 0 || next == until);
        int interrupted = 0;
        st = train_step(t, logs, stop, &interrupted, &loss, &lr, &gnorm, err);
        if (st != VS_OK) break;
        if (losses) losses[t->opt.step - 1] = loss;
        progress_update(&bar, (uint64_t)t->opt.step);
        if (logs) {
            double now = progress_now();
            double sps = (double)(t->opt.step - s_log) * t->cfg.accum * t->cfg.model.batch /
                         (now - t_log > 1e-9 ? now - t_log : 1e-9);
            log_step(t, loss, lr, gnorm, sps,
                     1e3 * (t->reduce_s - r_log) / (double)(t->opt.step - s_log));
            t_log = now, s_log = t->opt.step, r_log = t->reduce_s;
        }
        int due = t->cfg.ckpt_every && t->opt.step % t->cfg.ckpt_every == 0;
        if (ckpt_path && (interrupted || (due && t->opt.step < until))) {
            st = mae_trainer_save(t, ckpt_path, err);
            if (st != VS_OK) break;
        }
        if (interrupted) {
            progress_end(&bar);
            log_info("stopped by a signal at step %ld; the checkpoint resumes it", t->opt.step);
            return VS_FAIL(err, VS_ERR_INTERRUPTED,
                           "stopped by a signal at step %ld (checkpoint %s)", t->opt.step,
                           ckpt_path ? ckpt_path : "not written");
        }
    }
    progress_end(&bar);
    if (st == VS_OK && ckpt_path) st = mae_trainer_save(t, ckpt_path, err);
    return st;
}

/* ------------------------------------------------------------------------- checkpoints */
#define CKPT_MAGIC "VSMAECKP"
#define CKPT_VERSION 2u
#define FNV_SEED 0xcbf29ce484222325ULL

static void fnv(uint64_t *h, const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t x = *h;
    for (size_t i = 0; i < n; i++)
        x = (x ^ b[i]) * 0x100000001b3ULL;
    *h = x;
}

void mae_hfile_put(mae_hfile *w, const void *p, size_t n) {
    if (!w->ok) return;
    fnv(&w->h, p, n);
    if (n && fwrite(p, 1, n, w->f) != n) w->ok = 0;
}

void mae_hfile_get(mae_hfile *r, void *p, size_t n) {
    if (!r->ok) return;
    if (n && fread(p, 1, n, r->f) != n) {
        r->ok = 0;
        return;
    }
    fnv(&r->h, p, n);
}

vs_status mae_hfile_finish(mae_hfile *w, const char *tmp, const char *path, vs_error *err) {
    uint64_t h = w->h;
    mae_hfile_put(w, &h, 8);
    if (!w->ok) {
        int e = errno;
        fclose(w->f);
        remove(tmp);
        return VS_FAIL(err, VS_ERR_IO, "cannot write %s: %s", tmp, strerror(e));
    }
    return mae_file_commit(w->f, tmp, path, err);
}

vs_status mae_file_commit(FILE *f, const char *tmp, const char *path, vs_error *err) {
    int bad = ferror(f) || fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad) {
        remove(tmp);
        return VS_FAIL(err, VS_ERR_IO, "cannot write %s: %s", path, strerror(errno ? errno : EIO));
    }
    return vs_commit_file(tmp, path, err); /* io/base: sync, rename, sync the folder */
}

static vs_status save_file(mae_trainer *t, const char *path, vs_error *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return VS_FAIL(err, VS_ERR_IO, "checkpoint path is too long: %s", path);
    uint8_t sbuf[MAE_SOURCE_STATE_MAX];
    size_t slen = 0;
    vs_status st = t->src->save(t->src->ctx, sbuf, &slen, err);
    if (st != VS_OK) return st;
    FILE *f = fopen(tmp, "wb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    mae_hfile w = {f, FNV_SEED, 1};
    uint32_t version = CKPT_VERSION, nf = N_CFG_FIELDS, slen32 = (uint32_t)slen;
    mae_hfile_put(&w, CKPT_MAGIC, 8);
    mae_hfile_put(&w, &version, 4);
    mae_hfile_put(&w, &nf, 4);
    for (int i = 0; i < N_CFG_FIELDS; i++) {
        uint8_t v[8];
        char txt[40];
        cfg_get(&t->cfg, i, v, txt, sizeof txt);
        mae_hfile_put(&w, v, 8);
    }
    int64_t step = t->opt.step;
    int32_t threads = nn_threads(), ranks = t->size;
    mae_hfile_put(&w, &step, 8);
    mae_hfile_put(&w, &threads, 4);
    mae_hfile_put(&w, &ranks, 4);
    mae_hfile_put(&w, &slen32, 4);
    mae_hfile_put(&w, sbuf, slen);
    uint64_t n = mae_n_params(t->m);
    mae_hfile_put(&w, &n, 8);
    mae_hfile_put(&w, mae_params(t->m), n * sizeof(float));
    mae_hfile_put(&w, t->opt.m, n * sizeof(float));
    mae_hfile_put(&w, t->opt.v, n * sizeof(float));
    return mae_hfile_finish(&w, tmp, path, err);
}

/* Every rank's parameters and moments must be rank 0's (invariant 4): a word-wise FNV-1a of
 * them, gathered and compared. A difference means the ranks did not run the same arithmetic
 * (another build or library on some node); the run stops before it saves a mixture. */
static vs_status check_replicas(mae_trainer *t, vs_error *err) {
    const vs_group *g = t->cfg.group;
    size_t n = mae_n_params(t->m);
    const float *arr[3] = {mae_params(t->m), t->opt.m, t->opt.v};
    uint64_t h = FNV_SEED;
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < n; i++) {
            uint32_t w;
            memcpy(&w, &arr[k][i], 4);
            h = (h ^ w) * 0x100000001b3ULL;
        }
    uint64_t *all = malloc((size_t)t->size * sizeof *all);
    if (!all) abort(); /* the others wait in the gather */
    g->gather(g->ctx, &h, all, sizeof h);
    int bad = 0;
    for (int r = 1; r < t->size && !bad; r++)
        if (all[r] != all[0]) bad = r;
    free(all);
    if (bad)
        return VS_FAIL(
            err, VS_ERR_INTERNAL,
            "rank %d's parameters differ from rank 0's after step %ld: every rank must run "
            "the same vesalius build on the same libraries",
            bad, t->opt.step);
    return VS_OK;
}

vs_status mae_trainer_save(mae_trainer *t, const char *path, vs_error *err) {
    vs_status st = t->size > 1 ? check_replicas(t, err) : VS_OK;
    if (st == VS_OK && t->rank == 0) st = save_file(t, path, err);
    return vs_group_agree(t->cfg.group, st, err);
}

/* A checkpoint's bytes in memory, read front to back (ok becomes 0 past the end). */
typedef struct mem_reader {
    const uint8_t *p;
    size_t len, off;
    int ok;
} mem_reader;

static void mem_get(mem_reader *r, void *dst, size_t n) {
    if (!r->ok || n > r->len - r->off) {
        r->ok = 0;
        return;
    }
    memcpy(dst, r->p + r->off, n);
    r->off += n;
}

/* Check the header of checkpoint bytes against the trainer's configuration; leaves r at the
 * source state's length. */
static vs_status parse_header(mae_trainer *t, mem_reader *r, const char *path, int64_t *step,
                              int32_t *threads, int32_t *ranks, vs_error *err) {
    char magic[8];
    uint32_t version = 0, nf = 0;
    mem_get(r, magic, 8);
    mem_get(r, &version, 4);
    mem_get(r, &nf, 4);
    if (!r->ok || memcmp(magic, CKPT_MAGIC, 8) != 0)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s is not a vesalius MAE checkpoint", path);
    if (version == 1)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "%s was written by an older vesalius (checkpoint version 1), which drew its "
                       "crops in another order: it cannot be resumed; start a new output folder "
                       "(fine-tuning still reads its weights)",
                       path);
    if (version != CKPT_VERSION || nf != N_CFG_FIELDS)
        return VS_FAIL(
            err, VS_ERR_FORMAT,
            "%s is checkpoint version %u with %u fields; this vesalius reads version %u with %d",
            path, version, nf, CKPT_VERSION, N_CFG_FIELDS);
    for (int i = 0; i < N_CFG_FIELDS; i++) {
        uint8_t have[8], want[8];
        char thave[40], twant[40];
        mem_get(r, have, 8);
        cfg_get(&t->cfg, i, want, twant, sizeof twant);
        if (r->ok && memcmp(have, want, 8) != 0) {
            cfg_text(have, i, thave, sizeof thave);
            return VS_FAIL(err, VS_ERR_CONFIG,
                           "checkpoint %s was written with %s=%s but this run has %s=%s; refusing "
                           "to resume (start a new output folder or use the same settings)",
                           path, cfg_fields[i].name, thave, cfg_fields[i].name, twant);
        }
    }
    mem_get(r, step, 8);
    mem_get(r, threads, 4);
    mem_get(r, ranks, 4);
    if (!r->ok || *step < 0 || *step > t->cfg.steps)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: truncated or corrupt checkpoint header", path);
    return VS_OK;
}

/* Restore t from the bytes of a checkpoint: everything is checked (header, sizes, checksum)
 * before anything of t changes. */
static vs_status load_bytes(mae_trainer *t, const uint8_t *buf, size_t len, const char *path,
                            int32_t *threads, int32_t *ranks, vs_error *err) {
    mem_reader r = {buf, len, 0, 1};
    int64_t step = 0;
    vs_status st = parse_header(t, &r, path, &step, threads, ranks, err);
    if (st != VS_OK) return st;
    uint32_t slen = 0;
    uint8_t sbuf[MAE_SOURCE_STATE_MAX];
    mem_get(&r, &slen, 4);
    if (!r.ok || slen > MAE_SOURCE_STATE_MAX)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: truncated or corrupt checkpoint header", path);
    mem_get(&r, sbuf, slen);
    uint64_t n = 0, h_file = 0, h = FNV_SEED;
    mem_get(&r, &n, 8);
    size_t n_model = mae_n_params(t->m);
    if (!r.ok || n != n_model)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: holds %llu parameters, the model has %zu", path,
                       (unsigned long long)n, n_model);
    size_t at = r.off, bytes = n_model * sizeof(float);
    if (len < 8 || len - 8 != at + 3 * bytes)
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%s: truncated or corrupt checkpoint (%zu bytes, not %zu)", path, len,
                       at + 3 * bytes + 8);
    fnv(&h, buf, len - 8);
    memcpy(&h_file, buf + len - 8, 8);
    if (h != h_file)
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%s: truncated or corrupt checkpoint (checksum mismatch)", path);
    st = t->src->load(t->src->ctx, sbuf, slen, err);
    if (st != VS_OK) return st;
    t->opt.step = step;
    memcpy(mae_params(t->m), buf + at, bytes);
    memcpy(t->opt.m, buf + at + bytes, bytes);
    memcpy(t->opt.v, buf + at + 2 * bytes, bytes);
    return plan_crops(t, step, err);
}

/* The whole file into *buf (*len bytes). */
static vs_status read_whole(const char *path, uint8_t **buf, uint64_t *len, vs_error *err) {
    *buf = NULL, *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "cannot open checkpoint %s: %s", path, strerror(errno));
    vs_status st = VS_OK;
    long size = -1;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        st = VS_FAIL(err, VS_ERR_IO, "cannot read checkpoint %s: %s", path, strerror(errno));
    if (st == VS_OK && !(*buf = malloc(size ? (size_t)size : 1)))
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate %ld bytes to read %s", size, path);
    if (st == VS_OK && size && fread(*buf, 1, (size_t)size, f) != (size_t)size)
        st = VS_FAIL(err, VS_ERR_IO, "cannot read checkpoint %s", path);
    fclose(f);
    if (st != VS_OK) {
        free(*buf);
        *buf = NULL;
        return st;
    }
    *len = (uint64_t)size;
    return VS_OK;
}

vs_status mae_trainer_load(mae_trainer *t, const char *path, vs_error *err) {
    const vs_group *g = t->cfg.group;
    uint8_t *buf = NULL;
    uint64_t len = 0;
    vs_status st = t->rank == 0 ? read_whole(path, &buf, &len, err) : VS_OK;
    st = vs_group_agree(g, st, err);
    if (st == VS_OK && t->size > 1) { /* rank 0's bytes to every rank: one reader of the file */
        g->bcast(g->ctx, &len, sizeof len);
        if (t->rank != 0 && !(buf = malloc(len ? (size_t)len : 1)))
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate %llu bytes for the checkpoint",
                         (unsigned long long)len);
        st = vs_group_agree(g, st, err);
        if (st == VS_OK) g->bcast(g->ctx, buf, (size_t)len);
    }
    int32_t threads = 0, ranks = 0;
    if (st == VS_OK) st = load_bytes(t, buf, (size_t)len, path, &threads, &ranks, err);
    free(buf);
    st = vs_group_agree(g, st, err);
    if (st == VS_OK && t->rank == 0 && threads != nn_threads())
        log_warn("checkpoint %s was written with %d threads and resumes with %d: the run stays "
                 "valid but is no longer bit-identical to an uninterrupted one",
                 path, (int)threads, nn_threads());
    if (st == VS_OK && t->rank == 0 && ranks != t->size)
        log_warn("checkpoint %s was written by %d ranks and resumes on %d: the run stays valid "
                 "(the same global batch and crops) but is no longer bit-identical to an "
                 "uninterrupted one",
                 path, (int)ranks, t->size);
    return st;
}

/* Field i from 8 stored bytes into c (the inverse of cfg_get). */
static void cfg_put(mae_train_config *c, int i, const uint8_t v[8]) {
    char *p = (char *)c + cfg_fields[i].off;
    int64_t iv;
    double dv;
    memcpy(&iv, v, 8), memcpy(&dv, v, 8);
    switch (cfg_fields[i].type) {
    case CF_INT: *(int *)p = (int)iv; break;
    case CF_LONG: *(long *)p = (long)iv; break;
    case CF_U64: memcpy(p, &iv, 8); break;
    case CF_FLOAT: *(float *)p = (float)dv; break;
    default: *(double *)p = dv; break;
    }
}

vs_status mae_checkpoint_read(const char *path, mae_train_config *cfg, float *params, size_t n,
                              vs_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "cannot open checkpoint %s: %s", path, strerror(errno));
    mae_hfile r = {f, FNV_SEED, 1};
    vs_status st = VS_OK;
    float *skip = NULL;
    char magic[8];
    uint32_t version = 0, nf = 0, slen = 0;
    mae_hfile_get(&r, magic, 8);
    mae_hfile_get(&r, &version, 4);
    mae_hfile_get(&r, &nf, 4);
    if (!r.ok || memcmp(magic, CKPT_MAGIC, 8) != 0 || (version != 1 && version != CKPT_VERSION) ||
        nf != N_CFG_FIELDS) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s is not a vesalius MAE checkpoint of version 1 or %u",
                     path, CKPT_VERSION);
        goto done;
    }
    mae_train_config_default(cfg);
    for (int i = 0; i < N_CFG_FIELDS; i++) {
        uint8_t v[8];
        mae_hfile_get(&r, v, 8);
        cfg_put(cfg, i, v);
    }
    /* version 1: step, rng state, threads; 2: step, threads, ranks */
    uint8_t head[8 + RNG_STATE_BYTES + 4], sbuf[MAE_SOURCE_STATE_MAX];
    mae_hfile_get(&r, head, version == 1 ? 8 + RNG_STATE_BYTES + 4 : 8 + 4 + 4);
    mae_hfile_get(&r, &slen, 4);
    if (!r.ok || slen > MAE_SOURCE_STATE_MAX) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: truncated or corrupt checkpoint header", path);
        goto done;
    }
    mae_hfile_get(&r, sbuf, slen);
    if (!params) goto done;
    uint64_t nf_params = 0, h_file = 0;
    mae_hfile_get(&r, &nf_params, 8);
    if (!r.ok || nf_params != n) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s holds %llu parameters, the model has %zu", path,
                     (unsigned long long)nf_params, n);
        goto done;
    }
    skip = malloc(n * sizeof(float));
    if (!skip) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate %zu parameters to load", n);
        goto done;
    }
    mae_hfile_get(&r, params, n * sizeof(float));
    mae_hfile_get(&r, skip, n * sizeof(float)); /* the moments: read only for the checksum */
    mae_hfile_get(&r, skip, n * sizeof(float));
    uint64_t h = r.h;
    if (r.ok && fread(&h_file, 8, 1, f) != 1) r.ok = 0;
    if (!r.ok || h != h_file)
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s: truncated or corrupt checkpoint (checksum mismatch)",
                     path);
done:
    free(skip);
    fclose(f);
    return st;
}
