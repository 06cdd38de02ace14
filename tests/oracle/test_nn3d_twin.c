/* test_nn3d_twin — models/nn3d.h against its PyTorch twin (tests/fixtures/nn3d_twin.py, whose
 * fixture nn3d_fixture.bin is committed, so no Python is needed): every layer's forward output
 * and every gradient on its own small cases (stride 1 and 2, strides per axis as for a one-slice
 * radiograph or a thin slab, k 3 and 1, odd sizes, upsampling per axis), then a
 * whole 3D U-Net stage with a channel concat (tests/conv_stack.h), on a cube and on a radiograph
 * (one slice, strides and upsampling (1, 2, 2)): output, loss and every parameter gradient. Each
 * tensor passes when its worst |C - twin| <= atol + rtol max |twin|; the worst difference of every
 * tensor is printed and any miss fails. Runs at 1 and 2 threads, which must give the same bits. The
 * fixture is $VESALIUS_FIXTURES/nn3d_fixture.bin when that is set (test_nn3d_twin_fresh: one the
 * twin has just written), else the committed one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "conv_stack.h"
#include "fixture.h"
#include "nn.h"
#include "nn3d.h"

#include <math.h>

static fixture fx;

/* The twin's tensor NAME; fails the test when it is missing or has another size. */
static const float *ref(const char *name, size_t count) {
    const fx_record *r = fx_get(&fx, name);
    if (!r || r->dtype != 0 || r->count != count) {
        fprintf(stderr, "fixture has no float tensor %s of %zu values\n", name, count);
        fail();
    }
    return r->data;
}

static const int32_t *config(const char *name, uint32_t count) {
    const fx_record *r = fx_get(&fx, name);
    if (!r || r->dtype != 1 || r->count != count) {
        fprintf(stderr, "fixture has no config %s of %u ints\n", name, count);
        fail();
    }
    return r->data;
}

/* 1 on a miss: worst |c - r| > atol + rtol max |r| (NaN misses). */
static int check(const char *what, const float *c, const float *r, size_t n, double rtol,
                 double atol) {
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)c[i] - r[i]);
        if (isnan(d) || d > worst) worst = isnan(d) ? INFINITY : d;
        scale = fmax(scale, fabs(r[i]));
    }
    double tol = atol + rtol * scale;
    printf("  %-26s worst |C - twin| %.3e  max |twin| %.3e  tolerance %.3e%s\n", what, worst, scale,
           tol, worst > tol ? "  FAIL" : "");
    return worst > tol;
}

static float *alloc_floats(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

/* Per-layer tolerances: the twin is float64, so the gap is our float32 rounding. */
#define RTOL 2e-6
#define ATOL 1e-7

static int conv_case(const char *name) {
    char key[96];
#define K(s) (snprintf(key, sizeof key, "conv.%s.%s", name, s), key)
    const int32_t *c = config(K("config"), 11);
    /* the stride as callers spell it: s alone when it is the same on every axis, else sa */
    nn_conv3d_shape s = {.B = c[0], .Ci = c[1], .Co = c[2], .k = c[3], .n = {c[7], c[8], c[9]}};
    if (c[4] == c[5] && c[5] == c[6])
        s.s = c[4];
    else
        s.sa[0] = c[4], s.sa[1] = c[5], s.sa[2] = c[6];
    int bias = c[10];
    size_t nx = (size_t)s.B * s.Ci * s.n[0] * s.n[1] * s.n[2];
    size_t ny = (size_t)s.B * s.Co * nn_conv3d_out_voxels(&s);
    size_t nw = (size_t)s.Co * s.Ci * s.k * s.k * s.k, nscr = nn_conv3d_scratch(&s, nn_threads());
    assert_true(nscr > 0 && ny > 0);
    const float *x = ref(K("x"), nx), *w = ref(K("w"), nw), *b = ref(K("b"), (size_t)s.Co);
    const float *dy = ref(K("dy"), ny);
    float *y = alloc_floats(ny), *dx = alloc_floats(nx), *dw = alloc_floats(nw);
    float *db = alloc_floats((size_t)s.Co), *scr = alloc_floats(nscr);
    memset(dw, 0, nw * sizeof *dw), memset(db, 0, (size_t)s.Co * sizeof *db);
    nn_conv3d_forward(y, x, w, bias ? b : NULL, scr, &s);
    nn_conv3d_backward(dx, dw, bias ? db : NULL, dy, x, w, scr, &s);
    printf("conv3d %s: B %d Ci %d Co %d k %d s %d,%d,%d n %dx%dx%d%s\n", name, s.B, s.Ci, s.Co, s.k,
           c[4], c[5], c[6], s.n[0], s.n[1], s.n[2], bias ? " bias" : "");
    int fails = check("out", y, ref(K("y"), ny), ny, RTOL, ATOL);
    fails += check("d input", dx, ref(K("dx"), nx), nx, RTOL, ATOL);
    fails += check("d weight", dw, ref(K("dw"), nw), nw, RTOL, ATOL);
    if (bias) fails += check("d bias", db, ref(K("db"), (size_t)s.Co), (size_t)s.Co, RTOL, ATOL);
#undef K
    free(y), free(dx), free(dw), free(db), free(scr);
    return fails;
}

static int instnorm_case(void) {
    const int32_t *c = config("in.a.config", 5);
    int B = c[0], C = c[1];
    size_t N = (size_t)c[2] * c[3] * c[4], n = (size_t)B * C * N;
    const float *x = ref("in.a.x", n), *g = ref("in.a.gamma", C), *be = ref("in.a.beta", C);
    float *y = alloc_floats(n), *dx = alloc_floats(n), *st = alloc_floats(2 * (size_t)B * C);
    float *dg = calloc((size_t)C, sizeof *dg), *dbe = calloc((size_t)C, sizeof *dbe);
    assert_true(dg && dbe);
    nn_instnorm3d_forward(y, st, st + (size_t)B * C, x, g, be, B, C, N);
    nn_instnorm3d_backward(dx, dg, dbe, ref("in.a.dy", n), x, g, st, st + (size_t)B * C, B, C, N);
    printf("instnorm3d: B %d C %d N %zu\n", B, C, N);
    int fails = check("out", y, ref("in.a.y", n), n, RTOL, ATOL);
    fails += check("d input", dx, ref("in.a.dx", n), n, RTOL, ATOL);
    fails += check("d gamma", dg, ref("in.a.dgamma", C), C, RTOL, ATOL);
    fails += check("d beta", dbe, ref("in.a.dbeta", C), C, RTOL, ATOL);
    free(y), free(dx), free(st), free(dg), free(dbe);
    return fails;
}

static int lrelu_case(const char *name) {
    char key[96];
#define K(s) (snprintf(key, sizeof key, "lrelu.%s.%s", name, s), key)
    const float slope = ref(K("slope"), 1)[0];
    const fx_record *xr = fx_get(&fx, K("x"));
    assert_non_null(xr);
    size_t n = xr->count;
    const float *x = ref(K("x"), n);
    float *y = alloc_floats(n), *dx = alloc_floats(n);
    nn_leaky_relu_forward(y, x, n, slope);
    nn_leaky_relu_backward(dx, ref(K("dy"), n), x, n, slope);
    printf("leaky_relu %s: slope %g n %zu\n", name, slope, n);
    int fails = check("out", y, ref(K("y"), n), n, RTOL, ATOL);
    fails += check("d input", dx, ref(K("dx"), n), n, RTOL, ATOL);
#undef K
    free(y), free(dx);
    return fails;
}

static int upsample_case(const char *name) {
    char key[96];
#define K(s) (snprintf(key, sizeof key, "up.%s.%s", name, s), key)
    const int32_t *c = config(K("config"), 8);
    const int f[3] = {c[5], c[6], c[7]};
    size_t n = (size_t)c[0] * c[1] * c[2] * c[3] * c[4], n2 = n * f[0] * f[1] * f[2];
    float *y = alloc_floats(n2), *dx = alloc_floats(n);
    nn_upsample3d_scaled_forward(y, ref(K("x"), n), c[0], c[1], c[2], c[3], c[4], f);
    nn_upsample3d_scaled_backward(dx, ref(K("dy"), n2), c[0], c[1], c[2], c[3], c[4], f);
    printf("upsample3d %s: B %d C %d %dx%dx%d x %d,%d,%d\n", name, c[0], c[1], c[2], c[3], c[4],
           f[0], f[1], f[2]);
    int fails = check("out", y, ref(K("y"), n2), n2, 0.0, 0.0); /* a copy: exact */
    fails += check("d input", dx, ref(K("dx"), n), n, RTOL, ATOL);
#undef K
    free(y), free(dx);
    return fails;
}

static void layers(int threads) {
    nn_set_threads(threads);
    printf("--- layers at %d thread%s\n", threads, threads > 1 ? "s" : "");
    int fails = 0;
    static const char *convs[] = {"s1",   "s2",   "s2even", "k1",   "k1s2",  "rad",
                                  "thin", "s211", "s121",   "rad1", "k1s122"};
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++)
        fails += conv_case(convs[i]);
    fails += instnorm_case();
    fails += lrelu_case("default") + lrelu_case("steep");
    static const char *ups[] = {"a", "rad", "z", "x"};
    for (size_t i = 0; i < sizeof ups / sizeof *ups; i++)
        fails += upsample_case(ups[i]);
    assert_int_equal(fails, 0);
}

static void test_layers_one_thread(void **state) {
    (void)state;
    layers(1);
}
static void test_layers_two_threads(void **state) {
    (void)state;
    layers(2);
}

/* The stack `name` (stack: a cube; stack2d: a radiograph, one slice): y, loss and every
 * gradient; returns the gradients for the bitwise comparison. */
static float *stack(const char *name, int threads, int *fails) {
    nn_set_threads(threads);
    char key[96];
#define K(s) (snprintf(key, sizeof key, "%s.%s", name, s), key)
    const int32_t *c = config(K("config"), 5);
    conv_stack st;
    assert_int_equal(conv_stack_init(&st, c[0], c[1], c[2], c[3], c[4], threads, 0), 0);
    printf("--- %s at %d thread%s: B %d Z %d S %d widths %d, %d (%zu parameters)\n", name, threads,
           threads > 1 ? "s" : "", c[0], c[1], c[2], c[3], c[4], st.n_params);
    for (int k = 0; k < CONV_STACK_TENSORS; k++) {
        snprintf(key, sizeof key, "%s.param:%s", name, st.t[k].name);
        memcpy(st.params + st.t[k].offset, ref(key, st.t[k].size), st.t[k].size * sizeof(float));
    }
    size_t nx = (size_t)c[0] * c[1] * c[2] * c[2];
    double loss = conv_stack_step(&st, ref(K("x"), nx));
    float lc = (float)loss;
    *fails += check("loss", &lc, ref(K("loss"), 1), 1, 1e-5, 0.0);
    *fails += check("out", st.y, ref(K("y"), st.n_y), st.n_y, 1e-5, 1e-7);
#undef K
    /* Five layers of float32 rounding: 1e-5 of each tensor's scale. A conv's bias in front of
     * an InstanceNorm has gradient 0 (the norm removes any constant; the twin gives ~1e-14):
     * ours is the float32 sum of the norm's input gradient over the batch's voxels, judged
     * against the scale of the same sum of its output gradient, the norm's beta gradient. */
    for (int k = 0; k < CONV_STACK_TENSORS; k++) {
        const char *pn = st.t[k].name;
        double atol = 1e-7;
        if (strncmp(pn, "conv", 4) == 0 && strcmp(pn + 5, ".bias") == 0 && pn[4] != '5') {
            snprintf(key, sizeof key, "%s.grad:norm%c.bias", name, pn[4]);
            const fx_record *beta = fx_get(&fx, key);
            assert_non_null(beta);
            for (uint32_t i = 0; i < beta->count; i++)
                atol = fmax(atol, 1e-5 * fabs(((const float *)beta->data)[i]));
        }
        snprintf(key, sizeof key, "%s.grad:%s", name, pn);
        *fails +=
            check(pn, st.grads + st.t[k].offset, ref(key, st.t[k].size), st.t[k].size, 1e-5, atol);
    }
    float *g = alloc_floats(st.n_params);
    memcpy(g, st.grads, st.n_params * sizeof *g);
    conv_stack_free(&st);
    return g;
}

/* The stack at 1 and 2 threads: both against the twin, and the same gradient bits. */
static void stack_both(const char *name) {
    int fails = 0;
    float *g1 = stack(name, 1, &fails), *g2 = stack(name, 2, &fails);
    char key[96];
    snprintf(key, sizeof key, "%s.config", name);
    const int32_t *c = config(key, 5);
    conv_stack st;
    assert_int_equal(conv_stack_init(&st, c[0], c[1], c[2], c[3], c[4], 1, 0), 0);
    int same = !memcmp(g1, g2, st.n_params * sizeof *g1);
    printf("  1 vs 2 threads: %s\n", same ? "same bits" : "DIFFER");
    conv_stack_free(&st);
    free(g1), free(g2);
    assert_int_equal(fails + !same, 0);
}

static void test_stack(void **state) {
    (void)state;
    stack_both("stack");
}

/* a radiograph through the same stage: strides and upsampling (1, 2, 2) on one slice */
static void test_stack2d(void **state) {
    (void)state;
    stack_both("stack2d");
}

static int setup(void **state) {
    (void)state;
    return fx_load(&fx, "nn3d_fixture.bin");
}

static int teardown(void **state) {
    (void)state;
    fx_free(&fx);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers_one_thread),
        cmocka_unit_test(test_layers_two_threads),
        cmocka_unit_test(test_stack),
        cmocka_unit_test(test_stack2d),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
