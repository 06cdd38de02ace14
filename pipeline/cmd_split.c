/* cmd_split.c — `vesalius split`: the comparison protocol's roles. Every labeled patient of a
 * shard folder becomes train, dev or test (studies/splits.h), once per study, before
 * pretraining: pretraining leaves the test patients out, fine-tuning trains on the training
 * patients' label budgets and predicts the dev and test patients.
 *
 * Outputs in --out DIR: splits.csv (studies/splits.h) and settings.json.
 */
#include "cli.h"
#include "labels_cli.h"
#include "log.h"
#include "settings_cli.h"
#include "splits.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct split_opts {
    const char *shards, *out;
    study *st;
    study_kv kv;
    char shards_buf[4096], out_buf[4096];
} split_opts;

enum { O_SHARDS = 1000, O_OUT, O_LABELS, O_MASKS };
static const struct option split_own[] = {
    {"shards", required_argument, 0, O_SHARDS},
    {"out", required_argument, 0, O_OUT},
    {"labels", required_argument, 0, O_LABELS},
    {"masks", required_argument, 0, O_MASKS},
    {0, 0, 0, 0},
};

/* --labels and --masks set labels.format and labels.file as a study file would. */
static int own_option(void *ctx, int id, const char *a, study *s) {
    split_opts *o = ctx;
    vs_error err;
    switch (id) {
    case O_SHARDS: o->shards = a; return 0;
    case O_OUT: o->out = a; return 0;
    case O_LABELS:
    case O_MASKS:
        if (study_set(s, &study_settings[STUDY_KEY_labels_format],
                      id == O_LABELS ? "points" : "masks", 0, &err) != VS_OK ||
            study_set(s, &study_settings[STUDY_KEY_labels_file], a, 0, &err) != VS_OK)
            return cli_fail("split", &err);
        return 0;
    }
    return cli_usage_error("split", "unknown option");
}

static int parse(split_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    int first = 0;
    int rc =
        settings_cli_parse("split", ST_SPLIT, split_own, own_option, o, argc, argv, &o->st, &first);
    if (rc != VS_EXIT_OK) return rc;
    if (first < argc) return cli_usage_error("split", "unexpected argument '%s'", argv[first]);
    if (o->st->path) { /* the study's folders, unless given */
        snprintf(o->shards_buf, sizeof o->shards_buf, "%s/ingest/shards", o->st->top.output);
        snprintf(o->out_buf, sizeof o->out_buf, "%s/split", o->st->top.output);
        if (!o->shards) o->shards = o->shards_buf;
        if (!o->out) o->out = o->out_buf;
    }
    if (!o->shards || !o->out)
        return cli_usage_error("split", "--shards DIR and --out DIR are required");
    vs_error err;
    if (settings_cli_resolve(o->st, ST_SPLIT, &o->kv, &err) != VS_OK)
        return cli_fail("split", &err);
    return VS_EXIT_OK;
}

static vs_status split(const split_opts *o, vs_error *err) {
    label_set ls = {0};
    shard_set *set = NULL;
    char(*keys)[65] = NULL;
    uint8_t *pos = NULL;
    const char **ptrs = NULL;
    uint32_t n = 0;
    int n_series = 0;
    split_table *t = NULL;
    char path[4200];
    vs_status st = labels_cli_read(o->st, &ls, err);
    if (st == VS_OK) st = shard_set_open(o->shards, NULL, &set, err);
    if (st == VS_OK) st = labels_cli_patients(set, &ls, &keys, &pos, &n, &n_series, err);
    if (st == VS_OK && n == 0)
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s holds none of the labeled series", o->shards);
    if (st == VS_OK && !(ptrs = calloc(n, sizeof *ptrs)))
        st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; st == VS_OK && i < n; i++)
        ptrs[i] = keys[i];
    const study_finetune *f = &o->st->finetune;
    if (st == VS_OK)
        st = splits_make(ptrs, pos, n, f->dev_share, f->test_share, (uint64_t)o->st->top.seed, &t,
                         err);
    if (st == VS_OK) st = settings_cli_record(&o->kv, "split", o->out, err);
    snprintf(path, sizeof path, "%s/splits.csv", o->out);
    if (st == VS_OK) st = splits_save(t, path, err);
    if (st == VS_OK) {
        uint32_t c[3] = {0, 0, 0}, p[3] = {0, 0, 0};
        for (uint32_t i = 0; i < t->n; i++)
            c[t->role[i]]++, p[t->role[i]] += t->positive[i];
        log_info("%u labeled patients (%d series): %u train (%u positive), %u dev (%u), %u test "
                 "(%u); wrote %s",
                 n, n_series, c[SPLIT_TRAIN], p[SPLIT_TRAIN], c[SPLIT_DEV], p[SPLIT_DEV],
                 c[SPLIT_TEST], p[SPLIT_TEST], path);
    }
    splits_free(t);
    free(ptrs), free(keys), free(pos);
    shard_set_close(set);
    labels_free(&ls);
    return st;
}

int cmd_split(int argc, char **argv) {
    split_opts o;
    int rc = parse(&o, argc, argv);
    if (rc == VS_EXIT_OK) {
        vs_error err;
        rc = split(&o, &err) == VS_OK ? VS_EXIT_OK : cli_fail("split", &err);
    }
    study_kv_free(&o.kv);
    study_free(o.st);
    return rc;
}
