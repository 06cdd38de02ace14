/* rng.h — the one deterministic random number generator (PCG32, O'Neill 2014).
 *
 * Every random choice in vesalius (crops, masks, augmentation, splits, bootstrap, the demo
 * cohort) draws from an rng seeded explicitly; its whole state is 16 bytes, saved in
 * checkpoints and run records so a resumed run draws the same numbers.
 *
 * Invariants:
 *   1. rng_seed(r, seed, stream) followed by the same calls gives the same numbers on every
 *      platform (integer arithmetic only; floats are derived from integers exactly).
 *   2. rng_save then rng_load restores the exact position in the sequence.
 *   3. Different `stream` values give independent sequences for the same seed.
 */
#ifndef VS_RNG_H
#define VS_RNG_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rng {
    uint64_t state;
    uint64_t inc; /* always odd */
} rng;

#define RNG_STATE_BYTES 16

void rng_seed(rng *r, uint64_t seed, uint64_t stream);
uint32_t rng_u32(rng *r);
uint64_t rng_u64(rng *r);
/* Uniform integer in [0, n), unbiased (n > 0). */
uint32_t rng_below(rng *r, uint32_t n);
/* Uniform float in [0, 1) with 24 random bits; double with 53 bits. */
float rng_float(rng *r);
double rng_double(rng *r);
/* Standard normal by Box-Muller (no cached spare, so the state alone defines the stream). */
double rng_normal(rng *r);
/* Fisher-Yates shuffle of n 32-bit indices. */
void rng_shuffle_u32(rng *r, uint32_t *a, uint32_t n);

/* Little-endian serialisation of the whole state. */
void rng_save(const rng *r, uint8_t out[RNG_STATE_BYTES]);
vs_status rng_load(rng *r, const uint8_t in[RNG_STATE_BYTES], vs_error *err);

#ifdef __cplusplus
}
#endif
#endif
