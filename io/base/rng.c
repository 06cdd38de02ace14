#include "rng.h"

#include "le.h"

#include <math.h>

#define PCG_MULT 6364136223846793005ULL

void rng_seed(rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    (void)rng_u32(r);
    r->state += seed;
    (void)rng_u32(r);
}

uint32_t rng_u32(rng *r) {
    uint64_t old = r->state;
    r->state = old * PCG_MULT + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31u));
}

uint64_t rng_u64(rng *r) {
    uint64_t hi = rng_u32(r);
    return (hi << 32) | rng_u32(r);
}

uint32_t rng_below(rng *r, uint32_t n) {
    /* Rejection sampling on the low end (as in pcg32_boundedrand). */
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t x = rng_u32(r);
        if (x >= threshold) return x % n;
    }
}

float rng_float(rng *r) { return (float)(rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double rng_double(rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double rng_normal(rng *r) {
    double u1 = rng_double(r), u2 = rng_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

void rng_shuffle_u32(rng *r, uint32_t *a, uint32_t n) {
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void rng_save(const rng *r, uint8_t out[RNG_STATE_BYTES]) {
    le_put_u64(out, r->state);
    le_put_u64(out + 8, r->inc);
}

vs_status rng_load(rng *r, const uint8_t in[RNG_STATE_BYTES], vs_error *err) {
    uint64_t inc = le_get_u64(in + 8);
    if ((inc & 1u) == 0)
        return VS_FAIL(err, VS_ERR_FORMAT, "saved RNG state is invalid (even increment)");
    r->state = le_get_u64(in);
    r->inc = inc;
    return VS_OK;
}
