/* cmd_pretrain.c — `vesalius pretrain`: train the masked autoencoder, checkpoint, export.
 *
 * Data: --shards DIR (an ingest output folder or its shards/ folder; random crops of every
 * volume, or of one --modality), or --synthetic N, which trains on N phantom CT volumes
 * (studies/phantom.h: procedural anatomy, windowed as preprocessing stores CT) as a smoke test
 * of the whole loop. With --split FILE (the split
 * stage's splits.csv) the volumes of its test patients are left out, unless
 * pretrain.include_test: the held-out test set stays unseen by pretraining too.
 * Outputs in --out DIR: checkpoint.ckpt (resumable), model.safetensors (the twin's state_dict
 * names), preview.png (mid slice of a held-out crop: input | masked | recon) and, from shards,
 * pool.json (what the pretraining pool left out).
 */
#include "cli.h"
#include "dist.h"
#include "fsdir.h"
#include "log.h"
#include "parse.h"
#include "phantom.h"
#include "mae_train.h"
#include "nn.h"
#include "settings_cli.h"
#include "shard.h"
#include "splits.h"
#include "report.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

typedef struct pretrain_opts {
    mae_train_config cfg;
    const char *out, *shards, *modality, *split;
    mae_sampling sampling; /* pretrain.working_set, swap_every, chunk_cache_mb */
    int synthetic;         /* number of procedural volumes (0: none) */
    int synth_size[3];
    int resume;
    study *st;   /* the settings (studies/study.h): study file, then options */
    study_kv kv; /* as recorded in OUT/settings.json */
} pretrain_opts;

/* "S" or "Z,Y,X" into v[3]; returns 0 on success. */
/* "S" (all three S) or "Z,Y,X", each a whole number >= 1. */
static int parse_triple(const char *s, int v[3]) {
    char buf[64];
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) return -1;
    char *save = NULL, *t[4] = {NULL};
    int n = 0;
    for (char *p = strtok_r(buf, ",", &save); p && n < 4; p = strtok_r(NULL, ",", &save))
        t[n++] = p;
    if ((n != 1 && n != 3) || strchr(s, ',') == s || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
        return -1;
    for (int i = 0; i < n; i++)
        if (!vs_parse_int(t[i], 1, INT32_MAX, &v[i])) return -1;
    if (n == 1) v[1] = v[2] = v[0];
    return 0;
}

/* The pretrain stage's configuration: every field from the study's settings (the model's own
 * defaults only for what no setting covers: AdamW's betas and eps). */
static void pretrain_config(const study *s, pretrain_opts *o) {
    const study_pretrain *p = &s->pretrain;
    mae_train_config *c = &o->cfg;
    mae_train_config_default(c);
    memcpy(c->model.crop, p->crop, sizeof c->model.crop);
    memcpy(c->model.patch, p->patch, sizeof c->model.patch);
    c->model.dim = p->dim, c->model.depth = p->depth, c->model.heads = p->heads;
    c->model.dec_dim = p->dec_dim, c->model.dec_depth = p->dec_depth,
    c->model.dec_heads = p->dec_heads;
    c->model.mlp_ratio = p->mlp_ratio;
    c->model.mask_ratio = p->mask_ratio;
    c->model.norm_pix = p->target == STUDY_TARGET_NORMALIZED;
    c->model.vis_weight = (float)p->visible_loss_weight;
    c->model.batch = p->batch;
    c->opt.lr = p->lr, c->opt.min_lr = p->min_lr;
    c->opt.warmup_steps = p->warmup_steps,
    c->opt.total_steps = p->steps; /* the cosine ends with the run */
    c->opt.weight_decay = p->weight_decay, c->opt.clip = p->clip;
    c->opt.decay_all = p->decay_norms_and_biases;
    for (int a = 0; a < 3; a++)
        c->aug.flip[a] = p->flips ? 0.5f : 0.0f;
    c->aug.scale = (float)p->intensity_scale, c->aug.shift = (float)p->intensity_shift;
    c->accum = p->accumulate;
    c->steps = p->steps;
    c->seed = (uint64_t)s->top.seed;
    c->ckpt_every = p->checkpoint_every, c->log_every = p->log_every;
    o->sampling.working_set = p->working_set;
    o->sampling.swap_every = p->swap_every;
    o->sampling.cache_mb = p->chunk_cache_mb;
    o->modality = p->modalities.n ? p->modalities.v[0] : NULL;
}

enum { O_OUT = 1000, O_SHARDS, O_SYNTH, O_SYNTH_SIZE, O_RESUME, O_SPLIT };

static const struct option pretrain_own[] = {
    {"out", required_argument, 0, O_OUT},
    {"shards", required_argument, 0, O_SHARDS},
    {"synthetic", required_argument, 0, O_SYNTH},
    {"synthetic-size", required_argument, 0, O_SYNTH_SIZE},
    {"resume", no_argument, 0, O_RESUME},
    {"split", required_argument, 0, O_SPLIT},
    {0, 0, 0, 0},
};

static int own_option(void *ctx, int id, const char *arg, study *s) {
    (void)s;
    pretrain_opts *o = ctx;
    switch (id) {
    case O_OUT: o->out = arg; return 0;
    case O_SHARDS: o->shards = arg; return 0;
    case O_RESUME: o->resume = 1; return 0;
    case O_SPLIT: o->split = arg; return 0;
    case O_SYNTH:
        if (!vs_parse_int(arg, 1, 100000, &o->synthetic))
            return cli_usage_error("pretrain", "--synthetic wants 1 to 100000");
        return 0;
    case O_SYNTH_SIZE:
        if (parse_triple(arg, o->synth_size) < 0)
            return cli_usage_error("pretrain", "--synthetic-size wants S or Z,Y,X");
        return 0;
    }
    return cli_usage_error("pretrain", "unknown option");
}

/* The setting distributed.ranks is the number of processes this run has (the result's last
 * bits depend on it, so settings.json records it): taken from the launcher when the study does
 * not set it; a study that says another number than the launcher started is refused, on every
 * rank alike, before anything is written. */
static vs_status match_ranks(study *s, vs_error *err) {
    int *ranks = &s->distributed.ranks;
    if (s->origin[STUDY_KEY_distributed_ranks] == STUDY_FROM_DEFAULT) *ranks = dist_size();
    if (*ranks == dist_size()) return VS_OK;
    int k = STUDY_KEY_distributed_ranks;
    return VS_FAIL(err, VS_ERR_CONFIG,
                   "%s:%d: key 'distributed.ranks' is %d, but this pretrain runs as %d "
                   "process%s: start it with `mpirun -n %d` (or srun -n %d), or run the study "
                   "with `vesalius run`",
                   s->path ? s->path : "(options)", s->line[k], *ranks, dist_size(),
                   dist_size() == 1 ? "" : "es", *ranks, *ranks);
}

static int parse_args(pretrain_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    int first = 0;
    int rc = settings_cli_parse("pretrain", ST_PRETRAIN, pretrain_own, own_option, o, argc, argv,
                                &o->st, &first);
    if (rc != VS_EXIT_OK) return rc;
    if (first < argc) return cli_usage_error("pretrain", "unexpected argument '%s'", argv[first]);
    if (!o->out) return cli_usage_error("pretrain", "--out DIR is required");
    if (o->shards && o->synthetic)
        return cli_usage_error("pretrain", "give --shards or --synthetic, not both");
    if (!o->shards && !o->synthetic)
        return cli_usage_error("pretrain", "give --shards DIR (or --synthetic N for a smoke test)");
    if (o->split && !o->shards) return cli_usage_error("pretrain", "--split goes with --shards");
    vs_error err;
    if (match_ranks(o->st, &err) != VS_OK) return cli_fail("pretrain", &err);
    if (settings_cli_resolve(o->st, ST_PRETRAIN, &o->kv, &err) != VS_OK)
        return cli_fail("pretrain", &err);
    pretrain_config(o->st, o);
    for (int a = 0; a < 3; a++) /* a 2D crop (z = 1) gets 2D synthetic images */
        if (o->synth_size[a] == 0)
            o->synth_size[a] = o->cfg.model.crop[a] == 1 ? 1 : o->cfg.model.crop[a] + 8;
    return VS_EXIT_OK;
}

/* The pretraining pool: every volume of the modality but those of the split's test patients
 * (unless pretrain.include_test, or without --split). */
typedef struct pool {
    const char *test; /* "excluded", "included" or "no split" */
    char **exclude;   /* (n_exclude) series keys left out, sorted */
    int n_exclude, n_patients, n_volumes;
    char split_sha256[REPORT_SHA256_HEX];
    shard_filter filter;
} pool;

static int cmp_text(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_key65(const void *a, const void *b) { return strcmp(a, b); }

static void pool_free(pool *p) {
    for (int i = 0; i < p->n_exclude; i++)
        free(p->exclude[i]);
    free(p->exclude);
}

static vs_status pool_make(const pretrain_opts *o, const char *shard_dir, pool *p, vs_error *err) {
    memset(p, 0, sizeof *p);
    p->filter.modality = o->modality;
    p->test = !o->split ? "no split" : o->st->pretrain.include_test ? "included" : "excluded";
    shard_set *set = NULL;
    split_table *t = NULL;
    vs_status st = o->split ? report_sha256_file(o->split, p->split_sha256, err) : VS_OK;
    if (st == VS_OK && o->split) st = splits_load(o->split, &t, err);
    if (st == VS_OK) st = shard_set_open(shard_dir, &p->filter, &set, err);
    int n = st == VS_OK ? shard_set_count(set) : 0;
    if (st == VS_OK && !(p->exclude = calloc((size_t)n + 1, sizeof *p->exclude)))
        st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    char(*pats)[65] = st == VS_OK ? calloc((size_t)n + 1, sizeof *pats) : NULL;
    if (st == VS_OK && !pats) st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int i = 0; st == VS_OK && t && !o->st->pretrain.include_test && i < n; i++) {
        volume v;
        if ((st = shard_set_read_meta(set, i, &v, err)) != VS_OK) break;
        int64_t k = splits_find(t, v.patient_key[0] ? v.patient_key : v.series_key);
        if (k < 0 || t->role[k] != SPLIT_TEST) continue;
        if (!(p->exclude[p->n_exclude] = strdup(shard_set_entry(set, i)->key))) {
            st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(pats[p->n_exclude++], t->patient[k], sizeof pats[0]);
    }
    if (st == VS_OK) {
        qsort(p->exclude, (size_t)p->n_exclude, sizeof *p->exclude, cmp_text);
        qsort(pats, (size_t)p->n_exclude, sizeof *pats, cmp_key65);
        for (int i = 0; i < p->n_exclude; i++)
            p->n_patients += i == 0 || strcmp(pats[i], pats[i - 1]) != 0;
        p->n_volumes = n - p->n_exclude;
        p->filter.exclude = (const char *const *)p->exclude;
        p->filter.n_exclude = p->n_exclude;
        if (p->n_exclude)
            log_info("pretraining leaves out %d volumes of %d test patients (%d volumes left)",
                     p->n_exclude, p->n_patients, p->n_volumes);
    }
    free(pats);
    splits_free(t);
    shard_set_close(set);
    return st;
}

static vs_status pool_write(const pool *p, const char *out_dir, vs_error *err) {
    char path[4200], text[1024];
    snprintf(path, sizeof path, "%s/pool.json", out_dir);
    char sha[80] = "null";
    if (p->split_sha256[0]) snprintf(sha, sizeof sha, "\"%s\"", p->split_sha256);
    int n =
        snprintf(text, sizeof text,
                 "{\n  \"schema\": \"vesalius.pretrain.pool/1\",\n  \"test_patients\": \"%s\",\n"
                 "  \"split_sha256\": %s,\n  \"volumes\": %d,\n  \"excluded_volumes\": %d,\n"
                 "  \"excluded_patients\": %d\n}\n",
                 p->test, sha, p->n_volumes, p->n_exclude, p->n_patients);
    return vs_write_file_atomic(path, text, (size_t)n, err);
}

/* --synthetic: n phantom CT volumes (studies/phantom.h) drawn from r, through the ct window
 * preprocessing applies by default (the settings table's preprocess.ct_window; what a study
 * file sets there is the ingest's, not this smoke test's). */
static vs_status synthetic_volumes(const pretrain_opts *o, volume *vols, int n, rng *r,
                                   vs_error *err) {
    study *d = NULL;
    vs_status st = study_defaults(&d, err);
    for (int i = 0; i < n && st == VS_OK; i++)
        st = phantom_windowed_ct(&vols[i], o->synth_size[0], o->synth_size[1], o->synth_size[2],
                                 d->preprocess.ct_window, r, err);
    study_free(d);
    return st;
}

/* The preview batch: fixed crops (no augmentation) and a fixed mask, from the held-out
 * synthetic volume, or from the shards through a stream of its own fixed seed (crops of
 * volumes smaller than the crop are padded there). */
static vs_status write_preview(mae_trainer *t, const volume *held, const char *shard_dir,
                               const shard_filter *filter, const char *path, vs_error *err) {
    mae *m = mae_trainer_model(t);
    const mae_config *c = mae_get_config(m);
    mae_aug none = {{0, 0, 0}, 0, 0};
    mae_sampling uniform = {0, 0, 0}; /* the same preview crops whatever the training sampler */
    mae_source src;
    vs_status st = shard_dir ? mae_source_shards(&src, shard_dir, filter, 0x9e3779b9u, c->crop,
                                                 &none, &uniform, 1, err)
                             : mae_source_volumes(&src, held, 1, &none, err);
    if (st != VS_OK) return st;
    float *batch = malloc(mae_crop_voxels(c) * (size_t)c->batch * sizeof *batch);
    int32_t *ids = malloc((size_t)c->batch * mae_n_keep(c) * sizeof *ids);
    rng r;
    rng_seed(&r, 0, 2);
    if (!batch || !ids) st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the preview batch");
    if (st == VS_OK) st = mae_source_batch(&src, 0, &r, c->batch, c->crop, batch, err);
    if (st == VS_OK) st = mae_sample_mask(m, &r, ids, err);
    if (st == VS_OK) st = mae_preview_png(m, batch, ids, path, err);
    free(batch), free(ids);
    mae_source_close(&src);
    return st;
}

/* Rank 0's view of the output folder, agreed by every rank: the folder made, whether it holds
 * a checkpoint (*have), and the refusal of one without --resume. */
static vs_status prepare_out(const pretrain_opts *o, const vs_group *g, const char *ckpt, int *have,
                             vs_error *err) {
    vs_status st = VS_OK;
    *have = 0;
    if (g->rank == 0) {
        st = vs_mkdirs(o->out, 0755, err);
        *have = st == VS_OK && access(ckpt, F_OK) == 0;
        if (st == VS_OK && *have && !o->resume)
            st = VS_FAIL(err, VS_ERR_USAGE,
                         "%s already holds a checkpoint; pass --resume to continue it or choose "
                         "another --out",
                         o->out);
        if (st == VS_OK && !*have && o->resume)
            log_info("%s holds no checkpoint yet: starting a new run", o->out);
    }
    st = vs_group_agree(g, st, err);
    *have = vs_group_max(g, *have);
    return st;
}

/* The outputs beside the checkpoint, written by rank 0 (also after an interruption): the
 * safetensors export, the preview, pool.json (shards) and the settings; agreed by every rank. */
static vs_status write_outputs(pretrain_opts *o, const vs_group *g, mae_trainer *t,
                               const volume *held, const char *shard_dir, const pool *pl,
                               const char *ckpt, vs_error *err) {
    char export_path[4096], preview[4096];
    snprintf(export_path, sizeof export_path, "%s/model.safetensors", o->out);
    snprintf(preview, sizeof preview, "%s/preview.png", o->out);
    vs_status st = VS_OK;
    if (g->rank == 0) {
        st = mae_export_safetensors(mae_trainer_model(t), export_path, err);
        if (st == VS_OK) st = write_preview(t, held, shard_dir, &pl->filter, preview, err);
        if (st == VS_OK && shard_dir) st = pool_write(pl, o->out, err);
        /* the settings the outputs were made with, beside them (after the checkpoint accepted
         * them: a refused resume leaves the folder as it was) */
        if (st == VS_OK) st = settings_cli_record(&o->kv, "pretrain", o->out, err);
        if (st == VS_OK) log_info("wrote %s, %s, %s and settings.json", ckpt, export_path, preview);
    }
    return vs_group_agree(g, st, err);
}

/* Every rank runs this with the same options (dist.h): each builds the same data source and
 * model; the trainer splits each update's micro-batches over the ranks (mae_train.h, invariant
 * 4). Every failure is agreed, so every rank returns the same exit code. */
static int run_pretrain(pretrain_opts *o) {
    const char *cmd = "pretrain";
    const vs_group *g = dist_group();
    vs_error err;
    o->cfg.group = g;
    vs_status st = mae_train_config_check(&o->cfg, &err); /* the same verdict on every rank */
    if (st != VS_OK) return cli_fail(cmd, &err);
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.ckpt", o->out);
    struct sigaction sa; /* from here on a signal stops at the next step, with a checkpoint */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int have_ckpt = 0;
    if (prepare_out(o, g, ckpt, &have_ckpt, &err) != VS_OK) return cli_fail(cmd, &err);
    nn_set_threads(o->st->top.threads);

    /* Synthetic: N training volumes and one held out for the preview, from their own seeded
     * stream. Shards: crops of every volume (of --modality), streamed. */
    int n = o->shards ? 0 : o->synthetic;
    char shard_dir[4200] = "";
    if (o->shards) {
        struct stat sb;
        snprintf(shard_dir, sizeof shard_dir, "%s/shards", o->shards);
        if (stat(shard_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            snprintf(shard_dir, sizeof shard_dir, "%s", o->shards);
    }
    volume *vols = calloc((size_t)n + 1, sizeof *vols);
    st = vols ? VS_OK : VS_FAIL(&err, VS_ERR_NOMEM, "cannot allocate %d volumes", n);
    rng vr;
    rng_seed(&vr, o->cfg.seed, 3);
    mae_source src = {0};
    mae_trainer *t = NULL;
    pool pl;
    memset(&pl, 0, sizeof pl);
    if (st == VS_OK && o->shards) st = pool_make(o, shard_dir, &pl, &err);
    if (st == VS_OK && !o->shards) st = synthetic_volumes(o, vols, n + 1, &vr, &err);
    if (st == VS_OK && !o->shards) st = mae_source_volumes(&src, vols, n, &o->cfg.aug, &err);
    if (st == VS_OK && o->shards)
        st = mae_source_shards(&src, shard_dir, &pl.filter, o->cfg.seed, o->cfg.model.crop,
                               &o->cfg.aug, &o->sampling, nn_threads(), &err);
    if (st == VS_OK) st = mae_trainer_create(&t, &o->cfg, &src, &err);
    st = vs_group_agree(g, st, &err);
    if (st == VS_OK && have_ckpt) {
        st = mae_trainer_load(t, ckpt, &err); /* every rank: rank 0 reads, the others receive */
        if (st == VS_OK) log_info("resuming %s at step %ld", ckpt, mae_trainer_step(t));
    }
    if (st == VS_OK) {
        const mae_config *mc = &o->cfg.model;
        log_info("pretraining %zu parameters on %s: crop "
                 "%dx%dx%d, patch %dx%dx%d, batch %d x %d, %ld steps, %d rank%s x %d threads",
                 mae_n_params(mae_trainer_model(t)),
                 o->shards ? "the shards' volumes" : "synthetic volumes (smoke-test data)",
                 mc->crop[0], mc->crop[1], mc->crop[2], mc->patch[0], mc->patch[1], mc->patch[2],
                 mc->batch, o->cfg.accum, o->cfg.steps, g->size, g->size == 1 ? "" : "s",
                 nn_threads());
        st = mae_trainer_run(t, o->cfg.steps, NULL, ckpt, &g_stop, &err);
    }
    if (g->size > 1 && t) {
        double red = 0.0;
        long ups = 0;
        mae_trainer_reduce_time(t, &red, &ups);
        if (ups)
            log_info("gradient sums over %d ranks: %.1f ms per update", g->size, 1e3 * red / ups);
    }
    vs_error err2; /* the export and preview also follow an interruption */
    vs_status st2 = VS_OK;
    if (t && (st == VS_OK || st == VS_ERR_INTERRUPTED))
        st2 = write_outputs(o, g, t, &vols[n], o->shards ? shard_dir : NULL, &pl, ckpt, &err2);
    mae_trainer_destroy(t);
    mae_source_close(&src);
    pool_free(&pl);
    for (int i = 0; vols && i <= n; i++)
        volume_free(&vols[i]);
    free(vols);
    if (st != VS_OK) return cli_fail(cmd, &err);
    if (st2 != VS_OK) return cli_fail(cmd, &err2);
    return VS_EXIT_OK;
}

int cmd_pretrain(int argc, char **argv) {
    pretrain_opts o;
    int rc = parse_args(&o, argc, argv);
    if (rc == VS_EXIT_OK) rc = run_pretrain(&o);
    study_kv_free(&o.kv);
    study_free(o.st);
    return rc;
}
