/* arena.h — bump allocator for scratch memory (per-batch activations, per-series buffers).
 *
 * Invariants:
 *   1. One malloc at arena_init, one free at arena_free; arena_alloc never calls malloc.
 *   2. Every pointer returned is aligned to at least `align` (a power of two, <= 4096).
 *   3. arena_alloc returns NULL (and allocates nothing) when the request does not fit or
 *      its size arithmetic would overflow; the arena stays usable.
 *   4. arena_reset(a, mark) frees everything allocated after arena_mark() returned mark.
 */
#ifndef VS_ARENA_H
#define VS_ARENA_H

#include <stddef.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct arena {
    unsigned char *base;
    size_t cap;
    size_t used;
    size_t high_water; /* largest `used` seen, for memory reports */
} arena;

vs_status arena_init(arena *a, size_t cap, vs_error *err);
void *arena_alloc(arena *a, size_t size, size_t align);
/* Zeroed allocation of n elements of `size` bytes each. */
void *arena_calloc(arena *a, size_t n, size_t size, size_t align);
size_t arena_mark(const arena *a);
void arena_reset(arena *a, size_t mark);
void arena_free(arena *a);

#ifdef __cplusplus
}
#endif
#endif
