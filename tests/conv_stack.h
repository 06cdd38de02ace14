/* conv_stack.h — a small 3D U-Net stage built from models/nn3d.h, the C side of the PyTorch
 * twin's Stack (tests/fixtures/nn3d_twin.py): test_nn3d_twin compares it with the twin's
 * fixture and bench/bench_conv times it against the twin.
 *   x (B, 1, Z, S, S) -> conv3 s2 (1->c1) IN LReLU -> conv3 (c1->c1) IN LReLU = skip
 *     -> conv3 s2 (c1->c2) IN LReLU -> upsample x2 -> cat [up, skip] (c2 + c1)
 *     -> conv3 (c2+c1 -> c1) IN LReLU -> conv1 (c1 -> 4) = y;  loss = sum(y^2) / 2.
 * Z = 1 is a radiograph stored as a one-slice volume: strides (1, 2, 2), upsampling (1, 2, 2).
 * Otherwise strides and upsampling are 2 on every axis.
 * The concat is memory placement (nn3d.h): the skip and the upsampled map are written into one
 * (B, c2 + c1, N) buffer, and conv3 s2 reads the skip from it through a batch stride.
 * Parameters live in one allocation in the twin's named_parameters() order (conv1.weight,
 * conv1.bias, norm1.weight, norm1.bias, ..., conv5.bias); gradients use the same layout. */
#ifndef VS_CONV_STACK_H
#define VS_CONV_STACK_H

#include "nn3d.h"

#include <stddef.h>

#define CONV_STACK_TENSORS 18

typedef struct conv_stack_tensor {
    char name[24]; /* the twin's parameter name */
    size_t offset, size;
} conv_stack_tensor;

typedef struct conv_stack {
    int B, Z, S, c1, c2;
    nn_conv3d_shape conv[5];
    conv_stack_tensor t[CONV_STACK_TENSORS];
    size_t n_params;
    float *params, *grads; /* n_params each */
    float *mem;            /* activations, gradients and scratch: one allocation */
    float *y;              /* (B, 4, Z/2 or 1, S/2, S/2) after conv_stack_step */
    size_t n_y;
    float *acts[16]; /* activation and gradient buffers (internal) */
    float *stats, *scratch;
} conv_stack;

/* 0 on success; -1 when a size is invalid (S a multiple of 4, Z 1 or a multiple of 4, channels
 * >= 1) or memory runs out. Parameters start at torch's default initialisation from `seed`,
 * norms at (1, 0). Scratch is sized for `threads` (nn_set_threads must not ask for more). */
int conv_stack_init(conv_stack *st, int B, int Z, int S, int c1, int c2, int threads,
                    unsigned seed);
void conv_stack_free(conv_stack *st);
/* Forward, loss sum(y^2) / 2 (returned, summed in double), then backward into grads (zeroed
 * first). x is (B, 1, Z, S, S). */
double conv_stack_step(conv_stack *st, const float *x);
/* Forward and backward multiply-adds times 2, for GFLOP/s. */
double conv_stack_flops(const conv_stack *st);

#endif
