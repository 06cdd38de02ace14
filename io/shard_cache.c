/* shard_cache.c — decompressed chunks kept between crops, least recently used out first.
 *
 * Random crops of a volume overlap the same chunks again and again; keeping their decompressed
 * bytes (up to a byte budget) turns most chunk reads into a copy. The cache only ever holds
 * exact decompressed chunks, so crops do not depend on it.
 *
 * Invariants:
 *   1. used <= budget; an entry with refs > 0 (being copied by a reader) is never evicted.
 *   2. At most one entry per (volume, chunk).
 */
#include "shard_h5.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct cache_entry {
    int volume;
    uint64_t chunk;
    uint8_t *raw;
    size_t bytes;
    int refs;
    uint64_t last; /* clock of the last use */
} cache_entry;

struct shard_cache {
    pthread_mutex_t mu;
    size_t budget, used;
    cache_entry *e;
    int n, cap;
    uint64_t clock, hits, misses;
};

shard_cache *shard_cache_create(size_t budget) {
    shard_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget;
    return c;
}

void shard_cache_destroy(shard_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++)
        free(c->e[i].raw);
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int find(const shard_cache *c, int volume, uint64_t chunk) {
    for (int i = 0; i < c->n; i++)
        if (c->e[i].chunk == chunk && c->e[i].volume == volume) return i;
    return -1;
}

const uint8_t *shard_cache_get(shard_cache *c, int volume, uint64_t chunk) {
    pthread_mutex_lock(&c->mu);
    int i = find(c, volume, chunk);
    const uint8_t *raw = NULL;
    if (i >= 0) {
        c->e[i].refs++;
        c->e[i].last = ++c->clock;
        raw = c->e[i].raw;
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return raw;
}

void shard_cache_release(shard_cache *c, int volume, uint64_t chunk) {
    pthread_mutex_lock(&c->mu);
    int i = find(c, volume, chunk);
    if (i >= 0 && c->e[i].refs > 0) c->e[i].refs--;
    pthread_mutex_unlock(&c->mu);
}

/* Evict least recently used unpinned entries until `bytes` more fit; 0 if they cannot. */
static int make_room(shard_cache *c, size_t bytes) {
    while (c->used + bytes > c->budget) {
        int victim = -1;
        for (int i = 0; i < c->n; i++)
            if (c->e[i].refs == 0 && (victim < 0 || c->e[i].last < c->e[victim].last)) victim = i;
        if (victim < 0) return 0;
        c->used -= c->e[victim].bytes;
        free(c->e[victim].raw);
        c->e[victim] = c->e[--c->n];
    }
    return 1;
}

int shard_cache_put(shard_cache *c, int volume, uint64_t chunk, uint8_t *raw, size_t bytes) {
    int kept = 0;
    pthread_mutex_lock(&c->mu);
    if (bytes <= c->budget && find(c, volume, chunk) < 0 && make_room(c, bytes)) {
        if (c->n == c->cap) {
            int cap = c->cap ? 2 * c->cap : 64;
            cache_entry *g = realloc(c->e, (size_t)cap * sizeof *g);
            if (g) c->e = g, c->cap = cap;
        }
        if (c->n < c->cap) {
            c->e[c->n++] = (cache_entry){volume, chunk, raw, bytes, 0, ++c->clock};
            c->used += bytes;
            kept = 1;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return kept;
}

void shard_cache_stats(shard_cache *c, uint64_t *hits, uint64_t *misses) {
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
