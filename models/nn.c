/* nn.c — the layers of nn.h. Each GEMM is split by rows (or by output columns for weight
 * gradients) across OpenMP threads, each calling single-threaded OpenBLAS on its slice, so no
 * thread pool fights another and every reduction has a fixed order (invariant 3). */
#include "nn.h"

#include "blas.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* glibc's libmvec has SIMD variants of these; declaring them lets the elementwise loops below
 * vectorise (libm links libmvec as needed). Accuracy is a few ulp, as the scalar ones. */
#pragma omp declare simd notinbranch
float erff(float);
#pragma omp declare simd notinbranch
float expf(float);

void nn_set_threads(int n) {
    if (n < 1) n = 1;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    blas_set_threads(1);
}

int nn_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* This thread's slice [lo, hi) of n items inside a parallel region. */
static void nn_slice(int n, int *lo, int *hi) {
#ifdef _OPENMP
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    int t = 0, nt = 1;
#endif
    *lo = (int)((long long)n * t / nt);
    *hi = (int)((long long)n * (t + 1) / nt);
}

int nn_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------------------ linear */
void nn_linear_forward(float *out, const float *inp, const float *w, const float *b, int M, int K,
                       int N) {
#pragma omp parallel
    {
        int lo, hi;
        nn_slice(M, &lo, &hi);
        if (hi > lo) {
            float beta = 0.0f;
            if (b) {
                for (int m = lo; m < hi; m++)
                    memcpy(out + (size_t)m * N, b, (size_t)N * sizeof *b);
                beta = 1.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hi - lo, N, K, 1.0f,
                        inp + (size_t)lo * K, K, w, K, beta, out + (size_t)lo * N, N);
        }
    }
}

void nn_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int M, int K, int N) {
#pragma omp parallel
    {
        int lo, hi;
        if (dinp) { /* dinp (M, K) = dout (M, N) @ w (N, K), split by rows */
            nn_slice(M, &lo, &hi);
            if (hi > lo)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hi - lo, K, N, 1.0f,
                            dout + (size_t)lo * N, N, w, K, 0.0f, dinp + (size_t)lo * K, K);
        }
        /* dw (N, K) += dout^T @ inp, split by rows of dw: each element's sum over M is whole */
        nn_slice(N, &lo, &hi);
        if (hi > lo) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hi - lo, K, M, 1.0f, dout + lo, N,
                        inp, K, 1.0f, dw + (size_t)lo * K, K);
            if (db)
                for (int m = 0; m < M; m++) {
                    const float *row = dout + (size_t)m * N;
                    for (int n = lo; n < hi; n++)
                        db[n] += row[n];
                }
        }
    }
}

/* --------------------------------------------------------------------------- layernorm */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *gamma, const float *beta, int M, int C) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * C;
        float *y = out + (size_t)m * C;
        float mu = 0.0f;
#pragma omp simd reduction(+ : mu)
        for (int c = 0; c < C; c++)
            mu += x[c];
        mu /= (float)C;
        float var = 0.0f;
#pragma omp simd reduction(+ : var)
        for (int c = 0; c < C; c++) {
            float d = x[c] - mu;
            var += d * d;
        }
        var /= (float)C; /* biased, as torch.nn.LayerNorm */
        float s = 1.0f / sqrtf(var + NN_LN_EPS);
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - mu) * s * gamma[c] + beta[c];
        mean[m] = mu;
        rstd[m] = s;
    }
}

void nn_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *gamma, const float *mean,
                           const float *rstd, int M, int C) {
#pragma omp parallel
    {
        int lo, hi;
        nn_slice(M, &lo, &hi);
        for (int m = lo; m < hi; m++) {
            const float *dy = dout + (size_t)m * C, *x = inp + (size_t)m * C;
            float mu = mean[m], s = rstd[m];
            float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
            for (int c = 0; c < C; c++) {
                float dn = gamma[c] * dy[c];
                dnorm_mean += dn;
                dnorm_norm_mean += dn * (x[c] - mu) * s;
            }
            dnorm_mean /= (float)C;
            dnorm_norm_mean /= (float)C;
            float *dx = dinp + (size_t)m * C;
            for (int c = 0; c < C; c++) {
                float n = (x[c] - mu) * s;
                dx[c] += (gamma[c] * dy[c] - dnorm_mean - n * dnorm_norm_mean) * s;
            }
        }
#pragma omp barrier
        nn_slice(C, &lo, &hi); /* parameter gradients: each thread owns columns, rows in order */
        for (int m = 0; m < M; m++) {
            const float *dy = dout + (size_t)m * C, *x = inp + (size_t)m * C;
            float mu = mean[m], s = rstd[m];
            for (int c = lo; c < hi; c++) {
                dgamma[c] += dy[c] * (x[c] - mu) * s;
                dbeta[c] += dy[c];
            }
        }
    }
}

/* -------------------------------------------------------------------------------- gelu */
#define NN_INV_SQRT2 0.70710678118654752440f
#define NN_INV_SQRT_2PI 0.39894228040143267794f

void nn_gelu_forward(float *restrict out, float *restrict cdf, const float *restrict inp,
                     size_t n) {
    long long nn = (long long)n;
    if (cdf) {
#pragma omp parallel for simd schedule(static)
        for (long long i = 0; i < nn; i++) {
            float c = 0.5f * (1.0f + erff(inp[i] * NN_INV_SQRT2));
            out[i] = inp[i] * c;
            cdf[i] = c;
        }
    } else {
#pragma omp parallel for simd schedule(static)
        for (long long i = 0; i < nn; i++)
            out[i] = inp[i] * (0.5f * (1.0f + erff(inp[i] * NN_INV_SQRT2)));
    }
}

void nn_gelu_backward(float *dinp, const float *dout, const float *restrict inp,
                      const float *restrict cdf, size_t n) {
    long long nn = (long long)n;
    /* dinp may alias dout: each element is read before it is written, in the same lane */
    if (cdf) {
#pragma omp parallel for simd schedule(static)
        for (long long i = 0; i < nn; i++) {
            float x = inp[i];
            dinp[i] = dout[i] * (cdf[i] + x * (NN_INV_SQRT_2PI * expf(-0.5f * x * x)));
        }
    } else {
#pragma omp parallel for simd schedule(static)
        for (long long i = 0; i < nn; i++) {
            float x = inp[i], c = 0.5f * (1.0f + erff(x * NN_INV_SQRT2));
            dinp[i] = dout[i] * (c + x * (NN_INV_SQRT_2PI * expf(-0.5f * x * x)));
        }
    }
}

void nn_residual_forward(float *out, const float *a, const float *b, size_t n) {
    long long nn = (long long)n;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < nn; i++)
        out[i] = a[i] + b[i];
}

/* ---------------------------------------------------------------------------- attention */
size_t nn_attention_scratch(int T) { return (size_t)T * (size_t)T; }

void nn_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    int hd = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hd;
        const float *k = q + C, *v = q + 2 * C;
        float *p = att + (size_t)bh * T * T;
        /* p (T, T) = scale * q k^T, then softmax by rows */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, C3, k, C3, 0.0f, p,
                    T);
        for (int i = 0; i < T; i++) {
            float *row = p + (size_t)i * T;
            float mx = row[0];
#pragma omp simd reduction(max : mx)
            for (int j = 1; j < T; j++)
                mx = row[j] > mx ? row[j] : mx;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int j = 0; j < T; j++) {
                row[j] = expf(row[j] - mx);
                sum += row[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < T; j++)
                row[j] *= inv;
        }
        /* out (T, hd) = p v */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, v, C3, 0.0f,
                    out + (size_t)b * T * C + (size_t)h * hd, C);
    }
}

void nn_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int T, int C, int NH) {
    int hd = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        size_t off = (size_t)b * T * C3 + (size_t)h * hd;
        const float *q = qkv + off, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
        const float *p = att + (size_t)bh * T * T;
        const float *dy = dout + (size_t)b * T * C + (size_t)h * hd;
        float *dp = scratch + (size_t)nn_thread_id() * nn_attention_scratch(T);
        /* dp (T, T) = dy v^T;  dv (T, hd) = p^T dy */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dy, C, v, C3, 0.0f, dp,
                    T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, dy, C, 0.0f, dv,
                    C3);
        /* softmax backward: ds = p * (dp - sum_j p dp) */
        for (int i = 0; i < T; i++) {
            const float *pr = p + (size_t)i * T;
            float *dr = dp + (size_t)i * T;
            float dot = 0.0f;
            for (int j = 0; j < T; j++)
                dot += pr[j] * dr[j];
            for (int j = 0; j < T; j++)
                dr[j] = pr[j] * (dr[j] - dot);
        }
        /* dq = scale ds k;  dk = scale ds^T q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dp, T, k, C3, 0.0f,
                    dq, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dp, T, q, C3, 0.0f,
                    dk, C3);
    }
}
