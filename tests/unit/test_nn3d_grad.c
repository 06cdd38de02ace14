/* test_nn3d_grad — every layer of models/nn3d.h against naive double-precision loops: forward
 * outputs, and every gradient against central finite differences of the naive loop's loss
 * L = sum(out * R) for a fixed random R (small shapes: stride 2 on odd sizes, k = 1, batch 2,
 * batch strides). Larger shapes, cut into several slabs and weight-gradient groups, are
 * compared with naive double backward loops; 1 and 2 threads must give the same bits.
 * Worst differences are printed; any miss fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn.h"
#include "nn3d.h"
#include "rng.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_H 1e-5
#define TOL 1e-4

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static void fill(rng *r, double *d, float *f, size_t n, double scale, double offset) {
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)(offset + scale * rng_normal(r));
        if (d) d[i] = f[i];
    }
}

/* max |a - ref| relative to max |ref|; prints the line and returns 1 on a miss. */
static int compare(const char *what, const float *a, const double *ref, size_t n, double tol) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        worst = isnan(d) || d > worst ? (isnan(d) ? INFINITY : d) : worst;
        scale = fmax(scale, fabs(ref[i]));
    }
    double rel = worst / (scale > 0 ? scale : 1);
    printf("  %-34s worst |C - ref| %.3e  relative %.3e%s\n", what, worst, rel,
           rel > tol ? "  FAIL" : "");
    return rel > tol;
}

/* A layer under test: a naive double loss over some double tensors. */
typedef double (*loss_fn)(void *ctx);

/* Central difference of the loss in every element of v; compared with g. */
static int fd_check(const char *what, loss_fn f, void *ctx, double *v, size_t n, const float *g) {
    double *fd = xmalloc(n * sizeof *fd);
    for (size_t i = 0; i < n; i++) {
        double o = v[i];
        v[i] = o + FD_H;
        double lp = f(ctx);
        v[i] = o - FD_H;
        double lm = f(ctx);
        v[i] = o;
        fd[i] = (lp - lm) / (2 * FD_H);
    }
    char label[64];
    snprintf(label, sizeof label, "%s (finite differences)", what);
    int miss = compare(label, g, fd, n, TOL);
    free(fd);
    return miss;
}

/* ----------------------------------------------------------------------------- conv3d */
typedef struct conv_case {
    nn_conv3d_shape s;
    int st[3]; /* the stride along each axis, as the test means it */
    int o[3];
    size_t N, O, nx, nw, nout;
    int has_bias;
    double *x, *w, *b, *r; /* x dense (B, Ci, N) */
} conv_case;

static void conv_naive(const conv_case *c, double *out) {
    const nn_conv3d_shape *s = &c->s;
    int k = s->k, p = k / 2, sz = c->st[0], sy = c->st[1], sx = c->st[2];
    for (int b = 0; b < s->B; b++)
        for (int co = 0; co < s->Co; co++)
            for (int oz = 0; oz < c->o[0]; oz++)
                for (int oy = 0; oy < c->o[1]; oy++)
                    for (int ox = 0; ox < c->o[2]; ox++) {
                        double acc = c->has_bias ? c->b[co] : 0.0;
                        for (int ci = 0; ci < s->Ci; ci++)
                            for (int kz = 0; kz < k; kz++)
                                for (int ky = 0; ky < k; ky++)
                                    for (int kx = 0; kx < k; kx++) {
                                        int iz = oz * sz + kz - p, iy = oy * sy + ky - p,
                                            ix = ox * sx + kx - p;
                                        if (iz < 0 || iy < 0 || ix < 0 || iz >= s->n[0] ||
                                            iy >= s->n[1] || ix >= s->n[2])
                                            continue;
                                        acc += c->w[(((size_t)co * s->Ci + ci) * k + kz) * k * k +
                                                    ky * k + kx] *
                                               c->x[((size_t)b * s->Ci + ci) * c->N +
                                                    ((size_t)iz * s->n[1] + iy) * s->n[2] + ix];
                                    }
                        out[((size_t)b * s->Co + co) * c->O +
                            ((size_t)oz * c->o[1] + oy) * c->o[2] + ox] = acc;
                    }
}

/* The naive backward of L = sum(out * R): dx, dw, db in double. */
static void conv_naive_backward(const conv_case *c, double *dx, double *dw, double *db) {
    const nn_conv3d_shape *s = &c->s;
    int k = s->k, p = k / 2, sz = c->st[0], sy = c->st[1], sx = c->st[2];
    memset(dx, 0, c->nx * sizeof *dx);
    memset(dw, 0, c->nw * sizeof *dw);
    memset(db, 0, (size_t)s->Co * sizeof *db);
    for (int b = 0; b < s->B; b++)
        for (int co = 0; co < s->Co; co++)
            for (int oz = 0; oz < c->o[0]; oz++)
                for (int oy = 0; oy < c->o[1]; oy++)
                    for (int ox = 0; ox < c->o[2]; ox++) {
                        double g = c->r[((size_t)b * s->Co + co) * c->O +
                                        ((size_t)oz * c->o[1] + oy) * c->o[2] + ox];
                        db[co] += g;
                        for (int ci = 0; ci < s->Ci; ci++)
                            for (int kz = 0; kz < k; kz++)
                                for (int ky = 0; ky < k; ky++)
                                    for (int kx = 0; kx < k; kx++) {
                                        int iz = oz * sz + kz - p, iy = oy * sy + ky - p,
                                            ix = ox * sx + kx - p;
                                        if (iz < 0 || iy < 0 || ix < 0 || iz >= s->n[0] ||
                                            iy >= s->n[1] || ix >= s->n[2])
                                            continue;
                                        size_t wi = (((size_t)co * s->Ci + ci) * k + kz) * k * k +
                                                    ky * k + kx;
                                        size_t xi = ((size_t)b * s->Ci + ci) * c->N +
                                                    ((size_t)iz * s->n[1] + iy) * s->n[2] + ix;
                                        dx[xi] += g * c->w[wi];
                                        dw[wi] += g * c->x[xi];
                                    }
                    }
}

static double conv_loss(void *ctx) {
    conv_case *c = ctx;
    double *out = xmalloc(c->nout * sizeof *out), l = 0;
    conv_naive(c, out);
    for (size_t i = 0; i < c->nout; i++)
        l += out[i] * c->r[i];
    free(out);
    return l;
}

/* The C layer's forward and backward at `threads` threads, with batch strides padded by `pad`
 * floats per item (0: dense). Outputs are returned dense; padding must stay untouched. */
typedef struct conv_result {
    float *out, *dx, *dw, *db;
} conv_result;

static void conv_run(const conv_case *c, const float *x, const float *w, const float *b,
                     const float *r, int threads, size_t pad, int no_dinp, conv_result *res) {
    nn_set_threads(threads);
    nn_conv3d_shape s = c->s;
    const int B = s.B;
    size_t xi = (size_t)s.Ci * c->N, oi = (size_t)s.Co * c->O;
    if (pad) s.inp_bstride = s.dinp_bstride = xi + pad, s.out_bstride = oi + pad;
    size_t xs = pad ? xi + pad : xi, os = pad ? oi + pad : oi;
    size_t nscr = nn_conv3d_scratch(&s, threads);
    assert_true(nscr > 0);
    float *scr = xmalloc(nscr * sizeof *scr);
    float *xin = xmalloc(B * xs * sizeof *xin), *dxin = xmalloc(B * xs * sizeof *dxin);
    float *out = xmalloc(B * os * sizeof *out), *dout = xmalloc(B * os * sizeof *dout);
    const float sentinel = 12345.0f;
    for (size_t i = 0; i < B * xs; i++)
        xin[i] = dxin[i] = sentinel;
    for (size_t i = 0; i < B * os; i++)
        out[i] = dout[i] = sentinel;
    for (int bb = 0; bb < B; bb++) {
        memcpy(xin + bb * xs, x + bb * xi, xi * sizeof *x);
        memcpy(dout + bb * os, r + bb * oi, oi * sizeof *r);
        for (size_t i = 0; i < xi; i++) /* dinp is overwritten, whatever it held */
            dxin[bb * xs + i] = no_dinp ? sentinel : NAN;
    }
    nn_conv3d_forward(out, xin, w, c->has_bias ? b : NULL, scr, &s);
    res->out = xmalloc(c->nout * sizeof(float));
    res->dx = xmalloc(c->nx * sizeof(float));
    res->dw = xmalloc(c->nw * sizeof(float));
    res->db = xmalloc((size_t)s.Co * sizeof(float));
    for (size_t i = 0; i < c->nw; i++)
        res->dw[i] = 1.0f; /* parameter gradients accumulate: start at 1 and subtract */
    for (int i = 0; i < s.Co; i++)
        res->db[i] = 1.0f;
    nn_conv3d_backward(no_dinp ? NULL : dxin, res->dw, c->has_bias ? res->db : NULL, dout, xin, w,
                       scr, &s);
    for (size_t i = 0; i < c->nw; i++)
        res->dw[i] -= 1.0f;
    for (int i = 0; i < s.Co; i++)
        res->db[i] = c->has_bias ? res->db[i] - 1.0f : 0.0f;
    for (int bb = 0; bb < B; bb++) {
        memcpy(res->out + bb * oi, out + bb * os, oi * sizeof *out);
        memcpy(res->dx + bb * xi, dxin + bb * xs, xi * sizeof *dxin);
        for (size_t i = oi; i < os; i++) /* the padding between items stays untouched */
            assert_true(out[bb * os + i] == sentinel && dout[bb * os + i] == sentinel);
        for (size_t i = xi; i < xs; i++)
            assert_true(xin[bb * xs + i] == sentinel && dxin[bb * xs + i] == sentinel);
    }
    free(scr), free(xin), free(dxin), free(out), free(dout);
}

static void conv_result_free(conv_result *r) {
    free(r->out), free(r->dx), free(r->dw), free(r->db);
}

/* s the stride of the axes sa (NULL: none) leaves 0. */
static void conv_setup(conv_case *c, int B, int Ci, int Co, int k, int s, const int *sa, int nz,
                       int ny, int nx, int has_bias) {
    memset(c, 0, sizeof *c);
    c->s.B = B, c->s.Ci = Ci, c->s.Co = Co, c->s.k = k, c->s.s = s;
    c->s.n[0] = nz, c->s.n[1] = ny, c->s.n[2] = nx;
    c->N = (size_t)nz * ny * nx, c->O = 1;
    for (int a = 0; a < 3; a++) {
        c->s.sa[a] = sa ? sa[a] : 0;
        c->st[a] = sa && sa[a] ? sa[a] : s;
        assert_int_equal(nn_conv3d_stride(&c->s, a), c->st[a]);
        c->o[a] = nn_conv3d_out_size(c->s.n[a], k, c->st[a]);
        assert_true(c->o[a] >= 1);
        c->O *= (size_t)c->o[a];
    }
    assert_int_equal(nn_conv3d_out_voxels(&c->s), c->O);
    c->has_bias = has_bias;
    c->nx = (size_t)B * Ci * c->N, c->nw = (size_t)Co * Ci * k * k * k;
    c->nout = (size_t)B * Co * c->O;
}

/* One conv shape: forward vs naive, gradients vs finite differences (fd) or the naive
 * backward, 1, 2 and 3 threads bitwise, dense vs strided batches bitwise. Stride s on the axes
 * sa (NULL: none) leaves 0. */
static int conv_check_sa(int B, int Ci, int Co, int k, int s, const int *sa, int nz, int ny, int nx,
                         int has_bias, int fd, size_t slab) {
    conv_case c;
    conv_setup(&c, B, Ci, Co, k, s, sa, nz, ny, nx, has_bias);
    c.s.slab_floats = slab;
    printf("conv3d B %d Ci %d Co %d k %d s %d,%d,%d n %dx%dx%d -> %dx%dx%d%s\n", B, Ci, Co, k,
           c.st[0], c.st[1], c.st[2], nz, ny, nx, c.o[0], c.o[1], c.o[2], has_bias ? " bias" : "");
    rng r;
    rng_seed(&r, 7 + (uint64_t)(k * 10 + c.st[0] * 4 + c.st[1] * 2 + c.st[2]),
             (uint64_t)(B * 100 + Ci));
    c.x = xmalloc(c.nx * sizeof(double)), c.w = xmalloc(c.nw * sizeof(double));
    c.b = xmalloc((size_t)Co * sizeof(double)), c.r = xmalloc(c.nout * sizeof(double));
    float *x = xmalloc(c.nx * sizeof *x), *w = xmalloc(c.nw * sizeof *w);
    float *b = xmalloc((size_t)Co * sizeof *b), *rr = xmalloc(c.nout * sizeof *rr);
    fill(&r, c.x, x, c.nx, 1.0, 0.0);
    fill(&r, c.w, w, c.nw, 0.3, 0.0);
    fill(&r, c.b, b, (size_t)Co, 0.5, 0.0);
    fill(&r, c.r, rr, c.nout, 1.0, 0.0);

    conv_result r1, r2, r3, rp, rn;
    conv_run(&c, x, w, b, rr, 1, 0, 0, &r1);
    conv_run(&c, x, w, b, rr, 2, 0, 0, &r2);
    conv_run(&c, x, w, b, rr, 3, 0, 0, &r3);
    conv_run(&c, x, w, b, rr, 2, 7, 0, &rp);
    conv_run(&c, x, w, b, rr, 2, 0, 1, &rn); /* no dinp: dw, db alone */
    double *ref = xmalloc(c.nout * sizeof *ref);
    conv_naive(&c, ref);
    int fails = compare("forward vs naive double", r2.out, ref, c.nout, 1e-5);
    if (fd) {
        fails += fd_check("d input", conv_loss, &c, c.x, c.nx, r2.dx);
        fails += fd_check("d weight", conv_loss, &c, c.w, c.nw, r2.dw);
        if (has_bias) fails += fd_check("d bias", conv_loss, &c, c.b, (size_t)Co, r2.db);
    } else {
        double *dx = xmalloc(c.nx * sizeof *dx), *dw = xmalloc(c.nw * sizeof *dw);
        double *db = xmalloc((size_t)Co * sizeof *db);
        conv_naive_backward(&c, dx, dw, db);
        fails += compare("d input vs naive double", r2.dx, dx, c.nx, 1e-5);
        fails += compare("d weight vs naive double", r2.dw, dw, c.nw, 1e-5);
        if (has_bias) fails += compare("d bias vs naive double", r2.db, db, (size_t)Co, 1e-5);
        free(dx), free(dw), free(db);
    }
    /* invariant 3: the thread count, the batch strides and skipping dinp change no bit */
#define SAME(p, q)                                                                                 \
    (!memcmp(p.out, q.out, c.nout * 4) && !memcmp(p.dx, q.dx, c.nx * 4) &&                         \
     !memcmp(p.dw, q.dw, c.nw * 4) && !memcmp(p.db, q.db, (size_t)Co * 4))
    int same = SAME(r1, r2) && SAME(r3, r2), same_p = SAME(rp, r2);
    int same_n = !memcmp(rn.dw, r2.dw, c.nw * 4) && !memcmp(rn.db, r2.db, (size_t)Co * 4);
#undef SAME
    printf("  1, 2, 3 threads: %s; batch strides vs dense: %s; without dinp: %s\n",
           same ? "same bits" : "DIFFER", same_p ? "same bits" : "DIFFER",
           same_n ? "same bits" : "DIFFER");
    fails += !same + !same_p + !same_n;
    conv_result_free(&r1), conv_result_free(&r2), conv_result_free(&r3), conv_result_free(&rp);
    conv_result_free(&rn);
    free(ref), free(c.x), free(c.w), free(c.b), free(c.r), free(x), free(w), free(b), free(rr);
    return fails;
}

static int conv_check(int B, int Ci, int Co, int k, int s, int nz, int ny, int nx, int has_bias,
                      int fd, size_t slab) {
    return conv_check_sa(B, Ci, Co, k, s, NULL, nz, ny, nx, has_bias, fd, slab);
}

static void test_conv3d_fd(void **st) {
    (void)st;
    int fails = 0;
    fails += conv_check(2, 2, 3, 3, 2, 5, 4, 3, 1, 1, 0); /* stride 2, odd and even sizes */
    fails += conv_check(2, 3, 2, 3, 1, 4, 5, 3, 0, 1, 0); /* stride 1, no bias */
    fails += conv_check(1, 2, 2, 3, 2, 1, 3, 7, 1, 1, 0); /* a size-1 axis */
    fails += conv_check(2, 3, 4, 1, 1, 3, 4, 5, 1, 1, 0); /* k = 1 */
    fails += conv_check(2, 3, 2, 1, 2, 5, 3, 4, 1, 1, 0); /* k = 1, stride 2 */
    fails += conv_check(3, 1, 2, 3, 2, 3, 3, 3, 1, 1, 0); /* one input channel, batch 3 */
    fails += conv_check(1, 2, 3, 3, 1, 1, 3, 4, 1, 1, 0); /* stride 1, a single plane */
    fails += conv_check(2, 2, 2, 3, 1, 2, 1, 5, 1, 1, 0); /* stride 1, a single row */
    assert_int_equal(fails, 0);
}

/* Strides per axis (sa): a radiograph stored as a one-slice volume (3^3 over the size-1 axis:
 * only the centre tap), thin slabs, every mix of 1 and 2, sa overriding s on some axes only. */
static void test_conv3d_axes_fd(void **st) {
    (void)st;
    static const int s122[3] = {1, 2, 2}, s211[3] = {2, 1, 1}, s112[3] = {1, 1, 2};
    static const int s221[3] = {2, 2, 1}, s121[3] = {1, 2, 1}, s1xx[3] = {1, 0, 0};
    int fails = 0;
    fails += conv_check_sa(2, 2, 3, 3, 0, s122, 1, 7, 6, 1, 1, 0); /* a radiograph */
    fails += conv_check_sa(2, 3, 2, 3, 0, s122, 4, 5, 6, 0, 1, 0); /* a thin slab */
    fails += conv_check_sa(1, 2, 2, 3, 2, s1xx, 3, 5, 4, 1, 1, 0); /* s 2, sa z only: 1,2,2 */
    fails += conv_check_sa(2, 2, 2, 3, 0, s211, 5, 4, 3, 1, 1, 0);
    fails += conv_check_sa(1, 3, 2, 3, 0, s112, 3, 4, 7, 1, 1, 0);
    fails += conv_check_sa(2, 2, 3, 3, 0, s221, 5, 3, 4, 0, 1, 0);
    fails += conv_check_sa(1, 2, 2, 3, 0, s121, 2, 5, 1, 1, 1, 0); /* a one-voxel-wide x */
    fails += conv_check_sa(2, 3, 2, 1, 0, s122, 1, 5, 6, 1, 1, 0); /* k = 1 */
    fails += conv_check_sa(2, 3, 2, 1, 0, s211, 5, 3, 4, 0, 1, 0);
    assert_int_equal(fails, 0);
}

/* Several slabs per item (the last one shorter), several weight-gradient groups, input-channel
 * groups at stride 2, batch 1 and batch 3; at stride 1 (k = 3) runs of planes per item and
 * planes cut into bands of rows. */
static void test_conv3d_slabs(void **st) {
    (void)st;
    int fails = 0;
    fails += conv_check(3, 16, 8, 3, 1, 9, 10, 11, 1, 0, 1);
    fails += conv_check(1, 12, 5, 3, 2, 17, 18, 19, 1, 0, 1);
    fails += conv_check(2, 5, 6, 3, 2, 16, 16, 16, 0, 0, 0);
    fails += conv_check(2, 3, 2, 3, 1, 6, 40, 7, 1, 0, 1); /* bands of 37 and 3 rows */
    fails += conv_check(1, 4, 3, 3, 1, 7, 40, 9, 0, 0, 1); /* 7 runs of one plane, 2 bands */
    fails += conv_check(3, 7, 3, 1, 1, 9, 10, 31, 1, 0, 1);
    fails += conv_check(2, 7, 3, 1, 2, 19, 10, 31, 1, 0, 1);
    /* per-axis strides: radiographs in batch 3 and 1, a thin slab, stride along z alone */
    static const int s122[3] = {1, 2, 2}, s211[3] = {2, 1, 1};
    fails += conv_check_sa(3, 8, 6, 3, 0, s122, 1, 64, 60, 1, 0, 1);
    fails += conv_check_sa(1, 12, 5, 3, 0, s122, 1, 37, 33, 0, 0, 0);
    fails += conv_check_sa(2, 5, 6, 3, 0, s122, 6, 33, 34, 1, 0, 1);
    fails += conv_check_sa(2, 6, 4, 3, 0, s211, 9, 10, 11, 1, 0, 1);
    assert_int_equal(fails, 0);
}

static void test_conv3d_shapes(void **st) {
    (void)st;
    assert_int_equal(nn_conv3d_out_size(5, 3, 2), 3); /* (5 + 2 - 3) / 2 + 1, as nn.Conv3d */
    assert_int_equal(nn_conv3d_out_size(4, 3, 2), 2);
    assert_int_equal(nn_conv3d_out_size(1, 3, 2), 1);
    assert_int_equal(nn_conv3d_out_size(5, 1, 2), 3);
    assert_int_equal(nn_conv3d_out_size(7, 3, 1), 7);
    nn_conv3d_shape ok = {.B = 2, .Ci = 3, .Co = 4, .k = 3, .s = 2, .n = {5, 6, 7}};
    assert_true(nn_conv3d_scratch(&ok, 2) > 0);
    assert_true(nn_conv3d_scratch(&ok, 2) >= nn_conv3d_scratch(&ok, 1));
    nn_conv3d_shape bad = ok;
    bad.k = 2;
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.s = 3;
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.sa[1] = 3; /* a per-axis stride that is not 1 or 2 */
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.s = 0, bad.sa[0] = bad.sa[1] = 2; /* x takes s = 0 */
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad.sa[2] = 1; /* every axis given by sa: s is not read */
    assert_true(nn_conv3d_scratch(&bad, 1) > 0);
    assert_int_equal(nn_conv3d_out_voxels(&bad), (size_t)3 * 3 * 7);
    bad = ok, bad.n[1] = 0;
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.B = 0;
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.inp_bstride = 3 * 5 * 6 * 7 - 1; /* items would overlap */
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.out_bstride = 4 * 3 * 3 * 4 - 1;
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.dinp_bstride = 1;
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.n[0] = bad.n[1] = bad.n[2] = 2048; /* 2^33 voxels: more than BLAS's int */
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.Ci = 1 << 30; /* Ci k^3 overflows int */
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    bad = ok, bad.B = 1 << 30, bad.inp_bstride = (size_t)1 << 40; /* the batch overflows */
    assert_int_equal(nn_conv3d_scratch(&bad, 1), 0);
    assert_int_equal(nn_conv3d_scratch(&ok, 0), 0);
    assert_int_equal(nn_conv3d_scratch(NULL, 1), 0);
    /* the slab bound holds (above 256 columns) and the scratch grows by one slab per thread */
    nn_conv3d_shape big = {.B = 8, .Ci = 16, .Co = 16, .k = 3, .s = 1, .n = {32, 32, 32}};
    size_t s1 = nn_conv3d_scratch(&big, 1), s2 = nn_conv3d_scratch(&big, 2);
    printf("scratch of a 16->16 conv on 8 x 32^3: %zu floats at 1 thread, %zu at 2\n", s1, s2);
    assert_true(s2 - s1 <= NN_CONV_SLAB_FLOATS + 16);
    assert_true(s1 < (size_t)8 * 16 * 27 * 32 * 32 * 32 / 16); /* far below a whole batch */
}

/* ------------------------------------------------------------------------ instancenorm */
typedef struct in_case {
    int B, C;
    size_t N;
    double *x, *g, *b, *r;
} in_case;

static void in_naive(const in_case *c, double *out) {
    for (int b = 0; b < c->B; b++)
        for (int ch = 0; ch < c->C; ch++) {
            const double *x = c->x + ((size_t)b * c->C + ch) * c->N;
            double mu = 0, var = 0;
            for (size_t i = 0; i < c->N; i++)
                mu += x[i] / (double)c->N;
            for (size_t i = 0; i < c->N; i++)
                var += (x[i] - mu) * (x[i] - mu) / (double)c->N;
            for (size_t i = 0; i < c->N; i++)
                out[((size_t)b * c->C + ch) * c->N + i] =
                    (x[i] - mu) / sqrt(var + NN_IN_EPS) * c->g[ch] + c->b[ch];
        }
}

static double in_loss(void *ctx) {
    in_case *c = ctx;
    size_t n = (size_t)c->B * c->C * c->N;
    double *out = xmalloc(n * sizeof *out), l = 0;
    in_naive(c, out);
    for (size_t i = 0; i < n; i++)
        l += out[i] * c->r[i];
    free(out);
    return l;
}

/* forward and backward at `threads`; dx in place over a copy of dout when `alias` */
static void in_run(int threads, int alias, const float *x, const float *g, const float *b,
                   const float *rr, int B, int C, size_t N, float *out, float *dx, float *dg,
                   float *db) {
    nn_set_threads(threads);
    size_t n = (size_t)B * C * N;
    float *mean = xmalloc((size_t)B * C * sizeof *mean), *rstd = xmalloc((size_t)B * C * 4);
    nn_instnorm3d_forward(out, mean, rstd, x, g, b, B, C, N);
    for (int i = 0; i < C; i++)
        dg[i] = db[i] = 1.0f;
    if (alias) {
        memcpy(dx, rr, n * sizeof *dx);
        nn_instnorm3d_backward(dx, dg, db, dx, x, g, mean, rstd, B, C, N);
    } else {
        for (size_t i = 0; i < n; i++)
            dx[i] = NAN;
        nn_instnorm3d_backward(dx, dg, db, rr, x, g, mean, rstd, B, C, N);
    }
    for (int i = 0; i < C; i++)
        dg[i] -= 1.0f, db[i] -= 1.0f;
    free(mean), free(rstd);
}

static void test_instnorm3d(void **st) {
    (void)st;
    const int B = 2, C = 3;
    const size_t N = 3 * 4 * 5;
    size_t n = (size_t)B * C * N;
    rng r;
    rng_seed(&r, 31, 0);
    in_case c = {B, C, N, xmalloc(n * 8), xmalloc(C * 8), xmalloc(C * 8), xmalloc(n * 8)};
    float *x = xmalloc(n * 4), *g = xmalloc(C * 4), *b = xmalloc(C * 4), *rr = xmalloc(n * 4);
    fill(&r, c.x, x, n, 2.0, 3.0); /* a mean far from 0 */
    fill(&r, c.g, g, C, 0.5, 1.0);
    fill(&r, c.b, b, C, 0.3, 0.0);
    fill(&r, c.r, rr, n, 1.0, 0.0);
    float *out = xmalloc(n * 4), *dx = xmalloc(n * 4), *dg = xmalloc(C * 4), *db = xmalloc(C * 4);
    float *out1 = xmalloc(n * 4), *dx1 = xmalloc(n * 4), *dg1 = xmalloc(C * 4),
          *db1 = xmalloc(C * 4);
    in_run(2, 0, x, g, b, rr, B, C, N, out, dx, dg, db);
    in_run(1, 1, x, g, b, rr, B, C, N, out1, dx1, dg1, db1);
    double *ref = xmalloc(n * 8);
    in_naive(&c, ref);
    printf("instnorm3d B %d C %d N %zu\n", B, C, N);
    int fails = compare("forward vs naive double", out, ref, n, 1e-5);
    fails += fd_check("d input", in_loss, &c, c.x, n, dx);
    fails += fd_check("d gamma", in_loss, &c, c.g, C, dg);
    fails += fd_check("d beta", in_loss, &c, c.b, C, db);
    int same = !memcmp(out, out1, n * 4) && !memcmp(dx, dx1, n * 4) && !memcmp(dg, dg1, C * 4) &&
               !memcmp(db, db1, C * 4);
    printf("  1 thread in place vs 2 threads: %s\n", same ? "same bits" : "DIFFER");
    fails += !same;
    /* out may alias inp */
    memcpy(out1, x, n * 4);
    float *mean = xmalloc((size_t)B * C * 4), *rstd = xmalloc((size_t)B * C * 4);
    nn_instnorm3d_forward(out1, mean, rstd, out1, g, b, B, C, N);
    fails += memcmp(out, out1, n * 4) != 0;
    free(mean), free(rstd);
    free(c.x), free(c.g), free(c.b), free(c.r), free(x), free(g), free(b), free(rr), free(out),
        free(dx), free(dg), free(db), free(out1), free(dx1), free(dg1), free(db1), free(ref);
    assert_int_equal(fails, 0);
}

/* -------------------------------------------------------------------------- leaky relu */
typedef struct lrelu_case {
    size_t n;
    double slope, *x, *r;
} lrelu_case;

static double lrelu_loss(void *ctx) {
    lrelu_case *c = ctx;
    double l = 0;
    for (size_t i = 0; i < c->n; i++)
        l += (c->x[i] > 0 ? c->x[i] : c->slope * c->x[i]) * c->r[i];
    return l;
}

static void test_leaky_relu(void **st) {
    (void)st;
    const size_t n = 301;
    rng r;
    rng_seed(&r, 41, 0);
    int fails = 0;
    const float slopes[2] = {NN_LEAKY_SLOPE, 0.2f};
    for (int k = 0; k < 2; k++) {
        lrelu_case c = {n, slopes[k], xmalloc(n * 8), xmalloc(n * 8)};
        float *x = xmalloc(n * 4), *rr = xmalloc(n * 4), *out = xmalloc(n * 4);
        float *dx = xmalloc(n * 4), *dx1 = xmalloc(n * 4);
        fill(&r, c.x, x, n, 1.0, 0.0);
        fill(&r, c.r, rr, n, 1.0, 0.0);
        for (size_t i = 0; i < n; i++) /* keep finite differences off the kink */
            if (fabs(c.x[i]) < 1e-3) c.x[i] = x[i] = 0.5f;
        nn_set_threads(2);
        nn_leaky_relu_forward(out, x, n, slopes[k]);
        double *ref = xmalloc(n * 8);
        for (size_t i = 0; i < n; i++)
            ref[i] = c.x[i] > 0 ? c.x[i] : c.slope * c.x[i];
        printf("leaky_relu n %zu slope %.2f\n", n, c.slope);
        fails += compare("forward vs naive double", out, ref, n, 1e-7);
        nn_leaky_relu_backward(dx, rr, x, n, slopes[k]);
        fails += fd_check("d input", lrelu_loss, &c, c.x, n, dx);
        nn_set_threads(1); /* in place, one thread: the same bits */
        memcpy(dx1, rr, n * 4);
        nn_leaky_relu_backward(dx1, dx1, x, n, slopes[k]);
        fails += memcmp(dx, dx1, n * 4) != 0;
        memcpy(dx1, x, n * 4);
        nn_leaky_relu_forward(dx1, dx1, n, slopes[k]);
        fails += memcmp(out, dx1, n * 4) != 0;
        free(c.x), free(c.r), free(x), free(rr), free(out), free(dx), free(dx1), free(ref);
    }
    /* at exactly 0 the gradient is the slope's, as torch's leaky_relu_backward */
    float z = 0.0f, g = 2.0f, d;
    nn_leaky_relu_backward(&d, &g, &z, 1, 0.01f);
    assert_true(d == 0.02f);
    assert_int_equal(fails, 0);
}

/* ---------------------------------------------------------------------------- upsample */
typedef struct up_case {
    int B, C, Z, Y, X, f[3];
    double *x, *r;
} up_case;

static void up_naive(const up_case *c, double *out) {
    size_t i = 0;
    for (int bc = 0; bc < c->B * c->C; bc++)
        for (int z = 0; z < c->f[0] * c->Z; z++)
            for (int y = 0; y < c->f[1] * c->Y; y++)
                for (int x = 0; x < c->f[2] * c->X; x++, i++)
                    out[i] = c->x[(((size_t)bc * c->Z + z / c->f[0]) * c->Y + y / c->f[1]) * c->X +
                                  x / c->f[2]];
}

static size_t up_out_size(const up_case *c) {
    return (size_t)c->B * c->C * c->Z * c->Y * c->X * c->f[0] * c->f[1] * c->f[2];
}

static double up_loss(void *ctx) {
    up_case *c = ctx;
    size_t n2 = up_out_size(c);
    double *out = xmalloc(n2 * sizeof *out), l = 0;
    up_naive(c, out);
    for (size_t i = 0; i < n2; i++)
        l += out[i] * c->r[i];
    free(out);
    return l;
}

/* Factors f per axis: forward vs the naive loop, backward vs finite differences, 1 vs 2
 * threads bitwise; at 2, 2, 2 the scaled functions give nn_upsample3d_forward's bits. */
static int up_check(int Z, int Y, int X, const int f[3]) {
    const int B = 2, C = 3;
    up_case c = {B, C, Z, Y, X, {f[0], f[1], f[2]}, NULL, NULL};
    size_t n = (size_t)B * C * Z * Y * X, n2 = up_out_size(&c);
    rng r;
    rng_seed(&r, 51, (uint64_t)(f[0] * 4 + f[1] * 2 + f[2]));
    c.x = xmalloc(n * 8), c.r = xmalloc(n2 * 8);
    float *x = xmalloc(n * 4), *rr = xmalloc(n2 * 4), *out = xmalloc(n2 * 4);
    float *dx = xmalloc(n * 4), *dx1 = xmalloc(n * 4), *out1 = xmalloc(n2 * 4);
    fill(&r, c.x, x, n, 1.0, 0.0);
    fill(&r, c.r, rr, n2, 1.0, 0.0);
    nn_set_threads(2);
    nn_upsample3d_scaled_forward(out, x, B, C, Z, Y, X, f);
    nn_upsample3d_scaled_backward(dx, rr, B, C, Z, Y, X, f);
    double *ref = xmalloc(n2 * 8);
    up_naive(&c, ref);
    printf("upsample3d B %d C %d %dx%dx%d -> x %d,%d,%d\n", B, C, Z, Y, X, f[0], f[1], f[2]);
    int fails = compare("forward vs naive double", out, ref, n2, 0.0);
    fails += fd_check("d input", up_loss, &c, c.x, n, dx);
    nn_set_threads(1);
    nn_upsample3d_scaled_forward(out1, x, B, C, Z, Y, X, f);
    nn_upsample3d_scaled_backward(dx1, rr, B, C, Z, Y, X, f);
    int same = !memcmp(out, out1, n2 * 4) && !memcmp(dx, dx1, n * 4);
    if (f[0] == 2 && f[1] == 2 && f[2] == 2) {
        nn_upsample3d_forward(out1, x, B, C, Z, Y, X);
        nn_upsample3d_backward(dx1, rr, B, C, Z, Y, X);
        same = same && !memcmp(out, out1, n2 * 4) && !memcmp(dx, dx1, n * 4);
    }
    printf("  1 vs 2 threads%s: %s\n", f[0] + f[1] + f[2] == 6 ? ", x2 spelling" : "",
           same ? "same bits" : "DIFFER");
    fails += !same;
    free(c.x), free(c.r), free(x), free(rr), free(out), free(dx), free(dx1), free(out1), free(ref);
    return fails;
}

static void test_upsample3d(void **st) {
    (void)st;
    static const int f[][3] = {{2, 2, 2}, {1, 2, 2}, {2, 1, 1}, {1, 1, 2},
                               {2, 1, 2}, {1, 2, 1}, {1, 1, 1}};
    int fails = up_check(3, 2, 5, f[0]);
    fails += up_check(1, 3, 4, f[1]); /* a radiograph's decoder */
    for (int i = 2; i < 7; i++)
        fails += up_check(2, 3, 3, f[i]);
    assert_int_equal(fails, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv3d_shapes),  cmocka_unit_test(test_conv3d_fd),
        cmocka_unit_test(test_conv3d_axes_fd), cmocka_unit_test(test_conv3d_slabs),
        cmocka_unit_test(test_instnorm3d),     cmocka_unit_test(test_leaky_relu),
        cmocka_unit_test(test_upsample3d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
