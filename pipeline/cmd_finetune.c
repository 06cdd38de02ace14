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
 *   ARM-bB-sS.det              the detector of budget B, seed S (vesalius predict --model)
 *   train-ARM-bB-sS.jsonl      its training log (event train.step; validate --train-log)
 *   predictions-ARM.csv/.jsonl every fit's dev and test volumes, with columns arm, budget,
 *                              seed and set (validate --predictions)
 * B is the number of training patients (a budget of 0 means the whole train role; one above it
 * is refused).
 */
#include "cli.h"
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
    O_ONLY_SEED
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
    o->only_budget = o->only_seed = -1;
    int first = 0;
    int rc =
        settings_cli_parse(cmd, ST_FINETUNE, ft_own, own_option, o, argc, argv, &o->st, &first);
    if (rc != VS_EXIT_OK) return rc;
    if (first < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[first]);
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
 * OUT/splits.csv. */
static vs_status get_split(const ft_opts *o, const cohort *c, split_table **out, vs_error *err) {
    vs_status st = splits_load(o->split, out, err);
    for (int i = 0; st == VS_OK && i < c->n; i++)
        if (splits_find(*out, c->patient[i]) < 0)
            st = VS_FAIL(err, VS_ERR_CONFIG,
                         "%s does not hold every labeled patient: run `vesalius split` again",
                         o->split);
    char path[4200];
    snprintf(path, sizeof path, "%s/splits.csv", o->out);
    if (st == VS_OK) st = splits_save(*out, path, err);
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

/* One fit: budget (training patients) x run seed. */
static vs_status run_fit(const ft_opts *o, const cohort *c, const split_table *sp, int budget,
                         int seed, FILE *csv, FILE *json, FILE *fits, vs_error *err) {
    det_item *tr = calloc((size_t)c->n + 1, sizeof *tr), *va = calloc((size_t)c->n + 1, sizeof *va);
    uint8_t *chosen = calloc(sp->n + 1, 1);
    uint32_t *idx = NULL, n_idx = 0;
    int ntr = 0, nva = 0;
    det *d = NULL;
    fit_log lg = {NULL, ""};
    vs_status st = VS_OK;
    if (!tr || !va || !chosen) st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the fit");
    if (st == VS_OK) st = splits_budget(sp, seed, budget, &idx, &n_idx, err);
    for (uint32_t k = 0; st == VS_OK && k < n_idx; k++) {
        chosen[idx[k]] = 1;
        fprintf(fits, "%s,%d,%d,train,%s\n", o->arm, budget, seed, sp->patient[idx[k]]);
    }
    for (uint32_t p = 0; st == VS_OK && p < sp->n; p++)
        if (sp->role[p] == SPLIT_DEV)
            fprintf(fits, "%s,%d,%d,dev,%s\n", o->arm, budget, seed, sp->patient[p]);
    for (int i = 0; st == VS_OK && i < c->n; i++) {
        int64_t p = splits_find(sp, c->patient[i]);
        det_item it = {&c->vols[i], c->lab[i]->n_lesions, c->les[i]};
        if (chosen[p])
            tr[ntr++] = it;
        else if (sp->role[p] == SPLIT_DEV) /* early stopping: the dev patients, nothing else */
            va[nva++] = it;
    }
    det_train_config tc = o->tc;
    tc.seed = splits_fit_seed(o->tc.seed, seed); /* the same in both arms: paired fits */
    char path[4200], name[64];
    snprintf(name, sizeof name, "%s-b%d-s%d", o->arm, budget, seed);
    snprintf(lg.component, sizeof lg.component, "finetune-%s", name);
    snprintf(path, sizeof path, "%s/train-%s.jsonl", o->out, name);
    if (st == VS_OK && !(lg.f = fopen(path, "w")))
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
        log_info("%s: %d training volumes of %d patients, %d dev volumes (%s)", name, ntr, budget,
                 nva, o->tc.det.probe ? "frozen encoder" : "fine-tuning");
        st = det_train(d, &tc, tr, ntr, va, nva, on_step, &lg, &res, err);
    }
    if (st == VS_OK) {
        log_info("%s: kept the weights of step %ld of %ld", name, res.best_step, res.steps_run);
        snprintf(path, sizeof path, "%s/%s.det", o->out, name);
        st = det_save(d, path, err);
    }
    for (int i = 0; st == VS_OK && i < c->n; i++) {
        split_role role = (split_role)sp->role[splits_find(sp, c->patient[i])];
        if (role == SPLIT_TRAIN) continue;
        det_result r;
        st = det_predict(d, &c->vols[i], &o->po, &r, err);
        detcli_tag tag = {o->arm, budget, seed, splits_role_name(role)};
        if (st == VS_OK) detcli_write_rows(csv, json, c->lab[i]->key, &tag, &r);
        det_result_free(&r);
    }
    if (lg.f && fclose(lg.f) != 0 && st == VS_OK)
        st = VS_FAIL(err, VS_ERR_IO, "cannot write the training log");
    det_destroy(d);
    free(tr), free(va), free(chosen), free(idx);
    return st;
}

static vs_status finetune(const ft_opts *o, vs_error *err) {
    label_set ls = {0};
    cohort c = {0};
    shard_set *set = NULL;
    split_table *sp = NULL;
    FILE *csv = NULL, *json = NULL, *fits = NULL;
    char pcsv[4200], pjson[4200], pfits[4200], path[4200];
    int budgets[64], nb = 0;
    vs_status st = vs_mkdirs(o->out, 0755, err);
    if (st != VS_OK) return st;
    ft_opts *mo = (ft_opts *)o; /* the architecture comes from the checkpoint */
    if (o->init) st = det_config_from_mae(&mo->tc.det, o->init, err);
    if (st == VS_OK) st = det_config_check(&o->tc.det, err);
    if (st == VS_OK) st = read_labels(o, &ls, err);
    if (st == VS_OK) st = shard_set_open(o->shards, NULL, &set, err);
    if (st == VS_OK) st = load_cohort(set, &ls, &c, err);
    if (st == VS_OK) st = get_split(o, &c, &sp, err);
    if (st == VS_OK) st = resolve_budgets(o, sp, budgets, &nb, err);
    if (st == VS_OK && splits_count(sp, SPLIT_TEST) == 0)
        st = VS_FAIL(err, VS_ERR_CONFIG, "%s has no test patient to predict", o->split);
    snprintf(path, sizeof path, "%s/labels.csv", o->out);
    if (st == VS_OK) st = write_labels_csv(&c, sp, path, err);
    snprintf(pcsv, sizeof pcsv, "%s/predictions-%s.csv", o->out, o->arm);
    snprintf(pjson, sizeof pjson, "%s/predictions-%s.jsonl", o->out, o->arm);
    if (st == VS_OK && (!(csv = fopen(pcsv, "w")) || !(json = fopen(pjson, "w"))))
        st = VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", pcsv, strerror(errno));
    snprintf(pfits, sizeof pfits, "%s/fits.csv", o->out);
    if (st == VS_OK && !(fits = fopen(pfits, "w")))
        st = VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", pfits, strerror(errno));
    if (st == VS_OK) detcli_csv_header(csv);
    if (st == VS_OK) fputs("arm,budget,seed,role,patient\n", fits);
    int n_fits = 0;
    for (int b = 0; b < nb && st == VS_OK; b++)
        for (int s = 0; s < o->st->finetune.seeds && st == VS_OK; s++)
            if ((o->only_budget < 0 || o->only_budget == budgets[b]) &&
                (o->only_seed < 0 || o->only_seed == s)) {
                st = run_fit(o, &c, sp, budgets[b], s, csv, json, fits, err);
                n_fits++;
            }
    if (st == VS_OK && n_fits == 0)
        st = VS_FAIL(err, VS_ERR_CONFIG, "--only-budget %d is not one of finetune.budgets",
                     o->only_budget);
    if (csv && fclose(csv) != 0 && st == VS_OK)
        st = VS_FAIL(err, VS_ERR_IO, "cannot write %s", pcsv);
    if (json && fclose(json) != 0 && st == VS_OK)
        st = VS_FAIL(err, VS_ERR_IO, "cannot write %s", pjson);
    if (fits && fclose(fits) != 0 && st == VS_OK)
        st = VS_FAIL(err, VS_ERR_IO, "cannot write %s", pfits);
    if (st == VS_OK) st = settings_cli_record(&o->kv, o->stage, o->out, err);
    if (st == VS_OK)
        log_info("wrote %s (%d fits) and %s (%u dev, %u test patients)", pcsv, n_fits, path,
                 splits_count(sp, SPLIT_DEV), splits_count(sp, SPLIT_TEST));
    splits_free(sp);
    cohort_free(&c);
    shard_set_close(set);
    labels_free(&ls);
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
