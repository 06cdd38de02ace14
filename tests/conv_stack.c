/* conv_stack.c — see conv_stack.h. */
#include "conv_stack.h"

#include "nn.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { C1, N1, A1, C2, N2, CAT, C3, N3, A3, C4, N4, A4, D1, D1B, DCAT, D3, N_BUF };

static size_t up16(size_t n) { return (n + 15) & ~(size_t)15; }

/* The z sizes at half and quarter resolution: Z = 1 stays one slice. */
static int z_half(int Z) { return Z == 1 ? 1 : Z / 2; }

int conv_stack_init(conv_stack *st, int B, int Z, int S, int c1, int c2, int threads,
                    unsigned seed) {
    memset(st, 0, sizeof *st);
    if (B < 1 || B > 4096 || S < 4 || S % 4 || S > 1024 || Z < 1 || (Z > 1 && Z % 4) || Z > 1024 ||
        c1 < 1 || c2 < 1 || c1 > 4096 || c2 > 4096 || threads < 1)
        return -1;
    st->B = B, st->Z = Z, st->S = S, st->c1 = c1, st->c2 = c2;
    const int H = S / 2, Hz = z_half(Z), cc = c1 + c2, sz = Z == 1 ? 1 : 0; /* 0: take s */
    const size_t N1v = (size_t)Hz * H * H, N3v = (size_t)z_half(Hz) * (H / 2) * (H / 2);
    nn_conv3d_shape L[5] = {
        {.B = B, .Ci = 1, .Co = c1, .k = 3, .s = 2, .n = {Z, S, S}, .sa = {sz, 0, 0}},
        {.B = B, .Ci = c1, .Co = c1, .k = 3, .s = 1, .n = {Hz, H, H}},
        /* reads the skip inside the concat; its input gradient is a dense (B, c1, N) */
        {.B = B,
         .Ci = c1,
         .Co = c2,
         .k = 3,
         .s = 2,
         .n = {Hz, H, H},
         .inp_bstride = (size_t)cc * N1v,
         .dinp_bstride = (size_t)c1 * N1v,
         .sa = {sz, 0, 0}},
        {.B = B, .Ci = cc, .Co = c1, .k = 3, .s = 1, .n = {Hz, H, H}},
        {.B = B, .Ci = c1, .Co = 4, .k = 1, .s = 1, .n = {Hz, H, H}},
    };
    memcpy(st->conv, L, sizeof L);
    /* the parameter table, in the twin's named_parameters() order */
    const int co[5] = {c1, c1, c2, c1, 4};
    size_t off = 0;
    int k = 0;
    for (int l = 0; l < 5; l++) {
        size_t ks = (size_t)L[l].k * L[l].k * L[l].k;
        size_t sizes[4] = {(size_t)co[l] * L[l].Ci * ks, (size_t)co[l], (size_t)co[l],
                           (size_t)co[l]};
        const char *fmt[4] = {"conv%d.weight", "conv%d.bias", "norm%d.weight", "norm%d.bias"};
        for (int j = 0; j < (l < 4 ? 4 : 2); j++, k++) {
            snprintf(st->t[k].name, sizeof st->t[k].name, fmt[j], l + 1);
            st->t[k].offset = off, st->t[k].size = sizes[j];
            off += sizes[j];
        }
    }
    st->n_params = off;
    /* buffers: (B, channels, voxels) each */
    const size_t bs = (size_t)B;
    const size_t want[N_BUF] = {bs * c1 * N1v, bs * c1 * N1v, bs * c1 * N1v, bs * c1 * N1v,
                                bs * c1 * N1v, bs * cc * N1v, bs * c2 * N3v, bs * c2 * N3v,
                                bs * c2 * N3v, bs * c1 * N1v, bs * c1 * N1v, bs * c1 * N1v,
                                bs * c1 * N1v, bs * c1 * N1v, bs * cc * N1v, bs * c2 * N3v};
    size_t scratch = 0, total = 0;
    for (int l = 0; l < 5; l++) {
        size_t s = nn_conv3d_scratch(&L[l], threads);
        if (!s) return -1;
        scratch = s > scratch ? s : scratch;
    }
    for (int i = 0; i < N_BUF; i++)
        total += up16(want[i]);
    st->n_y = bs * 4 * N1v;
    size_t stats = up16(8 * bs * (size_t)(c1 > c2 ? c1 : c2));
    total += up16(st->n_y) + stats + up16(scratch) + 2 * up16(st->n_params);
    st->mem = malloc(total * sizeof(float));
    if (!st->mem) return -1;
    float *p = st->mem;
    for (int i = 0; i < N_BUF; i++)
        st->acts[i] = p, p += up16(want[i]);
    st->y = p, p += up16(st->n_y);
    st->stats = p, p += stats;
    st->scratch = p, p += up16(scratch);
    st->params = p, p += up16(st->n_params);
    st->grads = p;
    /* torch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for a conv's weight
     * and bias; norms (1, 0) */
    rng r;
    rng_seed(&r, seed, 0);
    for (k = 0; k < CONV_STACK_TENSORS; k++) {
        float *v = st->params + st->t[k].offset;
        int l = st->t[k].name[4] - '1', is_norm = st->t[k].name[0] == 'n';
        size_t ks = (size_t)L[l].k * L[l].k * L[l].k;
        float bound = 1.0f / sqrtf((float)(L[l].Ci * ks));
        for (size_t i = 0; i < st->t[k].size; i++)
            v[i] = is_norm ? (strstr(st->t[k].name, "weight") ? 1.0f : 0.0f)
                           : bound * (2.0f * rng_float(&r) - 1.0f);
    }
    return 0;
}

void conv_stack_free(conv_stack *st) {
    free(st->mem);
    memset(st, 0, sizeof *st);
}

double conv_stack_flops(const conv_stack *st) {
    double f = 0.0; /* the input layer has no input gradient */
    for (int l = 0; l < 5; l++)
        f += nn_conv3d_flops(&st->conv[l]) * (l == 0 ? 2.0 : 3.0);
    return f;
}

double conv_stack_step(conv_stack *st, const float *x) {
    const int B = st->B, c1 = st->c1, c2 = st->c2, cc = c1 + c2, Q = st->S / 4;
    const int Qz = z_half(z_half(st->Z)), f[3] = {st->Z == 1 ? 1 : 2, 2, 2};
    const size_t N1v = (size_t)z_half(st->Z) * (2 * Q) * (2 * Q), N3v = (size_t)Qz * Q * Q;
    const size_t b1 = (size_t)B * c1 * N1v, b3 = (size_t)B * c2 * N3v;
    const float sl = NN_LEAKY_SLOPE;
    float **a = st->acts, *sc = st->scratch;
    float *w[5], *bias[5], *dw[5], *db[5], *g[4], *be[4], *dg[4], *dbe[4], *mean[4], *rstd[4];
    for (int l = 0, k = 0; l < 5; l++) {
        w[l] = st->params + st->t[k].offset, dw[l] = st->grads + st->t[k++].offset;
        bias[l] = st->params + st->t[k].offset, db[l] = st->grads + st->t[k++].offset;
        if (l == 4) break;
        g[l] = st->params + st->t[k].offset, dg[l] = st->grads + st->t[k++].offset;
        be[l] = st->params + st->t[k].offset, dbe[l] = st->grads + st->t[k++].offset;
        mean[l] = st->stats + (size_t)l * 2 * B * (c1 > c2 ? c1 : c2);
        rstd[l] = mean[l] + (size_t)B * (c1 > c2 ? c1 : c2);
    }
    memset(st->grads, 0, st->n_params * sizeof(float));
    float *skip = a[CAT] + (size_t)c2 * N1v; /* channels c2 .. cc-1 of the concat */
    /* forward */
    nn_conv3d_forward(a[C1], x, w[0], bias[0], sc, &st->conv[0]);
    nn_instnorm3d_forward(a[N1], mean[0], rstd[0], a[C1], g[0], be[0], B, c1, N1v);
    nn_leaky_relu_forward(a[A1], a[N1], b1, sl);
    nn_conv3d_forward(a[C2], a[A1], w[1], bias[1], sc, &st->conv[1]);
    nn_instnorm3d_forward(a[N2], mean[1], rstd[1], a[C2], g[1], be[1], B, c1, N1v);
    for (int b = 0; b < B; b++)
        nn_leaky_relu_forward(skip + (size_t)b * cc * N1v, a[N2] + (size_t)b * c1 * N1v,
                              (size_t)c1 * N1v, sl);
    nn_conv3d_forward(a[C3], skip, w[2], bias[2], sc, &st->conv[2]);
    nn_instnorm3d_forward(a[N3], mean[2], rstd[2], a[C3], g[2], be[2], B, c2, N3v);
    nn_leaky_relu_forward(a[A3], a[N3], b3, sl);
    for (int b = 0; b < B; b++) /* the upsampled map: channels 0 .. c2-1 */
        nn_upsample3d_scaled_forward(a[CAT] + (size_t)b * cc * N1v, a[A3] + (size_t)b * c2 * N3v, 1,
                                     c2, Qz, Q, Q, f);
    nn_conv3d_forward(a[C4], a[CAT], w[3], bias[3], sc, &st->conv[3]);
    nn_instnorm3d_forward(a[N4], mean[3], rstd[3], a[C4], g[3], be[3], B, c1, N1v);
    nn_leaky_relu_forward(a[A4], a[N4], b1, sl);
    nn_conv3d_forward(st->y, a[A4], w[4], bias[4], sc, &st->conv[4]);
    double loss = 0.0;
    for (size_t i = 0; i < st->n_y; i++)
        loss += 0.5 * (double)st->y[i] * st->y[i]; /* dloss/dy = y */
    /* backward */
    nn_conv3d_backward(a[D1], dw[4], db[4], st->y, a[A4], w[4], sc, &st->conv[4]);
    nn_leaky_relu_backward(a[D1], a[D1], a[N4], b1, sl);
    nn_instnorm3d_backward(a[D1], dg[3], dbe[3], a[D1], a[C4], g[3], mean[3], rstd[3], B, c1, N1v);
    nn_conv3d_backward(a[DCAT], dw[3], db[3], a[D1], a[CAT], w[3], sc, &st->conv[3]);
    for (int b = 0; b < B; b++)
        nn_upsample3d_scaled_backward(a[D3] + (size_t)b * c2 * N3v, a[DCAT] + (size_t)b * cc * N1v,
                                      1, c2, Qz, Q, Q, f);
    nn_leaky_relu_backward(a[D3], a[D3], a[N3], b3, sl);
    nn_instnorm3d_backward(a[D3], dg[2], dbe[2], a[D3], a[C3], g[2], mean[2], rstd[2], B, c2, N3v);
    nn_conv3d_backward(a[D1B], dw[2], db[2], a[D3], skip, w[2], sc, &st->conv[2]);
    for (int b = 0; b < B; b++) { /* the skip fed two layers: its concat part's gradient too */
        float *d = a[D1B] + (size_t)b * c1 * N1v;
        nn_residual_forward(d, d, a[DCAT] + (size_t)b * cc * N1v + (size_t)c2 * N1v,
                            (size_t)c1 * N1v);
    }
    nn_leaky_relu_backward(a[D1B], a[D1B], a[N2], b1, sl);
    nn_instnorm3d_backward(a[D1B], dg[1], dbe[1], a[D1B], a[C2], g[1], mean[1], rstd[1], B, c1,
                           N1v);
    nn_conv3d_backward(a[D1], dw[1], db[1], a[D1B], a[A1], w[1], sc, &st->conv[1]);
    nn_leaky_relu_backward(a[D1], a[D1], a[N1], b1, sl);
    nn_instnorm3d_backward(a[D1], dg[0], dbe[0], a[D1], a[C1], g[0], mean[0], rstd[0], B, c1, N1v);
    nn_conv3d_backward(NULL, dw[0], db[0], a[D1], x, w[0], sc, &st->conv[0]);
    return loss;
}
