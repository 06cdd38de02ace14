/* mae_data.h — where pretraining crops come from: a small crop-source interface and an
 * in-memory source over volumes with random crops and augmentation (`pretrain --synthetic`
 * fills it with studies/phantom.h's volumes).
 *
 * The shard reader (io/shard) plugs in as another mae_source; the trainer only sees this
 * struct of function pointers.
 *
 * Invariants:
 *   1. Crop n of a run is a function of the source's data, its seed and n alone: every random
 *      choice fill() makes for it (a volume, a position, the augmentation) draws from the rng
 *      the caller seeded for crop n (mae_crop_rng), so it does not matter which process asks
 *      for it, in which order, or after how many others.
 *   2. plan() only says what will be asked next (for reading ahead); it changes no crop.
 *   3. save() then load() on a fresh source over the same data checks the settings the crops
 *      depend on (the shard source's working set) and refuses others.
 */
#ifndef VS_MAE_DATA_H
#define VS_MAE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "shard.h"
#include "status.h"
#include "volume.h"

#define MAE_SOURCE_STATE_MAX 4096

typedef struct mae_source {
    void *ctx;
    const char *name; /* "volumes", "shards", ... */
    /* Fill out (Sz, Sy, Sx) float32 with crop number n of size crop (z, y, x), drawing from r. */
    vs_status (*fill)(void *ctx, uint64_t n, rng *r, const int crop[3], float *out, vs_error *err);
    /* Write the source's own state (at most MAE_SOURCE_STATE_MAX bytes) into buf. */
    vs_status (*save)(void *ctx, uint8_t *buf, size_t *len, vs_error *err);
    vs_status (*load)(void *ctx, const uint8_t *buf, size_t len, vs_error *err);
    void (*close)(void *ctx);
    /* The crop numbers fill() will be asked for next, in order: runs of `take` from `first`,
     * one run every `every` crops (shard_stream_plan). NULL: the source reads nothing ahead. */
    vs_status (*plan)(void *ctx, uint64_t first, uint64_t take, uint64_t every, vs_error *err);
} mae_source;

/* The rng of crop n of a run seeded `seed`: what the source draws for the crop, then its
 * mask, come from it in that order (a stream of its own: 2^62 + n, apart from the shard
 * stream's (seed, n) and the trainer's other streams). */
void mae_crop_rng(rng *r, uint64_t seed, uint64_t n);

/* Crops n0 .. n0+B-1 into out (B, Sz, Sy, Sx), crop n0+b drawing from r (the preview and the
 * tools' fixed batches; the trainer seeds each crop with mae_crop_rng instead). */
vs_status mae_source_batch(mae_source *src, uint64_t n0, rng *r, int B, const int crop[3],
                           float *out, vs_error *err);

/* Augmentation of each crop, applied in this order: flips, then x * scale + shift. */
typedef struct mae_aug {
    float flip[3]; /* probability of flipping axis z, y, x */
    float scale;   /* scale drawn from [1 - scale, 1 + scale] */
    float shift;   /* shift drawn from [-shift, shift] */
} mae_aug;

/* Augment one crop x (Sz, Sy, Sx) in place: draws 3 flips, a scale and a shift from r (in that
 * order, always), flips, then x * scale + shift. Every source applies it to each crop it reads
 * (a shard-stream adapter: shard_stream_next, then mae_augment with the crop's rng). */
void mae_augment(const mae_aug *aug, rng *r, const int crop[3], float *x);

/* A source over n volumes (not copied: they must outlive the source). Every volume must be at
 * least as large as the crop on every axis (checked at the first fill, naming the volume). */
vs_status mae_source_volumes(mae_source *src, const volume *vols, int n, const mae_aug *aug,
                             vs_error *err);
void mae_source_close(mae_source *src);

/* How the shard source picks volumes and how much it keeps inflated (pretrain --working-set,
 * --swap-every, --chunk-cache; shard.h's working-set sampler). */
typedef struct mae_sampling {
    int working_set; /* W volumes the crops come from at a time; 0: uniform over every volume */
    int swap_every;  /* R crops between two swaps of the working set */
    int cache_mb;    /* decompressed-chunk cache in MB; 0: auto (W+1 of the largest volumes,
                        512..4096 MB; 512 MB without a working set) */
} mae_sampling;

/* W 8, R 256, auto cache: measured in bench/shards.sh (README, "Reading crops"). */
void mae_sampling_default(mae_sampling *s);

/* A source over the sealed shards in dir (shard.h), the volumes `filter` keeps (NULL: all; a
 * modality, series keys left out): crop n is crop n of a prefetching stream seeded by `seed`
 * (`threads` decompress ahead, along the plan), drawn through the working-set sampler `smp`
 * (NULL: the default), then augmented with draws from fill's rng. Its state is W and R:
 * loading another W or R is refused. */
vs_status mae_source_shards(mae_source *src, const char *dir, const shard_filter *filter,
                            uint64_t seed, const int crop[3], const mae_aug *aug,
                            const mae_sampling *smp, int threads, vs_error *err);

#endif
