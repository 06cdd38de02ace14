/* nn3d.h — 3D convolutional layers as forward/backward pairs over flat float buffers (llm.c
 * style), the PyTorch modules they equal named beside each pair.
 *
 * Layout: every volume tensor is (B, C, Z, Y, X) row-major, PyTorch's NCDHW; N = Z * Y * X.
 * The thread rules are nn.h's (nn_set_threads() fixes OpenMP threads and single-threaded BLAS).
 *
 * Invariants (nn.h's 1-4, and a stronger 3):
 *   1. Backward functions ADD into parameter gradients (dw, db, dgamma, dbeta).
 *   2. Activation gradients (dinp) are OVERWRITTEN; where a comment says dinp may alias dout,
 *      each element is read before it is written.
 *   3. Results are bitwise identical for every thread count, not only a fixed one: work is cut
 *      into pieces fixed by the shapes alone (output slabs, input-channel groups, weight-gradient
 *      groups), each piece is computed by one thread with single-threaded BLAS, and every sum
 *      across pieces runs in piece order.
 *   4. nn_conv3d_* use a caller-owned scratch buffer of nn_conv3d_scratch(shape, nn_threads())
 *      floats (an arena allocation, made once); they never allocate. The im2col matrix lives
 *      there one bounded slab per thread at a time, never for a whole volume or batch. Call
 *      them from outside OpenMP parallel regions: they parallelise themselves, and two calls
 *      at once must not share a scratch buffer.
 *
 * Channel concatenation (torch.cat(dim=1)) is memory placement, no function: a (B, C1 + C2, N)
 * buffer holds, for batch item b, C1 channels then C2 channels, so the first part of item b
 * starts at cat + b (C1 + C2) N and the second at cat + b (C1 + C2) N + C1 N.
 *   - A convolution reads or writes such a part in place through the batch strides of
 *     nn_conv3d_shape (inp_bstride = (C1 + C2) N for a part, or for the whole of it as input).
 *   - The other layers take dense tensors: write a part with one call per batch item (B = 1,
 *     pointers at the item's part). Their parameter gradients accumulate (invariant 1), so
 *     per-item calls sum in item order and stay deterministic.
 *   - In backward, a tensor that fed two consumers (the concat and another layer) gets the sum
 *     of its two gradients: the part of d(cat) plus the other dinp (nn_residual_forward).
 */
#ifndef VS_NN3D_H
#define VS_NN3D_H

#include <stddef.h>

#define NN_IN_EPS 1e-5f            /* nn.InstanceNorm3d's default eps */
#define NN_LEAKY_SLOPE 0.01f       /* F.leaky_relu's default negative slope */
#define NN_CONV_SLAB_FLOATS 131072 /* default bound of one thread's col buffer (512 KiB) */
#define NN_CONV_GROUPS 8           /* at most this many weight-gradient partial sums per call */

/* --------------------------------------------------------------------------- conv3d */
/* nn.Conv3d(Ci, Co, k, stride=(sz, sy, sx), padding=k // 2, bias=...) on a batch. The stride
 * along axis a is sa[a] when that is nonzero, else s: {.s = 2} is stride 2 on every axis,
 * {.sa = {1, 2, 2}} (s unused) halves a radiograph stored as a one-slice volume in-plane only.
 * Zero padding makes any axis of size 1 work: a 3^3 kernel over it sees only its centre tap. */
typedef struct nn_conv3d_shape {
    int B, Ci, Co; /* batch, input and output channels */
    int k;         /* cubic kernel: 1 or 3 */
    int s;         /* stride on the axes sa leaves 0: 1 or 2 */
    int n[3];      /* input size (Z, Y, X); any size >= 1, odd too */
    /* Floats from one batch item to the next (0: dense, i.e. Ci * N for inp, Co * O for out),
     * so a convolution reads or writes part of a channel concatenation in place. */
    size_t inp_bstride;  /* inp */
    size_t dinp_bstride; /* dinp */
    size_t out_bstride;  /* out and dout */
    /* Bound of one thread's col buffer (0: NN_CONV_SLAB_FLOATS): an im2col slab, or at
     * stride 1 with k = 3 the 9-tap cols of three planes (or bands of rows of them). A slab
     * is whole output x-rows and at least 256 columns wide, so a very small bound is
     * exceeded. */
    size_t slab_floats;
    int sa[3]; /* stride per axis (Z, Y, X), 1 or 2 each; 0 takes s. Last, so that older
                * positional initialisers keep their meaning (-Wextra warns of the missing
                * field: spell shapes with designated initialisers) */
} nn_conv3d_shape;

/* The stride along axis a (0 Z, 1 Y, 2 X): sa[a] when nonzero, else s. */
int nn_conv3d_stride(const nn_conv3d_shape *s, int a);

/* Output size along one axis: (n + 2 (k / 2) - k) / s + 1, as nn.Conv3d (odd n too). */
int nn_conv3d_out_size(int n, int k, int s);
/* Output voxels per channel, O = product of the three output sizes (0 for an invalid shape). */
size_t nn_conv3d_out_voxels(const nn_conv3d_shape *s);
/* Floats of scratch nn_conv3d_forward and nn_conv3d_backward need with `threads` OpenMP
 * threads (pass nn_threads()); 0 when the shape is invalid (a size < 1, k not 1 or 3, a stride
 * not 1 or 2, a batch stride smaller than its item) or a size would overflow size_t or BLAS's
 * int. */
size_t nn_conv3d_scratch(const nn_conv3d_shape *s, int threads);
/* Multiply-adds of one forward pass times 2, counting all k^3 taps (backward with dinp is
 * twice that). */
double nn_conv3d_flops(const nn_conv3d_shape *s);

/* out = conv(inp, w) + bias.
 * inp (B, Ci, Z, Y, X); w (Co, Ci, k, k, k); bias (Co) or NULL; out (B, Co, Oz, Oy, Ox).
 * The shape must be one nn_conv3d_scratch accepted, and scratch that many floats. */
void nn_conv3d_forward(float *out, const float *inp, const float *w, const float *bias,
                       float *scratch, const nn_conv3d_shape *s);
/* dinp = conv^T(dout, w) (overwrite; NULL skips it, as for a network's input);
 * dw += dL/dw; db += dL/dbias (NULL when there is no bias).
 * dout (B, Co, Oz, Oy, Ox); inp (B, Ci, Z, Y, X) as in the forward pass; dinp like inp. */
void nn_conv3d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, float *scratch, const nn_conv3d_shape *s);

/* ---------------------------------------------------------------------- instancenorm */
/* nn.InstanceNorm3d(C, affine=True), eps NN_IN_EPS: each (b, c)'s N voxels normalised by their
 * mean and biased variance, then scaled by gamma[c] and shifted by beta[c].
 * inp, out (B, C, N) (out may alias inp); gamma, beta (C); mean, rstd (B, C) saved for
 * backward (rstd = 1 / sqrt(var + eps)). Sums run in double. */
void nn_instnorm3d_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *gamma, const float *beta, int B, int C, size_t N);
/* dinp (overwrite; may alias dout); dgamma, dbeta += ... ; inp the forward pass's input. */
void nn_instnorm3d_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *inp, const float *gamma, const float *mean,
                            const float *rstd, int B, int C, size_t N);

/* ------------------------------------------------------------------------ leaky relu */
/* F.leaky_relu(x, slope): x > 0 ? x : slope x.  inp, out (n); out may alias inp. */
void nn_leaky_relu_forward(float *out, const float *inp, size_t n, float slope);
/* dinp = dout * (inp > 0 ? 1 : slope) (overwrite; may alias dout); inp the forward input. */
void nn_leaky_relu_backward(float *dinp, const float *dout, const float *inp, size_t n,
                            float slope);

/* ------------------------------------------------------------------------- upsample */
/* F.interpolate(x, scale_factor=(fz, fy, fx), mode='nearest'), f[a] 1 or 2 each (any other
 * factor is a caller's bug: abort): out[.., z, y, x] = inp[.., z / fz, y / fy, x / fx].
 * inp (B, C, Z, Y, X); out (B, C, fz Z, fy Y, fx X). */
void nn_upsample3d_scaled_forward(float *out, const float *inp, int B, int C, int Z, int Y, int X,
                                  const int f[3]);
/* dinp[.., z, y, x] = sum of dout over its fz x fy x fx block (overwrite). Sizes are inp's. */
void nn_upsample3d_scaled_backward(float *dinp, const float *dout, int B, int C, int Z, int Y,
                                   int X, const int f[3]);
/* The same with f = {2, 2, 2}: out (B, C, 2Z, 2Y, 2X). */
void nn_upsample3d_forward(float *out, const float *inp, int B, int C, int Z, int Y, int X);
void nn_upsample3d_backward(float *dinp, const float *dout, int B, int C, int Z, int Y, int X);

#endif
