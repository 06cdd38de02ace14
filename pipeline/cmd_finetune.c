/* cmd_finetune.c — `vesalius finetune`: the comparison protocol's fits of one arm. The detector
 * is trained from a pretraining checkpoint (arm "mae") or from scratch (arm "scratch") through
 * the same code path, once per label budget and seed (finetune.budgets x finetune.seeds):
 *
 *   - the patients come from the split (studies/splits.h, `vesalius split`): budget b of run
 *     seed s trains on the first b training patients of seed s's order (nested budgets), every
 *     series of those patients; the dev patients are the only ones early stopping sees; the
 *     test patients are predicted and nothing else (no choice is made on them);
 *   - fit s of every budget starts from the same initialisation and crop sequence
 *     (splits_fit_seed), so the two arms are paired: same patients, same seeds, same crops
 *     (the mae arm's encoder is then overwritten by the checkpoint);
 *   - the mae arm uses finetune.lr with layer decay; the scratch arm finetune.scratch_lr,
 *     one rate everywhere.
 *
 * Outputs in --out DIR:
 *   splits.csv                 a copy of the split the fits used
 *   fits.csv                   arm,budget,seed,role,patient: the training patients of every
 *                              fit (role train) and the dev patients its early stopping saw
 *   labels.csv                 labels of the dev and test series (validation/FORMATS.md form)
 *   ARM-bB-sS.det              the detector of budget B, seed S (vesalius predict --model);
 *                              with finetune.members M > 1 also ARM-bB-sS-mK.det, K = 1..M-1,
 *                              the ensemble's other members (the fit predicts with their mean)
 *   train-ARM-bB-sS.jsonl      its training log (event train.step; validate --train-log);
 *                              train-ARM-bB-sS-mK.jsonl member K's
 *   predictions-ARM.csv/.jsonl every fit's dev and test volumes, with columns arm, budget,
 *                              seed and set (validate --predictions)
 * B is the number of training patients (a budget of 0 means the whole train role; one above it
 * is refused).
 *
 * Across ranks (pipeline/dist.h: started by mpirun or srun), fit i of the fit order (budget
 * ascending, then seed) runs on rank i mod N, which writes its ARM-bB-sS.det and training log;
 * rank 0 gathers every fit's rows and writes the merged files, so every output is the bytes of
 * a one-process run with the same thread count (a fit's work does not depend on the ranks).
 * For job arrays without MPI, `--fit I` runs fit I alone and writes, beside its detector and
 * log, its part of the merged files (predictions-ARM-bB-sS.csv/.jsonl, fits-ARM-bB-sS.csv) and
 * the settings it ran with (settings-ARM-bB-sS.json); `--merge` then writes the merged files
 * from those parts, the same bytes again.
 */
#include "cli.h"
#include "dist.h"
#include "fsdir.h"
#include "deid.h"
#include "det_cli.h"
#include "labels.h"
#include "log.h"
#include "nn.h"
#include "settings_cli.h"
#include "shard.h"
#include "rng.h"
#include "splits.h"
#include "study.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct ft_opts {
    det_train_config tc;
    det_predict_opts po;
    const char *shards, *points, *vol_labels, *masks, *key, *out, *init, *arm, *split;
    int only_budget, only_seed; /* -1: every one */
    int fit;                    /* --fit I: only fit I of the fit order, unmerged; -1: none */
    int merge;                  /* --merge: the merged files from the --fit parts */
    study *st;                  /* the settings (studies/study.h): study file, then options */
    study_kv kv;                /* as recorded in OUT/settings.json */
    char stage[32], shards_buf[4096], out_buf[4096], split_buf[4096];
} ft_opts;

/* The labeled cohort in memory. */
typedef struct cohort {
    int n;
    volume *vols;
    det_lesion **les; /* per volume, voxel (z, y, x) */
    label_series **lab;
    char (*patient)[65];
} cohort;

enum {
    O_SHARDS = 1000,
    O_LABELS,
    O_MASKS,
    O_OUT,
    O_INIT,
    O_ARM,
    O_SPLIT,
    O_ONLY_BUDGET,
    O_ONLY_SEED,
    O_FIT,
    O_MERGE
};
static const struct option ft_own[] = {
    {"shards", required_argument, 0, O_SHARDS},
    {"labels", required_argument, 0, O_LABELS},
    {"masks", required_argument, 0, O_MASKS},
    {"out", required_argument, 0, O_OUT},
    {"init", required_argument, 0, O_INIT},
    {"arm", required_argument, 0, O_ARM},
    {"split", required_argument, 0, O_SPLIT},
    {"only-budget", required_argument, 0, O_ONLY_BUDGET},
    {"only-seed", required_argument, 0, O_ONLY_SEED},
    {"fit", required_argument, 0, O_FIT},
    {"merge", no_argument, 0, O_MERGE},
    {0, 0, 0, 0},
};

/* --labels and --masks set labels.format and labels.file as a study file would. */
static int own_option(void *ctx, int id, const char *a, study *s) {
    ft_opts *o = ctx;
    vs_error err;
    double v = 0.0;
    switch (id) {
    case O_SHARDS: o->shards = a; return 0;
    case O_OUT: o->out = a; return 0;
    case O_INIT: o->init = a; return 0;
    case O_ARM: o->arm = a; return 0;
    case O_SPLIT: o->split = a; return 0;
    case O_MERGE: o->merge = 1; return 0;
    case O_FIT:
        if (detcli_number(a, 0, 1e6, &v) < 0 || v != floor(v))
            return cli_usage_error("finetune", "--fit wants a fit's index, a whole number from 0");
        o->fit = (int)v;
        return 0;
    case O_ONLY_BUDGET:
    case O_ONLY_SEED:
        if (detcli_number(a, 0, 1e6, &v) < 0 || v != floor(v))
            return cli_usage_error("finetune", "--only-budget and --only-seed want a whole number");
        *(id == O_ONLY_BUDGET ? &o->only_budget : &o->only_seed) = (int)v;
        return 0;
    case O_LABELS:
    case O_MASKS:
        if (study_set(s, &study_settings[STUDY_KEY_labels_format],
                      id == O_LABELS ? "points" : "masks", 0, &err) != VS_OK ||
            study_set(s, &study_settings[STUDY_KEY_labels_file], a, 0, &err) != VS_OK)
            return cli_fail("finetune", &err);
        return 0;
    }
    return cli_usage_error("finetune", "unknown option");
}

/* The fine-tuning stage's configuration: every field a setting covers from the study's
 * settings (the model's own defaults for the rest). The mae arm's architecture comes from its
 * checkpoint (finetune(), det_config_from_mae). */
static void finetune_config(const study *s, ft_opts *o) {
    const study_finetune *f = &s->finetune;
    const study_pretrain *p = &s->pretrain;
    det_train_config *tc = &o->tc;
    det_train_config_default(tc);
    det_predict_opts_default(&o->po);
    if (!o->init) { /* the pretrained encoder's architecture, from random weights */
        memcpy(tc->det.enc.crop, p->crop, sizeof tc->det.enc.crop);
        memcpy(tc->det.enc.patch, p->patch, sizeof tc->det.enc.patch);
        tc->det.enc.dim = p->dim, tc->det.enc.depth = p->depth, tc->det.enc.heads = p->heads;
        tc->det.enc.mlp_ratio = p->mlp_ratio;
    }
    tc->det.probe = f->mode == STUDY_TUNE_PROBE;
    tc->det.enc.batch = f->batch;
    tc->det.gamma = f->loss == STUDY_LOSS_BCE ? 0.0f : (float)f->focal_gamma;
    tc->det.window[0] = (float)f->window[0], tc->det.window[1] = (float)f->window[1];
    tc->det.stem[0] = f->width, tc->det.stem[1] = 2 * f->width;
    tc->det.dec[0] = 4 * f->width, tc->det.dec[1] = 2 * f->width, tc->det.dec[2] = f->width;
    tc->hard_share = f->hard_share, tc->mine_every = f->mine_every, tc->mine_top = f->mine_top;
    tc->hard_weighted = f->hard_weighted, tc->zoom = f->zoom, tc->rotate = f->rotate;
    o->po.flips = f->test_flips;
    tc->steps = f->steps, tc->opt.total_steps = f->steps;
    tc->lesion_share = f->lesion_share;
    /* each arm its own rate; layer decay only where there are pretrained layers to keep */
    tc->opt.lr = o->init ? f->lr : f->scratch_lr;
    tc->layer_decay = o->init ? f->layer_decay : 1.0;
    tc->patience = f->patience, tc->eval_every = f->eval_every;
    tc->seed = (uint64_t)s->top.seed;
    /* the same augmentations as pretraining */
    tc->aug.flip[0] = tc->aug.flip[1] = tc->aug.flip[2] = p->flips ? 0.5f : 0.0f;
    tc->aug.scale = (float)p->intensity_scale;
    tc->aug.shift = (float)p->intensity_shift;
    const study_labels *l = &s->labels;
    o->points = l->file && l->format == STUDY_LABELS_POINTS ? l->file : NULL;
    o->masks = l->file && l->format == STUDY_LABELS_MASKS ? l->file : NULL;
    o->vol_labels = l->volumes                                    ? l->volumes
                    : l->file && l->format == STUDY_LABELS_VOLUME ? l->file
                                                                  : NULL;
    o->key = s->deid.key_file;
}

static int parse(ft_opts *o, int argc, char **argv) {
    const char *cmd = "finetune";
    memset(o, 0, sizeof *o);
    o->only_budget = o->only_seed = o->fit = -1;
    int first = 0;
    int rc =
        settings_cli_parse(cmd, ST_FINETUNE, ft_own, own_option, o, argc, argv, &o->st, &first);
    if (rc != VS_EXIT_OK) return rc;
    if (first < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[first]);
    if (o->fit >= 0 && (o->merge || o->only_budget >= 0 || o->only_seed >= 0))
        return cli_usage_error(cmd, "--fit runs one fit: not with --merge, --only-budget or "
                                    "--only-seed");
    if ((o->fit >= 0 || o->merge) && dist_size() > 1)
        return cli_usage_error(cmd,
                               "--fit and --merge run as one process (under %d ranks the "
                               "ranks share the fits and rank 0 merges them already)",
                               dist_size());
    if (!o->arm) o->arm = o->init ? "mae" : "scratch";
    if (strcmp(o->arm, "mae") && strcmp(o->arm, "scratch"))
        return cli_usage_error(cmd, "--arm must be mae or scratch");
    unsigned stage = o->init ? ST_FT_MAE : ST_FT_SCRATCH;
    char flag[64];
    for (int i = 0; o->init && i < STUDY_N_KEYS; i++) /* e.g. --dim with --init */
        if (strncmp(study_settings[i].key, "pretrain.", 9) == 0 &&
            (study_settings[i].readers & ST_FINETUNE) == ST_FT_SCRATCH &&
            o->st->origin[i] == STUDY_FROM_OPTION)
            return cli_usage_error(
                cmd, "--%s: with --init the architecture and crop come from the checkpoint",
                study_setting_flag(&study_settings[i], flag, sizeof flag));
    if (o->st->path) { /* the study's folders, unless given */
        snprintf(o->shards_buf, sizeof o->shards_buf, "%s/ingest/shards", o->st->top.output);
        snprintf(o->out_buf, sizeof o->out_buf, "%s/finetune-%s", o->st->top.output, o->arm);
        snprintf(o->split_buf, sizeof o->split_buf, "%s/split/splits.csv", o->st->top.output);
        if (!o->shards) o->shards = o->shards_buf;
        if (!o->out) o->out = o->out_buf;
        if (!o->split) o->split = o->split_buf;
    }
    if (!o->shards || !o->out || !o->split)
        return cli_usage_error(cmd, "--shards DIR, --out DIR and --split FILE (`vesalius split`) "
                                    "are required");
    finetune_config(o->st, o);
    if (!o->points && !o->vol_labels && !o->masks)
        return cli_usage_error(
            cmd, "give labels: --labels CSV (points), --volume-labels CSV and/or --masks DIR");
    if (o->only_seed >= o->st->finetune.seeds)
        return cli_usage_error(cmd, "--only-seed must be below finetune.seeds (%d)",
                               o->st->finetune.seeds);
    snprintf(o->stage, sizeof o->stage, "finetune-%s", o->arm);
    vs_error err;
    if (settings_cli_resolve(o->st, stage, &o->kv, &err) != VS_OK) return cli_fail(cmd, &err);
    return VS_EXIT_OK;
}

/* --------------------------------------------------------------------------- labels */
static vs_status read_labels(const ft_opts *o, label_set *ls, vs_error *err) {
    deid_ctx *key = NULL;
    vs_status st = VS_OK;
    if (o->key) {
        if (access(o->key, R_OK) != 0) /* a new key would map to pseudonyms no shard holds */
            return VS_FAIL(err, VS_ERR_ENV, "cannot read the site key %s: %s", o->key,
                           strerror(errno));
        deid_options dopt;
        memset(&dopt, 0, sizeof dopt);
        st = deid_open(&dopt, o->key, &key, err);
    }
    if (st == VS_OK && o->vol_labels) st = labels_read_volume(ls, o->vol_labels, key, err);
    if (st == VS_OK && o->points) st = labels_read_points(ls, o->points, key, err);
    if (st == VS_OK && o->masks) st = labels_scan_masks(ls, o->masks, key, err);
    deid_close(key);
    return st;
}

static void cohort_free(cohort *c) {
    for (int i = 0; i < c->n; i++)
        volume_free(&c->vols[i]), free(c->les[i]);
    free(c->vols), free(c->les), free(c->lab), free(c->patient);
    memset(c, 0, sizeof *c);
}

/* Read every labeled volume of the shard set; lesions to voxel coordinates. */
static vs_status load_cohort(shard_set *set, label_set *ls, cohort *c, vs_error *err) {
    int n = shard_set_count(set);
    c->vols = calloc((size_t)n + 1, sizeof *c->vols);
    c->les = calloc((size_t)n + 1, sizeof *c->les);
    c->lab = calloc((size_t)n + 1, sizeof *c->lab);
    c->patient = calloc((size_t)n + 1, sizeof *c->patient);
    if (!c->vols || !c->les || !c->lab || !c->patient)
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the cohort");
    vs_status st = VS_OK;
    for (int i = 0; i < n && st == VS_OK; i++) {
        label_series *s = labels_find(ls, shard_set_entry(set, i)->key);
        if (!s) continue;
        volume *v = &c->vols[c->n];
        st = shard_set_read(set, i, v, NULL, 0, err);
        if (st == VS_OK) st = labels_mask_lesions(s, v, err);
        if (st == VS_OK && !(c->les[c->n] = calloc((size_t)s->n_lesions + 1, sizeof(det_lesion))))
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate lesions");
        for (int l = 0; st == VS_OK && l < s->n_lesions; l++) {
            st = labels_lesion_zyx(v, &s->lesions[l], c->les[c->n][l].zyx, err);
            c->les[c->n][l].diameter = s->lesions[l].diameter;
            det_lesion_radius(&c->les[c->n][l], v);
        }
        snprintf(c->patient[c->n], 65, "%s", v->patient_key[0] ? v->patient_key : v->series_key);
        c->lab[c->n] = s;
        c->n++;
    }
    if (st == VS_OK && c->n < ls->n)
        log_warn("%d labeled series are not in the shards (a different site key, or not ingested)",
                 ls->n - c->n);
    if (st == VS_OK && c->n < 4)
        st = VS_FAIL(err, VS_ERR_FORMAT,
                     "only %d labeled volumes found in the shards; need at least 4", c->n);
    return st;
}

/* Labels of the dev and test series only: what the report may be computed on. */
static vs_status write_labels_csv(const cohort *c, const split_table *t, const char *path,
                                  vs_error *err) {
    vs_atomic a;
    vs_status st = vs_atomic_open(&a, path, err);
    if (st != VS_OK) return st;
    fputs("series,patient,label,x,y,z,diameter\n", a.f);
    for (int i = 0; i < c->n; i++) {
        if (t->role[splits_find(t, c->patient[i])] == SPLIT_TRAIN) continue;
        const label_series *s = c->lab[i];
        int lab = labels_volume_label(s);
        fprintf(a.f, "%s,%s,%d,,,,\n", s->key, c->patient[i], lab);
        for (int l = 0; l < s->n_lesions; l++)
            fprintf(a.f, "%s,%s,%d,%.3f,%.3f,%.3f,%.3f\n", s->key, c->patient[i], lab,
                    s->lesions[l].lps[0], s->lesions[l].lps[1], s->lesions[l].lps[2],
                    s->lesions[l].diameter);
    }
    return vs_atomic_commit(&a, err);
}

/* The split stage's table; every labeled patient must have a role in it. A copy goes to
 * OUT/splits.csv when `save`. */
static vs_status get_split(const ft_opts *o, const cohort *c, int save, split_table **out,
                           vs_error *err) {
    vs_status st = splits_load(o->split, out, err);
    for (int i = 0; st == VS_OK && i < c->n; i++)
        if (splits_find(*out, c->patient[i]) < 0)
            st = VS_FAIL(err, VS_ERR_CONFIG,
                         "%s does not hold every labeled patient: run `vesalius split` again",
                         o->split);
    char path[4200];
    snprintf(path, sizeof path, "%s/splits.csv", o->out);
    if (st == VS_OK && save) st = splits_save(*out, path, err);
    return st;
}

/* The budgets as numbers of training patients (0: all of them), ascending, each once. */
static vs_status resolve_budgets(const ft_opts *o, const split_table *t, int *b, int *nb,
                                 vs_error *err) {
    const study_ints *l = &o->st->finetune.budgets;
    int n_train = (int)splits_count(t, SPLIT_TRAIN);
    *nb = 0;
    if (l->n == 0) return VS_FAIL(err, VS_ERR_CONFIG, "finetune.budgets is empty");
    for (unsigned i = 0; i < l->n; i++) {
        int v = l->v[i] ? l->v[i] : n_train;
        if (v > n_train)
            return VS_FAIL(err, VS_ERR_CONFIG,
                           "finetune.budgets: %d training patients asked for, the split's train "
                           "role holds %d",
                           v, n_train);
        int j = *nb;
        while (j > 0 && b[j - 1] > v)
            b[j] = b[j - 1], j--;
        if (j > 0 && b[j - 1] == v)
            return VS_FAIL(err, VS_ERR_CONFIG, "finetune.budgets names %d training patients twice",
                           v);
        b[j] = v, (*nb)++;
    }
    return VS_OK;
}

/* --------------------------------------------------------------------------- fits */
/* One fit: a label budget (training patients) and a run seed; the fit order is budget
 * (ascending) then seed, and fit i runs on rank i mod N. */
typedef struct fit_id {
    int budget, seed;
} fit_id;

static void fit_name(const ft_opts *o, const fit_id *f, char *buf, size_t cap) {
    snprintf(buf, cap, "%s-b%d-s%d", o->arm, f->budget, f->seed);
}

/* What one fit adds to the merged outputs, as the bytes of its own files
 * predictions-NAME.csv (with the header), predictions-NAME.jsonl and fits-NAME.csv (with the
 * header): in memory, gathered over the ranks, or on disk for --fit and --merge. */
enum { PART_CSV, PART_JSON, PART_FITS, N_PART };
typedef struct fit_part {
    char *text[N_PART];
    size_t len[N_PART];
} fit_part;
static const char *const part_file[N_PART] = {"predictions-%s.csv", "predictions-%s.jsonl",
                                              "fits-%s.csv"};
static const char fits_header[] = "arm,budget,seed,role,patient\n";

static void fit_part_free(fit_part *p) {
    for (int k = 0; k < N_PART; k++)
        free(p->text[k]);
    memset(p, 0, sizeof *p);
}

typedef struct fit_log {
    FILE *f;
    char component[64];
} fit_log;

static void on_step(void *ctx, long step, float loss, float val_loss, double lr) {
    fit_log *l = ctx;
    char vl[32] = "";
    if (isfinite(val_loss)) snprintf(vl, sizeof vl, ",\"val_loss\":\"%.6f\"", val_loss);
    fprintf(l->f,
            "{\"component\":\"%s\",\"event\":\"train.step\",\"step\":\"%ld\",\"loss\":\"%.6f\"%s,"
            "\"lr\":\"%.4g\"}\n",
            l->component, step, loss, vl, lr);
    if (isfinite(val_loss))
        log_info("%s step %ld loss %.4f dev loss %.4f", l->component, step, loss, val_loss);
}

/* The fit's training set (its budget's patients) and early-stopping set (the dev patients),
 * and its rows of fits.csv. */
static vs_status fit_sets(const ft_opts *o, const cohort *c, const split_table *sp, const fit_id *f,
                          det_item *tr, int *ntr, det_item *va, int *nva, FILE *fits,
                          vs_error *err) {
    uint8_t *chosen = calloc(sp->n + 1, 1);
    uint32_t *idx = NULL, n_idx = 0;
    vs_status st = chosen ? VS_OK : VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the fit");
    if (st == VS_OK) st = splits_budget(sp, f->seed, f->budget, &idx, &n_idx, err);
    for (uint32_t k = 0; st == VS_OK && k < n_idx; k++) {
        chosen[idx[k]] = 1;
        fprintf(fits, "%s,%d,%d,train,%s\n", o->arm, f->budget, f->seed, sp->patient[idx[k]]);
    }
    for (uint32_t p = 0; st == VS_OK && p < sp->n; p++)
        if (sp->role[p] == SPLIT_DEV)
            fprintf(fits, "%s,%d,%d,dev,%s\n", o->arm, f->budget, f->seed, sp->patient[p]);
    *ntr = *nva = 0;
    for (int i = 0; st == VS_OK && i < c->n; i++) {
        int64_t p = splits_find(sp, c->patient[i]);
        det_item it = {&c->vols[i], c->lab[i]->n_lesions, c->les[i]};
        if (chosen[p])
            tr[(*ntr)++] = it;
        else if (sp->role[p] == SPLIT_DEV) /* early stopping: the dev patients, nothing else */
            va[(*nva)++] = it;
    }
    free(chosen), free(idx);
    return st;
}

/* Train member m of the fit (member 0: the fit's seed, so one member is the plain fit; member
 * m > 0: a seed of its own, the same volumes), save it as OUT/NAME.det (member 0) or
 * OUT/NAME-mM.det with its log OUT/train-<that name>.jsonl. */
static vs_status fit_member(const ft_opts *o, const fit_id *f, int m, const det_item *tr, int ntr,
                            const det_item *va, int nva, det **out, vs_error *err) {
    det *d = NULL;
    fit_log lg = {NULL, ""};
    det_train_config tc = o->tc;
    tc.seed = splits_fit_seed(o->tc.seed, f->seed); /* the same in both arms: paired fits */
    if (m > 0) tc.seed = splits_fit_seed(tc.seed, m);
    char path[4200], name[80];
    fit_name(o, f, name, sizeof name);
    if (m > 0) snprintf(name + strlen(name), sizeof name - strlen(name), "-m%d", m);
    snprintf(lg.component, sizeof lg.component, "finetune-%s", name);
    snprintf(path, sizeof path, "%s/train-%s.jsonl", o->out, name);
    vs_status st = VS_OK;
    if (!(lg.f = fopen(path, "w")))
        st = VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    if (st == VS_OK) st = det_create(&d, &tc.det, err);
    if (st == VS_OK) {
        rng r; /* the same initialisation in both arms; the MAE arm then overwrites the encoder */
        rng_seed(&r, tc.seed, 0);
        det_init_weights(d, &r);
        if (o->init) st = det_load_mae(d, o->init, err);
    }
    det_train_result res;
    if (st == VS_OK) {
        log_info("%s: %d training volumes of %d patients, %d dev volumes (%s)", name, ntr,
                 f->budget, nva, o->tc.det.probe ? "frozen encoder" : "fine-tuning");
        st = det_train(d, &tc, tr, ntr, va, nva, on_step, &lg, &res, err);
    }
    if (st == VS_OK) {
        log_info("%s: kept the weights of step %ld of %ld", name, res.best_step, res.steps_run);
        snprintf(path, sizeof path, "%s/%s.det", o->out, name);
        st = det_save(d, path, err);
    }
    if (lg.f && fclose(lg.f) != 0 && st == VS_OK)
        st = VS_FAIL(err, VS_ERR_IO, "cannot write the training log");
    if (st != VS_OK) det_destroy(d), d = NULL;
    *out = d;
    return st;
}

/* Train the fit's finetune.members detectors and predict its dev and test volumes with their
 * ensemble (one member: the detector itself) into csv and json. */
static vs_status fit_train_predict(const ft_opts *o, const cohort *c, const split_table *sp,
                                   const fit_id *f, const det_item *tr, int ntr, const det_item *va,
                                   int nva, FILE *csv, FILE *json, vs_error *err) {
    int n = o->st->finetune.members;
    det **d = calloc((size_t)n, sizeof *d);
    vs_status st = d ? VS_OK : VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the fit's members");
    for (int m = 0; st == VS_OK && m < n; m++)
        st = fit_member(o, f, m, tr, ntr, va, nva, &d[m], err);
    for (int i = 0; st == VS_OK && i < c->n; i++) {
        split_role role = (split_role)sp->role[splits_find(sp, c->patient[i])];
        if (role == SPLIT_TRAIN) continue;
        det_result r;
        st = det_predict_ensemble(d, n, &c->vols[i], &o->po, &r, err);
        detcli_tag tag = {o->arm, f->budget, f->seed, splits_role_name(role)};
        if (st == VS_OK) detcli_write_rows(csv, json, c->lab[i]->key, &tag, &r);
        det_result_free(&r);
    }
    for (int m = 0; d && m < n; m++)
        det_destroy(d[m]);
    free(d);
    return st;
}

/* One fit, its part in memory (*p, fit_part_free it). A failure names the fit. */
static vs_status run_fit(const ft_opts *o, const cohort *c, const split_table *sp, const fit_id *f,
                         fit_part *p, vs_error *err) {
    det_item *tr = calloc((size_t)c->n + 1, sizeof *tr), *va = calloc((size_t)c->n + 1, sizeof *va);
    FILE *s[N_PART] = {NULL, NULL, NULL};
    int ntr = 0, nva = 0;
    memset(p, 0, sizeof *p);
    vs_status st = tr && va ? VS_OK : VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the fit");
    for (int k = 0; st == VS_OK && k < N_PART; k++)
        if (!(s[k] = open_memstream(&p->text[k], &p->len[k])))
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the fit's rows");
    if (st == VS_OK) {
        detcli_csv_header(s[PART_CSV]);
        fputs(fits_header, s[PART_FITS]);
        st = fit_sets(o, c, sp, f, tr, &ntr, va, &nva, s[PART_FITS], err);
    }
    if (st == VS_OK)
        st = fit_train_predict(o, c, sp, f, tr, ntr, va, nva, s[PART_CSV], s[PART_JSON], err);
    for (int k = 0; k < N_PART; k++) {
        if (!s[k]) continue;
        int bad = ferror(s[k]); /* a row that did not fit in memory */
        if ((fclose(s[k]) != 0 || bad) && st == VS_OK)
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot keep the fit's rows");
    }
    free(tr), free(va);
    if (st != VS_OK) {
        char name[64], msg[VS_ERROR_MSG_MAX];
        fit_name(o, f, name, sizeof name);
        snprintf(msg, sizeof msg, "%s", err->msg);
        snprintf(err->msg, sizeof err->msg, "fit %s: %s", name, msg);
        fit_part_free(p);
    }
    return st;
}

/* --------------------------------------------------------------------------- parts on disk */
/* --fit: the fit's part as its own files, and the settings it ran with, for --merge. */
static vs_status part_save(const ft_opts *o, const fit_id *f, const fit_part *p, vs_error *err) {
    char name[64], file[96], path[4200];
    fit_name(o, f, name, sizeof name);
    vs_status st = VS_OK;
    for (int k = 0; st == VS_OK && k < N_PART; k++) {
        snprintf(file, sizeof file, part_file[k], name);
        snprintf(path, sizeof path, "%s/%s", o->out, file);
        st = vs_write_file_atomic(path, p->text[k] ? p->text[k] : "", p->len[k], err);
    }
    snprintf(path, sizeof path, "%s/settings-%s.json", o->out, name);
    if (st == VS_OK) st = study_settings_write(path, o->stage, &o->kv, err);
    return st;
}

/* The whole of a file in memory (free() *text); VS_ERR_IO when it cannot be read. */
static vs_status read_whole(const char *path, char **text, size_t *len, vs_error *err) {
    FILE *f = fopen(path, "rb"), *m = NULL;
    *text = NULL, *len = 0;
    if (!f) return VS_FAIL(err, VS_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    vs_status st =
        (m = open_memstream(text, len)) ? VS_OK : VS_FAIL(err, VS_ERR_NOMEM, "no memory");
    char buf[65536];
    size_t n;
    while (st == VS_OK && (n = fread(buf, 1, sizeof buf, f)) > 0)
        if (fwrite(buf, 1, n, m) != n) st = VS_FAIL(err, VS_ERR_NOMEM, "no memory");
    if (st == VS_OK && ferror(f)) st = VS_FAIL(err, VS_ERR_IO, "cannot read %s", path);
    fclose(f);
    if (m && fclose(m) != 0 && st == VS_OK) st = VS_FAIL(err, VS_ERR_NOMEM, "no memory");
    if (st != VS_OK) free(*text), *text = NULL, *len = 0;
    return st;
}

/* --merge: fit index i's part from its files, refused when it is missing or ran with other
 * settings than this merge's. */
static vs_status part_load(const ft_opts *o, int i, const fit_id *f, fit_part *p, vs_error *err) {
    char name[64], file[96], path[4200], *text = NULL;
    size_t len = 0;
    fit_name(o, f, name, sizeof name);
    memset(p, 0, sizeof *p);
    snprintf(path, sizeof path, "%s/settings-%s.json", o->out, name);
    if (access(path, F_OK) != 0)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "fit %s has not run: no %s (run `vesalius finetune --fit %d` with the same "
                       "options first)",
                       name, path, i);
    char *want = study_settings_text(o->stage, &o->kv);
    vs_status st = want ? read_whole(path, &text, &len, err)
                        : VS_FAIL(err, VS_ERR_NOMEM, "no memory for the settings");
    if (st == VS_OK && (strlen(want) != len || memcmp(want, text, len) != 0))
        st = VS_FAIL(err, VS_ERR_CONFIG,
                     "fit %s ran with other settings than this merge (%s): merge with the "
                     "options the fits ran with, or run them again",
                     name, path);
    free(want), free(text);
    for (int k = 0; st == VS_OK && k < N_PART; k++) {
        snprintf(file, sizeof file, part_file[k], name);
        snprintf(path, sizeof path, "%s/%s", o->out, file);
        st = read_whole(path, &p->text[k], &p->len[k], err);
    }
    if (st != VS_OK) fit_part_free(p);
    return st;
}

/* --------------------------------------------------------------------------- merged outputs */
/* predictions-ARM.csv, predictions-ARM.jsonl and fits.csv: the headers, then every fit's
 * part in fit order; committed whole at the end (rank 0 alone writes them). */
typedef struct merged {
    vs_atomic a[N_PART];
    int open[N_PART];
    char *header[N_PART]; /* the first line every part of a CSV file starts with */
    size_t header_len[N_PART];
} merged;

static void merged_abort(merged *m) {
    for (int k = 0; k < N_PART; k++) {
        if (m->open[k]) vs_atomic_abort(&m->a[k]);
        m->open[k] = 0;
        free(m->header[k]);
        m->header[k] = NULL;
    }
}

static vs_status merged_open(const ft_opts *o, merged *m, vs_error *err) {
    static const char *const file[N_PART] = {"predictions-%s.csv", "predictions-%s.jsonl",
                                             "fits.csv"};
    char name[96], path[4200];
    memset(m, 0, sizeof *m);
    FILE *h = open_memstream(&m->header[PART_CSV], &m->header_len[PART_CSV]);
    if (!h) return VS_FAIL(err, VS_ERR_NOMEM, "no memory for a header");
    detcli_csv_header(h);
    if (fclose(h) != 0) return VS_FAIL(err, VS_ERR_NOMEM, "no memory for a header");
    if (!(m->header[PART_FITS] = strdup(fits_header))) {
        merged_abort(m);
        return VS_FAIL(err, VS_ERR_NOMEM, "no memory for a header");
    }
    m->header_len[PART_FITS] = strlen(fits_header);
    vs_status st = VS_OK;
    for (int k = 0; st == VS_OK && k < N_PART; k++) {
        snprintf(name, sizeof name, file[k], o->arm);
        snprintf(path, sizeof path, "%s/%s", o->out, name);
        st = vs_atomic_open(&m->a[k], path, err);
        m->open[k] = st == VS_OK;
        if (st == VS_OK && m->header[k] &&
            fwrite(m->header[k], 1, m->header_len[k], m->a[k].f) != m->header_len[k])
            st = VS_FAIL(err, VS_ERR_IO, "cannot write %s", path);
    }
    if (st != VS_OK) merged_abort(m);
    return st;
}

/* A fit's part, without the header line a CSV part starts with (which must be ours). */
static vs_status merged_add(merged *m, const fit_part *p, vs_error *err) {
    for (int k = 0; k < N_PART; k++) {
        const char *t = p->text[k] ? p->text[k] : "";
        size_t n = p->len[k], skip = m->header[k] ? m->header_len[k] : 0;
        if (skip && (n < skip || memcmp(t, m->header[k], skip) != 0))
            return VS_FAIL(err, VS_ERR_FORMAT, "a fit's part of %s does not start with its header",
                           m->a[k].path);
        if (fwrite(t + skip, 1, n - skip, m->a[k].f) != n - skip)
            return VS_FAIL(err, VS_ERR_IO, "cannot write %s", m->a[k].path);
    }
    return VS_OK;
}

static vs_status merged_commit(merged *m, vs_error *err) {
    vs_status st = VS_OK;
    for (int k = 0; k < N_PART; k++) {
        if (st == VS_OK)
            st = vs_atomic_commit(&m->a[k], err);
        else
            vs_atomic_abort(&m->a[k]);
        m->open[k] = 0;
    }
    merged_abort(m); /* the headers */
    return st;
}

/* --------------------------------------------------------------------------- across ranks */
/* Every rank's part of a round at every rank (the group has an all-gather only): the lengths,
 * then the parts packed and padded to the longest. out[r] points into x->all. Every rank
 * calls it, failed or not (group.h invariant 1); a failed allocation is agreed, so that every
 * rank leaves together. */
typedef struct exchange {
    uint64_t *lens; /* (size, N_PART) */
    char *send, *all;
    size_t cap; /* bytes of send; all holds size x cap */
} exchange;

static vs_status exchange_parts(const vs_group *g, const fit_part *mine, exchange *x, fit_part *out,
                                vs_error *err) {
    if (g->size == 1) {
        out[0] = *mine;
        return VS_OK;
    }
    uint64_t my[N_PART];
    for (int k = 0; k < N_PART; k++)
        my[k] = mine->len[k];
    g->gather(g->ctx, my, x->lens, sizeof my);
    uint64_t top = 1;
    for (int r = 0; r < g->size; r++) {
        uint64_t sum = 0;
        for (int k = 0; k < N_PART; k++)
            sum += x->lens[(size_t)r * N_PART + k];
        if (sum > top) top = sum;
    }
    vs_status st = VS_OK;
    if (top > SIZE_MAX / (size_t)g->size)
        st = VS_FAIL(err, VS_ERR_NOMEM, "the fits' predictions are too large to gather");
    else if (top > x->cap) {
        free(x->send), free(x->all);
        x->send = malloc((size_t)top);
        x->all = malloc((size_t)top * (size_t)g->size);
        x->cap = x->send && x->all ? (size_t)top : 0;
        if (!x->cap) st = VS_FAIL(err, VS_ERR_NOMEM, "no memory to gather the fits' predictions");
    }
    st = vs_group_agree(g, st, err);
    if (st != VS_OK) return st;
    size_t at = 0;
    for (int k = 0; k < N_PART; k++) {
        if (mine->len[k]) memcpy(x->send + at, mine->text[k], mine->len[k]);
        at += mine->len[k];
    }
    g->gather(g->ctx, x->send, x->all, (size_t)top);
    for (int r = 0; r < g->size; r++) {
        at = (size_t)r * (size_t)top;
        for (int k = 0; k < N_PART; k++) {
            out[r].text[k] = x->all + at;
            out[r].len[k] = (size_t)x->lens[(size_t)r * N_PART + k];
            at += out[r].len[k];
        }
    }
    return VS_OK;
}

/* The fits in order, those --only-budget and --only-seed select (every one with --fit and
 * --merge). */
static vs_status list_fits(const ft_opts *o, const int *budgets, int nb, fit_id **out, int *n,
                           vs_error *err) {
    int seeds = o->st->finetune.seeds;
    *n = 0;
    if (!(*out = calloc((size_t)nb * (size_t)seeds + 1, sizeof **out)))
        return VS_FAIL(err, VS_ERR_NOMEM, "no memory for the fits");
    for (int b = 0; b < nb; b++)
        for (int s = 0; s < seeds; s++)
            if ((o->only_budget < 0 || o->only_budget == budgets[b]) &&
                (o->only_seed < 0 || o->only_seed == s))
                (*out)[(*n)++] = (fit_id){budgets[b], s};
    if (*n == 0)
        return VS_FAIL(err, VS_ERR_CONFIG, "--only-budget %d is not one of finetune.budgets",
                       o->only_budget);
    if (o->fit >= *n)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "--fit %d: there are %d fits (finetune.budgets x finetune.seeds), 0 to %d",
                       o->fit, *n, *n - 1);
    return VS_OK;
}

/* ---------------------------------------------------------------------------  the command */
typedef struct ft_data {
    label_set ls;
    cohort c;
    shard_set *set;
    split_table *sp;
    fit_id *fits;
    int n_fits;
} ft_data;

static void ft_data_free(ft_data *d) {
    free(d->fits);
    splits_free(d->sp);
    cohort_free(&d->c);
    shard_set_close(d->set);
    labels_free(&d->ls);
}

/* What every rank reads (the checkpoint's architecture, labels, cohort, split, budgets), and
 * what rank 0 alone writes before the fits: the folder, splits.csv and labels.csv (not with
 * --fit, which writes its fit's files only). */
static vs_status prepare(const ft_opts *o, int rank, ft_data *d, vs_error *err) {
    char path[4200];
    int budgets[64], nb = 0;
    int writes = rank == 0 && o->fit < 0;
    vs_status st = rank == 0 ? vs_mkdirs(o->out, 0755, err) : VS_OK;
    ft_opts *mo = (ft_opts *)o; /* the architecture comes from the checkpoint */
    if (st == VS_OK && o->init) st = det_config_from_mae(&mo->tc.det, o->init, err);
    if (st == VS_OK) st = det_config_check(&o->tc.det, err);
    if (st == VS_OK) st = read_labels(o, &d->ls, err);
    if (st == VS_OK) st = shard_set_open(o->shards, NULL, &d->set, err);
    if (st == VS_OK) st = load_cohort(d->set, &d->ls, &d->c, err);
    if (st == VS_OK) st = get_split(o, &d->c, writes, &d->sp, err);
    if (st == VS_OK) st = resolve_budgets(o, d->sp, budgets, &nb, err);
    if (st == VS_OK && splits_count(d->sp, SPLIT_TEST) == 0)
        st = VS_FAIL(err, VS_ERR_CONFIG, "%s has no test patient to predict", o->split);
    if (st == VS_OK) st = list_fits(o, budgets, nb, &d->fits, &d->n_fits, err);
    snprintf(path, sizeof path, "%s/labels.csv", o->out);
    if (st == VS_OK && writes) st = write_labels_csv(&d->c, d->sp, path, err);
    return st;
}

/* --fit I: that fit alone, its files and its part for --merge; nothing merged. */
static vs_status finetune_one(const ft_opts *o, ft_data *d, vs_error *err) {
    fit_part p;
    vs_status st = run_fit(o, &d->c, d->sp, &d->fits[o->fit], &p, err);
    if (st == VS_OK) st = part_save(o, &d->fits[o->fit], &p, err);
    fit_part_free(&p);
    char name[64];
    fit_name(o, &d->fits[o->fit], name, sizeof name);
    if (st == VS_OK)
        log_info("wrote fit %d of %d (%s); `vesalius finetune --merge` assembles them", o->fit,
                 d->n_fits, name);
    return st;
}

/* The fits in rounds of one per rank: fit i on rank i mod N. After each round every rank
 * agrees on its outcome (a failure stops every rank at the same point, named by rank and fit)
 * and rank 0 gathers the round's parts into the merged files; with --merge rank 0 reads the
 * parts instead. The barrier per round trades some load balance (fits that stop early wait
 * for the round's longest) for a failure that stops every rank within one fit. */
static vs_status run_rounds(const ft_opts *o, const vs_group *g, ft_data *d, merged *m,
                            vs_error *err) {
    int N = g->size, me = g->rank;
    exchange x = {calloc((size_t)N * N_PART, sizeof(uint64_t)), NULL, NULL, 0};
    fit_part *got = calloc((size_t)N, sizeof *got);
    vs_status st = x.lens && got ? VS_OK : VS_FAIL(err, VS_ERR_NOMEM, "no memory for the ranks");
    st = vs_group_agree(g, st, err);
    for (int k = 0; st == VS_OK && k * N < d->n_fits; k++) {
        int i = k * N + me;
        fit_part mine;
        memset(&mine, 0, sizeof mine);
        if (i < d->n_fits)
            st = o->merge ? part_load(o, i, &d->fits[i], &mine, err)
                          : run_fit(o, &d->c, d->sp, &d->fits[i], &mine, err);
        st = vs_group_agree(g, st, err);
        if (st == VS_OK) st = exchange_parts(g, &mine, &x, got, err);
        for (int r = 0; st == VS_OK && me == 0 && r < N && k * N + r < d->n_fits; r++)
            st = merged_add(m, &got[r], err);
        fit_part_free(&mine);
        st = vs_group_agree(g, st, err); /* rank 0's writes */
    }
    free(x.lens), free(x.send), free(x.all), free(got);
    return st;
}

static vs_status finetune(const ft_opts *o, vs_error *err) {
    const vs_group *g = dist_group();
    ft_data d;
    merged m;
    memset(&d, 0, sizeof d);
    memset(&m, 0, sizeof m);
    vs_status st = prepare(o, g->rank, &d, err);
    if (st == VS_OK && o->fit >= 0) { /* one process (parse refuses --fit under ranks) */
        st = finetune_one(o, &d, err);
        ft_data_free(&d);
        return st;
    }
    if (st == VS_OK && g->rank == 0) st = merged_open(o, &m, err);
    st = vs_group_agree(g, st, err); /* the folder is there before any rank writes a fit */
    if (st == VS_OK) st = run_rounds(o, g, &d, &m, err);
    if (g->rank == 0) {
        if (st == VS_OK) st = merged_commit(&m, err);
        merged_abort(&m);
        if (st == VS_OK) st = settings_cli_record(&o->kv, o->stage, o->out, err);
        if (st == VS_OK)
            log_info("wrote %s/predictions-%s.csv (%d fits%s%s) and labels.csv (%u dev, %u test "
                     "patients)",
                     o->out, o->arm, d.n_fits, o->merge ? ", merged" : "",
                     g->size > 1 ? " over the ranks" : "", splits_count(d.sp, SPLIT_DEV),
                     splits_count(d.sp, SPLIT_TEST));
    }
    st = vs_group_agree(g, st, err);
    ft_data_free(&d);
    return st;
}

int cmd_finetune(int argc, char **argv) {
    ft_opts o;
    int rc = parse(&o, argc, argv);
    if (rc == VS_EXIT_OK) {
        nn_set_threads(o.st->top.threads);
        vs_error err;
        rc = finetune(&o, &err) == VS_OK ? VS_EXIT_OK : cli_fail("finetune", &err);
    }
    study_kv_free(&o.kv);
    study_free(o.st);
    return rc;
}
