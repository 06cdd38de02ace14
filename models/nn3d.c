/* nn3d.c — the layers of nn3d.h.
 *
 * A convolution is a col matrix (im2col) times the weights, one bounded piece of one batch item
 * at a time, each piece computed by one thread with single-threaded OpenBLAS:
 *   stride 2 along any axis, and k = 1 ("rows"): col (Ci k^3, P) holds the input voxel under
 *     each kernel tap for the P outputs of a slab of output x-rows;
 *     out[b][:, slab] = w (Co, Ci k^3) @ col. At k = 1, stride 1 the input itself is col.
 *   stride 1 on every axis, k = 3 ("planes"): a piece is a run of output planes of one item,
 *     walked plane by plane (in bands of rows when a plane is large). The col of an input plane
 *     holds only its 9 in-plane taps (9 Ci, band); output plane z is the sum over kz of
 *     w_kz (Co, 9 Ci) @ col(plane z + kz - 1). The cols of the last three planes stay in a ring,
 *     so each input plane's col is written once per run, a third of im2col's writes.
 * Backward:
 *   rows:   dw^T += col @ dout_slab^T per piece; strided dinp is dcol = w^T @ dout_slab
 *           scattered back (col2im), each piece owning a fixed group of input channels of one
 *           item so no two threads add to one voxel; at k = 1, stride 1, dinp = w^T @ dout.
 *   planes: dinp is the forward convolution of dout with the flipped, transposed kernel
 *           (padding k - 1 - k/2 = k/2), walked like the forward pass over cols of dout, and
 *           the same cols give the weight gradient, dw^T += col(dout) @ inp^T: one walk, and
 *           no col of the input at all.
 *   Weight gradients are summed per fixed group of pieces into partials, then over the groups
 *   in order. Pieces and groups depend only on the shapes, so every thread count gives the
 *   same bits (invariant 3).
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

/* A convolution's geometry for one direction of the product: ci channels of an n volume to co
 * channels on an o grid, stride s[a] along axis a. The backward pass at stride 1 runs a second,
 * transposed one. */
typedef struct conv_geom {
    int ci, co, k, s[3], p;
    int unit; /* stride 1 on every axis */
    int n[3], o[3];
    size_t N, O;        /* voxels per channel of input and output */
    size_t plane;       /* output voxels per z-plane, Oy Ox */
    size_t in_b, out_b; /* batch strides in floats */
    int planes;         /* 1: the stride-1 3^3 path, slabs of whole planes and 9-tap cols */
    int kz0, kzn;       /* rows path: the z-taps col holds, [kz0, kz0 + kzn) (thin: 1, 1) */
    int taps;           /* rows of col per channel: kzn k^2 (9 on the plane path) */
    int kdim;           /* rows of col: ci taps */
    int rows;           /* output x-rows, Oz Oy */
    int slab_rows;      /* output x-rows per slab (whole planes on the plane path) */
    int n_slabs;
    int band_rows;     /* plane path: rows per band of a plane */
    size_t col_floats; /* one slab's col (plane path: the ring of three band cols) */
} conv_geom;

int nn_conv3d_stride(const nn_conv3d_shape *s, int a) { return s->sa[a] ? s->sa[a] : s->s; }

/* Overflow-checked a * b into *r (0 on overflow). */
static int mul_ok(size_t a, size_t b, size_t *r) { return !__builtin_mul_overflow(a, b, r); }
static int add_ok(size_t a, size_t b, size_t *r) { return !__builtin_add_overflow(a, b, r); }

int nn_conv3d_out_size(int n, int k, int s) {
    if (n < 1 || (k != 1 && k != 3) || (s != 1 && s != 2)) return 0;
    return (n + 2 * (k / 2) - k) / s + 1;
}

/* GEMMs narrower than this waste more than a cache-sized slab saves. */
#define CONV_MIN_COLS 256
/* Slabs per batch item are at least ceil(this / B), so a small batch still feeds the threads. */
#define CONV_MIN_PIECES 8

/* Slab size in units (output x-rows) of `unit_cols` columns whose col takes `per_unit` floats
 * each: within `budget`, at least CONV_MIN_COLS wide and one unit, at most
 * `units` / ceil(CONV_MIN_PIECES / B). */
static int slab_units(size_t budget, size_t per_unit, size_t unit_cols, int units, int B) {
    size_t u = budget / (per_unit ? per_unit : 1);
    size_t min_u = (CONV_MIN_COLS + unit_cols - 1) / unit_cols;
    if (u < min_u) u = min_u;
    int want = (CONV_MIN_PIECES + B - 1) / B;
    size_t max_u = ((size_t)units + (size_t)want - 1) / (size_t)want;
    if (u > max_u) u = max_u;
    return u < 1 ? 1 : (int)u;
}

/* Fill g for ci channels of an n volume to co channels, stride s, batch B; 0 when a size
 * overflows size_t or BLAS's int. */
static int geom_init(conv_geom *g, int ci, int co, int k, const int s[3], const int n[3], int B,
                     size_t in_b, size_t out_b, size_t budget) {
    memset(g, 0, sizeof *g);
    g->ci = ci, g->co = co, g->k = k, g->p = k / 2, g->unit = 1;
    size_t N = 1, O = 1;
    for (int a = 0; a < 3; a++) {
        g->n[a] = n[a], g->s[a] = s[a], g->unit &= s[a] == 1;
        g->o[a] = nn_conv3d_out_size(n[a], k, s[a]);
        if (!g->o[a] || !mul_ok(N, (size_t)n[a], &N) || !mul_ok(O, (size_t)g->o[a], &O)) return 0;
    }
    g->planes = g->unit && k == 3;
    /* one input plane (a radiograph): the outer z-taps only ever read the zero padding, so the
     * rows path leaves them out of col and of the GEMMs (the plane path skips them anyway) */
    int thin = !g->planes && k == 3 && n[0] == 1;
    g->kz0 = thin ? 1 : 0, g->kzn = thin ? 1 : k;
    g->taps = g->planes ? 9 : g->kzn * k * k;
    size_t kdim, cn, co_o, rows, plane = (size_t)g->o[1] * (size_t)g->o[2];
    /* BLAS takes int sizes and leading dimensions: N, O, the col's rows and width must fit */
    if (N > INT_MAX || O > INT_MAX || !mul_ok((size_t)ci, (size_t)g->taps, &kdim) ||
        kdim > INT_MAX || !mul_ok((size_t)ci, N, &cn) || !mul_ok((size_t)co, O, &co_o) ||
        !mul_ok((size_t)g->o[0], (size_t)g->o[1], &rows))
        return 0;
    g->N = N, g->O = O, g->plane = plane, g->kdim = (int)kdim, g->rows = (int)rows;
    g->in_b = in_b ? in_b : cn;
    g->out_b = out_b ? out_b : co_o;
    if (g->in_b < cn || g->out_b < co_o) return 0; /* items would overlap */
    size_t width, per_unit;
    if (g->planes) { /* runs as long as the threads allow; bands within the budget */
        int want = (CONV_MIN_PIECES + B - 1) / B;
        g->slab_rows = ((g->o[0] + want - 1) / want) * g->o[1];
        if (!mul_ok(3 * kdim, (size_t)g->o[2], &per_unit)) return 0;
        g->band_rows = slab_units(budget, per_unit, (size_t)g->o[2], g->o[1], 1);
        if (!mul_ok(3 * (size_t)g->band_rows, (size_t)g->o[2], &width) || width > INT_MAX) return 0;
    } else {
        if (!mul_ok(kdim, (size_t)g->o[2], &per_unit)) return 0;
        g->slab_rows = slab_units(budget, per_unit, (size_t)g->o[2], g->rows, B);
        width = (size_t)g->slab_rows * (size_t)g->o[2];
    }
    g->n_slabs = (g->rows + g->slab_rows - 1) / g->slab_rows;
    return mul_ok(kdim, width, &g->col_floats);
}

/* The geometry of the forward pass, and of the stride-1 input gradient (dout -> dinp); when
 * some axis has stride 2, bw only carries dinp's batch stride. */
static int shape_geoms(const nn_conv3d_shape *s, conv_geom *fw, conv_geom *bw) {
    if (!s || s->B < 1 || s->Ci < 1 || s->Co < 1) return 0;
    size_t budget = s->slab_floats ? s->slab_floats : NN_CONV_SLAB_FLOATS;
    const int st[3] = {nn_conv3d_stride(s, 0), nn_conv3d_stride(s, 1), nn_conv3d_stride(s, 2)};
    if (!geom_init(fw, s->Ci, s->Co, s->k, st, s->n, s->B, s->inp_bstride, s->out_bstride, budget))
        return 0;
    if (fw->unit) {
        /* Co channels of dout on the input grid to Ci channels of dinp on the same */
        if (!geom_init(bw, s->Co, s->Ci, s->k, st, s->n, s->B, fw->out_b, s->dinp_bstride, budget))
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

/* Input-channel groups of the strided input gradient: enough pieces for 8 threads. */
static int cig_size(const nn_conv3d_shape *s) {
    int want = (CONV_MIN_PIECES + s->B - 1) / s->B; /* groups per batch item */
    if (want > s->Ci) want = s->Ci;
    return (s->Ci + want - 1) / want;
}

static int n_groups(const conv_geom *g, int B) {
    long long items = (long long)B * g->n_slabs;
    return items < NN_CONV_GROUPS ? (int)items : NN_CONV_GROUPS;
}

/* Scratch layout, in floats: [reordered w | dw partials | per-thread slab * threads]. */
typedef struct conv_layout {
    size_t wbuf, partials, per_thread, total;
} conv_layout;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int layout_for(const nn_conv3d_shape *s, const conv_geom *fw, const conv_geom *bw,
                      int threads, conv_layout *L) {
    size_t k3 = (size_t)(s->k * s->k * s->k), wsize, part, dcol, t;
    if (!mul_ok((size_t)s->Co * (size_t)s->Ci, k3, &wsize)) return 0;
    int G = n_groups(fw, s->B);
    if (fw->unit && n_groups(bw, s->B) > G) G = n_groups(bw, s->B);
    if (!mul_ok(wsize, (size_t)G, &part)) return 0;
    /* forward and dw: fw's col; stride-1 dinp: bw's col (of dout); strided dinp: dcol
     * (cig k^3, slab) */
    if (!mul_ok((size_t)cig_size(s) * k3, (size_t)fw->slab_rows * (size_t)fw->o[2], &dcol))
        return 0;
    size_t per = fw->col_floats;
    if (fw->unit && bw->col_floats > per) per = bw->col_floats;
    if (!fw->unit && dcol > per) per = dcol;
    L->wbuf = fw->unit || fw->kzn < fw->k ? round16(wsize) : 0;
    L->partials = round16(part);
    L->per_thread = round16(per);
    if (threads < 1 || !mul_ok(L->per_thread, (size_t)threads, &t) ||
        !add_ok(t, L->wbuf + L->partials, &L->total) || L->total > SIZE_MAX / sizeof(float))
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
    return 2.0 * s->B * (double)s->Co * (double)fw.O * (double)s->Ci * s->k * s->k * s->k;
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

/* The plane path's col of input plane z, rows [y0, y1): rows (c, ky, kx) for c in [0, ci),
 * column (y - y0) X + x holding in[c][z][y + ky - 1][x + kx - 1], 0 outside the plane. A tap
 * is a constant shift of the flat index, so each row is one copy; then the border row (dy) and
 * border column (dx) that the shift took from a neighbouring row or plane are set to 0. */
static void vol2col_band(float *restrict col, size_t ld, const float *restrict in,
                         const conv_geom *g, int z, int y0, int y1) {
    const int X = g->n[2], Y = g->n[1];
    const long long q0 = ((long long)z * Y + y0) * X, q1 = ((long long)z * Y + y1) * X;
    const long long N = (long long)g->N;
    const size_t rows = (size_t)(y1 - y0);
    size_t row = 0;
    for (int c = 0; c < g->ci; c++) {
        const float *src = in + (size_t)c * g->N;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++, row++) {
                float *d = col + row * ld;
                long long off = (long long)dy * X + dx;
                /* [a, b): the voxels whose shifted index lies inside the channel */
                long long a = q0 + off < 0 ? -off : q0, b = q1 + off > N ? N - off : q1;
                if (a > q1) a = q1;
                if (b < a) b = a;
                memset(d, 0, (size_t)(a - q0) * sizeof *d);
                memcpy(d + (a - q0), src + a + off, (size_t)(b - a) * sizeof *d);
                memset(d + (b - q0), 0, (size_t)(q1 - b) * sizeof *d);
                if (dy < 0 && y0 == 0) memset(d, 0, (size_t)X * sizeof *d);
                if (dy > 0 && y1 == Y) memset(d + (rows - 1) * X, 0, (size_t)X * sizeof *d);
                if (dx) { /* the border column: x = 0 for dx < 0, X - 1 for dx > 0 */
                    float *e = d + (dx < 0 ? 0 : X - 1);
                    for (size_t r = 0; r < rows; r++, e += X)
                        *e = 0.0f;
                }
            }
    }
}

/* The three x-taps of one input row at stride 2 (padding 1): d0[o] = src[2o - 1],
 * d1[o] = src[2o], d2[o] = src[2o + 1], 0 where the index leaves [0, X). */
static inline void gather3_s2(float *restrict d0, float *restrict d1, float *restrict d2,
                              const float *restrict src, int Ox, int X) {
    int hi = (X - 1) / 2; /* outputs 1 .. hi - 1 have all three taps inside */
    d0[0] = 0.0f, d1[0] = src[0], d2[0] = X > 1 ? src[1] : 0.0f;
    for (int o = 1; o < hi; o++) {
        d0[o] = src[2 * o - 1];
        d1[o] = src[2 * o];
        d2[o] = src[2 * o + 1];
    }
    for (int o = hi > 1 ? hi : 1; o < Ox; o++) {
        d0[o] = src[2 * o - 1];
        d1[o] = 2 * o < X ? src[2 * o] : 0.0f;
        d2[o] = 2 * o + 1 < X ? src[2 * o + 1] : 0.0f;
    }
}

/* col (rows (c, kz, ky, kx) for c in [c0, c1), kz in [kz0, kz0 + kzn), columns the outputs of
 * x-rows [r0, r1), leading dimension ld) from one batch item's input in (ci, N), any stride. Taps
 * outside the volume are 0. Each input row is read once for its k x-taps. */
static void vol2col(float *restrict col, size_t ld, const float *restrict in, const conv_geom *g,
                    int c0, int c1, int r0, int r1) {
    const int k = g->k, p = g->p, X = g->n[2], Y = g->n[1], Z = g->n[0];
    const int sz = g->s[0], sy = g->s[1], sx = g->s[2], Ox = g->o[2], Oy = g->o[1];
    int xlo[3], xhi[3];
    for (int kx = 0; kx < k; kx++)
        tap_range(X, Ox, sx, kx, p, &xlo[kx], &xhi[kx]);
    size_t row = 0;
    for (int c = c0; c < c1; c++)
        for (int kz = g->kz0; kz < g->kz0 + g->kzn; kz++)
            for (int ky = 0; ky < k; ky++, row += (size_t)k) {
                float *dst = col + row * ld;
                int oz = r0 / Oy, oy = r0 % Oy;
                for (int r = r0; r < r1; r++, dst += Ox) {
                    int iz = oz * sz + kz - p, iy = oy * sy + ky - p;
                    if (++oy == Oy) oy = 0, oz++;
                    int outside = iz < 0 || iz >= Z || iy < 0 || iy >= Y;
                    const float *src = in + (size_t)c * g->N + ((size_t)iz * Y + iy) * X;
                    if (k == 3 && sx == 2 && !outside) { /* the common case in one pass */
                        gather3_s2(dst, dst + ld, dst + 2 * ld, src, Ox, X);
                        continue;
                    }
                    for (int kx = 0; kx < k; kx++) {
                        float *d = dst + kx * ld;
                        int lo = outside ? Ox : xlo[kx], hi = outside ? Ox : xhi[kx];
                        const int dx = kx - p;
                        for (int ox = 0; ox < lo; ox++)
                            d[ox] = 0.0f;
                        for (int ox = lo; ox < hi; ox++)
                            d[ox] = src[sx * ox + dx];
                        for (int ox = hi; ox < Ox; ox++)
                            d[ox] = 0.0f;
                    }
                }
            }
}

/* The transpose of vol2col: din (ci, N) of one batch item += dcol, for channels [c0, c1) (rows
 * from 0) and x-rows [r0, r1). Each voxel's sum runs in a fixed (kz, ky, row, x) order. */
static void col2vol_add(float *restrict din, const float *restrict dcol, size_t ld,
                        const conv_geom *g, int c0, int c1, int r0, int r1) {
    const int k = g->k, p = g->p, X = g->n[2], Y = g->n[1], Z = g->n[0];
    const int sz = g->s[0], sy = g->s[1], sx = g->s[2], Ox = g->o[2], Oy = g->o[1];
    int xlo[3], xhi[3];
    for (int kx = 0; kx < k; kx++)
        tap_range(X, Ox, sx, kx, p, &xlo[kx], &xhi[kx]);
    size_t row = 0;
    for (int c = c0; c < c1; c++)
        for (int kz = g->kz0; kz < g->kz0 + g->kzn; kz++)
            for (int ky = 0; ky < k; ky++, row += (size_t)k) {
                const float *src = dcol + row * ld;
                int oz = r0 / Oy, oy = r0 % Oy;
                for (int r = r0; r < r1; r++, src += Ox) {
                    int iz = oz * sz + kz - p, iy = oy * sy + ky - p;
                    if (++oy == Oy) oy = 0, oz++;
                    if (iz < 0 || iz >= Z || iy < 0 || iy >= Y) continue;
                    float *dst = din + (size_t)c * g->N + ((size_t)iz * Y + iy) * X;
                    for (int ox = 0; ox < Ox; ox++) /* the x-taps of output ox, in kx order */
                        for (int kx = 0; kx < k; kx++)
                            if (ox >= xlo[kx] && ox < xhi[kx])
                                dst[sx * ox + kx - p] += src[kx * ld + ox];
                }
            }
}

/* ------------------------------------------------------------------------- conv pieces */
/* A slab's extent: output x-rows [r0, r1), its first output voxel p0 and width P; on the plane
 * path (whole planes) the planes [z0, z1). */
typedef struct slab {
    int r0, r1, P, z0, z1;
    size_t p0;
} slab;

static slab slab_at(const conv_geom *g, int j) {
    slab sl;
    sl.r0 = j * g->slab_rows, sl.r1 = sl.r0 + g->slab_rows;
    if (sl.r1 > g->rows) sl.r1 = g->rows;
    sl.P = (sl.r1 - sl.r0) * g->o[2];
    sl.p0 = (size_t)sl.r0 * g->o[2];
    sl.z0 = sl.r0 / g->o[1], sl.z1 = sl.r1 / g->o[1];
    return sl;
}

/* Fill `col` for slab sl of input `in` (im2col, rows path); returns the matrix the GEMMs read
 * and its leading dimension (the input itself for k = 1, stride 1). */
static const float *slab_col(float *col, const float *in, const conv_geom *g, const slab *sl,
                             int *ld) {
    if (g->k == 1 && g->unit) {
        *ld = (int)g->N;
        return in + sl->p0;
    }
    vol2col(col, (size_t)sl->P, in, g, 0, g->ci, sl->r0, sl->r1);
    *ld = sl->P;
    return col;
}

/* The plane path's walk over one piece (planes [z0, z1) of one item), band by band, plane by
 * plane, keeping the cols of planes z - 1, z, z + 1 of `in` in a ring of three slots. For each
 * plane z and each tap kz whose plane z + kz - 1 lies in the volume, in kz order:
 *   out[:, z band] = out_beta out + sum of w_kz (co, 9 ci) @ col(z + kz - 1)  (unless out is
 *     NULL; out_beta 1 adds to a preset out, 0 ignores what it held);
 *   dw_part[kz] (9 ci, co) += col(z + kz - 1) @ x[:, z band]^T   (when dw_part is not NULL;
 *     x has co channels on the same grid: the input gradient's walk over dout also gives the
 *     weight gradient, in flipped order, from the forward input x). */
static void planes_walk(float *out, float out_beta, float *dw_part, const float *in, const float *w,
                        const float *x, float *ring, const conv_geom *g, int z0, int z1) {
    const int X = g->n[2], Y = g->n[1], Z = g->n[0];
    for (int y0 = 0; y0 < Y; y0 += g->band_rows) {
        int y1 = y0 + g->band_rows > Y ? Y : y0 + g->band_rows, P = (y1 - y0) * X;
        size_t slot = (size_t)g->kdim * P;
        int held[3] = {-2, -2, -2}; /* the plane each slot holds */
        for (int z = z0; z < z1; z++) {
            size_t c_off = (size_t)z * g->plane + (size_t)y0 * X;
            float beta = out_beta; /* for the first tap into this band of plane z */
            for (int kz = 0; kz < 3; kz++) {
                int q = z + kz - 1, sl = (q + 3) % 3;
                if (q < 0 || q >= Z) continue; /* a zero plane adds nothing */
                float *col = ring + sl * slot;
                if (held[sl] != q) vol2col_band(col, (size_t)P, in, g, q, y0, y1), held[sl] = q;
                if (out) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->co, P, g->kdim, 1.0f,
                                w + (size_t)kz * g->co * g->kdim, g->kdim, col, P, beta,
                                out + c_off, (int)g->O);
                    beta = 1.0f;
                }
                if (dw_part)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->kdim, g->co, P, 1.0f,
                                col, P, x + c_off, (int)g->O, 1.0f,
                                dw_part + (size_t)kz * g->co * g->kdim, g->co);
            }
        }
    }
}

/* One forward piece: out[b][:, slab j] = w @ col (+ bias). w is (co, kdim), or on the plane
 * path three (co, 9 ci) blocks, one per kz (reorder_weights). */
static void conv_piece(float *out, const float *in, const float *w, const float *bias, float *col,
                       const conv_geom *g, int j) {
    slab sl = slab_at(g, j);
    if (bias)
        for (int c = 0; c < g->co; c++) {
            float *o = out + (size_t)c * g->O + sl.p0, v = bias[c];
            for (int i = 0; i < sl.P; i++)
                o[i] = v;
        }
    if (g->planes) {
        planes_walk(out, bias ? 1.0f : 0.0f, NULL, in, w, NULL, col, g, sl.z0, sl.z1);
        return;
    }
    int ld;
    const float *m = slab_col(col, in, g, &sl, &ld);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->co, sl.P, g->kdim, 1.0f, w, g->kdim,
                m, ld, bias ? 1.0f : 0.0f, out + sl.p0, (int)g->O);
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

/* The weights as a convolution of geometry g reads them. w is (co_w, ci_w, k^3).
 * flip = 0: the forward kernel, dst[kz][co][ci 9 + t] = w[co][ci][kz 9 + t] (plane path only);
 * flip = 1: the input gradient's kernel, flipped and transposed: dst (ci_w, co_w, k^3) =
 *   w[co][ci][k^3 - 1 - t], then split by kz as above on the plane path. */
static void reorder_weights(float *dst, const float *w, int co_w, int ci_w, int k, int flip,
                            int planes) {
    const int k3 = k * k * k;
    const int rows = flip ? ci_w : co_w, cols = flip ? co_w : ci_w; /* of the new kernel */
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const float *src = w + ((size_t)(flip ? c : r) * ci_w + (flip ? r : c)) * k3;
            for (int t = 0; t < k3; t++) {
                float v = src[flip ? k3 - 1 - t : t];
                if (planes) /* t = kz 9 + (ky 3 + kx) */
                    dst[((size_t)(t / 9) * rows + r) * (size_t)cols * 9 + (size_t)c * 9 + t % 9] =
                        v;
                else
                    dst[((size_t)r * cols + c) * k3 + t] = v;
            }
        }
}

/* Rows path, fewer z-taps than k (thin): dst (co, ci, taps) = the taps of w (co, ci, k^3) that
 * col holds, so dst (co, kdim) is what the GEMMs read. */
static void compact_weights(float *dst, const float *w, const conv_geom *g) {
    const size_t k3 = (size_t)(g->k * g->k * g->k), t0 = (size_t)g->kz0 * g->k * g->k;
    const size_t n = (size_t)g->co * g->ci;
    for (size_t i = 0; i < n; i++)
        memcpy(dst + i * g->taps, w + i * k3 + t0, (size_t)g->taps * sizeof *dst);
}

void nn_conv3d_forward(float *out, const float *inp, const float *w, const float *bias,
                       float *scratch, const nn_conv3d_shape *s) {
    conv_geom fw, bw;
    conv_layout L;
    shape_or_die("nn_conv3d_forward", s, &fw, &bw, &L);
    if (fw.planes) {
        reorder_weights(scratch, w, s->Co, s->Ci, 3, 0, 1);
        w = scratch;
    } else if (fw.kzn < fw.k) {
        compact_weights(scratch, w, &fw);
        w = scratch;
    }
    conv_forward_all(out, inp, w, bias, scratch + L.wbuf + L.partials, L.per_thread, &fw, s->B);
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

/* Sum the G partials of the weight gradient in group order into dw (Co, Ci, k^3). Partials are
 * dw transposed (col @ x^T runs faster in OpenBLAS than x @ col^T):
 *   rows path: (Ci taps, Co), the taps of col (g's), the first at z-tap kz0;
 *   plane path: three blocks (kz) of (Co 9, Ci) from the input gradient's walk over dout,
 *     whose taps are flipped: block kz, row co 9 + t is dw[co][ci][(2 - kz) 9 + 8 - t]. */
static void reduce_partials(float *dw, const float *partials, int G, const nn_conv3d_shape *s,
                            const conv_geom *g) {
    const int planes = g->planes;
    const size_t Ci = (size_t)s->Ci, Co = (size_t)s->Co, k3 = (size_t)(s->k * s->k * s->k);
    const size_t taps = planes ? 27 : (size_t)g->taps,
                 t0 = planes ? 0 : (size_t)g->kz0 * s->k * s->k;
    const size_t wsize = Co * Ci * taps;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < wsize; i++) {
        float t = partials[i];
        for (int grp = 1; grp < G; grp++)
            t += partials[(size_t)grp * wsize + i];
        if (planes) {
            size_t ci = i % Ci, r = i / Ci, kz = r / (Co * 9), co = r % (Co * 9) / 9, t9 = r % 9;
            dw[(co * Ci + ci) * 27 + (2 - kz) * 9 + (8 - t9)] += t;
        } else {
            size_t co = i % Co, r = i / Co;
            dw[(co * Ci + r / taps) * k3 + t0 + r % taps] += t;
        }
    }
}

/* Rows path: dw += dout @ col^T over the (b, slab) pieces in order, cut into groups fixed by
 * the shape; each group sums its pieces into its own partial (reduce_partials). */
static void conv_weight_grad(float *dw, const float *dout, const float *inp, float *partials,
                             float *per_thread, size_t per_thread_floats, const conv_geom *g,
                             const nn_conv3d_shape *s) {
    const int B = s->B;
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
            memset(part, 0, wsize * sizeof *part);
            for (long long it = lo; it < hi; it++) {
                int b = (int)(it / g->n_slabs), ld;
                slab sl = slab_at(g, (int)(it % g->n_slabs));
                const float *in = inp + (size_t)b * g->in_b, *dy = dout + (size_t)b * g->out_b;
                const float *m = slab_col(col, in, g, &sl, &ld);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->kdim, g->co, sl.P, 1.0f, m,
                            ld, dy + sl.p0, (int)g->O, 1.0f, part, g->co);
            }
        }
    }
    reduce_partials(dw, partials, G, s, g);
}

/* Plane path (stride 1, k = 3) backward in one walk over dout per piece (b, run of planes):
 * dinp = conv(dout, flipped w) as in the forward pass, and from the same cols of dout the
 * weight gradient, dw^T += col(dout) @ inp^T (invariant 3: pieces in groups fixed by the shape,
 * partials summed in group order). g is the input gradient's geometry (dout -> dinp). */
static void conv_backward_planes(float *dinp, float *dw, const float *dout, const float *inp,
                                 const float *wflip, float *partials, float *per_thread,
                                 size_t per_thread_floats, const conv_geom *g, size_t inp_b,
                                 const nn_conv3d_shape *s) {
    long long items = (long long)s->B * g->n_slabs;
    int G = n_groups(g, s->B);
    size_t wsize = (size_t)3 * g->co * g->kdim;
#pragma omp parallel
    {
        float *ring = per_thread + (size_t)nn_thread_id() * per_thread_floats;
#pragma omp for schedule(dynamic, 1)
        for (int grp = 0; grp < G; grp++) {
            float *part = partials + (size_t)grp * wsize;
            memset(part, 0, wsize * sizeof *part);
            for (long long it = items * grp / G; it < items * (grp + 1) / G; it++) {
                int b = (int)(it / g->n_slabs);
                slab sl = slab_at(g, (int)(it % g->n_slabs));
                planes_walk(dinp ? dinp + (size_t)b * g->out_b : NULL, 0.0f, part,
                            dout + (size_t)b * g->in_b, wflip, inp + (size_t)b * inp_b, ring, g,
                            sl.z0, sl.z1);
            }
        }
    }
    reduce_partials(dw, partials, G, s, g);
}

/* Strided dinp (stride 2 along some axis): pieces (b, channel group); each zeroes its channels,
 * then for every slab computes dcol = w[:, group]^T @ dout_slab and scatters it (col2im). */
static void conv_input_grad_strided(float *dinp, const float *dout, const float *w,
                                    float *per_thread, size_t per_thread_floats, const conv_geom *g,
                                    int B, int cig, size_t dinp_b) {
    int n_cig = (g->ci + cig - 1) / cig, taps = g->taps;
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
                slab sl = slab_at(g, j);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (c1 - c0) * taps, sl.P, g->co,
                            1.0f, w + (size_t)c0 * taps, g->kdim,
                            dout + (size_t)b * g->out_b + sl.p0, (int)g->O, 0.0f, dcol, sl.P);
                col2vol_add(din, dcol, (size_t)sl.P, g, c0, c1, sl.r0, sl.r1);
            }
        }
    }
}

void nn_conv3d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, float *scratch, const nn_conv3d_shape *s) {
    conv_geom fw, bw;
    conv_layout L;
    shape_or_die("nn_conv3d_backward", s, &fw, &bw, &L);
    float *wbuf = scratch, *partials = scratch + L.wbuf;
    float *per_thread = partials + L.partials;
    if (db) conv_bias_grad(db, dout, &fw, s->B);
    if (fw.planes) {
        reorder_weights(wbuf, w, s->Co, s->Ci, 3, 1, 1);
        conv_backward_planes(dinp, dw, dout, inp, wbuf, partials, per_thread, L.per_thread, &bw,
                             fw.in_b, s);
        return;
    }
    conv_weight_grad(dw, dout, inp, partials, per_thread, L.per_thread, &fw, s);
    if (!dinp) return;
    if (!fw.unit) {
        if (fw.kzn < fw.k) compact_weights(wbuf, w, &fw), w = wbuf;
        conv_input_grad_strided(dinp, dout, w, per_thread, L.per_thread, &fw, s->B, cig_size(s),
                                bw.out_b);
        return;
    }
    /* k = 1, stride 1: dinp = w^T @ dout, as a convolution */
    reorder_weights(wbuf, w, s->Co, s->Ci, 1, 1, 0);
    conv_forward_all(dinp, dout, wbuf, NULL, per_thread, L.per_thread, &bw, s->B);
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
/* Factors other than 1 or 2 are a caller's bug: stop, loudly. */
static void factors_or_die(const char *fn, const int f[3]) {
    for (int a = 0; a < 3; a++)
        if (f[a] != 1 && f[a] != 2) {
            fprintf(stderr, "%s: upsampling factor %d (axis %d) is not 1 or 2\n", fn, f[a], a);
            abort();
        }
}

void nn_upsample3d_scaled_forward(float *out, const float *inp, int B, int C, int Z, int Y, int X,
                                  const int f[3]) {
    factors_or_die("nn_upsample3d_scaled_forward", f);
    const int fz = f[0], fy = f[1], fx = f[2];
    long long planes = (long long)B * C * Z;
    size_t Xo = (size_t)fx * X, plane_o = (size_t)fy * Y * Xo; /* one output z-plane */
#pragma omp parallel for schedule(static)
    for (long long pl = 0; pl < planes; pl++) {
        const float *src = inp + (size_t)pl * Y * X;
        float *dst = out + (size_t)pl * fz * plane_o;
        for (int y = 0; y < Y; y++) {
            float *row = dst + (size_t)fy * y * Xo;
            const float *s = src + (size_t)y * X;
            if (fx == 2)
                for (int x = 0; x < X; x++)
                    row[2 * x] = row[2 * x + 1] = s[x];
            else
                memcpy(row, s, (size_t)X * sizeof *row);
            if (fy == 2) memcpy(row + Xo, row, Xo * sizeof *row);
        }
        if (fz == 2) memcpy(dst + plane_o, dst, plane_o * sizeof *dst);
    }
}

void nn_upsample3d_scaled_backward(float *dinp, const float *dout, int B, int C, int Z, int Y,
                                   int X, const int f[3]) {
    factors_or_die("nn_upsample3d_scaled_backward", f);
    const int fz = f[0], fy = f[1], fx = f[2];
    long long planes = (long long)B * C * Z;
    size_t Xo = (size_t)fx * X, plane_o = (size_t)fy * Y * Xo;
#pragma omp parallel for schedule(static)
    for (long long pl = 0; pl < planes; pl++) {
        float *d = dinp + (size_t)pl * Y * X;
        const float *g = dout + (size_t)pl * fz * plane_o;
        for (int y = 0; y < Y; y++) {
            const float *r0 = g + (size_t)fy * y * Xo;
            float *dr = d + (size_t)y * X;
            for (int x = 0; x < X; x++) { /* fixed order: dz, dy, dx */
                float acc = 0.0f;
                for (int dz = 0; dz < fz; dz++)
                    for (int dy = 0; dy < fy; dy++) {
                        const float *r = r0 + dz * plane_o + dy * Xo + (size_t)fx * x;
                        acc = dz + dy ? acc + r[0] : r[0];
                        if (fx == 2) acc += r[1];
                    }
                dr[x] = acc;
            }
        }
    }
}

void nn_upsample3d_forward(float *out, const float *inp, int B, int C, int Z, int Y, int X) {
    static const int f[3] = {2, 2, 2};
    nn_upsample3d_scaled_forward(out, inp, B, C, Z, Y, X, f);
}

void nn_upsample3d_backward(float *dinp, const float *dout, int B, int C, int Z, int Y, int X) {
    static const int f[3] = {2, 2, 2};
    nn_upsample3d_scaled_backward(dinp, dout, B, C, Z, Y, X, f);
}
