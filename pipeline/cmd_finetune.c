/* cmd_finetune.c — `vesalius finetune`: train the detector on labeled volumes of a shard folder
 * with patient-level k-fold cross-validation, from a pretraining checkpoint (arm "mae") or from
 * scratch (arm "scratch") through the same code path.
 *
 * Outputs in --out DIR:
 *   splits.csv                 the patient folds (studies/splits.h), reused by every rerun
 *   labels.csv                 the labels in validation/FORMATS.md form (pseudonymous keys)
 *   ARM-foldF.det              the detector of fold F (vesalius predict --model)
 *   train-ARM-foldF.jsonl      training log (event train.step; validate --train-log)
 *   predictions-ARM.csv/.jsonl each fold's test volumes (validate --predictions)
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
    const char *shards, *points, *vol_labels, *masks, *key, *out, *init, *arm;
    int folds, only_fold;
    double val_fraction;
    study *st;   /* the settings (studies/study.h): study file, then options */
    study_kv kv; /* as recorded in OUT/settings.json */
    char stage[32], shards_buf[4096], out_buf[4096];
} ft_opts;

/* The labeled cohort in memory. */
typedef struct cohort {
    int n;
    volume *vols;
    det_lesion **les; /* per volume, voxel (z, y, x) */
    label_series **lab;
    char (*patient)[65];
} cohort;

enum { O_SHARDS = 1000, O_LABELS, O_MASKS, O_OUT, O_INIT, O_ARM, O_FOLD };
static const struct option ft_own[] = {
    {"shards", required_argument, 0, O_SHARDS}, {"labels", required_argument, 0, O_LABELS},
    {"masks", required_argument, 0, O_MASKS},   {"out", required_argument, 0, O_OUT},
    {"init", required_argument, 0, O_INIT},     {"arm", required_argument, 0, O_ARM},
    {"fold", required_argument, 0, O_FOLD},     {0, 0, 0, 0},
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
    case O_FOLD:
        if (detcli_number(a, 0, 99, &v) < 0)
            return cli_usage_error("finetune", "--fold wants 0 to 99");
        o->only_fold = (int)v;
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
    o->folds = f->folds, o->val_fraction = f->val_fraction;
    tc->steps = f->steps, tc->opt.total_steps = f->steps;
    tc->opt.lr = f->lr, tc->layer_decay = f->layer_decay, tc->lesion_share = f->lesion_share;
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
    o->only_fold = -1;
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
        if ((study_settings[i].readers & ST_FINETUNE) == ST_FT_SCRATCH &&
            o->st->origin[i] == STUDY_FROM_OPTION)
            return cli_usage_error(
                cmd, "--%s: with --init the architecture and crop come from the checkpoint",
                study_setting_flag(&study_settings[i], flag, sizeof flag));
    if (o->st->path) { /* the study's folders, unless given */
        snprintf(o->shards_buf, sizeof o->shards_buf, "%s/ingest/shards", o->st->top.output);
        snprintf(o->out_buf, sizeof o->out_buf, "%s/finetune-%s", o->st->top.output, o->arm);
        if (!o->shards) o->shards = o->shards_buf;
        if (!o->out) o->out = o->out_buf;
    }
    if (!o->shards || !o->out)
        return cli_usage_error(cmd, "--shards DIR and --out DIR are required");
    finetune_config(o->st, o);
    if (!o->points && !o->vol_labels && !o->masks)
        return cli_usage_error(
            cmd, "give labels: --labels CSV (points), --volume-labels CSV and/or --masks DIR");
    if (o->only_fold >= o->folds) return cli_usage_error(cmd, "--fold must be below --folds");
    snprintf(o->stage, sizeof o->stage, "finetune-%s", o->arm);
    vs_error err;
    if (settings_cli_resolve(o->st, stage, &o->kv, &err) != VS_OK) return cli_fail(cmd, &err);
    return VS_EXIT_OK;
}

/* ---- transitional: the k-fold cohorts fine-tuning used before the protocol of issue #15 ------
 * (its next piece replaces them with studies/splits.h's roles and label budgets) */
typedef enum { FOLD_TRAIN = 0, FOLD_VALIDATION = 1, FOLD_TEST = 2 } fold_role;
typedef struct fold_table {
    uint32_t n;
    int k;
    uint64_t seed;
    double val_fraction;
    char (*patient)[65];
    uint8_t *positive;
    int *fold;
    uint8_t *val_mask;
} fold_table;
static void folds_free(fold_table *t);
/* Streams of the study seed used here, so splits never share draws with training. */
enum { FOLD_STREAM_FOLDS = 0x5f11u, FOLD_STREAM_VALIDATION = 0x5f12u };

typedef struct fold_keyed {
    const char *key;
    uint8_t positive;
} fold_keyed;

static int folds_cmp_key(const void *a, const void *b) {
    return strcmp(((const fold_keyed *)a)->key, ((const fold_keyed *)b)->key);
}

static fold_table *folds_alloc(uint32_t n, int k) {
    fold_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n = n;
    t->k = k;
    t->patient = calloc(n ? n : 1, sizeof *t->patient);
    t->positive = calloc(n ? n : 1, 1);
    t->fold = calloc(n ? n : 1, sizeof *t->fold);
    t->val_mask = calloc((size_t)(n ? n : 1) * (size_t)k, 1);
    if (!t->patient || !t->positive || !t->fold || !t->val_mask) {
        folds_free(t);
        return NULL;
    }
    return t;
}

static void folds_free(fold_table *t) {
    if (!t) return;
    free(t->patient);
    free(t->positive);
    free(t->fold);
    free(t->val_mask);
    free(t);
}

/* Validation patients of fold f: a seeded share of the training patients, stratified. */
static void folds_choose_validation(fold_table *t) {
    for (int f = 0; f < t->k; f++) {
        rng r;
        rng_seed(&r, t->seed, FOLD_STREAM_VALIDATION + (uint64_t)f);
        for (int cls = 0; cls < 2; cls++) {
            uint32_t *idx = malloc(sizeof *idx * (t->n ? t->n : 1));
            if (!idx) return;
            uint32_t m = 0;
            for (uint32_t i = 0; i < t->n; i++)
                if (t->fold[i] != f && t->positive[i] == cls) idx[m++] = i;
            rng_shuffle_u32(&r, idx, m);
            uint32_t take = (uint32_t)(t->val_fraction * (double)m + 0.5);
            if (t->val_fraction > 0 && take == 0 && m > 1) take = 1;
            for (uint32_t j = 0; j < take; j++)
                t->val_mask[(size_t)f * t->n + idx[j]] = 1;
            free(idx);
        }
    }
}

static vs_status folds_make(const char *const *keys, const uint8_t *positive, uint32_t n, int k,
                            double val_fraction, uint64_t seed, fold_table **out, vs_error *err) {
    *out = NULL;
    if (k < 2) return VS_FAIL(err, VS_ERR_CONFIG, "k-fold splits need at least 2 folds, not %d", k);
    if (n < (uint32_t)k)
        return VS_FAIL(err, VS_ERR_CONFIG, "%u patients cannot fill %d folds", n, k);
    if (!(val_fraction >= 0 && val_fraction < 1))
        return VS_FAIL(err, VS_ERR_CONFIG, "validation fraction %g is outside [0, 1)",
                       val_fraction);
    /* Sort (key, flag) pairs by key so the input order cannot matter (invariant 3). */
    fold_keyed *sorted = malloc(sizeof *sorted * n);
    if (!sorted) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        sorted[i].key = keys[i];
        sorted[i].positive = positive && positive[i] ? 1 : 0;
    }
    qsort(sorted, n, sizeof *sorted, folds_cmp_key);
    fold_table *t = folds_alloc(n, k);
    if (!t) {
        free(sorted);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    t->seed = seed;
    t->val_fraction = val_fraction;
    for (uint32_t i = 0; i < n; i++) {
        if (strlen(sorted[i].key) >= sizeof t->patient[i] || !sorted[i].key[0]) {
            free(sorted);
            folds_free(t);
            return VS_FAIL(err, VS_ERR_FORMAT,
                           "patient key %u is empty or longer than 64 characters", i);
        }
        if (i && strcmp(sorted[i].key, sorted[i - 1].key) == 0) {
            folds_free(t);
            vs_status st =
                VS_FAIL(err, VS_ERR_FORMAT, "patient key %s is listed twice", sorted[i].key);
            free(sorted);
            return st;
        }
        strcpy(t->patient[i], sorted[i].key);
        t->positive[i] = sorted[i].positive;
    }
    free(sorted);
    /* Stratified dealing: shuffle each class, deal folds round-robin, continuing the counter
     * across classes so totals stay balanced too (invariant 1). */
    rng r;
    rng_seed(&r, seed, FOLD_STREAM_FOLDS);
    uint32_t *idx = malloc(sizeof *idx * n);
    if (!idx) {
        folds_free(t);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    uint32_t dealt = 0;
    for (int cls = 1; cls >= 0; cls--) {
        uint32_t m = 0;
        for (uint32_t i = 0; i < n; i++)
            if (t->positive[i] == cls) idx[m++] = i;
        rng_shuffle_u32(&r, idx, m);
        for (uint32_t j = 0; j < m; j++)
            t->fold[idx[j]] = (int)(dealt++ % (uint32_t)k);
    }
    free(idx);
    folds_choose_validation(t);
    *out = t;
    return VS_OK;
}

static fold_role folds_role(const fold_table *t, int fold, uint32_t patient) {
    if (t->fold[patient] == fold) return FOLD_TEST;
    if (t->val_mask[(size_t)fold * t->n + patient]) return FOLD_VALIDATION;
    return FOLD_TRAIN;
}

static int64_t folds_find(const fold_table *t, const char *key) {
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->patient[mid], key);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static vs_status folds_save(const fold_table *t, const char *path, vs_error *err) {
    vs_atomic a;
    vs_status st = vs_atomic_open(&a, path, err);
    if (st != VS_OK) return st;
    fprintf(a.f, "# vesalius splits v1 k=%d seed=%" PRIu64 " val_fraction=%.17g\n", t->k, t->seed,
            t->val_fraction);
    fprintf(a.f, "patient,positive,fold,validation_folds\n");
    for (uint32_t i = 0; i < t->n; i++) {
        fprintf(a.f, "%s,%d,%d,", t->patient[i], t->positive[i], t->fold[i]);
        int any = 0;
        for (int fo = 0; fo < t->k; fo++)
            if (t->val_mask[(size_t)fo * t->n + i]) fprintf(a.f, "%s%d", any++ ? ";" : "", fo);
        fputc('\n', a.f);
    }
    return vs_atomic_commit(&a, err);
}

static vs_status folds_load(const char *path, fold_table **out, vs_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read (%s)", path, strerror(errno));
    char line[1024];
    int k = 0;
    uint64_t seed = 0;
    double vf = 0;
    if (!fgets(line, sizeof line, f) ||
        sscanf(line, "# vesalius splits v1 k=%d seed=%" SCNu64 " val_fraction=%lf", &k, &seed,
               &vf) != 3 ||
        k < 2 || k > 1000 || !fgets(line, sizeof line, f)) {
        fclose(f);
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: not a vesalius splits file", path);
    }
    uint32_t n = 0;
    long start = ftell(f);
    while (fgets(line, sizeof line, f))
        n++;
    fold_table *t = folds_alloc(n, k);
    if (!t) {
        fclose(f);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    t->seed = seed;
    t->val_fraction = vf;
    fseek(f, start, SEEK_SET);
    for (uint32_t i = 0; i < n; i++) {
        int pos, fold, consumed = 0;
        if (!fgets(line, sizeof line, f) ||
            sscanf(line, "%64[^,],%d,%d,%n", t->patient[i], &pos, &fold, &consumed) != 3 ||
            fold < 0 || fold >= k || (pos != 0 && pos != 1) ||
            (i && strcmp(t->patient[i - 1], t->patient[i]) >= 0)) {
            fclose(f);
            folds_free(t);
            return VS_FAIL(err, VS_ERR_FORMAT, "%s: line %u is malformed", path, i + 3);
        }
        t->positive[i] = (uint8_t)pos;
        t->fold[i] = fold;
        for (char *p = line + consumed; *p && *p != '\n';) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v >= k) break;
            t->val_mask[(size_t)v * n + i] = 1;
            p = *end == ';' ? end + 1 : end;
        }
    }
    fclose(f);
    *out = t;
    return VS_OK;
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

static vs_status write_labels_csv(const cohort *c, const char *path, vs_error *err) {
    FILE *f = fopen(path, "w");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    fputs("series,patient,label,x,y,z,diameter\n", f);
    for (int i = 0; i < c->n; i++) {
        const label_series *s = c->lab[i];
        int lab = labels_volume_label(s);
        fprintf(f, "%s,%s,%d,,,,\n", s->key, c->patient[i], lab);
        for (int l = 0; l < s->n_lesions; l++)
            fprintf(f, "%s,%s,%d,%.3f,%.3f,%.3f,%.3f\n", s->key, c->patient[i], lab,
                    s->lesions[l].lps[0], s->lesions[l].lps[1], s->lesions[l].lps[2],
                    s->lesions[l].diameter);
    }
    return fclose(f) == 0 ? VS_OK : VS_FAIL(err, VS_ERR_IO, "cannot write %s", path);
}

/* The saved folds when present (every patient must be in them), else new ones, saved. */
static vs_status get_splits(const ft_opts *o, const cohort *c, fold_table **out, vs_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/splits.csv", o->out);
    if (access(path, F_OK) == 0) {
        vs_status st = folds_load(path, out, err);
        for (int i = 0; st == VS_OK && i < c->n; i++)
            if (folds_find(*out, c->patient[i]) < 0)
                st = VS_FAIL(err, VS_ERR_CONFIG,
                             "%s does not hold every labeled patient: remove it to make new folds",
                             path);
        if (st == VS_OK && (*out)->k != o->folds)
            st = VS_FAIL(err, VS_ERR_CONFIG, "%s has %d folds, not %d", path, (*out)->k, o->folds);
        return st;
    }
    const char **keys = calloc((size_t)c->n, sizeof *keys);
    uint8_t *pos = calloc((size_t)c->n, 1);
    int np = 0;
    vs_status st = VS_OK;
    if (!keys || !pos) st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate patients");
    for (int i = 0; st == VS_OK && i < c->n; i++) { /* unique patients; positive if any series is */
        int j = 0;
        while (j < np && strcmp(keys[j], c->patient[i]))
            j++;
        if (j == np) keys[np++] = c->patient[i];
        pos[j] |= (uint8_t)labels_volume_label(c->lab[i]);
    }
    if (st == VS_OK && np < o->folds)
        st = VS_FAIL(err, VS_ERR_CONFIG, "%d patients cannot make %d folds", np, o->folds);
    if (st == VS_OK)
        st = folds_make(keys, pos, (uint32_t)np, o->folds, o->val_fraction, o->tc.seed, out, err);
    if (st == VS_OK) st = folds_save(*out, path, err);
    free(keys), free(pos);
    return st;
}

/* --------------------------------------------------------------------------- folds */
typedef struct fold_log {
    FILE *f;
    char component[64];
} fold_log;

static void on_step(void *ctx, long step, float loss, float val_loss, double lr) {
    fold_log *l = ctx;
    char vl[32] = "";
    if (isfinite(val_loss)) snprintf(vl, sizeof vl, ",\"val_loss\":\"%.6f\"", val_loss);
    fprintf(l->f,
            "{\"component\":\"%s\",\"event\":\"train.step\",\"step\":\"%ld\",\"loss\":\"%.6f\"%s,"
            "\"lr\":\"%.4g\"}\n",
            l->component, step, loss, vl, lr);
    if (isfinite(val_loss))
        log_info("%s step %ld loss %.4f validation loss %.4f", l->component, step, loss, val_loss);
}

static vs_status run_fold(const ft_opts *o, const cohort *c, const fold_table *sp, int fold,
                          FILE *csv, FILE *json, vs_error *err) {
    det_item *tr = calloc((size_t)c->n, sizeof *tr), *va = calloc((size_t)c->n, sizeof *va);
    int ntr = 0, nva = 0;
    det *d = NULL;
    fold_log lg = {NULL, ""};
    vs_status st = VS_OK;
    if (!tr || !va) st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the fold");
    for (int i = 0; st == VS_OK && i < c->n; i++) {
        fold_role role = folds_role(sp, fold, (uint32_t)folds_find(sp, c->patient[i]));
        det_item it = {&c->vols[i], c->lab[i]->n_lesions, c->les[i]};
        if (role == FOLD_TRAIN)
            tr[ntr++] = it;
        else if (role == FOLD_VALIDATION)
            va[nva++] = it;
    }
    char path[4096];
    snprintf(lg.component, sizeof lg.component, "finetune-%s-fold%d", o->arm, fold);
    snprintf(path, sizeof path, "%s/train-%s-fold%d.jsonl", o->out, o->arm, fold);
    if (st == VS_OK && !(lg.f = fopen(path, "w")))
        st = VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    if (st == VS_OK) st = det_create(&d, &o->tc.det, err);
    if (st == VS_OK) {
        rng r; /* the same initialisation in both arms; the MAE arm then overwrites the encoder */
        rng_seed(&r, o->tc.seed, 0);
        det_init_weights(d, &r);
        if (o->init) st = det_load_mae(d, o->init, err);
    }
    det_train_result res;
    if (st == VS_OK) {
        log_info("fold %d: %d training, %d validation volumes (%s%s)", fold, ntr, nva, o->arm,
                 o->tc.det.probe ? ", frozen encoder" : "");
        st = det_train(d, &o->tc, tr, ntr, va, nva, on_step, &lg, &res, err);
    }
    if (st == VS_OK) {
        log_info("fold %d: kept the weights of step %ld of %ld", fold, res.best_step,
                 res.steps_run);
        snprintf(path, sizeof path, "%s/%s-fold%d.det", o->out, o->arm, fold);
        st = det_save(d, path, err);
    }
    for (int i = 0; st == VS_OK && i < c->n; i++) {
        if (folds_role(sp, fold, (uint32_t)folds_find(sp, c->patient[i])) != FOLD_TEST) continue;
        det_result r;
        st = det_predict(d, &c->vols[i], &o->po, &r, err);
        if (st == VS_OK) detcli_write_rows(csv, json, c->lab[i]->key, fold, o->arm, &r);
        det_result_free(&r);
    }
    if (lg.f && fclose(lg.f) != 0 && st == VS_OK)
        st = VS_FAIL(err, VS_ERR_IO, "cannot write the training log");
    det_destroy(d);
    free(tr), free(va);
    return st;
}

static vs_status finetune(const ft_opts *o, vs_error *err) {
    label_set ls = {0};
    cohort c = {0};
    shard_set *set = NULL;
    fold_table *sp = NULL;
    FILE *csv = NULL, *json = NULL;
    char pcsv[4096], pjson[4096], path[4096];
    vs_status st = vs_mkdirs(o->out, 0755, err);
    if (st != VS_OK) return st;
    ft_opts *mo = (ft_opts *)o; /* the architecture comes from the checkpoint */
    if (o->init) st = det_config_from_mae(&mo->tc.det, o->init, err);
    if (st == VS_OK) st = det_config_check(&o->tc.det, err);
    if (st == VS_OK) st = read_labels(o, &ls, err);
    if (st == VS_OK) st = shard_set_open(o->shards, NULL, &set, err);
    if (st == VS_OK) st = load_cohort(set, &ls, &c, err);
    snprintf(path, sizeof path, "%s/labels.csv", o->out);
    if (st == VS_OK) st = write_labels_csv(&c, path, err);
    if (st == VS_OK) st = get_splits(o, &c, &sp, err);
    snprintf(pcsv, sizeof pcsv, "%s/predictions-%s.csv", o->out, o->arm);
    snprintf(pjson, sizeof pjson, "%s/predictions-%s.jsonl", o->out, o->arm);
    if (st == VS_OK && (!(csv = fopen(pcsv, "w")) || !(json = fopen(pjson, "w"))))
        st = VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", pcsv, strerror(errno));
    if (st == VS_OK) detcli_csv_header(csv);
    for (int f = 0; f < o->folds && st == VS_OK; f++)
        if (o->only_fold < 0 || o->only_fold == f) st = run_fold(o, &c, sp, f, csv, json, err);
    if (csv && fclose(csv) != 0 && st == VS_OK)
        st = VS_FAIL(err, VS_ERR_IO, "cannot write %s", pcsv);
    if (json && fclose(json) != 0 && st == VS_OK)
        st = VS_FAIL(err, VS_ERR_IO, "cannot write %s", pjson);
    if (st == VS_OK) st = settings_cli_record(&o->kv, o->stage, o->out, err);
    if (st == VS_OK) log_info("wrote %s and %s (%d labeled volumes)", pcsv, path, c.n);
    folds_free(sp);
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
