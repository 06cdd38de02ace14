/* mae_data.h — where pretraining crops come from: a small batch-source interface, an in-memory
 * source over volumes with random crops and augmentation, and procedural smoke-test volumes.
 *
 * The shard reader (io/shard) plugs in as another mae_source; the trainer only sees this
 * struct of function pointers.
 *
 * Invariants:
 *   1. fill() draws every random number from the rng it is given, in a fixed order, so the
 *      trainer's rng state (checkpointed) plus the source's saved state define the next batch.
 *   2. save() then load() on a fresh source over the same data gives the same next batches.
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
    const char *name; /* "volumes", "shards", ... (recorded in checkpoints) */
    /* Fill out (B, Sz, Sy, Sx) float32 with B crops of size crop (z, y, x) drawn with r. */
    vs_status (*fill)(void *ctx, rng *r, int B, const int crop[3], float *out, vs_error *err);
    /* Write the source's own state (at most MAE_SOURCE_STATE_MAX bytes) into buf. */
    vs_status (*save)(void *ctx, uint8_t *buf, size_t *len, vs_error *err);
    vs_status (*load)(void *ctx, const uint8_t *buf, size_t len, vs_error *err);
    void (*close)(void *ctx);
} mae_source;

/* Augmentation of each crop, applied in this order: flips, then x * scale + shift. */
typedef struct mae_aug {
    float flip[3]; /* probability of flipping axis z, y, x */
    float scale;   /* scale drawn from [1 - scale, 1 + scale] */
    float shift;   /* shift drawn from [-shift, shift] */
} mae_aug;

/* Augment one crop x (Sz, Sy, Sx) in place: draws 3 flips, a scale and a shift from r (in that
 * order, always), flips, then x * scale + shift. Every source applies it to each crop it reads
 * (a shard-stream adapter: shard_stream_next, then mae_augment with the trainer's rng). */
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
 * modality, series keys left out): random crops from a prefetching stream seeded by `seed`
 * (`threads` decompress ahead), drawn through the working-set sampler `smp` (NULL: the default),
 * then the augmentation drawn from the trainer's rng. Its state (the stream position, W and R)
 * resumes; resuming with another W or R is refused. */
vs_status mae_source_shards(mae_source *src, const char *dir, const shard_filter *filter,
                            uint64_t seed, const int crop[3], const mae_aug *aug,
                            const mae_sampling *smp, int threads, vs_error *err);

/* A procedural smoke-test volume (float32, (nz, ny, nx)): a body ellipsoid with a smooth bias
 * field, a few textured organ ellipsoids, a bright spine-like cylinder and Gaussian noise.
 * For testing the pipeline end to end without patient data; nothing clinical. */
vs_status mae_synthetic_volume(volume *v, int nz, int ny, int nx, rng *r, vs_error *err);

#endif
