/* test_nn_grad — every layer of models/nn.h against a naive double-precision loop: the forward
 * output, and the backward gradients against central finite differences of the naive loop's
 * loss L = sum(out * R) for a fixed random R. Worst differences are printed; a miss fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_H 1e-5
#define TOL 1e-4

typedef struct layer_case {
    int kind;    /* 0 linear, 1 layernorm, 2 gelu, 3 attention */
    int M, K, N; /* linear: (M,K)->(M,N); layernorm/gelu: (M,K); attention: B=M, T=K, C=N */
    int NH;
    double *x, *w, *b; /* input and parameters in double */
    double *r;         /* the loss weights, shape of the output */
    size_t nx, nw, nb, nout;
} layer_case;

static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* Naive double forward into out (nout). */
static void naive_forward(const layer_case *c, double *out) {
    if (c->kind == 0) {
        for (int m = 0; m < c->M; m++)
            for (int n = 0; n < c->N; n++) {
                double s = c->b[n];
                for (int k = 0; k < c->K; k++)
                    s += c->x[m * c->K + k] * c->w[n * c->K + k];
                out[m * c->N + n] = s;
            }
    } else if (c->kind == 1) {
        for (int m = 0; m < c->M; m++) {
            const double *x = c->x + m * c->K;
            double mu = 0, var = 0;
            for (int k = 0; k < c->K; k++)
                mu += x[k] / c->K;
            for (int k = 0; k < c->K; k++)
                var += (x[k] - mu) * (x[k] - mu) / c->K;
            for (int k = 0; k < c->K; k++)
                out[m * c->K + k] = (x[k] - mu) / sqrt(var + NN_LN_EPS) * c->w[k] + c->b[k];
        }
    } else if (c->kind == 2) {
        for (size_t i = 0; i < c->nx; i++)
            out[i] = gelu_d(c->x[i]);
    } else {
        int B = c->M, T = c->K, C = c->N, NH = c->NH, hd = C / NH;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < T; i++) {
                    double s[64], mx = -1e300, sum = 0;
                    const double *q = c->x + (b * T + i) * 3 * C + h * hd;
                    for (int j = 0; j < T; j++) {
                        const double *k = c->x + (b * T + j) * 3 * C + C + h * hd;
                        double d = 0;
                        for (int e = 0; e < hd; e++)
                            d += q[e] * k[e];
                        s[j] = d / sqrt((double)hd);
                        mx = fmax(mx, s[j]);
                    }
                    for (int j = 0; j < T; j++)
                        sum += (s[j] = exp(s[j] - mx));
                    for (int e = 0; e < hd; e++) {
                        double o = 0;
                        for (int j = 0; j < T; j++)
                            o += s[j] / sum * c->x[(b * T + j) * 3 * C + 2 * C + h * hd + e];
                        out[(b * T + i) * C + h * hd + e] = o;
                    }
                }
    }
}

static double naive_loss(const layer_case *c) {
    double *out = malloc(c->nout * sizeof *out), l = 0;
    naive_forward(c, out);
    for (size_t i = 0; i < c->nout; i++)
        l += out[i] * c->r[i];
    free(out);
    return l;
}

/* Central difference of the naive loss in every element of v; compare with g (float). */
static int fd_check(const char *what, layer_case *c, double *v, size_t n, const float *g) {
    double worst = 0, scale = 0;
    double *fd = malloc(n * sizeof *fd);
    for (size_t i = 0; i < n; i++) {
        double o = v[i];
        v[i] = o + FD_H;
        double lp = naive_loss(c);
        v[i] = o - FD_H;
        double lm = naive_loss(c);
        v[i] = o;
        fd[i] = (lp - lm) / (2 * FD_H);
        scale = fmax(scale, fabs(fd[i]));
    }
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(g[i] - fd[i]));
    double rel = worst / (scale > 0 ? scale : 1);
    printf("  %-28s worst |analytic - fd| %.3e  relative %.3e%s\n", what, worst, rel,
           rel > TOL ? "  FAIL" : "");
    free(fd);
    return rel > TOL;
}

static void fill(rng *r, double *d, float *f, size_t n, double scale, double offset) {
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)(offset + scale * rng_normal(r));
        d[i] = f[i];
    }
}

static void run_case(int kind, int M, int K, int N, int NH) {
    nn_set_threads(2);
    rng r;
    rng_seed(&r, 100 + kind, 0);
    layer_case c = {kind, M, K, N, NH, 0, 0, 0, 0, 0, 0, 0, 0};
    if (kind == 0) c.nx = (size_t)M * K, c.nw = (size_t)N * K, c.nb = N, c.nout = (size_t)M * N;
    if (kind == 1) c.nx = (size_t)M * K, c.nw = K, c.nb = K, c.nout = (size_t)M * K;
    if (kind == 2) c.nx = c.nout = (size_t)M * K;
    if (kind == 3) c.nx = (size_t)M * K * 3 * N, c.nout = (size_t)M * K * N;
    size_t big = c.nx + c.nw + c.nb + c.nout + 16;
    double *d = calloc(4 * big, sizeof *d);
    float *f = calloc(8 * big, sizeof *f);
    c.x = d, c.w = d + c.nx, c.b = c.w + c.nw, c.r = c.b + c.nb;
    float *x = f, *w = x + c.nx, *b = w + c.nw, *rr = b + c.nb, *out = rr + c.nout;
    float *dx = out + c.nout, *dw = dx + c.nx, *db = dw + c.nw;
    fill(&r, c.x, x, c.nx, kind == 3 ? 0.8 : 1.0, kind == 1 ? 0.5 : 0.0);
    fill(&r, c.w, w, c.nw, 0.5, kind == 1 ? 1.0 : 0.0);
    fill(&r, c.b, b, c.nb, 0.3, 0.0);
    fill(&r, c.r, rr, c.nout, 1.0, 0.0);
    float *mean = malloc((size_t)M * sizeof *mean), *rstd = malloc((size_t)M * sizeof *rstd);
    float *att = malloc((size_t)M * NH * K * K * sizeof *att);
    float *att_scratch =
        malloc((size_t)nn_threads() * nn_attention_scratch(K) * sizeof *att_scratch);
    static const char *names[] = {"linear", "layernorm", "gelu", "attention"};
    if (kind == 0) nn_linear_forward(out, x, w, b, M, K, N);
    if (kind == 1) nn_layernorm_forward(out, mean, rstd, x, w, b, M, K);
    float *cdf = malloc(c.nx * sizeof *cdf);
    if (kind == 2) nn_gelu_forward(out, cdf, x, c.nx);
    if (kind == 3) nn_attention_forward(out, att, x, M, K, N, NH);
    double *ref = malloc(c.nout * sizeof *ref), fw = 0, fs = 0;
    naive_forward(&c, ref);
    for (size_t i = 0; i < c.nout; i++)
        fw = fmax(fw, fabs(out[i] - ref[i])), fs = fmax(fs, fabs(ref[i]));
    printf("%s: forward worst |C - naive| %.3e (relative %.3e)\n", names[kind], fw, fw / fs);
    int fails = fw / fs > 1e-5;
    /* backward: parameter gradients accumulate, so start them at a known value and subtract */
    for (size_t i = 0; i < c.nw; i++)
        dw[i] = 1.0f;
    for (size_t i = 0; i < c.nb; i++)
        db[i] = 1.0f;
    if (kind == 0) nn_linear_backward(dx, dw, db, rr, x, w, M, K, N);
    if (kind == 1) {
        for (size_t i = 0; i < c.nx; i++)
            dx[i] = 2.0f; /* dinp accumulates too */
        nn_layernorm_backward(dx, dw, db, rr, x, w, mean, rstd, M, K);
        for (size_t i = 0; i < c.nx; i++)
            dx[i] -= 2.0f;
    }
    if (kind == 2) {
        nn_gelu_backward(dx, rr, x, NULL, c.nx); /* recomputed Phi, then the cached one */
        float *dx2 = malloc(c.nx * sizeof *dx2);
        nn_gelu_backward(dx2, rr, x, cdf, c.nx);
        assert_memory_equal(dx, dx2, c.nx * sizeof *dx);
        free(dx2);
    }
    if (kind == 3) nn_attention_backward(dx, att_scratch, rr, x, att, M, K, N, NH);
    for (size_t i = 0; i < c.nw; i++)
        dw[i] -= 1.0f;
    for (size_t i = 0; i < c.nb; i++)
        db[i] -= 1.0f;
    fails += fd_check("d input", &c, c.x, c.nx, dx);
    if (c.nw) fails += fd_check("d weight", &c, c.w, c.nw, dw);
    if (c.nb) fails += fd_check("d bias", &c, c.b, c.nb, db);
    free(cdf), free(d), free(f), free(mean), free(rstd), free(att), free(att_scratch), free(ref);
    assert_int_equal(fails, 0);
}

static void test_linear(void **s) {
    (void)s;
    run_case(0, 7, 9, 5, 0);
}
static void test_layernorm(void **s) {
    (void)s;
    run_case(1, 6, 10, 0, 0);
}
static void test_gelu(void **s) {
    (void)s;
    run_case(2, 5, 9, 0, 0);
}
static void test_attention(void **s) {
    (void)s;
    run_case(3, 2, 6, 8, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_attention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
