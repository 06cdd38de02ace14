/* test_det — the detector (models/det.h): finite-difference gradients of every parameter group
 * (stem, projection, decoder, head, and the encoder under them) for 8^3 and 4^3 patches and a
 * frozen encoder; CenterNet targets against their formula; pretraining checkpoints (a mismatched
 * one is refused by name); detector checkpoints round trip; sliding windows over an oblique,
 * anisotropic volume report each lesion once, at its LPS position, with and without mirrored
 * windows; training on 5 small volumes with lesions and 3 without separates them (training AUC
 * 1.0) and finds every lesion; the same seed gives the same bits with mining and validation on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "det.h"
#include "mae_train.h"
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void tiny(det_config *c, int patch, int probe) {
    det_config_default(c);
    for (int a = 0; a < 3; a++)
        c->enc.crop[a] = 16, c->enc.patch[a] = patch;
    c->enc.dim = 12, c->enc.depth = 1, c->enc.heads = 2;
    c->enc.dec_dim = 6, c->enc.dec_depth = 1, c->enc.dec_heads = 1;
    c->enc.batch = 2;
    c->stem[0] = 3, c->stem[1] = 4;
    c->dec[0] = 5, c->dec[1] = 4, c->dec[2] = 3;
    c->probe = probe, c->gamma = 2.0f, c->reg_weight = 0.7f;
}

static size_t n_cells(const det_config *c) {
    int g[3];
    return det_cells(c, g);
}

/* Loss at the current parameters (forward only). */
static double loss_at(det *d, const float *img, const float *tgt) {
    float l = 0.0f;
    vs_error err;
    assert_int_equal(det_forward(d, img, tgt, &l, &err), VS_OK);
    return l;
}

/* Directional derivatives: for k random directions u over all n entries of p, the central
 * difference of the loss along u against g . u. A single weight of an early convolution moves
 * many units across the leaky ReLU's kink, which blurs one-entry differences in float; along a
 * direction over the whole group the derivative is large and the blur averages out. */
static void check_grads(det *d, const float *img, const float *tgt, float *p, const float *g,
                        size_t n, int k, const char *what) {
    double worst = 0.0;
    float *keep = malloc(n * sizeof *keep), *u = malloc(n * sizeof *u);
    assert_non_null(keep), assert_non_null(u);
    memcpy(keep, p, n * sizeof *p);
    rng r;
    rng_seed(&r, 77, (uint64_t)n);
    for (int t = 0; t < k; t++) {
        double gu = 0.0, norm = 0.0;
        for (size_t i = 0; i < n; i++)
            u[i] = (float)rng_normal(&r), norm += (double)u[i] * u[i];
        norm = sqrt(norm);
        for (size_t i = 0; i < n; i++)
            u[i] = (float)(u[i] / norm), gu += (double)g[i] * u[i];
        const float eps = 3e-4f; /* small: kinks crossed blur larger steps */
        for (size_t i = 0; i < n; i++)
            p[i] = keep[i] + eps * u[i];
        double lp = loss_at(d, img, tgt);
        for (size_t i = 0; i < n; i++)
            p[i] = keep[i] - eps * u[i];
        double lm = loss_at(d, img, tgt);
        memcpy(p, keep, n * sizeof *p);
        double num = (lp - lm) / (2.0 * eps), diff = fabs(num - gu);
        double tol = 2e-3 + 2e-2 * fabs(num);
        if (diff / tol > worst) worst = diff / tol;
        if (diff > tol)
            fail_msg("%s, direction %d: analytic %.6g vs numeric %.6g", what, t, gu, num);
    }
    printf("  %-40s worst |diff| / tol = %.3f\n", what, worst);
    free(keep), free(u);
}

static void gradcheck(int patch, int probe) {
    det_config c;
    tiny(&c, patch, probe);
    if (patch == 4) c.enc.crop[2] = 24; /* not cubic */
    det *d = NULL;
    vs_error err;
    assert_int_equal(det_create(&d, &c, &err), VS_OK);
    rng r;
    rng_seed(&r, 3, 0);
    det_init_weights(d, &r);
    float *hp = det_head_params(d);
    for (size_t i = 0; i < det_head_n_params(d); i++)
        hp[i] += 0.1f * (float)rng_normal(&r);
    int B = c.enc.batch;
    size_t cv = mae_crop_voxels(&c.enc), nc = n_cells(&c);
    float *img = malloc(cv * B * sizeof *img),
          *tgt = malloc((size_t)B * nc * DET_TGT * sizeof *tgt);
    assert_non_null(img), assert_non_null(tgt);
    for (size_t i = 0; i < cv * B; i++)
        img[i] = (float)rng_double(&r);
    det_lesion les0[2] = {{{3.2, 9.9, 4.0}, 8.0, {2.0, 2.0, 2.0}},
                          {{12.0, 2.0, 13.4}, 14.0, {3.5, 3.5, 3.5}}};
    det_lesion les1[1] = {{{7.3, 6.4, 11.7}, 5.0, {1.2, 1.5, 1.5}}};
    det_make_targets(&c, les0, 2, tgt);
    det_make_targets(&c, les1, 1, tgt + nc * DET_TGT);
    det_zero_grad(d);
    float loss;
    assert_int_equal(det_forward(d, img, tgt, &loss, &err), VS_OK);
    det_backward(d);
    char what[64];
    snprintf(what, sizeof what, "head, stem, decoder (P=%d, %dx%dx%d%s)", patch, c.enc.crop[0],
             c.enc.crop[1], c.enc.crop[2], probe ? ", probe" : "");
    check_grads(d, img, tgt, hp, det_head_grads(d), det_head_n_params(d), 6, what);
    mae *m = det_encoder(d);
    const char *names[] = {"patch_embed.weight", "blocks.0.attn.qkv.weight", "blocks.0.fc2.weight",
                           "norm.weight"};
    for (int k = 0; k < 4; k++) {
        const mae_tensor *t = mae_tensor_find(m, names[k]);
        assert_non_null(t);
        float *p = mae_params(m) + t->offset, *g = mae_grads(m) + t->offset;
        if (probe) { /* frozen encoder: no gradient at all */
            for (size_t i = 0; i < t->size; i++)
                assert_true(g[i] == 0.0f);
            continue;
        }
        check_grads(d, img, tgt, p, g, t->size, 3, names[k]);
    }
    free(img), free(tgt);
    det_destroy(d);
}

static void test_gradients(void **state) {
    (void)state;
    gradcheck(8, 0); /* tokens upsampled to the stride-4 grid */
    gradcheck(4, 0); /* tokens already on it */
    gradcheck(8, 1); /* probing: encoder frozen */
}

/* Targets: the cell holding a centre is 1 and carries the offset and log size; other cells
 * carry the Gaussian of invariant 3; a smaller lesion in the same cell does not take it; a
 * lesion outside the crop only adds heat. */
static void test_targets(void **state) {
    (void)state;
    det_config c;
    tiny(&c, 8, 0);
    c.enc.crop[1] = 24; /* cells (8, 12, 8) */
    int G[3];
    size_t nc = det_cells(&c, G);
    assert_int_equal(G[0], 8), assert_int_equal(G[1], 12), assert_int_equal(G[2], 8);
    assert_int_equal(nc, 8 * 12 * 8);
    float *t = calloc(nc * DET_TGT, sizeof *t);
    assert_non_null(t);
    /* centre (5.2, 9.9, 3.0): u = (2.85, 5.2, 1.75), cell (2, 5, 1) */
    det_lesion l[2] = {{{5.2, 9.9, 3.0}, 20.0, {4.0, 2.0, 6.0}},
                       {{5.0, 10.3, 2.6}, 6.0, {1.0, 1.0, 1.0}}}; /* same cell, smaller */
    det_make_targets(&c, l, 2, t);
    const float *heat = t, *centre = t + nc, *off = t + 2 * nc, *size = t + 5 * nc;
    size_t at = ((size_t)2 * G[1] + 5) * G[2] + 1;
    int ncentre = 0;
    for (size_t i = 0; i < nc; i++)
        ncentre += centre[i] > 0.5f;
    assert_int_equal(ncentre, 1);
    assert_true(centre[at] == 1.0f && heat[at] == 1.0f);
    assert_float_equal(off[at], 0.85f, 1e-6);
    assert_float_equal(off[nc + at], 0.2f, 1e-6);
    assert_float_equal(off[2 * nc + at], 0.75f, 1e-6);
    assert_float_equal(size[at], logf(2.0f), 1e-6);
    /* cell (3, 4, 2) has centre voxel (6.5, 8.5, 4.5); sigma = radius / 2 = (2, 1, 3) for the
     * large lesion; the small one (sigma 1) is further in units of its sigma there */
    size_t q = ((size_t)3 * G[1] + 4) * G[2] + 2;
    double s = pow((6.5 - 5.2) / 2.0, 2) + pow((8.5 - 9.9) / 1.0, 2) + pow((4.5 - 3.0) / 3.0, 2);
    double s2 = pow(6.5 - 5.0, 2) + pow(8.5 - 10.3, 2) + pow(4.5 - 2.6, 2);
    assert_float_equal(heat[q], (float)fmax(exp(-0.5 * s), exp(-0.5 * s2)), 1e-6);
    for (size_t i = 0; i < nc; i++)
        assert_true(heat[i] >= 0.0f && heat[i] <= 1.0f);
    /* outside the crop: heat inside, no centre */
    det_lesion out[1] = {{{-1.5, 8.0, 8.0}, 10.0, {2.0, 2.0, 2.0}}};
    det_make_targets(&c, out, 1, t);
    ncentre = 0; /* nearest cell (0, 3 or 4, 3 or 4): centre (0.5, 6.5 | 8.5, ...), sigma 1 */
    float hmax = 0.0f;
    for (size_t i = 0; i < nc; i++)
        ncentre += centre[i] > 0.5f, hmax = fmaxf(hmax, heat[i]);
    assert_int_equal(ncentre, 0);
    assert_float_equal(hmax, (float)exp(-0.5 * (4.0 + 0.25 + 0.25)), 1e-6);
    free(t);
}

/* ---------------------------------------------------------------------- checkpoints */
static vs_status const_fill(void *ctx, uint64_t n, rng *r, const int crop[3], float *out,
                            vs_error *err) {
    (void)ctx, (void)n, (void)err;
    for (size_t i = 0; i < (size_t)crop[0] * crop[1] * crop[2]; i++)
        out[i] = rng_float(r);
    return VS_OK;
}
static vs_status no_save(void *ctx, uint8_t *buf, size_t *len, vs_error *err) {
    (void)ctx, (void)buf, (void)err;
    *len = 0;
    return VS_OK;
}
static vs_status no_load(void *ctx, const uint8_t *buf, size_t len, vs_error *err) {
    (void)ctx, (void)buf, (void)len, (void)err;
    return VS_OK;
}
static void no_close(void *ctx) { (void)ctx; }

static void test_checkpoints(void **state) {
    (void)state;
    char dir[] = "/tmp/vs_det_XXXXXX", mpath[128], dpath[128];
    assert_non_null(mkdtemp(dir));
    snprintf(mpath, sizeof mpath, "%s/mae.ckpt", dir);
    snprintf(dpath, sizeof dpath, "%s/det.ckpt", dir);
    det_config c;
    tiny(&c, 8, 0);
    mae_train_config tc;
    mae_train_config_default(&tc);
    tc.model = c.enc;
    tc.model.crop[2] = 24; /* pretraining crop may differ: only the architecture must match */
    tc.steps = 2, tc.log_every = 0, tc.ckpt_every = 0;
    mae_source src = {NULL, "const", const_fill, no_save, no_load, no_close, NULL};
    mae_trainer *t = NULL;
    vs_error err;
    assert_int_equal(mae_trainer_create(&t, &tc, &src, &err), VS_OK);
    assert_int_equal(mae_trainer_run(t, 2, NULL, mpath, NULL, &err), VS_OK);

    det *d = NULL;
    assert_int_equal(det_create(&d, &c, &err), VS_OK);
    assert_int_equal(det_load_mae(d, mpath, &err), VS_OK);
    mae *pm = mae_trainer_model(t);
    assert_memory_equal(mae_params(det_encoder(d)), mae_params(pm),
                        mae_n_params(pm) * sizeof(float));
    det_destroy(d);

    det_config bad = c;
    bad.enc.dim = 18, bad.enc.heads = 3;
    assert_int_equal(det_create(&d, &bad, &err), VS_OK);
    assert_int_equal(det_load_mae(d, mpath, &err), VS_ERR_CONFIG);
    printf("  refused: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "dim=12"));
    assert_non_null(strstr(err.msg, "dim=18"));
    det_destroy(d);
    det_config from = bad;
    assert_int_equal(det_config_from_mae(&from, mpath, &err), VS_OK);
    assert_int_equal(from.enc.dim, 12);
    assert_int_equal(from.stem[1], 4); /* the detector's own settings stay */

    /* a crop the detector cannot use is refused by its shape */
    det_config odd = c;
    odd.enc.crop[2] = 12;
    for (int a = 0; a < 3; a++)
        odd.enc.patch[a] = 4;
    assert_int_equal(det_create(&d, &odd, &err), VS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "16x16x12"));

    /* detector checkpoint round trip; a truncated file is refused */
    rng r;
    rng_seed(&r, 1, 0);
    assert_int_equal(det_create(&d, &c, &err), VS_OK);
    det_init_weights(d, &r);
    assert_int_equal(det_save(d, dpath, &err), VS_OK);
    det *e = NULL;
    assert_int_equal(det_load(&e, dpath, 3, &err), VS_OK);
    assert_int_equal(det_get_config(e)->enc.batch, 3);
    assert_int_equal(det_get_config(e)->stem[0], 3);
    assert_int_equal(det_get_config(e)->dec[2], 3);
    assert_memory_equal(det_head_params(e), det_head_params(d),
                        det_head_n_params(d) * sizeof(float));
    assert_memory_equal(mae_params(det_encoder(e)), mae_params(det_encoder(d)),
                        mae_n_params(det_encoder(d)) * sizeof(float));
    det_destroy(e);
    assert_int_equal(truncate(dpath, 200), 0);
    assert_int_equal(det_load(&e, dpath, 3, &err), VS_ERR_FORMAT);
    assert_int_equal(det_load(&e, mpath, 3, &err), VS_ERR_FORMAT); /* not a detector file */
    det_destroy(d);
    mae_trainer_destroy(t);
    unlink(mpath), unlink(dpath), rmdir(dir);
}

/* ------------------------------------------------------------------- sliding windows */
/* An oblique (rotated 30 degrees about z, tilted), anisotropic volume of (nz, ny, nx). */
static void oblique_volume(volume *v, int nz, int ny, int nx) {
    vs_error err;
    memset(v, 0, sizeof *v);
    assert_int_equal(volume_alloc(v, nz, ny, nx, VOL_FLOAT32, 0, &err), VS_OK);
    double a = 30.0 * M_PI / 180.0;
    double dir[9] = {cos(a), -sin(a), 0.0, sin(a), cos(a), 0.2, 0.0, 0.0, 0.98};
    memcpy(v->direction, dir, sizeof dir);
    v->spacing[0] = 0.7, v->spacing[1] = 0.9, v->spacing[2] = 2.5;
    v->origin[0] = -120.0, v->origin[1] = 40.5, v->origin[2] = -300.25;
    volume_update_affine(v);
    snprintf(v->series_key, sizeof v->series_key, "2.25.1");
}

/* A stand-in for the network: a cell holding a voxel > 500 has logit +8 and that voxel's
 * offset in the cell; any other -8. */
static vs_status oracle(void *ctx, const float *win, int B, float *out, vs_error *err) {
    const int S = *(const int *)ctx, W = S / DET_STRIDE;
    const size_t N = (size_t)W * W * W;
    (void)err;
    for (int b = 0; b < B; b++)
        for (size_t t = 0; t < N; t++) {
            int cz = (int)(t / ((size_t)W * W)), cy = (int)((t / W) % W), cx = (int)(t % W);
            float *o = out + (size_t)b * DET_OUT * N;
            o[t] = -8.0f, o[N + t] = o[2 * N + t] = o[3 * N + t] = 0.5f, o[4 * N + t] = 0.2f;
            for (int z = 0; z < DET_STRIDE; z++)
                for (int y = 0; y < DET_STRIDE; y++)
                    for (int x = 0; x < DET_STRIDE; x++) {
                        int q[3] = {cz * DET_STRIDE + z, cy * DET_STRIDE + y, cx * DET_STRIDE + x};
                        if (win[(((size_t)b * S + q[0]) * S + q[1]) * S + q[2]] > 500.0f) {
                            o[t] = 8.0f;
                            o[N + t] = (z + 0.5f) / DET_STRIDE,
                                  o[2 * N + t] = (y + 0.5f) / DET_STRIDE,
                                  o[3 * N + t] = (x + 0.5f) / DET_STRIDE;
                        }
                    }
        }
    return VS_OK;
}

static void test_sliding_window(void **state) {
    (void)state;
    volume v;
    oblique_volume(&v, 22, 37, 45); /* not multiples of the window: padding, flush last windows */
    float *vox = v.voxels;
    rng r;
    rng_seed(&r, 9, 0);
    for (size_t i = 0; i < volume_n_voxels(&v); i++)
        vox[i] = (float)(100.0 * rng_double(&r));
    /* windows of 16 voxels start every 12: voxel 16 is inside the first two windows of an
     * axis and voxel 31 inside the last two; the last lesion sits in the far corner */
    int lesions[3][3] = {{7, 23, 16}, {15, 8, 31}, {21, 36, 44}}; /* (z, y, x) */
    for (int l = 0; l < 3; l++)
        vox[((size_t)lesions[l][0] * 37 + lesions[l][1]) * 45 + lesions[l][2]] = 1000.0f;
    int S = 16;
    det_config dc;
    det_config_default(&dc);
    for (int a = 0; a < 3; a++)
        dc.enc.crop[a] = S, dc.enc.patch[a] = 8;
    det_predict_opts o;
    det_predict_opts_default(&o);
    o.nms_mm = 5.0;
    det_result res;
    vs_error err;
    for (int run = 0; run < 3; run++) {
        dc.enc.batch = run == 0 ? 1 : 3;
        o.flips = run == 2;
        assert_int_equal(det_predict_grid(&v, &dc, oracle, &S, &o, &res, &err), VS_OK);
        assert_int_equal(res.cells[0], 11), assert_int_equal(res.cells[1], 19),
            assert_int_equal(res.cells[2], 23);
        int strong = 0;
        for (int i = 0; i < res.n; i++)
            strong += res.cand[i].probability > 0.5f;
        assert_int_equal(strong, 3);
        assert_true(res.score > 0.99f);
        for (int l = 0; l < 3; l++) {
            double ijk[3] = {lesions[l][2], lesions[l][1], lesions[l][0]}, lps[3], best = 1e9;
            volume_index_to_lps(&v, ijk, lps);
            for (int i = 0; i < res.n; i++) {
                double d2 = 0;
                for (int a = 0; a < 3; a++)
                    d2 += (res.cand[i].lps[a] - lps[a]) * (res.cand[i].lps[a] - lps[a]);
                if (sqrt(d2) < best) best = sqrt(d2);
            }
            assert_true(best < 1e-4);
        }
        det_result_free(&res);
    }
    volume_free(&v);
}

/* --------------------------------------------------------------------------- training */
static void print_loss(void *ctx, long step, float loss, float val_loss, double lr) {
    (void)ctx, (void)val_loss;
    if (step % 100 == 0) printf("  step %ld loss %.4f lr %.2g\n", step, loss, lr);
}

enum { NV = 8, NPOS = 5, SZ = 24 };

/* Volumes 0..npos-1 of n hold 1 or 2 bright blobs of radius ~1.5 voxels; all hold noise, a slow
 * wave and a dark "organ" edge the detector must not take for a lesion. */
static void make_cohort_n(volume *vols, det_lesion les[][2], det_item *items, int n, int npos,
                          uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 0);
    for (int i = 0; i < n; i++) {
        oblique_volume(&vols[i], SZ, SZ, SZ);
        float *vx = vols[i].voxels;
        int nl = i < npos ? 1 + i % 2 : 0;
        for (int l = 0; l < nl; l++) {
            les[i][l].zyx[0] = 4 + rng_double(&r) * 16,
            les[i][l].zyx[1] = 4 + 10 * l + rng_double(&r) * 6;
            les[i][l].zyx[2] = 4 + rng_double(&r) * 16, les[i][l].diameter = 6.0 + 3.0 * l;
            det_lesion_radius(&les[i][l], &vols[i]);
        }
        for (int z = 0; z < SZ; z++)
            for (int y = 0; y < SZ; y++)
                for (int x = 0; x < SZ; x++) {
                    double val = 0.4 + 0.08 * rng_normal(&r) + 0.1 * sin(0.3 * x + 0.2 * y + i);
                    if (x + y < 10 + i) val -= 0.3;
                    for (int l = 0; l < nl; l++) {
                        double dz = z - les[i][l].zyx[0], dy = y - les[i][l].zyx[1],
                               dx = x - les[i][l].zyx[2];
                        val += 0.5 * exp(-(dz * dz + dy * dy + dx * dx) / (2.0 * 1.5 * 1.5));
                    }
                    vx[((size_t)z * SZ + y) * SZ + x] = (float)val;
                }
        items[i] = (det_item){&vols[i], nl, les[i]};
    }
}

static void make_cohort(volume *vols, det_lesion les[][2], det_item *items) {
    make_cohort_n(vols, les, items, NV, NPOS, 11);
}

static void small_config(det_train_config *tc) {
    det_train_config_default(tc);
    for (int a = 0; a < 3; a++)
        tc->det.enc.crop[a] = 16, tc->det.enc.patch[a] = 8;
    tc->det.enc.dim = 24, tc->det.enc.depth = 1, tc->det.enc.heads = 2;
    tc->det.enc.dec_dim = 12, tc->det.enc.dec_depth = 1, tc->det.enc.dec_heads = 2;
    tc->det.enc.batch = 4;
    tc->det.stem[0] = 8, tc->det.stem[1] = 12;
    tc->det.dec[0] = 12, tc->det.dec[1] = 12, tc->det.dec[2] = 8;
    tc->opt.lr = 3e-3, tc->opt.warmup_steps = 20;
    tc->layer_decay = 1.0, tc->eval_every = 0, tc->seed = 5;
    tc->aug.scale = 0.05f, tc->aug.shift = 0.05f;
    tc->mine_every = 100, tc->mine_top = 4;
}

/* A detector with fresh weights (tc's seed) trained on items[0..n) for all of tc's steps. */
static det *trained(const det_train_config *tc, det_item *items, int n, det_log_fn log) {
    det *d = NULL;
    vs_error err;
    assert_int_equal(det_create(&d, &tc->det, &err), VS_OK);
    rng wr;
    rng_seed(&wr, tc->seed, 0);
    det_init_weights(d, &wr);
    det_train_result res;
    assert_int_equal(det_train(d, tc, items, n, NULL, 0, log, NULL, &res, &err), VS_OK);
    assert_int_equal(res.steps_run, tc->steps);
    return d;
}

static void test_overfit(void **state) {
    (void)state;
    volume vols[NV];
    det_lesion les[NV][2];
    det_item items[NV];
    make_cohort(vols, les, items);
    det_train_config tc;
    small_config(&tc);
    tc.steps = 400, tc.opt.total_steps = tc.steps;
    det *d = trained(&tc, items, NV, print_loss);
    vs_error err;
    det_predict_opts o;
    det_predict_opts_default(&o);
    float min_pos = 1.0f, max_neg = 0.0f;
    for (int i = 0; i < NV; i++) {
        det_result pr;
        assert_int_equal(det_predict(d, &vols[i], &o, &pr, &err), VS_OK);
        if (i < NPOS)
            min_pos = fminf(min_pos, pr.score);
        else
            max_neg = fmaxf(max_neg, pr.score);
        for (int l = 0; l < items[i].n_lesions; l++) {
            double ijk[3] = {les[i][l].zyx[2], les[i][l].zyx[1], les[i][l].zyx[0]}, lps[3];
            volume_index_to_lps(&vols[i], ijk, lps);
            float best = 0.0f;
            double dist = 0.0;
            for (int c = 0; c < pr.n; c++) {
                double d2 = 0;
                for (int a = 0; a < 3; a++)
                    d2 += (pr.cand[c].lps[a] - lps[a]) * (pr.cand[c].lps[a] - lps[a]);
                if (sqrt(d2) < 5.0 && pr.cand[c].probability > best)
                    best = pr.cand[c].probability, dist = sqrt(d2);
            }
            printf("  volume %d lesion %d: probability %.3f at %.2f mm (%d candidates)\n", i, l,
                   best, dist, pr.n);
            assert_true(best > 0.5f);
        }
        printf("  volume %d: score %.3f\n", i, pr.score);
        det_result_free(&pr);
    }
    assert_true(min_pos > max_neg); /* training AUC 1.0 */
    det_destroy(d);
    for (int i = 0; i < NV; i++)
        volume_free(&vols[i]);
}

/* Same seed and inputs -> same bits, with mining, validation and early stopping in the loop. */
/* Same seed, same bits: with early stopping, and without it with mined negatives drawn uniformly
 * or by probability; the last two train different weights (hard_weighted reaches the crops). */
static void test_determinism(void **state) {
    (void)state;
    volume vols[NV];
    det_lesion les[NV][2];
    det_item items[NV];
    make_cohort(vols, les, items);
    det *twin[3][2];
    for (int w = 0; w < 3; w++) {
        det_train_config tc;
        small_config(&tc);
        tc.steps = 30, tc.eval_every = w == 0 ? 10 : 0, tc.val_crops = 8, tc.opt.total_steps = 30;
        tc.mine_every = 10, tc.hard_share = 0.5, tc.hard_weighted = w == 2;
        det_train_result res[2];
        vs_error err;
        for (int k = 0; k < 2; k++) {
            assert_int_equal(det_create(&twin[w][k], &tc.det, &err), VS_OK);
            rng wr;
            rng_seed(&wr, tc.seed, 0);
            det_init_weights(twin[w][k], &wr);
            assert_int_equal(det_train(twin[w][k], &tc, items, NV - 2, items + NV - 2, 2, NULL,
                                       NULL, &res[k], &err),
                             VS_OK);
            assert_true(res[k].best_step > 0 && isfinite(res[k].best_val_loss) == (w == 0));
            assert_true(res[k].mined > 0);
        }
        assert_int_equal(res[0].mined, res[1].mined);
        assert_memory_equal(det_head_params(twin[w][0]), det_head_params(twin[w][1]),
                            det_head_n_params(twin[w][0]) * sizeof(float));
        assert_memory_equal(mae_params(det_encoder(twin[w][0])),
                            mae_params(det_encoder(twin[w][1])),
                            mae_n_params(det_encoder(twin[w][0])) * sizeof(float));
    }
    assert_memory_not_equal(det_head_params(twin[1][0]), det_head_params(twin[2][0]),
                            det_head_n_params(twin[1][0]) * sizeof(float));
    for (int w = 0; w < 3; w++)
        det_destroy(twin[w][0]), det_destroy(twin[w][1]);
    for (int i = 0; i < NV; i++)
        volume_free(&vols[i]);
}

/* An ensemble's heat map is the mean of its members' (each cell's probability), one member is
 * det_predict bit for bit, and a member of another shape is refused. */
static void test_ensemble(void **state) {
    (void)state;
    volume vols[NV];
    det_lesion les[NV][2];
    det_item items[NV];
    make_cohort(vols, les, items);
    det *m[2];
    for (int k = 0; k < 2; k++) {
        det_train_config tc;
        small_config(&tc);
        tc.steps = 40, tc.opt.total_steps = 40, tc.mine_every = 0, tc.seed = 5 + (uint64_t)k;
        m[k] = trained(&tc, items, NV, NULL);
    }
    vs_error err;
    det_predict_opts o;
    det_predict_opts_default(&o);
    o.min_prob = 0.0f;
    det_result r[2], e, one;
    for (int k = 0; k < 2; k++)
        assert_int_equal(det_predict(m[k], &vols[0], &o, &r[k], &err), VS_OK);
    assert_int_equal(det_predict_ensemble(m, 2, &vols[0], &o, &e, &err), VS_OK);
    assert_int_equal(det_predict_ensemble(m, 1, &vols[0], &o, &one, &err), VS_OK);
    size_t nc = (size_t)e.cells[0] * e.cells[1] * e.cells[2];
    assert_memory_equal(one.heat, r[0].heat, nc * sizeof(float));
    assert_true(one.n == r[0].n && one.score == r[0].score);
    double worst = 0.0, apart = 0.0, top = 0.0;
    for (size_t c = 0; c < nc; c++) {
        worst = fmax(worst, fabs(e.heat[c] - 0.5 * (r[0].heat[c] + r[1].heat[c])));
        apart = fmax(apart, fabs(r[0].heat[c] - r[1].heat[c]));
        top = fmax(top, e.heat[c]);
    }
    printf("  ensemble vs mean of members: worst %.2g; members differ by up to %.3f\n", worst,
           apart);
    assert_true(apart > 0.01); /* two members that disagree, or the test proves nothing */
    assert_true(worst < 1e-5);
    assert_true(e.score == (float)top && e.n > 0);
    det_train_config tc; /* a member with another crop */
    small_config(&tc);
    for (int a = 0; a < 3; a++)
        tc.det.enc.crop[a] = 24;
    det *other[2] = {m[0], NULL};
    assert_int_equal(det_create(&other[1], &tc.det, &err), VS_OK);
    det_result bad;
    assert_int_equal(det_predict_ensemble(other, 2, &vols[0], &o, &bad, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "member 1"));
    det_destroy(other[1]);
    for (int k = 0; k < 2; k++)
        det_result_free(&r[k]), det_destroy(m[k]);
    det_result_free(&e), det_result_free(&one);
    for (int i = 0; i < NV; i++)
        volume_free(&vols[i]);
}

/* Zoom and rotation move image and targets together: a blob off the crop's centre, resampled at
 * random zooms and angles, then also flipped, has its target centre where its intensity centroid
 * is, and its size channel follows the zoom. */
static void test_warp_moves_targets(void **state) {
    (void)state;
    enum { N = 32 };
    volume v;
    oblique_volume(&v, N, N, N);
    const double blob[3] = {14.3, 11.7, 18.2}, sd = 1.2;
    float *vx = v.voxels;
    for (int z = 0; z < N; z++)
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++) {
                double dz = z - blob[0], dy = y - blob[1], dx = x - blob[2];
                vx[((size_t)z * N + y) * N + x] =
                    (float)exp(-(dz * dz + dy * dy + dx * dx) / (2.0 * sd * sd));
            }
    det_lesion les = {{blob[0], blob[1], blob[2]}, 8.0, {0, 0, 0}};
    det_lesion_radius(&les, &v);
    det_item item = {&v, 1, &les};
    det_train_config tc;
    small_config(&tc);
    tc.aug.scale = tc.aug.shift = 0.0f;
    tc.zoom = 0.3, tc.rotate = 30.0;
    int G[3];
    size_t nc = det_cells(&tc.det, G), cv = 16 * 16 * 16;
    float *img = malloc(cv * sizeof *img), *tgt = malloc(DET_TGT * nc * sizeof *tgt);
    assert_non_null(img), assert_non_null(tgt);
    const int64_t start[3] = {9, 7, 13}; /* the blob 2.2-2.8 voxels off the crop's centre */
    rng r;
    rng_seed(&r, 9, 0);
    double worst = 0.0, moved = 0.0, size_lo = 1e9, size_hi = -1e9;
    vs_error err;
    for (int k = 0; k < 40; k++) {
        tc.aug.flip[0] = tc.aug.flip[1] = tc.aug.flip[2] = k < 20 ? 0.0f : 0.5f;
        assert_int_equal(det_train_crop(&tc, &item, start, 1, &r, img, tgt, &err), VS_OK);
        double m = 0.0, cen[3] = {0, 0, 0};
        for (size_t i = 0; i < cv; i++) {
            double w = img[i] > 0.2f ? img[i] : 0.0; /* the blob, not the padding */
            int p[3] = {(int)(i / 256), (int)(i / 16 % 16), (int)(i % 16)};
            m += w;
            for (int a = 0; a < 3; a++)
                cen[a] += w * p[a];
        }
        assert_true(m > 0.0);
        int found = 0;
        for (size_t i = 0; i < nc; i++) {
            if (tgt[nc + i] != 1.0f) continue;
            found++;
            int cell[3] = {(int)(i / ((size_t)G[1] * G[2])), (int)(i / G[2] % G[1]),
                           (int)(i % G[2])};
            double e2 = 0.0, d2 = 0.0;
            for (int a = 0; a < 3; a++) {
                double at = 2.0 * (cell[a] + tgt[(2 + a) * nc + i]) - 0.5;
                e2 += (at - cen[a] / m) * (at - cen[a] / m);
                double plain = blob[a] - start[a];
                d2 += (at - plain) * (at - plain);
            }
            worst = fmax(worst, sqrt(e2));
            if (k < 20) moved = fmax(moved, sqrt(d2)); /* by zoom and angle alone */
            size_lo = fmin(size_lo, tgt[5 * nc + i]), size_hi = fmax(size_hi, tgt[5 * nc + i]);
        }
        assert_int_equal(found, 1);
    }
    printf("  target vs image centroid: worst %.3f voxels; farthest from the unwarped place %.2f;"
           " log size %.3f..%.3f\n",
           worst, moved, size_lo, size_hi);
    assert_true(worst < 0.2);
    assert_true(moved > 1.5);             /* the warps did move it */
    assert_true(size_hi - size_lo > 0.3); /* zoom 1/1.3..1.3: log range up to 0.52 */
    free(img), free(tgt);
    volume_free(&v);
}

/* Drawing by running sums: each index in proportion to its weight, a zero weight never, the
 * ends exact. */
static void test_pick_cumulative(void **state) {
    (void)state;
    static const double cum[5] = {0.1, 0.1, 0.9, 0.9, 1.0}; /* weights 0.1, 0, 0.8, 0, 0.1 */
    assert_int_equal(det_pick_cumulative(cum, 5, 0.0), 0);
    assert_int_equal(det_pick_cumulative(cum, 5, 0.1), 2);
    assert_int_equal(det_pick_cumulative(cum, 5, 0.95), 4);
    assert_int_equal(det_pick_cumulative(cum, 5, 1.0), 4);
    assert_int_equal(det_pick_cumulative(cum, 1, 0.0), 0);
    int count[5] = {0};
    rng r;
    rng_seed(&r, 3, 0);
    enum { N = 20000 };
    for (int i = 0; i < N; i++)
        count[det_pick_cumulative(cum, 5, rng_double(&r) * cum[4])]++;
    assert_int_equal(count[1], 0);
    assert_int_equal(count[3], 0);
    assert_true(fabs(count[0] / (double)N - 0.1) < 0.01); /* sd 0.002 */
    assert_true(fabs(count[2] / (double)N - 0.8) < 0.01);
    assert_true(fabs(count[4] / (double)N - 0.1) < 0.01);
}

/* Volume AUC of scores[0..n) against positives 0..npos-1 (ties count a half): the
 * Mann-Whitney statistic by its definition, every pair. */
static double pair_auc(const float *scores, int n, int npos) {
    double wins = 0.0;
    for (int p = 0; p < npos; p++)
        for (int q = npos; q < n; q++)
            wins += scores[p] > scores[q] ? 1.0 : scores[p] == scores[q] ? 0.5 : 0.0;
    return wins / ((double)npos * (double)(n - npos));
}

/* Held-out volume AUC of a detector trained on train[0..n) (fresh weights, tc's seed). */
static double heldout_auc(const det_train_config *tc, det_item *train, int n, volume *test,
                          int n_test, int npos_test) {
    det *d = trained(tc, train, n, NULL);
    vs_error err;
    det_predict_opts o;
    det_predict_opts_default(&o);
    float scores[64];
    assert_true(n_test <= 64);
    for (int i = 0; i < n_test; i++) {
        det_result pr;
        assert_int_equal(det_predict(d, &test[i], &o, &pr, &err), VS_OK);
        scores[i] = pr.score;
        det_result_free(&pr);
    }
    det_destroy(d);
    return pair_auc(scores, n_test, npos_test);
}

/* The protocol's sanity check against leaks (issue #15): the same detector and recipe, trained
 * once on the true labels and once on shuffled ones, then scored on held-out volumes it never
 * saw. The shuffle gives each training volume the lesion list of another (src below): half the
 * positive images and half the negative ones get a positive's lesions, at places where their
 * image holds none, the rest get none, so neither the volume-level labels nor the positions
 * say anything of the images. True labels must generalise; shuffled ones must do no better
 * than chance (nothing in training or prediction may reach the held-out labels). They often do
 * worse: a blob left unlabelled in a positive image is learned as a negative (measured with
 * cohort seeds 21/22, 31/32, 41/42, 51/52: true 0.988-1.000, shuffled 0.371, 0.566, 0.312,
 * 0.320). */
static void test_shuffled_labels(void **state) {
    (void)state;
    enum { NT = 12, NTPOS = 6, NH = 32, NHPOS = 16 };
    static const int src[NT] = {3, 4, 5, 9, 10, 11, 0, 1, 2, 6, 7, 8}; /* a permutation */
    volume train[NT], test[NH];
    det_lesion les[NT][2], tles[NH][2];
    det_item items[NT], titems[NH], shuffled[NT];
    make_cohort_n(train, les, items, NT, NTPOS, 21);
    make_cohort_n(test, tles, titems, NH, NHPOS, 22);
    for (int i = 0; i < NT; i++) /* the images stay; the labels move */
        shuffled[i] = (det_item){&train[i], items[src[i]].n_lesions, les[src[i]]};
    det_train_config tc;
    small_config(&tc);
    tc.steps = 300, tc.opt.total_steps = tc.steps;
    double auc_true = heldout_auc(&tc, items, NT, test, NH, NHPOS);
    double auc_shuffled = heldout_auc(&tc, shuffled, NT, test, NH, NHPOS);
    printf("  held-out volume AUC: true labels %.3f, shuffled labels %.3f\n", auc_true,
           auc_shuffled);
    assert_true(auc_true >= 0.9);
    assert_true(auc_shuffled <= 0.75); /* chance 0.5, sd 0.074 over 16 x 16 pairs */
    for (int i = 0; i < NT; i++)
        volume_free(&train[i]);
    for (int i = 0; i < NH; i++)
        volume_free(&test[i]);
}

int main(void) {
    nn_set_threads(1); /* tiny matrices: OpenMP barriers would dominate on a loaded machine */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_overfit),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_shuffled_labels),
        cmocka_unit_test(test_pick_cumulative),
        cmocka_unit_test(test_warp_moves_targets),
        cmocka_unit_test(test_ensemble),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
