/* nn3d.c — the layers of nn3d.h.
 *
 * A convolution is im2col + GEMM, one slab of output x-rows at a time: for batch item b and
 * rows [r0, r1) of the (Oz * Oy) output rows, col (Ci k^3, P) holds the input voxel under each
 * kernel tap for each of the P = (r1 - r0) Ox outputs, and out[b][:, slab] = w (Co, Ci k^3) @ col.
 * Backward reuses the same pieces:
 *   dw    += dout_slab @ col^T, summed per fixed group of (b, slab) pieces, then over groups;
 *   dinp  at stride 1 is the forward convolution of dout with the flipped, transposed kernel
 *         (padding k - 1 - k/2 = k/2), so it is computed like a forward pass, a gather;
 *         at stride 2 it is dcol = w^T @ dout_slab scattered back (col2im), each piece owning a
 *         fixed group of input channels of one batch item so no two threads add to one voxel.
 * Pieces depend only on the shapes, so every thread count gives the same bits (invariant 3).
 */
#include "nn3d.h"

#include "nn.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* A convolution's geometry for one direction of the product: ci channels of an n volume to co
 * channels on an o grid. The backward pass at stride 1 runs a second, transposed one. */
typedef struct conv_geom {
    int ci, co, k, s, p;
    int n[3], o[3];
    size_t N, O;        /* voxels per channel of input and output */
    size_t in_b, out_b; /* batch strides in floats */
    int kdim;           /* ci k^3: rows of col */
    int rows;           /* output x-rows, Oz * Oy */
    int slab_rows;      /* output x-rows per slab */
    int n_slabs;
} conv_geom;

/* Overflow-checked a * b into *r (0 on overflow). */
static int mul_ok(size_t a, size_t b, size_t *r) { return !__builtin_mul_overflow(a, b, r); }
static int add_ok(size_t a, size_t b, size_t *r) { return !__builtin_add_overflow(a, b, r); }

int nn_conv3d_out_size(int n, int k, int s) {
    if (n < 1 || (k != 1 && k != 3) || (s != 1 && s != 2)) return 0;
    return (n + 2 * (k / 2) - k) / s + 1;
}

/* GEMMs narrower than this waste more than a cache-sized slab saves. */
#define CONV_MIN_COLS 256

/* Slab height in output x-rows for a col of kdim rows: within `budget` floats, but at least
 * CONV_MIN_COLS columns wide and one row. */
static int slab_rows_for(size_t budget, int kdim, int ox, int rows) {
    size_t per_row = (size_t)kdim * (size_t)ox;
    size_t r = budget / (per_row ? per_row : 1);
    size_t min_r = (CONV_MIN_COLS + (size_t)ox - 1) / (size_t)ox;
    if (r < min_r) r = min_r;
    if (r > (size_t)rows) r = (size_t)rows;
    return r < 1 ? 1 : (int)r;
}

/* Fill g for ci channels of an n volume to co channels, stride s; 0 when a size overflows. */
static int geom_init(conv_geom *g, int ci, int co, int k, int s, const int n[3], size_t in_b,
                     size_t out_b, size_t budget) {
    memset(g, 0, sizeof *g);
    g->ci = ci, g->co = co, g->k = k, g->s = s, g->p = k / 2;
    size_t N = 1, O = 1;
    for (int a = 0; a < 3; a++) {
        g->n[a] = n[a];
        g->o[a] = nn_conv3d_out_size(n[a], k, s);
        if (!g->o[a] || !mul_ok(N, (size_t)n[a], &N) || !mul_ok(O, (size_t)g->o[a], &O)) return 0;
    }
    size_t kdim, cn, co_o, rows;
    /* BLAS takes int sizes and leading dimensions: N, O and ci k^3 must fit one */
    if (N > INT_MAX || O > INT_MAX || !mul_ok((size_t)ci, (size_t)(k * k * k), &kdim) ||
        kdim > INT_MAX || !mul_ok((size_t)ci, N, &cn) || !mul_ok((size_t)co, O, &co_o) ||
        !mul_ok((size_t)g->o[0], (size_t)g->o[1], &rows))
        return 0;
    g->N = N, g->O = O, g->kdim = (int)kdim, g->rows = (int)rows;
    g->in_b = in_b ? in_b : cn;
    g->out_b = out_b ? out_b : co_o;
    if (g->in_b < cn || g->out_b < co_o) return 0; /* items would overlap */
    g->slab_rows = slab_rows_for(budget, g->kdim, g->o[2], g->rows);
    g->n_slabs = (g->rows + g->slab_rows - 1) / g->slab_rows;
    return 1;
}

/* The geometry of the forward pass, and of the stride-1 input gradient (dout -> dinp); at
 * stride 2 bw only carries dinp's batch stride. */
static int shape_geoms(const nn_conv3d_shape *s, conv_geom *fw, conv_geom *bw) {
    if (!s || s->B < 1 || s->Ci < 1 || s->Co < 1) return 0;
    size_t budget = s->slab_floats ? s->slab_floats : NN_CONV_SLAB_FLOATS;
    if (!geom_init(fw, s->Ci, s->Co, s->k, s->s, s->n, s->inp_bstride, s->out_bstride, budget))
        return 0;
    if (s->s == 1) {
        /* Co channels of dout on the input grid to Ci channels of dinp on the same */
        if (!geom_init(bw, s->Co, s->Ci, s->k, 1, s->n, fw->out_b, s->dinp_bstride, budget))
            return 0;
    } else {
        memset(bw, 0, sizeof *bw);
        bw->out_b = s->dinp_bstride ? s->dinp_bstride : (size_t)s->Ci * fw->N;
        if (bw->out_b < (size_t)s->Ci * fw->N) return 0;
    }
    size_t last; /* every item's end must be addressable */
    const size_t strides[3] = {fw->in_b, fw->out_b, bw->out_b};
    for (int i = 0; i < 3; i++)
        if (!mul_ok((size_t)(s->B - 1), strides[i], &last) || !add_ok(last, strides[i], &last) ||
            last > SIZE_MAX / sizeof(float))
            return 0;
    return 1;
}

/* Input-channel groups of the stride-2 input gradient: enough pieces for 8 threads. */
static int cig_size(const nn_conv3d_shape *s) {
    int want = (8 + s->B - 1) / s->B; /* groups per batch item */
    if (want > s->Ci) want = s->Ci;
    return (s->Ci + want - 1) / want;
}

static int n_groups(const conv_geom *g, int B) {
    long long items = (long long)B * g->n_slabs;
    return items < NN_CONV_GROUPS ? (int)items : NN_CONV_GROUPS;
}

/* Scratch layout, in floats: [flipped w | dw partials | per-thread slab * threads]. */
typedef struct conv_layout {
    size_t wflip, partials, per_thread, total;
} conv_layout;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int layout_for(const nn_conv3d_shape *s, const conv_geom *fw, const conv_geom *bw,
                      int threads, conv_layout *L) {
    size_t k3 = (size_t)(s->k * s->k * s->k), wsize, part, fcol, bcol, dcol, t;
    if (!mul_ok((size_t)s->Co, (size_t)fw->kdim, &wsize)) return 0;
    if (!mul_ok(wsize, (size_t)n_groups(fw, s->B), &part)) return 0;
    /* forward and dw: col (kdim, slab); stride-1 dinp: col of dout (Co k^3, slab of the input
     * grid); stride-2 dinp: dcol (cig k^3, slab) */
    if (!mul_ok((size_t)fw->kdim, (size_t)fw->slab_rows * (size_t)fw->o[2], &fcol) ||
        !mul_ok((size_t)bw->kdim, (size_t)bw->slab_rows * (size_t)bw->o[2], &bcol) ||
        !mul_ok((size_t)cig_size(s) * k3, (size_t)fw->slab_rows * (size_t)fw->o[2], &dcol))
        return 0;
    size_t per = fcol;
    if (s->s == 1 && bcol > per) per = bcol;
    if (s->s == 2 && dcol > per) per = dcol;
    L->wflip = s->s == 1 ? round16(wsize) : 0;
    L->partials = round16(part);
    L->per_thread = round16(per);
    if (threads < 1 || !mul_ok(L->per_thread, (size_t)threads, &t) ||
        !add_ok(t, L->wflip + L->partials, &L->total) || L->total > SIZE_MAX / sizeof(float))
        return 0;
    return 1;
}

size_t nn_conv3d_scratch(const nn_conv3d_shape *s, int threads) {
    conv_geom fw, bw;
    conv_layout L;
    if (!shape_geoms(s, &fw, &bw) || !layout_for(s, &fw, &bw, threads, &L)) return 0;
    return L.total;
}

/* A shape nn_conv3d_scratch refuses is a caller's bug (it sized nothing): stop, loudly. */
static void shape_or_die(const char *fn, const nn_conv3d_shape *s, conv_geom *fw, conv_geom *bw,
                         conv_layout *L) {
    if (shape_geoms(s, fw, bw) && layout_for(s, fw, bw, nn_threads(), L)) return;
    fprintf(stderr, "%s: invalid shape (nn_conv3d_scratch returns 0 for it)\n", fn);
    abort();
}

size_t nn_conv3d_out_voxels(const nn_conv3d_shape *s) {
    conv_geom fw, bw;
    return shape_geoms(s, &fw, &bw) ? fw.O : 0;
}

double nn_conv3d_flops(const nn_conv3d_shape *s) {
    conv_geom fw, bw;
    if (!shape_geoms(s, &fw, &bw)) return 0.0;
    return 2.0 * s->B * (double)s->Co * (double)fw.O * (double)fw.kdim;
}

/* --------------------------------------------------------------------- im2col, col2im */
/* Valid output range [lo, hi) along an axis for kernel tap t: 0 <= o s + t - p < n. */
static void tap_range(int n, int o, int s, int t, int p, int *lo, int *hi) {
    int d = t - p; /* input index = o s + d, d in [-1, 1] */
    int l = d < 0 ? (-d + s - 1) / s : 0;
    int h = n - 1 - d < 0 ? 0 : (n - 1 - d) / s + 1;
    if (h > o) h = o;
    *lo = l, *hi = h > l ? h : l;
}

/* Stride 1 (so the output grid is the input's): a col row of tap (kz, ky, kx) is the input
 * shifted by a constant flat offset, so it is one copy, after which the outputs whose tap falls
 * outside the volume (a y or z border row, an x border column) are set to 0. */
static void vol2col_s1(float *restrict col, size_t ld, const float *restrict in, const conv_geom *g,
                       int c0, int c1, int r0, int r1) {
    const int k = g->k, p = g->p, X = g->n[2], Y = g->n[1], Z = g->n[0];
    const long long q0 = (long long)r0 * X, q1 = (long long)r1 * X, N = (long long)g->N;
    size_t row = 0;
    for (int c = c0; c < c1; c++) {
        const float *src = in + (size_t)c * g->N;
        for (int kz = 0; kz < k; kz++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++, row++) {
                    float *dst = col + row * ld;
                    const int dz = kz - p, dy = ky - p, dx = kx - p;
                    long long off = ((long long)dz * Y + dy) * X + dx;
                    /* [a, b): the outputs whose shifted index lies inside the channel */
                    long long a = q0 + off < 0 ? -off : q0, b = q1 + off > N ? N - off : q1;
                    if (a > q1) a = q1;
                    if (b < a) b = a;
                    memset(dst, 0, (size_t)(a - q0) * sizeof *dst);
                    memcpy(dst + (a - q0), src + a + off, (size_t)(b - a) * sizeof *dst);
                    memset(dst + (b - q0), 0, (size_t)(q1 - b) * sizeof *dst);
                    if (dz || dy) { /* rows whose input row lies outside the volume */
                        int oz = r0 / Y, oy = r0 % Y;
                        for (int r = r0; r < r1; r++) {
                            int iz = oz + dz, iy = oy + dy;
                            if (iz < 0 || iz >= Z || iy < 0 || iy >= Y)
                                memset(dst + (size_t)(r - r0) * X, 0, (size_t)X * sizeof *dst);
                            if (++oy == Y) oy = 0, oz++;
                        }
                    }
                    if (dx) { /* the x border column: x = 0 for dx < 0, x = X - 1 for dx > 0 */
                        float *e = dst + (dx < 0 ? 0 : X - 1);
                        for (int r = r0; r < r1; r++, e += X)
                            *e = 0.0f;
                    }
                }
    }
}

/* col (rows (c, kz, ky, kx) for c in [c0, c1), columns the outputs of x-rows [r0, r1), leading
 * dimension ld) from one batch item's input in (ci, N). Taps outside the volume are 0. */
static void vol2col(float *restrict col, size_t ld, const float *restrict in, const conv_geom *g,
                    int c0, int c1, int r0, int r1) {
    if (g->s == 1) {
        vol2col_s1(col, ld, in, g, c0, c1, r0, r1);
        return;
    }
    const int k = g->k, s = g->s, p = g->p, X = g->n[2], Y = g->n[1], Z = g->n[0];
    const int Ox = g->o[2], Oy = g->o[1];
    int xlo[3], xhi[3];
    for (int kx = 0; kx < k; kx++)
        tap_range(X, Ox, s, kx, p, &xlo[kx], &xhi[kx]);
    size_t row = 0;
    for (int c = c0; c < c1; c++)
        for (int kz = 0; kz < k; kz++)
            for (int ky = 0; ky < k; ky++, row += (size_t)k) {
                float *dst = col + row * ld;
                int oz = r0 / Oy, oy = r0 % Oy;
                for (int r = r0; r < r1; r++, dst += Ox) {
                    int iz = oz * s + kz - p, iy = oy * s + ky - p;
                    if (++oy == Oy) oy = 0, oz++;
                    int outside = iz < 0 || iz >= Z || iy < 0 || iy >= Y;
                    const float *src = in + (size_t)c * g->N + ((size_t)iz * Y + iy) * X;
                    for (int kx = 0; kx < k; kx++) { /* each input row read once for k taps */
                        float *d = dst + kx * ld;
                        int lo = outside ? Ox : xlo[kx], hi = outside ? Ox : xhi[kx];
                        const int dx = kx - p;
                        for (int ox = 0; ox < lo; ox++)
                            d[ox] = 0.0f;
                        for (int ox = lo; ox < hi; ox++)
                            d[ox] = src[s * ox + dx];
                        for (int ox = hi; ox < Ox; ox++)
                            d[ox] = 0.0f;
                    }
                }
            }
}

/* The transpose of vol2col: din (ci, N) of one batch item += dcol, for channels [c0, c1) (rows
 * from 0) and x-rows [r0, r1). Each voxel's sum runs in (tap, row) order. */
static void col2vol_add(float *restrict din, const float *restrict dcol, size_t ld,
                        const conv_geom *g, int c0, int c1, int r0, int r1) {
    const int k = g->k, s = g->s, p = g->p, X = g->n[2], Y = g->n[1], Z = g->n[0];
    const int Ox = g->o[2], Oy = g->o[1];
    int xlo[3], xhi[3];
    for (int kx = 0; kx < k; kx++)
        tap_range(X, Ox, s, kx, p, &xlo[kx], &xhi[kx]);
    size_t row = 0;
    for (int c = c0; c < c1; c++)
        for (int kz = 0; kz < k; kz++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++, row++) {
                    const float *src = dcol + row * ld;
                    const int lo = xlo[kx], hi = xhi[kx], d = kx - p;
                    int oz = r0 / Oy, oy = r0 % Oy;
                    for (int r = r0; r < r1; r++, src += Ox) {
                        int iz = oz * s + kz - p, iy = oy * s + ky - p;
                        if (++oy == Oy) oy = 0, oz++;
                        if (iz < 0 || iz >= Z || iy < 0 || iy >= Y) continue;
                        float *dst = din + (size_t)c * g->N + ((size_t)iz * Y + iy) * X;
                        for (int ox = lo; ox < hi; ox++)
                            dst[s * ox + d] += src[ox];
                    }
                }
}

/* ------------------------------------------------------------------------- conv pieces */
/* One forward piece: out[b][:, slab j] = w @ col (+ bias), col from scratch `col`. */
static void conv_piece(float *out, const float *in, const float *w, const float *bias, float *col,
                       const conv_geom *g, int j) {
    int r0 = j * g->slab_rows, r1 = r0 + g->slab_rows;
    if (r1 > g->rows) r1 = g->rows;
    int P = (r1 - r0) * g->o[2];
    size_t p0 = (size_t)r0 * g->o[2];
    const float *b_mat = col;
    int ldb = P;
    if (g->k == 1 && g->s == 1) { /* the input itself is col */
        b_mat = in + p0;
        ldb = (int)g->N;
    } else {
        vol2col(col, (size_t)P, in, g, 0, g->ci, r0, r1);
    }
    float beta = 0.0f;
    if (bias) {
        for (int c = 0; c < g->co; c++) {
            float *o = out + (size_t)c * g->O + p0, v = bias[c];
            for (int i = 0; i < P; i++)
                o[i] = v;
        }
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->co, P, g->kdim, 1.0f, w, g->kdim,
                b_mat, ldb, beta, out + p0, (int)g->O);
}

/* Every (b, slab) piece of a forward convolution, shared dynamically among the threads. */
static void conv_forward_all(float *out, const float *inp, const float *w, const float *bias,
                             float *per_thread, size_t per_thread_floats, const conv_geom *g,
                             int B) {
    long long items = (long long)B * g->n_slabs;
#pragma omp parallel
    {
        float *col = per_thread + (size_t)nn_thread_id() * per_thread_floats;
#pragma omp for schedule(dynamic, 1)
        for (long long it = 0; it < items; it++) {
            int b = (int)(it / g->n_slabs), j = (int)(it % g->n_slabs);
            conv_piece(out + (size_t)b * g->out_b, inp + (size_t)b * g->in_b, w, bias, col, g, j);
        }
    }
}

void nn_conv3d_forward(float *out, const float *inp, const float *w, const float *bias,
                       float *scratch, const nn_conv3d_shape *s) {
    conv_geom fw, bw;
    conv_layout L;
    shape_or_die("nn_conv3d_forward", s, &fw, &bw, &L);
    conv_forward_all(out, inp, w, bias, scratch + L.wflip + L.partials, L.per_thread, &fw, s->B);
}

/* db[c] += the sum of dout over batch and voxels; each channel's sum in (b, voxel) order. */
static void conv_bias_grad(float *db, const float *dout, const conv_geom *g, int B) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < g->co; c++) {
        double acc = 0.0;
        for (int b = 0; b < B; b++) {
            const float *d = dout + (size_t)b * g->out_b + (size_t)c * g->O;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (size_t i = 0; i < g->O; i++)
                sum += d[i];
            acc += sum;
        }
        db[c] += (float)acc;
    }
}

/* dw += dout @ col^T: the (b, slab) pieces in order, cut into groups fixed by the shape; each
 * group sums its pieces into its own partial, then dw adds the partials in group order. */
static void conv_weight_grad(float *dw, const float *dout, const float *inp, float *partials,
                             float *per_thread, size_t per_thread_floats, const conv_geom *g,
                             int B) {
    long long items = (long long)B * g->n_slabs;
    int G = n_groups(g, B);
    size_t wsize = (size_t)g->co * g->kdim;
#pragma omp parallel
    {
        float *col = per_thread + (size_t)nn_thread_id() * per_thread_floats;
#pragma omp for schedule(dynamic, 1)
        for (int grp = 0; grp < G; grp++) {
            float *part = partials + (size_t)grp * wsize;
            long long lo = items * grp / G, hi = items * (grp + 1) / G;
            for (long long it = lo; it < hi; it++) {
                int b = (int)(it / g->n_slabs), j = (int)(it % g->n_slabs);
                int r0 = j * g->slab_rows, r1 = r0 + g->slab_rows;
                if (r1 > g->rows) r1 = g->rows;
                int P = (r1 - r0) * g->o[2];
                size_t p0 = (size_t)r0 * g->o[2];
                const float *in = inp + (size_t)b * g->in_b, *b_mat = col;
                int ldb = P;
                if (g->k == 1 && g->s == 1) {
                    b_mat = in + p0;
                    ldb = (int)g->N;
                } else {
                    vol2col(col, (size_t)P, in, g, 0, g->ci, r0, r1);
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->co, g->kdim, P, 1.0f,
                            dout + (size_t)b * g->out_b + p0, (int)g->O, b_mat, ldb,
                            it == lo ? 0.0f : 1.0f, part, g->kdim);
            }
        }
#pragma omp for schedule(static)
        for (size_t i = 0; i < wsize; i++) {
            float t = partials[i];
            for (int grp = 1; grp < G; grp++)
                t += partials[(size_t)grp * wsize + i];
            dw[i] += t;
        }
    }
}

/* Stride-2 dinp: pieces (b, channel group); each zeroes its channels, then for every slab
 * computes dcol = w[:, group]^T @ dout_slab and scatters it (col2im). */
static void conv_input_grad_s2(float *dinp, const float *dout, const float *w, float *per_thread,
                               size_t per_thread_floats, const conv_geom *g, int B, int cig,
                               size_t dinp_b) {
    int n_cig = (g->ci + cig - 1) / cig, k3 = g->k * g->k * g->k;
    long long items = (long long)B * n_cig;
#pragma omp parallel
    {
        float *dcol = per_thread + (size_t)nn_thread_id() * per_thread_floats;
#pragma omp for schedule(dynamic, 1)
        for (long long it = 0; it < items; it++) {
            int b = (int)(it / n_cig), c0 = (int)(it % n_cig) * cig, c1 = c0 + cig;
            if (c1 > g->ci) c1 = g->ci;
            float *din = dinp + (size_t)b * dinp_b;
            memset(din + (size_t)c0 * g->N, 0, (size_t)(c1 - c0) * g->N * sizeof *din);
            for (int j = 0; j < g->n_slabs; j++) {
                int r0 = j * g->slab_rows, r1 = r0 + g->slab_rows;
                if (r1 > g->rows) r1 = g->rows;
                int P = (r1 - r0) * g->o[2];
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (c1 - c0) * k3, P, g->co, 1.0f,
                            w + (size_t)c0 * k3, g->kdim,
                            dout + (size_t)b * g->out_b + (size_t)r0 * g->o[2], (int)g->O, 0.0f,
                            dcol, P);
                col2vol_add(din, dcol, (size_t)P, g, c0, c1, r0, r1);
            }
        }
    }
}

void nn_conv3d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, float *scratch, const nn_conv3d_shape *s) {
    conv_geom fw, bw;
    conv_layout L;
    shape_or_die("nn_conv3d_backward", s, &fw, &bw, &L);
    float *wflip = scratch, *partials = scratch + L.wflip;
    float *per_thread = partials + L.partials;
    if (db) conv_bias_grad(db, dout, &fw, s->B);
    conv_weight_grad(dw, dout, inp, partials, per_thread, L.per_thread, &fw, s->B);
    if (!dinp) return;
    if (s->s == 2) {
        conv_input_grad_s2(dinp, dout, w, per_thread, L.per_thread, &fw, s->B, cig_size(s),
                           bw.out_b);
        return;
    }
    /* stride 1: dinp = conv(dout, wflip), wflip[ci][co][t] = w[co][ci][k^3 - 1 - t] */
    int k3 = s->k * s->k * s->k;
    for (int ci = 0; ci < s->Ci; ci++)
        for (int co = 0; co < s->Co; co++) {
            const float *src = w + ((size_t)co * s->Ci + ci) * k3;
            float *dst = wflip + ((size_t)ci * s->Co + co) * k3;
            for (int t = 0; t < k3; t++)
                dst[t] = src[k3 - 1 - t];
        }
    conv_forward_all(dinp, dout, wflip, NULL, per_thread, L.per_thread, &bw, s->B);
}

/* ---------------------------------------------------------------------- instancenorm */
void nn_instnorm3d_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *gamma, const float *beta, int B, int C, size_t N) {
    long long items = (long long)B * C;
#pragma omp parallel for schedule(static)
    for (long long it = 0; it < items; it++) {
        const float *x = inp + (size_t)it * N;
        float *y = out + (size_t)it * N;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < N; i++)
            sum += x[i];
        double mu = sum / (double)N, var = 0.0;
#pragma omp simd reduction(+ : var)
        for (size_t i = 0; i < N; i++) {
            double d = x[i] - mu;
            var += d * d;
        }
        var /= (double)N; /* biased, as torch */
        double r = 1.0 / sqrt(var + NN_IN_EPS);
        int c = (int)(it % C);
        float m = (float)mu, a = (float)(r * gamma[c]), sh = beta[c];
        for (size_t i = 0; i < N; i++)
            y[i] = (x[i] - m) * a + sh;
        mean[it] = (float)mu;
        rstd[it] = (float)r;
    }
}

void nn_instnorm3d_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *inp, const float *gamma, const float *mean,
                            const float *rstd, int B, int C, size_t N) {
    /* each thread owns channels and walks the batch in order: dgamma, dbeta sum in b order */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double gsum = 0.0, bsum = 0.0;
        for (int b = 0; b < B; b++) {
            size_t it = (size_t)b * C + c;
            const float *x = inp + it * N, *dy = dout + it * N;
            float *dx = dinp + it * N;
            float mu = mean[it], r = rstd[it];
            double sdy = 0.0, sdyx = 0.0;
#pragma omp simd reduction(+ : sdy, sdyx)
            for (size_t i = 0; i < N; i++) {
                sdy += dy[i];
                sdyx += dy[i] * ((x[i] - mu) * r);
            }
            gsum += sdyx, bsum += sdy;
            /* dx = gamma r (dy - mean(dy) - xhat mean(dy xhat)) */
            float gr = gamma[c] * r, m1 = (float)(sdy / (double)N), m2 = (float)(sdyx / (double)N);
            for (size_t i = 0; i < N; i++)
                dx[i] = gr * (dy[i] - m1 - ((x[i] - mu) * r) * m2);
        }
        dgamma[c] += (float)gsum;
        dbeta[c] += (float)bsum;
    }
}

/* ------------------------------------------------------------------------ leaky relu */
void nn_leaky_relu_forward(float *out, const float *inp, size_t n, float slope) {
    long long nn = (long long)n;
#pragma omp parallel for simd schedule(static)
    for (long long i = 0; i < nn; i++)
        out[i] = inp[i] * (inp[i] > 0.0f ? 1.0f : slope); /* a select, no branch; NaN stays */
}

void nn_leaky_relu_backward(float *dinp, const float *dout, const float *inp, size_t n,
                            float slope) {
    long long nn = (long long)n;
#pragma omp parallel for simd schedule(static)
    for (long long i = 0; i < nn; i++)
        dinp[i] = dout[i] * (inp[i] > 0.0f ? 1.0f : slope);
}

/* ------------------------------------------------------------------------- upsample */
void nn_upsample3d_forward(float *out, const float *inp, int B, int C, int Z, int Y, int X) {
    long long planes = (long long)B * C * Z;
    size_t X2 = 2 * (size_t)X, plane2 = 4 * (size_t)Y * X; /* one output z-plane */
#pragma omp parallel for schedule(static)
    for (long long pl = 0; pl < planes; pl++) {
        const float *src = inp + (size_t)pl * Y * X;
        float *dst = out + (size_t)pl * 2 * plane2;
        for (int y = 0; y < Y; y++) {
            float *row = dst + 2 * (size_t)y * X2;
            const float *s = src + (size_t)y * X;
            for (int x = 0; x < X; x++)
                row[2 * x] = row[2 * x + 1] = s[x];
            memcpy(row + X2, row, X2 * sizeof *row);
        }
        memcpy(dst + plane2, dst, plane2 * sizeof *dst);
    }
}

void nn_upsample3d_backward(float *dinp, const float *dout, int B, int C, int Z, int Y, int X) {
    long long planes = (long long)B * C * Z;
    size_t X2 = 2 * (size_t)X, plane2 = 4 * (size_t)Y * X;
#pragma omp parallel for schedule(static)
    for (long long pl = 0; pl < planes; pl++) {
        float *d = dinp + (size_t)pl * Y * X;
        const float *g = dout + (size_t)pl * 2 * plane2;
        for (int y = 0; y < Y; y++) {
            const float *r00 = g + 2 * (size_t)y * X2, *r01 = r00 + X2;
            const float *r10 = r00 + plane2, *r11 = r01 + plane2;
            float *dr = d + (size_t)y * X;
            for (int x = 0; x < X; x++) { /* fixed order: dz, dy, dx */
                int i = 2 * x;
                dr[x] = ((((((r00[i] + r00[i + 1]) + r01[i]) + r01[i + 1]) + r10[i]) + r10[i + 1]) +
                         r11[i]) +
                        r11[i + 1];
            }
        }
    }
}
