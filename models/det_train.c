/* det_train.c — fine-tuning / probing the detector (det.h): lesion-centred, random and
 * hard-negative crops with the pretraining augmentations, AdamW with layer-wise lr decay,
 * hard-negative mining on the training volumes, optional early stopping. */
#include "det.h"

#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void det_train_config_default(det_train_config *c) {
    memset(c, 0, sizeof *c);
    det_config_default(&c->det);
    adamw_config_default(&c->opt);
    c->opt.lr = 1e-3;
    c->opt.min_lr = 1e-5;
    c->opt.warmup_steps = 20;
    c->opt.weight_decay = 0.01;
    c->opt.clip = 1.0;
    c->aug.flip[0] = c->aug.flip[1] = c->aug.flip[2] = 0.5f;
    c->aug.scale = 0.1f;
    c->aug.shift = 0.1f;
    c->layer_decay = 0.75;
    c->lesion_share = 0.5;
    c->hard_share = 0.25;
    c->mine_every = 300;
    c->mine_top = 8;
    c->steps = 300;
    c->eval_every = 0; /* early stopping on crop-level dev loss kept untrained weights */
    c->patience = 4;
    c->val_crops = 16;
    c->seed = 0;
}

typedef struct lesion_ref {
    int item, lesion;
} lesion_ref;

/* A mined false positive: a training volume and a voxel position (z, y, x). */
typedef struct hard_ref {
    int item;
    double zyx[3];
} hard_ref;

typedef struct trainer {
    const det_train_config *c;
    det *d;
    const det_item *items;
    int n_items;
    float *pad;       /* (n_items) minimum voxel of each volume */
    lesion_ref *refs; /* every lesion of every item */
    int n_refs;
    hard_ref *hard;   /* the last mining pass's false positives */
    double *hard_cum; /* their probabilities' running sums, for hard_weighted */
    int n_hard, cap_hard;
    /* optimizer: one AdamW per encoder group (depth + 2) and one for the head */
    adamw *groups;
    size_t *g_off, *g_len;
    int n_groups;
    adamw head;
} trainer;

/* First voxel (z, y, x) of a crop along one axis of length dim: uniform over the placements
 * that keep the crop inside, or that keep the volume inside when it is smaller. */
static int64_t axis_start(rng *r, int64_t dim, int crop, double centre, int centred) {
    int64_t lo = dim >= crop ? 0 : dim - crop, hi = dim >= crop ? dim - crop : 0;
    int64_t s;
    if (centred) {
        double jitter = (rng_double(r) - 0.5) * (2.0 * crop / 3.0); /* a third of the crop */
        s = (int64_t)floor(centre - crop / 2.0 + jitter + 0.5);
    } else {
        s = lo + (int64_t)rng_below(r, (uint32_t)(hi - lo + 1));
    }
    return s < lo ? lo : s > hi ? hi : s;
}

/* Value of v at continuous voxel position q (z, y, x): trilinear, pad outside. */
static float sample_linear(const volume *v, const double q[3], float pad) {
    int64_t dims[3] = {v->n_slices, v->n_rows, v->n_cols}, b[3];
    double f[3];
    for (int a = 0; a < 3; a++) {
        double fl = floor(q[a]);
        b[a] = (int64_t)fl, f[a] = q[a] - fl;
    }
    double acc = 0.0;
    for (int k = 0; k < 8; k++) {
        int64_t p[3] = {b[0] + (k >> 2 & 1), b[1] + (k >> 1 & 1), b[2] + (k & 1)};
        double w = (k >> 2 & 1 ? f[0] : 1.0 - f[0]) * (k >> 1 & 1 ? f[1] : 1.0 - f[1]) *
                   (k & 1 ? f[2] : 1.0 - f[2]);
        if (w == 0.0) continue;
        float val = pad;
        if (p[0] >= 0 && p[1] >= 0 && p[2] >= 0 && p[0] < dims[0] && p[1] < dims[1] &&
            p[2] < dims[2])
            val = det_voxel(v, (size_t)((p[0] * dims[1] + p[1]) * dims[2] + p[2]));
        acc += w * val;
    }
    return (float)acc;
}

/* One crop of item `it` starting at s (z, y, x), augmented; its targets. With zoom or rotation
 * the crop is resampled about its centre: output offset d from the centre reads the volume at
 * centre + R(-angle) d / f (R turns the row-column plane), and a lesion moves the other way,
 * its radius times f. */
static void crop_fill(trainer *t, rng *r, int it, const int64_t s[3], int augment, float *img,
                      float *tgt) {
    const det_config *dc = &t->c->det;
    const int *S = dc->enc.crop;
    const volume *v = t->items[it].v;
    int64_t dims[3] = {v->n_slices, v->n_rows, v->n_cols};
    int flip[3] = {0, 0, 0};
    float scale = 1.0f, shift = 0.0f;
    double f = 1.0, ca = 1.0, sa = 0.0; /* zoom, cos and sin of the in-plane angle */
    if (augment) { /* the order of mae_data's source: flips, then scale and shift */
        for (int a = 0; a < 3; a++)
            flip[a] = rng_float(r) < t->c->aug.flip[a];
        scale = 1.0f + t->c->aug.scale * (2.0f * rng_float(r) - 1.0f);
        shift = t->c->aug.shift * (2.0f * rng_float(r) - 1.0f);
        if (t->c->zoom > 0.0) /* log-uniform in [1 / (1 + zoom), 1 + zoom] */
            f = exp(log1p(t->c->zoom) * (2.0 * rng_double(r) - 1.0));
        if (t->c->rotate > 0.0) {
            double ang = t->c->rotate * (M_PI / 180.0) * (2.0 * rng_double(r) - 1.0);
            ca = cos(ang), sa = sin(ang);
        }
    }
    int warp = f != 1.0 || sa != 0.0;
    double mid[3], c[3]; /* the crop's centre in crop and in volume voxels */
    for (int a = 0; a < 3; a++)
        mid[a] = (S[a] - 1) / 2.0, c[a] = (double)s[a] + mid[a];
    for (int z = 0; z < S[0]; z++)
        for (int y = 0; y < S[1]; y++)
            for (int x = 0; x < S[2]; x++) {
                float val = t->pad[it];
                if (warp) {
                    double dz = z - mid[0], dy = y - mid[1], dx = x - mid[2];
                    double q[3] = {c[0] + dz / f, c[1] + (ca * dy + sa * dx) / f,
                                   c[2] + (-sa * dy + ca * dx) / f};
                    val = sample_linear(v, q, t->pad[it]);
                } else {
                    int64_t q[3] = {s[0] + z, s[1] + y, s[2] + x};
                    if (q[0] >= 0 && q[1] >= 0 && q[2] >= 0 && q[0] < dims[0] && q[1] < dims[1] &&
                        q[2] < dims[2])
                        val = det_voxel(v, (size_t)((q[0] * dims[1] + q[1]) * dims[2] + q[2]));
                }
                int o[3] = {flip[0] ? S[0] - 1 - z : z, flip[1] ? S[1] - 1 - y : y,
                            flip[2] ? S[2] - 1 - x : x};
                img[((size_t)o[0] * S[1] + o[1]) * S[2] + o[2]] =
                    det_input(dc, val) * scale + shift;
            }
    det_lesion les[64];
    int n = 0;
    for (int l = 0; l < t->items[it].n_lesions && n < 64; l++) {
        det_lesion e = t->items[it].lesions[l];
        if (warp) { /* the inverse of the sampling map above */
            double dz = e.zyx[0] - c[0], dy = e.zyx[1] - c[1], dx = e.zyx[2] - c[2];
            e.zyx[0] = mid[0] + f * dz;
            e.zyx[1] = mid[1] + f * (ca * dy - sa * dx);
            e.zyx[2] = mid[2] + f * (sa * dy + ca * dx);
            double ry = e.radius[1], rx = e.radius[2]; /* a turned ellipse: its mean radius */
            for (int a = 0; a < 3; a++)
                e.radius[a] = f * (a == 0 ? e.radius[0] : (ry + rx) / 2.0);
            e.diameter *= f;
        } else {
            for (int a = 0; a < 3; a++)
                e.zyx[a] -= (double)s[a];
        }
        for (int a = 0; a < 3; a++)
            if (flip[a]) e.zyx[a] = S[a] - 1 - e.zyx[a];
        les[n++] = e;
    }
    det_make_targets(dc, les, n, tgt);
}

/* A mined negative: uniform, or in proportion to the detector's probability when it was mined
 * (hard_weighted), so the strongest lookalikes of the whole training set come most often. */
static const hard_ref *hard_pick(trainer *t, rng *r) {
    if (!t->c->hard_weighted) return &t->hard[rng_below(r, (uint32_t)t->n_hard)];
    return &t->hard[det_pick_cumulative(t->hard_cum, t->n_hard,
                                        rng_double(r) * t->hard_cum[t->n_hard - 1])];
}

int det_pick_cumulative(const double *cum, int n, double u) {
    int lo = 0, hi = n - 1; /* the first above u; the last when none is */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* A batch of B crops: centred on a mined false positive with probability hard_share (once
 * mined), on a lesion up to lesion_share, else uniform. */
static void batch_fill(trainer *t, rng *r, int augment, float *img, float *tgt) {
    const det_config *dc = &t->c->det;
    int B = dc->enc.batch, G[3];
    size_t cv = mae_crop_voxels(&dc->enc), ct = (size_t)DET_TGT * det_cells(dc, G);
    for (int b = 0; b < B; b++) {
        double u = rng_double(r);
        /* once mined, hard negatives take their share out of the lesion-centred crops */
        int hard = t->n_hard > 0 && u < t->c->hard_share;
        int centred = hard || (t->n_refs > 0 && u < t->c->lesion_share);
        int it;
        double centre[3] = {0, 0, 0};
        if (hard) {
            const hard_ref *h = hard_pick(t, r);
            it = h->item;
            memcpy(centre, h->zyx, sizeof centre);
        } else if (centred) {
            lesion_ref lr = t->refs[rng_below(r, (uint32_t)t->n_refs)];
            it = lr.item;
            memcpy(centre, t->items[it].lesions[lr.lesion].zyx, sizeof centre);
        } else {
            it = (int)rng_below(r, (uint32_t)t->n_items);
        }
        const volume *v = t->items[it].v;
        int64_t dims[3] = {v->n_slices, v->n_rows, v->n_cols}, s[3];
        for (int a = 0; a < 3; a++)
            s[a] = axis_start(r, dims[a], dc->enc.crop[a], centre[a], centred);
        crop_fill(t, r, it, s, augment, img + (size_t)b * cv, tgt + (size_t)b * ct);
    }
}

static vs_status trainer_init(trainer *t, const det_train_config *c, det *d, const det_item *items,
                              int n, vs_error *err) {
    memset(t, 0, sizeof *t);
    t->c = c, t->d = d, t->items = items, t->n_items = n;
    t->pad = malloc((size_t)n * sizeof *t->pad);
    int total = 0;
    for (int i = 0; i < n; i++)
        total += items[i].n_lesions;
    t->refs = malloc(((size_t)total + 1) * sizeof *t->refs);
    if (!t->pad || !t->refs)
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the training index");
    for (int i = 0; i < n; i++) {
        size_t nv = (size_t)volume_n_voxels(items[i].v);
        if (nv == 0)
            return VS_FAIL(err, VS_ERR_FORMAT, "training volume %s is empty",
                           items[i].v->series_key);
        float m = det_voxel(items[i].v, 0);
        for (size_t j = 1; j < nv; j++)
            m = fminf(m, det_voxel(items[i].v, j));
        t->pad[i] = m;
        for (int l = 0; l < items[i].n_lesions; l++)
            t->refs[t->n_refs++] = (lesion_ref){i, l};
    }
    return VS_OK;
}

/* Encoder groups: patch embedding, each block, the final norm (contiguous in the table). */
static vs_status optim_init(trainer *t, vs_error *err) {
    const det_train_config *c = t->c;
    mae *m = det_encoder(t->d);
    int depth = c->det.enc.depth;
    adamw_config hc = c->opt;
    hc.clip = 0.0; /* clipped once over every group, below */
    adamw_segment hs = {0, det_head_n_params(t->d), 0};
    vs_status st = adamw_init(&t->head, &hc, det_head_n_params(t->d), &hs, 1, err);
    if (st != VS_OK || c->det.probe) return st;
    t->n_groups = depth + 2;
    t->groups = calloc((size_t)t->n_groups, sizeof *t->groups);
    t->g_off = calloc((size_t)t->n_groups, sizeof *t->g_off);
    t->g_len = calloc((size_t)t->n_groups, sizeof *t->g_len);
    adamw_segment *segs = calloc((size_t)mae_n_tensors(m), sizeof *segs);
    if (!t->groups || !t->g_off || !t->g_len || !segs) {
        free(segs);
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the optimizer groups");
    }
    for (int g = 0; g < t->n_groups && st == VS_OK; g++) {
        int ns = 0;
        for (int i = 0; i < mae_n_tensors(m); i++) {
            const mae_tensor *tt = mae_tensor_at(m, i);
            int grp = -1, l;
            if (strncmp(tt->name, "patch_embed.", 12) == 0)
                grp = 0;
            else if (sscanf(tt->name, "blocks.%d.", &l) == 1)
                grp = l + 1;
            else if (strncmp(tt->name, "norm.", 5) == 0)
                grp = depth + 1;
            if (grp != g) continue;
            if (ns == 0) t->g_off[g] = tt->offset;
            segs[ns++] = (adamw_segment){tt->offset - t->g_off[g], tt->size, tt->no_decay};
            t->g_len[g] = tt->offset + tt->size - t->g_off[g];
        }
        adamw_config gc = hc;
        double scale = pow(c->layer_decay, (double)(depth + 1 - g));
        gc.lr *= scale, gc.min_lr *= scale;
        st = adamw_init(&t->groups[g], &gc, t->g_len[g], segs, ns, err);
    }
    free(segs);
    return st;
}

static void trainer_free(trainer *t) {
    for (int g = 0; g < t->n_groups && t->groups; g++)
        adamw_free(&t->groups[g]);
    free(t->groups), free(t->g_off), free(t->g_len);
    adamw_free(&t->head);
    free(t->pad), free(t->refs), free(t->hard), free(t->hard_cum);
}

/* Clip the global gradient norm (fixed order), then step every group. Returns the head lr. */
static double optim_step(trainer *t) {
    mae *m = det_encoder(t->d);
    float *gh = det_head_grads(t->d), *ge = mae_grads(m);
    double ss = 0.0, a;
    a = adamw_grad_norm(gh, det_head_n_params(t->d)), ss += a * a;
    for (int g = 0; g < t->n_groups; g++)
        a = adamw_grad_norm(ge + t->g_off[g], t->g_len[g]), ss += a * a;
    double norm = sqrt(ss), clip = t->c->opt.clip;
    if (clip > 0.0 && norm > clip) {
        float f = (float)(clip / (norm + 1e-6));
        for (size_t i = 0; i < det_head_n_params(t->d); i++)
            gh[i] *= f;
        for (int g = 0; g < t->n_groups; g++)
            for (size_t i = 0; i < t->g_len[g]; i++)
                ge[t->g_off[g] + i] *= f;
    }
    double lr = 0.0, lg;
    adamw_update(&t->head, det_head_params(t->d), gh, 1, 0, &lr);
    for (int g = 0; g < t->n_groups; g++)
        adamw_update(&t->groups[g], mae_params(m) + t->g_off[g], ge + t->g_off[g], 1, 0, &lg);
    return lr;
}

vs_status det_train_crop(const det_train_config *c, const det_item *item, const int64_t start[3],
                         int augment, rng *r, float *img, float *tgt, vs_error *err) {
    trainer t;
    vs_status st = trainer_init(&t, c, NULL, item, 1, err);
    if (st == VS_OK) crop_fill(&t, r, 0, start, augment, img, tgt);
    trainer_free(&t);
    return st;
}

typedef struct snapshot {
    float *enc, *head;
} snapshot;

static void snap_take(snapshot *s, det *d) {
    memcpy(s->enc, mae_params(det_encoder(d)), mae_n_params(det_encoder(d)) * sizeof(float));
    memcpy(s->head, det_head_params(d), det_head_n_params(d) * sizeof(float));
}
static void snap_restore(const snapshot *s, det *d) {
    memcpy(mae_params(det_encoder(d)), s->enc, mae_n_params(det_encoder(d)) * sizeof(float));
    memcpy(det_head_params(d), s->head, det_head_n_params(d) * sizeof(float));
}

static vs_status val_loss(det *d, const float *img, const float *tgt, int n_batches, float *out,
                          vs_error *err) {
    const mae_config *mc = &det_get_config(d)->enc;
    int G[3];
    size_t bv = mae_crop_voxels(mc) * mc->batch,
           bt = (size_t)mc->batch * DET_TGT * det_cells(det_get_config(d), G);
    double s = 0.0;
    for (int b = 0; b < n_batches; b++) {
        float l;
        vs_status st = det_forward(d, img + b * bv, tgt + b * bt, &l, err);
        if (st != VS_OK) return st;
        s += l;
    }
    *out = (float)(s / n_batches);
    return VS_OK;
}

/* Hard-negative mining: the detector's strongest candidates on every training volume that hit
 * no lesion (farther than the lesion's radius, and at least two voxels, from its centre). */
static vs_status mine(trainer *t, vs_error *err) {
    det_predict_opts o;
    det_predict_opts_default(&o);
    o.min_prob = 0.0f;
    o.max_candidates = t->c->mine_top * 4;
    t->n_hard = 0;
    for (int i = 0; i < t->n_items; i++) {
        const det_item *it = &t->items[i];
        const double *sp = it->v->spacing; /* (column, row, slice) */
        det_result res;
        vs_status st = det_predict(t->d, it->v, &o, &res, err);
        if (st != VS_OK) return st;
        int kept = 0;
        for (int k = 0; k < res.n && kept < t->c->mine_top; k++) {
            const double *ijk = res.cand[k].ijk;
            double zyx[3] = {ijk[2], ijk[1], ijk[0]}, mm[3] = {sp[2], sp[1], sp[0]};
            int hit = 0;
            for (int l = 0; l < it->n_lesions && !hit; l++) {
                double d2 = 0.0, r = it->lesions[l].diameter / 2.0;
                for (int a = 0; a < 3; a++) {
                    double e = (zyx[a] - it->lesions[l].zyx[a]) * mm[a];
                    d2 += e * e;
                }
                double lim = fmax(r, 2.0 * fmax(mm[0], fmax(mm[1], mm[2])));
                hit = d2 < lim * lim;
            }
            if (hit) continue;
            if (t->n_hard == t->cap_hard) {
                int cap = t->cap_hard ? 2 * t->cap_hard : 64;
                hard_ref *h = realloc(t->hard, (size_t)cap * sizeof *h);
                if (h) t->hard = h;
                double *cu = h ? realloc(t->hard_cum, (size_t)cap * sizeof *cu) : NULL;
                if (!cu) {
                    det_result_free(&res);
                    return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate mined negatives");
                }
                t->hard_cum = cu, t->cap_hard = cap;
            }
            t->hard[t->n_hard].item = i;
            memcpy(t->hard[t->n_hard].zyx, zyx, sizeof zyx);
            t->hard_cum[t->n_hard] = (t->n_hard ? t->hard_cum[t->n_hard - 1] : 0.0) +
                                     (double)res.cand[k].probability + 1e-6;
            t->n_hard++, kept++;
        }
        det_result_free(&res);
    }
    return VS_OK;
}

vs_status det_train(det *d, const det_train_config *c, const det_item *train, int n_train,
                    const det_item *val, int n_val, det_log_fn log, void *log_ctx,
                    det_train_result *res, vs_error *err) {
    memset(res, 0, sizeof *res);
    res->best_val_loss = NAN;
    if (n_train < 1) return VS_FAIL(err, VS_ERR_CONFIG, "no training volumes");
    const mae_config *mc = &c->det.enc;
    int B = mc->batch;
    int G[3];
    size_t bv = mae_crop_voxels(mc) * B, bt = (size_t)B * DET_TGT * det_cells(&c->det, G);
    int n_vb = n_val > 0 && c->eval_every > 0 ? c->val_crops / B : 0;
    trainer tr, tv;
    memset(&tv, 0, sizeof tv);
    snapshot snap = {NULL, NULL};
    float *img = malloc(bv * sizeof *img), *tgt = malloc(bt * sizeof *tgt);
    float *vimg = n_vb ? malloc(bv * n_vb * sizeof *vimg) : NULL;
    float *vtgt = n_vb ? malloc(bt * n_vb * sizeof *vtgt) : NULL;
    vs_status st = trainer_init(&tr, c, d, train, n_train, err);
    if (st == VS_OK) st = optim_init(&tr, err);
    if (st == VS_OK && n_vb) st = trainer_init(&tv, c, d, val, n_val, err);
    if (st == VS_OK && (!img || !tgt || (n_vb && (!vimg || !vtgt))))
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate training batches");
    if (st == VS_OK && n_vb) {
        snap.enc = malloc(mae_n_params(det_encoder(d)) * sizeof(float));
        snap.head = malloc(det_head_n_params(d) * sizeof(float));
        if (!snap.enc || !snap.head)
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the best weights");
        rng vr;
        rng_seed(&vr, c->seed, 7); /* fixed validation crops, no augmentation */
        for (int b = 0; st == VS_OK && b < n_vb; b++)
            batch_fill(&tv, &vr, 0, vimg + b * bv, vtgt + b * bt);
    }
    rng r;
    rng_seed(&r, c->seed, 5);
    int bad = 0;
    long mine_from = c->steps / 3;
    for (long step = 0; st == VS_OK && step < c->steps; step++) {
        if (c->mine_every > 0 && step >= mine_from && (step - mine_from) % c->mine_every == 0) {
            st = mine(&tr, err);
            if (st != VS_OK) break;
            res->mined = tr.n_hard;
        }
        batch_fill(&tr, &r, 1, img, tgt);
        det_zero_grad(d);
        float loss = 0.0f;
        st = det_forward(d, img, tgt, &loss, err);
        if (st != VS_OK) break;
        if (!isfinite(loss)) {
            st = VS_FAIL(err, VS_ERR_INTERNAL,
                         "the detector loss is not finite at step %ld (lower the learning rate)",
                         step + 1);
            break;
        }
        det_backward(d);
        double lr = optim_step(&tr);
        res->steps_run = step + 1;
        float vl = NAN;
        if (n_vb && (step + 1) % c->eval_every == 0) {
            st = val_loss(d, vimg, vtgt, n_vb, &vl, err);
            if (st != VS_OK) break;
            if (!(vl >= res->best_val_loss)) { /* also the first (NaN) */
                res->best_val_loss = vl, res->best_step = step + 1, bad = 0;
                snap_take(&snap, d);
            } else {
                bad++;
            }
        }
        if (log) log(log_ctx, step + 1, loss, vl, lr);
        if (c->patience > 0 && bad >= c->patience) break;
    }
    if (st == VS_OK && n_vb && res->best_step > 0) snap_restore(&snap, d);
    if (st == VS_OK && !n_vb) res->best_step = res->steps_run;
    trainer_free(&tr);
    if (n_vb) trainer_free(&tv);
    free(img), free(tgt), free(vimg), free(vtgt), free(snap.enc), free(snap.head);
    return st;
}
