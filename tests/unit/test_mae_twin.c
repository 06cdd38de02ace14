/* test_mae_twin — the C MAE against its PyTorch twin on committed fixtures (no Python needed):
 * loss and every parameter gradient within 1e-4 relative, then 10 AdamW steps' losses within
 * 1e-4. The worst difference of every tensor is printed; any miss fails the test.
 * Fixtures: tests/fixtures/mae_fixture.py (3d: the twin's recipe; 2d: plain targets + visible
 * loss). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "adamw.h"
#include "mae.h"
#include "mae_fixture.h"
#include "nn.h"

#include <math.h>

#define TOL 1e-4

/* max |c - r| / max |r| over a tensor: 1e-4 relative to the tensor's scale. */
static double tensor_rel_err(const float *c, const float *r, size_t n, double *worst_abs) {
    double dmax = 0.0, rmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)c[i] - r[i]);
        if (d > dmax || isnan(d)) dmax = isnan(d) ? INFINITY : d;
        if (fabs(r[i]) > rmax) rmax = fabs(r[i]);
    }
    *worst_abs = dmax;
    return rmax > 0.0 ? dmax / rmax : dmax;
}

static void check_fixture(const char *file, int threads) {
    nn_set_threads(threads);
    fixture f;
    assert_int_equal(fx_load(&f, file), 0);
    mae_config cfg;
    int steps = fx_config(&f, &cfg);
    mae *m = NULL;
    vs_error err;
    assert_int_equal(mae_create(&m, &cfg, &err), VS_OK);
    assert_int_equal(fx_set_params(&f, m), 0);
    const float *img = fx_get(&f, "img")->data;
    const int32_t *ids = fx_get(&f, "ids_keep")->data;
    assert_int_equal(fx_get(&f, "ids_keep")->count, (uint32_t)(cfg.batch * mae_n_keep(&cfg)));
    assert_int_equal(fx_get(&f, "img")->count, (uint32_t)(cfg.batch * mae_crop_voxels(&cfg)));

    float loss, ref;
    memcpy(&ref, fx_get(&f, "loss")->data, 4);
    mae_zero_grad(m);
    assert_int_equal(mae_forward(m, img, ids, &loss, &err), VS_OK);
    mae_backward(m);
    double lerr = fabs((double)loss - ref) / fabs(ref);
    printf("%s (%d threads): loss C %.7f twin %.7f rel %.2e\n", file, threads, loss, ref, lerr);
    int fails = lerr > TOL;
    for (int i = 0; i < mae_n_tensors(m); i++) {
        const mae_tensor *t = mae_tensor_at(m, i);
        char key[96];
        snprintf(key, sizeof key, "grad:%s", t->name);
        const fx_record *r = fx_get(&f, key);
        assert_non_null(r);
        assert_int_equal(r->count, t->size);
        double wabs, rel = tensor_rel_err(mae_grads(m) + t->offset, r->data, t->size, &wabs);
        printf("  grad %-32s worst |diff| %.3e  relative %.3e%s\n", t->name, wabs, rel,
               rel > TOL ? "  FAIL" : "");
        fails += rel > TOL;
    }

    /* 10 AdamW steps from the same weights, one mask per step, constant lr */
    const float *hp = fx_get(&f, "adamw")->data;
    adamw_config oc;
    adamw_config_default(&oc);
    oc.lr = hp[0], oc.beta1 = hp[1], oc.beta2 = hp[2], oc.eps = hp[3], oc.weight_decay = hp[4];
    adamw_segment seg = {0, mae_n_params(m), 0};
    adamw opt;
    assert_int_equal(adamw_init(&opt, &oc, mae_n_params(m), &seg, 1, &err), VS_OK);
    assert_int_equal(fx_set_params(&f, m), 0);
    const int32_t *step_ids = fx_get(&f, "step_ids_keep")->data;
    const float *step_losses = fx_get(&f, "step_losses")->data;
    size_t per_step = (size_t)cfg.batch * mae_n_keep(&cfg);
    for (int s = 0; s < steps; s++) {
        mae_zero_grad(m);
        assert_int_equal(mae_forward(m, img, step_ids + s * per_step, &loss, &err), VS_OK);
        mae_backward(m);
        adamw_update(&opt, mae_params(m), mae_grads(m), 1, 0, NULL);
        double e = fabs((double)loss - step_losses[s]) / fabs(step_losses[s]);
        printf("  step %2d loss C %.7f twin %.7f rel %.2e%s\n", s, loss, step_losses[s], e,
               e > TOL ? "  FAIL" : "");
        fails += e > TOL;
    }
    adamw_free(&opt);
    mae_destroy(m);
    fx_free(&f);
    assert_int_equal(fails, 0);
}

static void test_twin_3d(void **state) {
    (void)state;
    check_fixture("mae_fixture_3d.bin", 2);
}
static void test_twin_3d_one_thread(void **state) {
    (void)state;
    check_fixture("mae_fixture_3d.bin", 1);
}
static void test_twin_2d_recipe(void **state) {
    (void)state;
    check_fixture("mae_fixture_2d.bin", 2);
}

/* Same inputs and thread count: the same bits, twice. */
static void test_deterministic(void **state) {
    (void)state;
    nn_set_threads(2);
    fixture f;
    assert_int_equal(fx_load(&f, "mae_fixture_3d.bin"), 0);
    mae_config cfg;
    fx_config(&f, &cfg);
    mae *m = NULL;
    vs_error err;
    assert_int_equal(mae_create(&m, &cfg, &err), VS_OK);
    assert_int_equal(fx_set_params(&f, m), 0);
    float l1, l2;
    size_t n = mae_n_params(m);
    float *g1 = malloc(n * sizeof *g1);
    mae_zero_grad(m);
    mae_forward(m, fx_get(&f, "img")->data, fx_get(&f, "ids_keep")->data, &l1, &err);
    mae_backward(m);
    memcpy(g1, mae_grads(m), n * sizeof *g1);
    mae_zero_grad(m);
    mae_forward(m, fx_get(&f, "img")->data, fx_get(&f, "ids_keep")->data, &l2, &err);
    mae_backward(m);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, mae_grads(m), n * sizeof *g1);
    /* a repeated kept index is refused, not computed */
    int32_t bad[64];
    memcpy(bad, fx_get(&f, "ids_keep")->data, (size_t)cfg.batch * mae_n_keep(&cfg) * 4);
    bad[1] = bad[0];
    assert_int_equal(mae_forward(m, fx_get(&f, "img")->data, bad, &l1, &err), VS_ERR_INTERNAL);
    free(g1);
    mae_destroy(m);
    fx_free(&f);
}

/* The model's own layers (patch gather + embedding, unshuffle with the mask token, loss on the
 * masked rows) against central differences of the float loss, at the 8 largest gradients of
 * each tensor of the 2D recipe fixture (plain targets, visible weight 0.5) and the 3D one. */
static void fd_model(const char *file) {
    nn_set_threads(1);
    fixture f;
    assert_int_equal(fx_load(&f, file), 0);
    mae_config cfg;
    fx_config(&f, &cfg);
    mae *m = NULL;
    vs_error err;
    assert_int_equal(mae_create(&m, &cfg, &err), VS_OK);
    assert_int_equal(fx_set_params(&f, m), 0);
    const float *img = fx_get(&f, "img")->data;
    const int32_t *ids = fx_get(&f, "ids_keep")->data;
    float loss;
    mae_zero_grad(m);
    mae_forward(m, img, ids, &loss, &err);
    mae_backward(m);
    static const char *names[] = {"patch_embed.weight", "patch_embed.bias", "mask_token",
                                  "dec_embed.weight",   "dec_pred.weight",  "dec_pred.bias"};
    int fails = 0;
    for (int k = 0; k < 6; k++) {
        const mae_tensor *t = mae_tensor_find(m, names[k]);
        assert_non_null(t);
        float *p = mae_params(m) + t->offset;
        const float *g = mae_grads(m) + t->offset;
        double worst = 0.0, gmax = 0.0;
        size_t chosen[8];
        for (int pick = 0; pick < 8 && pick < (int)t->size; pick++) {
            size_t best = 0; /* the largest |g| not chosen yet */
            double bv = -1.0;
            for (size_t i = 0; i < t->size; i++) {
                int seen = 0;
                for (int q = 0; q < pick; q++)
                    seen |= chosen[q] == i;
                if (!seen && fabs(g[i]) > bv) bv = fabs(g[i]), best = i;
            }
            chosen[pick] = best;
            gmax = fmax(gmax, bv);
            const double h = 1e-2;
            float o = p[best], lp, lm;
            float up = (float)(o + h), dn = (float)(o - h);
            p[best] = up;
            mae_forward(m, img, ids, &lp, &err);
            p[best] = dn;
            mae_forward(m, img, ids, &lm, &err);
            p[best] = o;
            double fd = ((double)lp - lm) / ((double)up - dn);
            worst = fmax(worst, fabs(fd - g[best]));
        }
        /* float loss differences over 2h carry ~1e-5 of rounding noise: absolute + relative */
        double tol = 1e-2 * gmax + 1e-5;
        printf("  fd %-20s worst |analytic - fd| %.3e  (max |g| %.3e, tolerance %.3e)%s\n",
               names[k], worst, gmax, tol, worst > tol ? "  FAIL" : "");
        fails += worst > tol;
    }
    mae_destroy(m);
    fx_free(&f);
    assert_int_equal(fails, 0);
}

static void test_model_fd(void **state) {
    (void)state;
    fd_model("mae_fixture_2d.bin");
    fd_model("mae_fixture_3d.bin");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twin_3d),        cmocka_unit_test(test_twin_3d_one_thread),
        cmocka_unit_test(test_twin_2d_recipe), cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_model_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
