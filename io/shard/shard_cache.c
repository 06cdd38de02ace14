/* shard_cache.c — decompressed chunks kept between crops, least recently used out first.
 *
 * Random crops of a volume overlap the same chunks again and again; keeping their decompressed
 * bytes (up to a byte budget) turns most chunk reads into a copy. The cache only ever holds
 * exact decompressed chunks, so crops do not depend on it. A working set of several CT volumes
 * is tens of thousands of chunks: lookups go through a hash table and eviction takes the tail
 * of a recency list, both O(1), not a scan.
 *
 * Invariants:
 *   1. used <= budget; an entry with refs > 0 (being copied by a reader) is never evicted.
 *   2. At most one entry per (volume, chunk); every live entry is in exactly one hash chain and
 *      in the recency list (head: most recent), free slots only in the free list.
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
    int hnext;      /* next entry in the hash chain, or the next free slot (-1: none) */
    int prev, next; /* recency list neighbours (-1: none) */
} cache_entry;

struct shard_cache {
    pthread_mutex_t mu;
    size_t budget, used;
    cache_entry *e;
    int cap, n, free_head;
    int *bucket; /* (n_buckets) first entry of each chain, -1: empty */
    int n_buckets;
    int head, tail; /* recency list */
    uint64_t hits, misses;
};

shard_cache *shard_cache_create(size_t budget) {
    shard_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget;
    c->free_head = c->head = c->tail = -1;
    return c;
}

void shard_cache_destroy(shard_cache *c) {
    if (!c) return;
    for (int i = c->head; i >= 0; i = c->e[i].next)
        free(c->e[i].raw);
    free(c->e);
    free(c->bucket);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static uint32_t hash_of(int volume, uint64_t chunk) {
    uint64_t x = chunk * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uint32_t)volume * 0xC2B2AE3D27D4EB4Full;
    x ^= x >> 29;
    return (uint32_t)(x * 0xBF58476D1CE4E5B9ull >> 32);
}

static int find(const shard_cache *c, int volume, uint64_t chunk) {
    if (!c->n_buckets) return -1;
    int i = c->bucket[hash_of(volume, chunk) & (uint32_t)(c->n_buckets - 1)];
    while (i >= 0 && (c->e[i].chunk != chunk || c->e[i].volume != volume))
        i = c->e[i].hnext;
    return i;
}

static void list_unlink(shard_cache *c, int i) {
    cache_entry *x = &c->e[i];
    if (x->prev >= 0)
        c->e[x->prev].next = x->next;
    else
        c->head = x->next;
    if (x->next >= 0)
        c->e[x->next].prev = x->prev;
    else
        c->tail = x->prev;
    x->prev = x->next = -1;
}

static void list_push_front(shard_cache *c, int i) {
    c->e[i].prev = -1;
    c->e[i].next = c->head;
    if (c->head >= 0) c->e[c->head].prev = i;
    c->head = i;
    if (c->tail < 0) c->tail = i;
}

const uint8_t *shard_cache_get(shard_cache *c, int volume, uint64_t chunk) {
    pthread_mutex_lock(&c->mu);
    int i = find(c, volume, chunk);
    const uint8_t *raw = NULL;
    if (i >= 0) {
        c->e[i].refs++;
        list_unlink(c, i);
        list_push_front(c, i);
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

static void remove_entry(shard_cache *c, int i) {
    cache_entry *x = &c->e[i];
    int *p = &c->bucket[hash_of(x->volume, x->chunk) & (uint32_t)(c->n_buckets - 1)];
    while (*p != i)
        p = &c->e[*p].hnext;
    *p = x->hnext;
    list_unlink(c, i);
    c->used -= x->bytes;
    free(x->raw);
    x->raw = NULL;
    x->hnext = c->free_head;
    c->free_head = i;
    c->n--;
}

/* Evict least recently used unpinned entries until `bytes` more fit; 0 if they cannot. */
static int make_room(shard_cache *c, size_t bytes) {
    int i = c->tail;
    while (c->used + bytes > c->budget) {
        while (i >= 0 && c->e[i].refs > 0)
            i = c->e[i].prev;
        if (i < 0) return 0;
        int older = c->e[i].prev;
        remove_entry(c, i);
        i = older;
    }
    return 1;
}

/* Room for one more entry: a free slot and a table at most half full; 0 when out of memory. */
static int grow(shard_cache *c) {
    if (c->free_head < 0) {
        int cap = c->cap ? 2 * c->cap : 256;
        cache_entry *g = realloc(c->e, (size_t)cap * sizeof *g);
        if (!g) return 0;
        c->e = g;
        for (int i = cap - 1; i >= c->cap; i--)
            c->e[i].raw = NULL, c->e[i].hnext = c->free_head, c->free_head = i;
        c->cap = cap;
    }
    if (2 * (c->n + 1) <= c->n_buckets) return 1;
    int nb = c->n_buckets ? 2 * c->n_buckets : 512;
    int *b = malloc((size_t)nb * sizeof *b);
    if (!b) return 0;
    for (int k = 0; k < nb; k++)
        b[k] = -1;
    for (int i = c->head; i >= 0; i = c->e[i].next) { /* rehash the live entries */
        uint32_t h = hash_of(c->e[i].volume, c->e[i].chunk) & (uint32_t)(nb - 1);
        c->e[i].hnext = b[h];
        b[h] = i;
    }
    free(c->bucket);
    c->bucket = b;
    c->n_buckets = nb;
    return 1;
}

int shard_cache_put(shard_cache *c, int volume, uint64_t chunk, uint8_t *raw, size_t bytes) {
    int kept = 0;
    pthread_mutex_lock(&c->mu);
    if (bytes <= c->budget && find(c, volume, chunk) < 0 && make_room(c, bytes) && grow(c)) {
        int i = c->free_head;
        c->free_head = c->e[i].hnext;
        uint32_t h = hash_of(volume, chunk) & (uint32_t)(c->n_buckets - 1);
        c->e[i] = (cache_entry){volume, chunk, raw, bytes, 0, c->bucket[h], -1, -1};
        c->bucket[h] = i;
        list_push_front(c, i);
        c->used += bytes;
        c->n++;
        kept = 1;
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
