/* nn.h — transformer layers as forward/backward pairs over flat float buffers (llm.c style).
 *
 * Every function takes plain pointers and sizes; shapes are in the comments, row-major.
 * Matrix products go through cblas_sgemm; the row loops are split over OpenMP threads.
 *
 * Invariants:
 *   1. Backward functions ADD into parameter gradients (dw, db, dgamma, dbeta), so gradient
 *      accumulation over micro-batches is a second backward call.
 *   2. Activation gradients are OVERWRITTEN unless the name or comment says "accumulate".
 *   3. Results are bitwise deterministic for a fixed thread count: every reduction runs in a
 *      fixed order, and each thread owns a fixed slice of rows or columns.
 *   4. BLAS runs single-threaded inside OpenMP regions: call nn_set_threads() once, before
 *      any layer, to fix both (OpenBLAS's own pool must not run under OpenMP threads).
 */
#ifndef VS_NN_H
#define VS_NN_H

#include <stddef.h>

#define NN_LN_EPS 1e-6f

/* Set the OpenMP thread count used by every layer (n >= 1) and pin OpenBLAS to 1 thread. */
void nn_set_threads(int n);
int nn_threads(void);
/* This thread's number inside a parallel region (0 outside). */
int nn_thread_id(void);

/* out = inp @ w^T + b.   inp (M, K), w (N, K), b (N) or NULL, out (M, N). */
void nn_linear_forward(float *out, const float *inp, const float *w, const float *b, int M, int K,
                       int N);
/* dinp = dout @ w (overwrite; skipped when dinp is NULL); dw += dout^T @ inp; db += colsum(dout).
 * dout (M, N), inp (M, K), w (N, K), dinp (M, K), dw (N, K), db (N) or NULL. */
void nn_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int M, int K, int N);

/* LayerNorm over the last axis, eps NN_LN_EPS.  inp, out (M, C); gamma, beta (C);
 * mean, rstd (M) saved for backward. */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *gamma, const float *beta, int M, int C);
/* dinp += LN'(dout) (accumulate); dgamma, dbeta += ... */
void nn_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *gamma, const float *mean,
                           const float *rstd, int M, int C);

/* Exact GELU: x Phi(x), Phi(x) = 0.5 (1 + erf(x / sqrt 2)).  inp, out (n); cdf (n) receives
 * Phi(x) for the backward pass, or is NULL. */
void nn_gelu_forward(float *out, float *cdf, const float *inp, size_t n);
/* dinp = dout * GELU'(inp) (overwrite; dinp may alias dout); cdf from the forward pass, or
 * NULL to recompute it. */
void nn_gelu_backward(float *dinp, const float *dout, const float *inp, const float *cdf, size_t n);

/* out = a + b (out may alias a).  (n) */
void nn_residual_forward(float *out, const float *a, const float *b, size_t n);

/* Multi-head softmax attention on packed qkv.
 * qkv (B, T, 3C) as [q | k | v], head h in columns h*hd .. h*hd+hd-1 of each; hd = C / NH.
 * att (B, NH, T, T) softmax probabilities (saved); out (B, T, C). */
void nn_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
/* dqkv (B, T, 3C) overwritten. scratch: nn_attention_scratch(T) floats per thread. */
void nn_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int T, int C, int NH);
size_t nn_attention_scratch(int T);

#endif
