/* cmd_predict.c — `vesalius predict`: run a detector checkpoint (or the ensemble of several)
 * over whole volumes of a shard folder with sliding windows and write candidates in the form
 * `vesalius validate` reads. */
#include "cli.h"
#include "fsdir.h"
#include "det_cli.h"
#include "itk_shim.h"
#include "log.h"
#include "parse.h"
#include "nn.h"
#include "shard.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------- shared with finetune */
int detcli_number(const char *s, double lo, double hi, double *out) {
    return vs_parse_double(s, lo, hi, out) ? 0 : -1;
}

void detcli_csv_header(FILE *csv) {
    fputs("series,arm,budget,seed,set,x,y,z,probability,diameter\n", csv);
}

void detcli_write_rows(FILE *csv, FILE *json, const char *series, const detcli_tag *t,
                       const det_result *r) {
    fprintf(csv, "%s,%s,%d,%d,%s,,,,%.6f,\n", series, t->arm, t->budget, t->seed, t->set, r->score);
    if (json)
        fprintf(json,
                "{\"series\":\"%s\",\"arm\":\"%s\",\"budget\":%d,\"seed\":%d,\"set\":\"%s\","
                "\"probability\":%.6f}\n",
                series, t->arm, t->budget, t->seed, t->set, r->score);
    for (int i = 0; i < r->n; i++) {
        const det_candidate *c = &r->cand[i];
        fprintf(csv, "%s,%s,%d,%d,%s,%.3f,%.3f,%.3f,%.6f,%.2f\n", series, t->arm, t->budget,
                t->seed, t->set, c->lps[0], c->lps[1], c->lps[2], c->probability, c->diameter);
        if (json)
            fprintf(json,
                    "{\"series\":\"%s\",\"arm\":\"%s\",\"budget\":%d,\"seed\":%d,\"set\":\"%s\","
                    "\"x\":%.3f,\"y\":%.3f,\"z\":%.3f,\"probability\":%.6f,\"diameter\":%.2f}\n",
                    series, t->arm, t->budget, t->seed, t->set, c->lps[0], c->lps[1], c->lps[2],
                    c->probability, c->diameter);
    }
}

vs_status detcli_write_heatmap(const volume *v, const det_config *c, const det_result *r,
                               const char *path, vs_error *err) {
    volume h;
    memset(&h, 0, sizeof h);
    vs_status st = volume_alloc(&h, r->cells[0], r->cells[1], r->cells[2], VOL_FLOAT32, 0, err);
    if (st != VS_OK) return st;
    memcpy(h.voxels, r->heat, (size_t)volume_n_voxels(&h) * sizeof(float));
    const int *P = c->enc.patch;
    double centre[3] = {(P[2] - 1) / 2.0, (P[1] - 1) / 2.0, (P[0] - 1) / 2.0}; /* (i, j, k) */
    volume_index_to_lps(v, centre, h.origin);
    for (int a = 0; a < 3; a++)
        h.spacing[a] = v->spacing[a] * P[2 - a];
    memcpy(h.direction, v->direction, sizeof h.direction);
    volume_update_affine(&h);
    st = itkshim_write_image(&h, path, err);
    volume_free(&h);
    return st;
}

/* ---------------------------------------------------------------------------- command */
typedef struct predict_opts {
    const char *shards, *out, *json, *heatmaps, *arm, *set;
    const char **series, **model; /* more than one model: their ensemble */
    int n_series, n_model, budget, seed, batch;
    det_predict_opts det;
} predict_opts;

enum {
    O_MODEL = 1000,
    O_SHARDS,
    O_OUT,
    O_JSON,
    O_HEAT,
    O_SERIES,
    O_BUDGET,
    O_SEED,
    O_SET,
    O_ARM,
    O_BATCH,
    O_MINP,
    O_FLIPS,
    O_MAXC,
    O_NMS
};
static const struct option predict_long[] = {
    {"model", required_argument, 0, O_MODEL},   {"shards", required_argument, 0, O_SHARDS},
    {"out", required_argument, 0, O_OUT},       {"json", required_argument, 0, O_JSON},
    {"heatmaps", required_argument, 0, O_HEAT}, {"series", required_argument, 0, O_SERIES},
    {"budget", required_argument, 0, O_BUDGET}, {"arm", required_argument, 0, O_ARM},
    {"seed", required_argument, 0, O_SEED},     {"set", required_argument, 0, O_SET},
    {"batch", required_argument, 0, O_BATCH},   {"min-prob", required_argument, 0, O_MINP},
    {"flips", required_argument, 0, O_FLIPS},   {"max-candidates", required_argument, 0, O_MAXC},
    {"nms-mm", required_argument, 0, O_NMS},    {0, 0, 0, 0},
};

static int parse(predict_opts *o, int argc, char **argv) {
    const char *cmd = "predict";
    memset(o, 0, sizeof *o);
    det_predict_opts_default(&o->det);
    o->arm = "mae", o->set = "test", o->batch = 4;
    o->series = calloc((size_t)argc + 1, sizeof *o->series);
    o->model = calloc((size_t)argc + 1, sizeof *o->model);
    if (!o->series || !o->model) return cli_usage_error(cmd, "out of memory");
    int opt;
    double v = 0.0;
    while ((opt = getopt_long(argc, argv, "", predict_long, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case O_MODEL: o->model[o->n_model++] = optarg; break;
        case O_SHARDS: o->shards = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_JSON: o->json = optarg; break;
        case O_HEAT: o->heatmaps = optarg; break;
        case O_SERIES: o->series[o->n_series++] = optarg; break;
        case O_ARM: o->arm = optarg; break;
        case O_BUDGET: bad = detcli_number(optarg, 0, 1e6, &v), o->budget = (int)v; break;
        case O_SEED: bad = detcli_number(optarg, 0, 1e6, &v), o->seed = (int)v; break;
        case O_SET:
            o->set = optarg;
            bad = strcmp(optarg, "test") && strcmp(optarg, "dev") ? -1 : 0;
            break;
        case O_BATCH: bad = detcli_number(optarg, 1, 256, &v), o->batch = (int)v; break;
        case O_MINP: bad = detcli_number(optarg, 0, 1, &v), o->det.min_prob = (float)v; break;
        case O_FLIPS: bad = detcli_number(optarg, 0, 1, &v), o->det.flips = (int)v; break;
        case O_MAXC:
            bad = detcli_number(optarg, 1, 100000, &v), o->det.max_candidates = (int)v;
            break;
        case O_NMS: bad = detcli_number(optarg, 0, 1000, &v), o->det.nms_mm = v; break;
        default:
            return cli_usage_error(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
        }
        if (bad) return cli_usage_error(cmd, "bad value '%s' for %s", optarg, argv[optind - 2]);
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o->n_model || !o->shards || !o->out)
        return cli_usage_error(cmd, "--model FILE, --shards DIR and --out FILE are required");
    if (strcmp(o->arm, "mae") && strcmp(o->arm, "scratch"))
        return cli_usage_error(cmd, "--arm must be mae or scratch");
    return VS_EXIT_OK;
}

static int wanted(const predict_opts *o, const char *key) {
    if (!o->n_series) return 1;
    for (int i = 0; i < o->n_series; i++)
        if (strcmp(o->series[i], key) == 0) return 1;
    return 0;
}

static vs_status predict_all(const predict_opts *o, det **d, shard_set *set, FILE *csv, FILE *json,
                             int *n_done, vs_error *err) {
    vs_status st = VS_OK;
    for (int i = 0; i < shard_set_count(set) && st == VS_OK; i++) {
        const shard_entry *e = shard_set_entry(set, i);
        if (!wanted(o, e->key)) continue;
        volume v;
        memset(&v, 0, sizeof v);
        st = shard_set_read(set, i, &v, NULL, 0, err);
        det_result r;
        memset(&r, 0, sizeof r);
        if (st == VS_OK) st = det_predict_ensemble(d, o->n_model, &v, &o->det, &r, err);
        if (st == VS_OK) {
            detcli_write_rows(csv, json, e->key, &(detcli_tag){o->arm, o->budget, o->seed, o->set},
                              &r);
            (*n_done)++;
            log_info("%s: %d candidates, volume score %.3f", e->key, r.n, r.score);
        }
        if (st == VS_OK && o->heatmaps) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.nii.gz", o->heatmaps, e->key);
            st = detcli_write_heatmap(&v, det_get_config(d[0]), &r, path, err);
        }
        det_result_free(&r);
        volume_free(&v);
    }
    return st;
}

int cmd_predict(int argc, char **argv) {
    const char *cmd = "predict";
    predict_opts o;
    int rc = parse(&o, argc, argv);
    if (rc != VS_EXIT_OK) {
        free(o.series), free(o.model);
        return rc;
    }
    nn_set_threads(g_cli.threads > 0 ? g_cli.threads : nn_threads());
    vs_error err;
    det **d = calloc((size_t)o.n_model, sizeof *d);
    shard_set *set = NULL;
    vs_atomic csv_out = {NULL, "", ""}, json_out = {NULL, "", ""};
    FILE *csv = NULL, *json = NULL;
    int n_done = 0;
    vs_status st = d ? VS_OK : VS_FAIL(&err, VS_ERR_NOMEM, "out of memory");
    for (int m = 0; st == VS_OK && m < o.n_model; m++)
        if ((st = det_load(&d[m], o.model[m], o.batch, &err)) == VS_OK && m > 0 &&
            !det_same_shape(d[m], d[0]))
            st = VS_FAIL(&err, VS_ERR_FORMAT,
                         "%s: another crop, patch or intensity window than %s: not one ensemble",
                         o.model[m], o.model[0]);
    if (st == VS_OK) st = shard_set_open(o.shards, NULL, &set, &err);
    if (st == VS_OK && o.heatmaps) st = vs_mkdirs(o.heatmaps, 0755, &err);
    if (st == VS_OK && (st = vs_atomic_open(&csv_out, o.out, &err)) == VS_OK) csv = csv_out.f;
    if (st == VS_OK && o.json && (st = vs_atomic_open(&json_out, o.json, &err)) == VS_OK)
        json = json_out.f;
    if (st == VS_OK) {
        detcli_csv_header(csv);
        st = predict_all(&o, d, set, csv, json, &n_done, &err);
    }
    if (st == VS_OK && n_done == 0)
        st = VS_FAIL(&err, VS_ERR_FORMAT, "%s holds none of the requested volumes", o.shards);
    if (st == VS_OK) st = vs_atomic_commit(&csv_out, &err);
    if (st == VS_OK && o.json) st = vs_atomic_commit(&json_out, &err);
    vs_atomic_abort(&csv_out), vs_atomic_abort(&json_out); /* what is left of a failure */
    if (st == VS_OK) log_info("wrote predictions for %d volumes to %s", n_done, o.out);
    for (int m = 0; d && m < o.n_model; m++)
        det_destroy(d[m]);
    free(d);
    shard_set_close(set);
    free(o.series), free(o.model);
    return st == VS_OK ? VS_EXIT_OK : cli_fail(cmd, &err);
}
