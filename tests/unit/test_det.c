/* test_det — the detector (models/det.h): finite-difference gradients of the head, its losses
 * and the encoder under it; targets; pretraining checkpoints (a mismatched one is refused by
 * name); detector checkpoints round trip; sliding windows on an oblique, anisotropic volume
 * report a lesion across a window border once, at its LPS position; and an overfit run finds
 * every planted lesion of 4 small volumes with high probability. */
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

static void tiny(det_config *c, int hidden, float gamma, int probe) {
    det_config_default(c);
    for (int a = 0; a < 3; a++)
        c->enc.crop[a] = 8, c->enc.patch[a] = 4;
    c->enc.crop[2] = 12;
    c->enc.dim = 12, c->enc.depth = 1, c->enc.heads = 2;
    c->enc.dec_dim = 6, c->enc.dec_depth = 1, c->enc.dec_heads = 1;
    c->enc.batch = 2;
    c->hidden = hidden, c->gamma = gamma, c->probe = probe;
    c->pos_weight = 3.0f, c->reg_weight = 0.7f;
}

/* Loss at the current parameters (forward only). */
static double loss_at(det *d, const float *img, const float *tgt) {
    float l = 0.0f;
    vs_error err;
    assert_int_equal(det_forward(d, img, tgt, &l, &err), VS_OK);
    return l;
}

/* Central differences on `count` entries of p (stride apart) against the analytic g. */
static void check_grads(det *d, const float *img, const float *tgt, float *p, const float *g,
                        size_t n, size_t count, const char *what) {
    double worst = 0.0;
    size_t stride = n / count ? n / count : 1;
    for (size_t i = 0; i < n; i += stride) {
        float keep = p[i];
        const float eps = 1e-2f;
        p[i] = keep + eps;
        double lp = loss_at(d, img, tgt);
        p[i] = keep - eps;
        double lm = loss_at(d, img, tgt);
        p[i] = keep;
        double num = (lp - lm) / (2.0 * eps), diff = fabs(num - g[i]);
        double tol = 2e-3 + 3e-2 * fabs(num);
        if (diff / tol > worst) worst = diff / tol;
        if (diff > tol)
            fail_msg("%s[%zu]: analytic %.6g vs numeric %.6g", what, i, (double)g[i], num);
    }
    printf("  %-28s worst |diff| / tol = %.3f\n", what, worst);
}

static void gradcheck(int hidden, float gamma, int probe) {
    det_config c;
    tiny(&c, hidden, gamma, probe);
    det *d = NULL;
    vs_error err;
    assert_int_equal(det_create(&d, &c, &err), VS_OK);
    rng r;
    rng_seed(&r, 3, 0);
    det_init_weights(d, &r);
    float *hp = det_head_params(d);
    for (size_t i = 0; i < det_head_n_params(d); i++)
        hp[i] += 0.3f * (float)rng_normal(&r);
    int N = mae_n_tokens(&c.enc), B = c.enc.batch;
    size_t cv = mae_crop_voxels(&c.enc);
    float *img = malloc(cv * B * sizeof *img), *tgt = malloc((size_t)B * N * DET_OUT * sizeof *tgt);
    for (size_t i = 0; i < cv * B; i++)
        img[i] = (float)rng_normal(&r);
    det_lesion les0[2] = {{{1.2, 5.9, 2.0}, 8.0}, {{6.0, 1.0, 10.4}, 14.0}};
    det_lesion les1[1] = {{{3.3, 3.4, 7.7}, 5.0}};
    det_make_targets(&c, les0, 2, tgt);
    det_make_targets(&c, les1, 1, tgt + (size_t)N * DET_OUT);
    det_zero_grad(d);
    float loss;
    assert_int_equal(det_forward(d, img, tgt, &loss, &err), VS_OK);
    det_backward(d);
    char what[64];
    snprintf(what, sizeof what, "head (H=%d, gamma=%g)", hidden, gamma);
    check_grads(d, img, tgt, hp, det_head_grads(d), det_head_n_params(d), 60, what);
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
        check_grads(d, img, tgt, p, g, t->size, 25, names[k]);
    }
    free(img), free(tgt);
    det_destroy(d);
}

static void test_gradients(void **state) {
    (void)state;
    gradcheck(6, 2.0f, 0); /* focal loss, MLP head, fine-tuning */
    gradcheck(0, 0.0f, 0); /* weighted BCE, linear head */
    gradcheck(6, 1.5f, 1); /* probing: encoder frozen */
}

static void test_targets(void **state) {
    (void)state;
    det_config c;
    tiny(&c, 0, 2.0f, 0);
    int N = mae_n_tokens(&c.enc); /* grid 2 x 2 x 3 */
    float *t = calloc((size_t)N * DET_OUT, sizeof *t);
    /* centre (z, y, x) = (5.5, 0.0, 9.2): tokens (1, 0, 2); offsets ((5.5+.5)/4-1, .5/4, (9.7/4)-2)
     */
    det_lesion l[2] = {{{5.5, 0.0, 9.2}, 20.0}, {{5.0, 1.0, 9.0}, 6.0}}; /* same token, smaller */
    det_make_targets(&c, l, 2, t);
    int row = (1 * 2 + 0) * 3 + 2, npos = 0;
    for (int i = 0; i < N; i++)
        npos += t[i * DET_OUT] > 0.5f;
    assert_int_equal(npos, 1);
    assert_true(t[row * DET_OUT] == 1.0f);
    assert_float_equal(t[row * DET_OUT + 1], 0.5f, 1e-6);
    assert_float_equal(t[row * DET_OUT + 2], 0.125f, 1e-6);
    assert_float_equal(t[row * DET_OUT + 3], 9.7f / 4 - 2, 1e-6);
    assert_float_equal(t[row * DET_OUT + 4], logf(2.0f), 1e-6);
    /* near a border (z = 3.6: u = 1.025) two tokens own it, with offsets 1.025 and 0.025 */
    det_lesion border[1] = {{{3.6, 0.0, 9.2}, 10.0}};
    det_make_targets(&c, border, 1, t);
    int r0 = (0 * 2 + 0) * 3 + 2, r1 = (1 * 2 + 0) * 3 + 2;
    npos = 0;
    for (int i = 0; i < N; i++)
        npos += t[i * DET_OUT] > 0.5f;
    assert_int_equal(npos, 2);
    assert_float_equal(t[r0 * DET_OUT + 1], 1.025f, 1e-6);
    assert_float_equal(t[r1 * DET_OUT + 1], 0.025f, 1e-6);
    det_lesion out[1] = {{{-0.6, 0.0, 0.0}, 10.0}}; /* outside the crop: no target */
    det_make_targets(&c, out, 1, t);
    for (int i = 0; i < N * DET_OUT; i++)
        assert_true(t[i] == 0.0f);
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
    tiny(&c, 6, 2.0f, 0);
    mae_train_config tc;
    mae_train_config_default(&tc);
    tc.model = c.enc;
    tc.model.crop[2] = 8; /* pretraining crop may differ: only the architecture must match */
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
    assert_int_equal(from.enc.crop[2], 8);

    /* detector checkpoint round trip; a truncated file is refused */
    rng r;
    rng_seed(&r, 1, 0);
    assert_int_equal(det_create(&d, &c, &err), VS_OK);
    det_init_weights(d, &r);
    assert_int_equal(det_save(d, dpath, &err), VS_OK);
    det *e = NULL;
    assert_int_equal(det_load(&e, dpath, 3, &err), VS_OK);
    assert_int_equal(det_get_config(e)->enc.batch, 3);
    assert_int_equal(det_get_config(e)->hidden, 6);
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

/* A stand-in for the network: a patch holding a voxel > 500 has logit +8 and the offset of that
 * voxel; any other -8. */
static vs_status oracle(void *ctx, const float *win, int B, float *out, vs_error *err) {
    const int *cp = ctx; /* crop[3], patch[3] */
    (void)err;
    int W[3] = {cp[0] / cp[3], cp[1] / cp[4], cp[2] / cp[5]}, N = W[0] * W[1] * W[2];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < N; t++) {
            int tz = t / (W[1] * W[2]), ty = (t / W[2]) % W[1], tx = t % W[2];
            float *o = out + ((size_t)b * N + t) * DET_OUT;
            o[0] = -8.0f, o[1] = o[2] = o[3] = 0.5f, o[4] = logf(1.2f);
            for (int z = 0; z < cp[3]; z++)
                for (int y = 0; y < cp[4]; y++)
                    for (int x = 0; x < cp[5]; x++) {
                        int q[3] = {tz * cp[3] + z, ty * cp[4] + y, tx * cp[5] + x};
                        if (win[(((size_t)b * cp[0] + q[0]) * cp[1] + q[1]) * cp[2] + q[2]] >
                            500.0f) {
                            o[0] = 8.0f;
                            o[1] = (z + 0.5f) / cp[3], o[2] = (y + 0.5f) / cp[4],
                            o[3] = (x + 0.5f) / cp[5];
                        }
                    }
        }
    return VS_OK;
}

static void test_sliding_window(void **state) {
    (void)state;
    volume v;
    oblique_volume(&v, 22, 37, 45); /* not multiples of the patch: partial cells, padding */
    float *vox = v.voxels;
    rng r;
    rng_seed(&r, 9, 0);
    for (size_t i = 0; i < volume_n_voxels(&v); i++)
        vox[i] = (float)(100.0 * rng_double(&r));
    /* window 16^3 in patches of 4, overlap 2 tokens: windows start every 8 voxels, so voxel 16
     * is the first of one window's third token and of the next window's first */
    int lesions[3][3] = {
        {7, 23, 16}, {15, 8, 31}, {21, 36, 44}}; /* (z, y, x); the last at the far corner */
    for (int l = 0; l < 3; l++)
        vox[((size_t)lesions[l][0] * 37 + lesions[l][1]) * 45 + lesions[l][2]] = 1000.0f;
    int cp[6] = {16, 16, 16, 4, 4, 4};
    det_config dc;
    det_config_default(&dc);
    for (int a = 0; a < 3; a++)
        dc.enc.crop[a] = cp[a], dc.enc.patch[a] = cp[3 + a];
    det_predict_opts o;
    det_predict_opts_default(&o);
    o.nms_mm = 5.0;
    det_result res;
    vs_error err;
    for (int batch = 1; batch <= 3; batch += 2) {
        dc.enc.batch = batch;
        assert_int_equal(det_predict_grid(&v, &dc, oracle, cp, &o, &res, &err), VS_OK);
        assert_int_equal(res.cells[0], 6), assert_int_equal(res.cells[1], 10),
            assert_int_equal(res.cells[2], 12);
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
            assert_true(best < 1e-6);
        }
        det_result_free(&res);
    }
    volume_free(&v);
}

/* --------------------------------------------------------------------------- overfit */
static void print_loss(void *ctx, long step, float loss, float val_loss, double lr) {
    (void)ctx, (void)val_loss;
    if (step % 200 == 0) printf("  step %ld loss %.4f lr %.2g\n", step, loss, lr);
}

static void test_overfit(void **state) {
    (void)state;
    enum { NV = 4 };
    volume vols[NV];
    det_lesion les[NV][2];
    det_item items[NV];
    rng r;
    rng_seed(&r, 11, 0);
    for (int i = 0; i < NV; i++) {
        oblique_volume(&vols[i], 20, 28, 24);
        float *vx = vols[i].voxels;
        int nl = 1 + i % 2;
        for (int l = 0; l < nl; l++) {
            les[i][l].zyx[0] = 3 + rng_double(&r) * 13,
            les[i][l].zyx[1] = 3 + 13 * l + rng_double(&r) * 8;
            les[i][l].zyx[2] = 3 + rng_double(&r) * 17, les[i][l].diameter = 6.0 + 4.0 * l;
        }
        for (int z = 0; z < 20; z++)
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 24; x++) {
                    double val = 0.3 * rng_normal(&r) + 0.3 * sin(0.3 * x + 0.2 * y + i);
                    for (int l = 0; l < nl; l++) {
                        double dz = z - les[i][l].zyx[0], dy = y - les[i][l].zyx[1],
                               dx = x - les[i][l].zyx[2];
                        val += 2.0 * exp(-(dz * dz + dy * dy + dx * dx) / (2.0 * 1.5 * 1.5));
                    }
                    vx[((size_t)z * 28 + y) * 24 + x] = (float)val;
                }
        items[i] = (det_item){&vols[i], nl, les[i]};
    }
    det_train_config tc;
    det_train_config_default(&tc);
    for (int a = 0; a < 3; a++)
        tc.det.enc.crop[a] = 16, tc.det.enc.patch[a] = 4;
    tc.det.enc.dim = 32, tc.det.enc.depth = 2, tc.det.enc.heads = 2;
    tc.det.enc.dec_dim = 16, tc.det.enc.dec_depth = 1, tc.det.enc.dec_heads = 2;
    tc.det.enc.batch = 4, tc.det.hidden = 32, tc.det.gamma = 0.0f, tc.det.pos_weight = 2.0f;
    tc.steps = 1200, tc.opt.lr = 2e-3, tc.opt.total_steps = tc.steps, tc.opt.warmup_steps = 20;
    tc.layer_decay = 1.0, tc.eval_every = 0, tc.seed = 5;
    tc.aug.scale = 0.05f, tc.aug.shift = 0.05f;
    det *d = NULL;
    vs_error err;
    assert_int_equal(det_create(&d, &tc.det, &err), VS_OK);
    rng wr;
    rng_seed(&wr, tc.seed, 0);
    det_init_weights(d, &wr);
    det_train_result res;
    assert_int_equal(det_train(d, &tc, items, NV, NULL, 0, print_loss, NULL, &res, &err), VS_OK);
    assert_int_equal(res.steps_run, 1200);
    det_predict_opts o;
    det_predict_opts_default(&o);
    for (int i = 0; i < NV; i++) {
        det_result pr;
        assert_int_equal(det_predict(d, &vols[i], &o, &pr, &err), VS_OK);
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
            printf(
                "  volume %d lesion %d: probability %.3f at %.2f mm (%d candidates, score %.3f)\n",
                i, l, best, dist, pr.n, pr.score);
            assert_true(best > 0.7f);
        }
        det_result_free(&pr);
    }
    det_destroy(d);
    /* same seed and inputs -> same bits, with validation and early stopping in the loop */
    tc.steps = 30, tc.eval_every = 10, tc.val_crops = 8, tc.opt.total_steps = 30;
    det *twin[2];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(det_create(&twin[k], &tc.det, &err), VS_OK);
        rng_seed(&wr, tc.seed, 0);
        det_init_weights(twin[k], &wr);
        assert_int_equal(det_train(twin[k], &tc, items, 3, items + 3, 1, NULL, NULL, &res, &err),
                         VS_OK);
        assert_true(res.best_step > 0 && isfinite(res.best_val_loss));
    }
    assert_memory_equal(det_head_params(twin[0]), det_head_params(twin[1]),
                        det_head_n_params(twin[0]) * sizeof(float));
    assert_memory_equal(mae_params(det_encoder(twin[0])), mae_params(det_encoder(twin[1])),
                        mae_n_params(det_encoder(twin[0])) * sizeof(float));
    det_destroy(twin[0]), det_destroy(twin[1]);
    for (int i = 0; i < NV; i++)
        volume_free(&vols[i]);
}

int main(void) {
    nn_set_threads(1); /* tiny matrices: OpenMP barriers would dominate on a loaded machine */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),   cmocka_unit_test(test_targets),
        cmocka_unit_test(test_checkpoints), cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_overfit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
