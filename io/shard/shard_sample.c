/* shard_sample.c — the working-set sampler: which volumes crop n may come from.
 *
 * A cold random 96³ crop inflates 4³ chunks (4 MB of int16) and is bound by inflate; a trainer
 * that draws each crop from a small set of volumes whose chunks stay in the chunk cache inflates
 * each chunk once per visit instead of once per crop (MONAI's SmartCacheDataset, as a pure
 * function of the crop number so that resuming needs only n).
 *
 * The entry sequence e_0, e_1, ... is the concatenation of seeded permutations of the N volumes,
 * one per epoch (perm_q = Fisher-Yates with rng_seed(seed + SALT, q)). Crop n is in phase
 * k = n / R and draws from the window e_k .. e_{k+W-1}.
 *
 * Invariants:
 *   1. The window of crop n depends only on (N, seed, W, R, n): the permutation cache below
 *      holds exact permutations, so neither threads nor the order of calls change a window.
 *   2. From phase k to k+1 one volume leaves (e_k) and one enters (e_{k+W}); every volume enters
 *      once per epoch of N phases (N*R crops) and stays W phases, so each volume is in some
 *      window within (N + W - 1) * R crops of any point, and gets R crops per epoch on average.
 *   3. A window straddling two epochs may hold a volume twice (the end of one permutation and
 *      the start of the next); it then weighs double in that window only.
 *   4. W >= N is no working set at all: shard_sampler_window returns 0 (uniform over all).
 */
#include "shard.h"

#include <pthread.h>
#include <stdlib.h>

#define SAMPLER_SALT 0x9E3779B97F4A7C15ull /* permutation seeds apart from the crops' (seed, n) */
#define SAMPLER_SLOTS 4                    /* epochs kept: producers a few crops apart share them */

struct shard_sampler {
    uint32_t n_volumes;
    uint64_t seed;
    int w, r;
    pthread_mutex_t mu;
    uint32_t *perm[SAMPLER_SLOTS]; /* (N) permutation of epoch epoch[i] */
    uint64_t epoch[SAMPLER_SLOTS];
    uint64_t used[SAMPLER_SLOTS]; /* clock of the last use, for replacement */
    int have[SAMPLER_SLOTS];
    uint64_t clock;
};

vs_status shard_sampler_create(int n_volumes, uint64_t seed, const shard_working_set *ws,
                               shard_sampler **out, vs_error *err) {
    *out = NULL;
    if (n_volumes < 1) return VS_FAIL(err, VS_ERR_USAGE, "a working set needs at least one volume");
    if (ws->volumes < 0 || ws->volumes > SHARD_WORKING_SET_MAX)
        return VS_FAIL(err, VS_ERR_USAGE, "working set of %d volumes is outside 0..%d", ws->volumes,
                       SHARD_WORKING_SET_MAX);
    if (ws->volumes > 0 && ws->swap_every < 1)
        return VS_FAIL(err, VS_ERR_USAGE, "working-set swap every %d crops: must be at least 1",
                       ws->swap_every);
    shard_sampler *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a working-set sampler");
    s->n_volumes = (uint32_t)n_volumes;
    s->seed = seed;
    s->w = ws->volumes;
    s->r = ws->swap_every;
    pthread_mutex_init(&s->mu, NULL);
    for (int i = 0; i < SAMPLER_SLOTS; i++)
        if (!(s->perm[i] = malloc((size_t)n_volumes * sizeof *s->perm[i]))) {
            shard_sampler_destroy(s);
            return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate %d-volume permutations", n_volumes);
        }
    *out = s;
    return VS_OK;
}

void shard_sampler_destroy(shard_sampler *s) {
    if (!s) return;
    for (int i = 0; i < SAMPLER_SLOTS; i++)
        free(s->perm[i]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The permutation of epoch q (computed into the least recently used slot when absent).
 * Holds s->mu. */
static const uint32_t *perm_of(shard_sampler *s, uint64_t q) {
    int slot = -1;
    for (int i = 0; i < SAMPLER_SLOTS && slot < 0; i++)
        if (s->have[i] && s->epoch[i] == q) slot = i;
    if (slot < 0) {
        slot = 0;
        for (int i = 1; i < SAMPLER_SLOTS; i++)
            if (!s->have[i] || (s->have[slot] && s->used[i] < s->used[slot])) slot = i;
        for (uint32_t v = 0; v < s->n_volumes; v++)
            s->perm[slot][v] = v;
        rng r;
        rng_seed(&r, s->seed + SAMPLER_SALT, q);
        rng_shuffle_u32(&r, s->perm[slot], s->n_volumes);
        s->epoch[slot] = q;
        s->have[slot] = 1;
    }
    s->used[slot] = ++s->clock;
    return s->perm[slot];
}

int shard_sampler_window(shard_sampler *s, uint64_t n, int *out) {
    if (s->w == 0 || (uint32_t)s->w >= s->n_volumes) return 0;
    uint64_t k = n / (uint64_t)s->r, N = s->n_volumes;
    pthread_mutex_lock(&s->mu);
    for (int j = 0; j < s->w; j++) {
        uint64_t e = k + (uint64_t)j;
        out[j] = (int)perm_of(s, e / N)[e % N];
    }
    pthread_mutex_unlock(&s->mu);
    return s->w;
}
