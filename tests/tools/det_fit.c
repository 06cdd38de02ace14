/* det_fit — experiment helper: train the detector on named volumes of a shard folder and
 * predict others, outside the study protocol (docs/experiments).
 *
 *   det_fit SHARDS LABELS.csv TRAIN.txt TEST.txt OUT.csv [key=value ...]
 *
 * LABELS.csv is validation/FORMATS.md's labels form (pseudonymous series keys, LPS mm);
 * TRAIN.txt and TEST.txt list series keys, one a line. OUT.csv: series,x,y,z,probability (a
 * volume row with empty x, y, z holds the volume score). Options: steps, batch, lr, seed,
 * window=LO:HI, init=MAE_CHECKPOINT, arch_of=MAE_CHECKPOINT (its architecture, random
 * weights), width, mine_every, hard_share, hard_weighted (0, 1), zoom, rotate (degrees),
 * layer_decay, flips, threads, crop, patch, dim, depth, heads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "det.h"
#include "nn.h"
#include "shard.h"

typedef struct lab {
    char key[80];
    int n;
    det_lesion les[16];
    double lps[16][3];
} lab;

static int read_list(const char *path, char (**out)[80]) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, cap = 64;
    char(*k)[80] = malloc((size_t)cap * sizeof *k), line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        if (n == cap) k = realloc(k, (size_t)(cap *= 2) * sizeof *k);
        snprintf(k[n++], 80, "%s", line);
    }
    fclose(f);
    *out = k;
    return n;
}

static lab *find(lab *L, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(L[i].key, key)) return &L[i];
    return NULL;
}

static void on_step(void *ctx, long step, float loss, float vl, double lr) {
    (void)ctx, (void)vl;
    if (step % 100 == 0) fprintf(stderr, "step %ld loss %.4f lr %.2g\n", step, loss, lr);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: det_fit SHARDS LABELS TRAIN TEST OUT [key=value...]\n");
        return 2;
    }
    det_train_config tc;
    det_train_config_default(&tc);
    det_predict_opts po;
    det_predict_opts_default(&po);
    tc.det.enc.batch = 8, tc.steps = 1500, tc.opt.lr = 1e-3, tc.layer_decay = 1.0;
    tc.opt.warmup_steps = 100, tc.opt.weight_decay = 1e-4;
    const char *init = NULL, *arch_of = NULL;
    int threads = 2, width = 16;
    for (int i = 6; i < argc; i++) {
        char k[64];
        const char *v = strchr(argv[i], '=');
        if (!v) return 2;
        snprintf(k, sizeof k, "%.*s", (int)(v - argv[i]), argv[i]);
        v++;
        if (!strcmp(k, "steps"))
            tc.steps = atol(v);
        else if (!strcmp(k, "batch"))
            tc.det.enc.batch = atoi(v);
        else if (!strcmp(k, "lr"))
            tc.opt.lr = atof(v);
        else if (!strcmp(k, "seed"))
            tc.seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "window"))
            sscanf(v, "%f:%f", &tc.det.window[0], &tc.det.window[1]);
        else if (!strcmp(k, "init"))
            init = v;
        else if (!strcmp(k, "arch_of"))
            arch_of = v;
        else if (!strcmp(k, "width"))
            width = atoi(v);
        else if (!strcmp(k, "mine_every"))
            tc.mine_every = atoi(v);
        else if (!strcmp(k, "hard_share"))
            tc.hard_share = atof(v);
        else if (!strcmp(k, "zoom"))
            tc.zoom = atof(v);
        else if (!strcmp(k, "rotate"))
            tc.rotate = atof(v);
        else if (!strcmp(k, "hard_weighted"))
            tc.hard_weighted = atoi(v);
        else if (!strcmp(k, "layer_decay"))
            tc.layer_decay = atof(v);
        else if (!strcmp(k, "flips"))
            po.flips = atoi(v);
        else if (!strcmp(k, "threads"))
            threads = atoi(v);
        else if (!strcmp(k, "crop"))
            for (int a = 0; a < 3; a++)
                tc.det.enc.crop[a] = atoi(v);
        else if (!strcmp(k, "patch"))
            for (int a = 0; a < 3; a++)
                tc.det.enc.patch[a] = atoi(v);
        else if (!strcmp(k, "dim"))
            tc.det.enc.dim = atoi(v);
        else if (!strcmp(k, "depth"))
            tc.det.enc.depth = atoi(v);
        else if (!strcmp(k, "heads"))
            tc.det.enc.heads = atoi(v);
        else
            return fprintf(stderr, "unknown option %s\n", k), 2;
    }
    tc.opt.total_steps = tc.steps;
    tc.det.stem[0] = width, tc.det.stem[1] = 2 * width;
    tc.det.dec[0] = 4 * width, tc.det.dec[1] = 2 * width, tc.det.dec[2] = width;
    nn_set_threads(threads);
    vs_error err;
    if ((init || arch_of) && det_config_from_mae(&tc.det, init ? init : arch_of, &err) != VS_OK)
        goto fail;
    /* labels */
    FILE *f = fopen(argv[2], "r");
    if (!f) return fprintf(stderr, "cannot read %s\n", argv[2]), 1;
    int nl = 0;
    lab *L = calloc(4096, sizeof *L);
    char line[512];
    if (!fgets(line, sizeof line, f)) return 1;
    while (fgets(line, sizeof line, f)) {
        char key[80], pat[80];
        int label;
        double x, y, z, dia;
        int got =
            sscanf(line, "%79[^,],%79[^,],%d,%lf,%lf,%lf,%lf", key, pat, &label, &x, &y, &z, &dia);
        if (got < 3) continue;
        lab *l = find(L, nl, key);
        if (!l) l = &L[nl++], snprintf(l->key, sizeof l->key, "%s", key);
        if (got == 7 && l->n < 16) {
            l->lps[l->n][0] = x, l->lps[l->n][1] = y, l->lps[l->n][2] = z;
            l->les[l->n++].diameter = dia;
        }
    }
    fclose(f);
    char(*tr)[80], (*te)[80];
    int ntr = read_list(argv[3], &tr), nte = read_list(argv[4], &te);
    shard_set *set = NULL;
    if (shard_set_open(argv[1], NULL, &set, &err) != VS_OK) goto fail;
    int nall = shard_set_count(set);
    volume *vt = calloc((size_t)ntr, sizeof *vt);
    det_item *items = calloc((size_t)ntr, sizeof *items);
    for (int i = 0; i < ntr; i++) {
        int j = 0;
        while (j < nall && strcmp(shard_set_entry(set, j)->key, tr[i]))
            j++;
        if (j == nall) return fprintf(stderr, "%s not in shards\n", tr[i]), 1;
        if (shard_set_read(set, j, &vt[i], NULL, 0, &err) != VS_OK) goto fail;
        lab *l = find(L, nl, tr[i]);
        for (int k = 0; l && k < l->n; k++) {
            double ijk[3];
            if (volume_lps_to_index(&vt[i], l->lps[k], ijk, NULL) != VS_OK) goto fail;
            l->les[k].zyx[0] = ijk[2], l->les[k].zyx[1] = ijk[1], l->les[k].zyx[2] = ijk[0];
            det_lesion_radius(&l->les[k], &vt[i]);
        }
        items[i] = (det_item){&vt[i], l ? l->n : 0, l ? l->les : NULL};
    }
    det *d = NULL;
    if (det_create(&d, &tc.det, &err) != VS_OK) goto fail;
    rng r;
    rng_seed(&r, tc.seed, 0);
    det_init_weights(d, &r);
    if (init && det_load_mae(d, init, &err) != VS_OK) goto fail;
    det_train_result res;
    if (det_train(d, &tc, items, ntr, NULL, 0, on_step, NULL, &res, &err) != VS_OK) goto fail;
    fprintf(stderr, "trained %ld steps, last mining %d negatives\n", res.steps_run, res.mined);
    FILE *o = fopen(argv[5], "w");
    fprintf(o, "series,x,y,z,probability\n");
    for (int i = 0; i < nte; i++) {
        int j = 0;
        while (j < nall && strcmp(shard_set_entry(set, j)->key, te[i]))
            j++;
        if (j == nall) return fprintf(stderr, "%s not in shards\n", te[i]), 1;
        volume v;
        det_result pr;
        if (shard_set_read(set, j, &v, NULL, 0, &err) != VS_OK) goto fail;
        if (det_predict(d, &v, &po, &pr, &err) != VS_OK) goto fail;
        fprintf(o, "%s,,,,%.6f\n", te[i], pr.score);
        for (int k = 0; k < pr.n; k++)
            fprintf(o, "%s,%.3f,%.3f,%.3f,%.6f\n", te[i], pr.cand[k].lps[0], pr.cand[k].lps[1],
                    pr.cand[k].lps[2], pr.cand[k].probability);
        det_result_free(&pr);
        volume_free(&v);
    }
    fclose(o);
    return 0;
fail:
    fprintf(stderr, "det_fit: %s\n", err.msg);
    return 1;
}
