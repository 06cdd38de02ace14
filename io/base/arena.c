#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

vs_status arena_init(arena *a, size_t cap, vs_error *err) {
    memset(a, 0, sizeof *a);
    if (cap == 0) return VS_FAIL(err, VS_ERR_INTERNAL, "arena capacity is zero");
    /* 64-byte base alignment keeps SIMD loads and cache lines happy. */
    size_t rounded = (cap + 63) & ~(size_t)63;
    if (rounded < cap) return VS_FAIL(err, VS_ERR_NOMEM, "arena size %zu overflows", cap);
    a->base = aligned_alloc(64, rounded);
    if (!a->base) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate an arena of %zu bytes", cap);
    a->cap = rounded;
    return VS_OK;
}

void *arena_alloc(arena *a, size_t size, size_t align) {
    if (align == 0) align = 1;
    if ((align & (align - 1)) != 0 || align > 4096) return NULL;
    uintptr_t cur = (uintptr_t)a->base + a->used;
    size_t pad = (size_t)((align - (cur & (align - 1))) & (align - 1));
    size_t start, end;
    if (!vs_size_add(a->used, pad, &start) || !vs_size_add(start, size, &end)) return NULL;
    if (end > a->cap) return NULL;
    a->used = end;
    if (end > a->high_water) a->high_water = end;
    return a->base + start;
}

void *arena_calloc(arena *a, size_t n, size_t size, size_t align) {
    size_t total;
    if (!vs_size_mul(n, size, &total)) return NULL;
    void *p = arena_alloc(a, total, align);
    if (p) memset(p, 0, total);
    return p;
}

size_t arena_mark(const arena *a) { return a->used; }

void arena_reset(arena *a, size_t mark) {
    if (mark <= a->used) a->used = mark;
}

void arena_free(arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}
