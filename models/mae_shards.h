/* mae_shards.h — the shard reader (io/shard.h) as a pretraining batch source (mae_data.h).
 *
 * Crop n of the run is crop n of a shard_stream seeded with `seed` (position and volume drawn
 * from (seed, n), prefetched by background threads that decompress in parallel); the
 * augmentation of each crop (flips, then x * scale + shift, as the in-memory source does) draws
 * from the trainer's rng. save() records (seed, n), so a resumed trainer gets the same batches.
 *
 * Invariants:
 *   1. fill() takes crops n, n+1, ... of the stream in order and draws 5 numbers per crop from
 *      the trainer's rng (3 flips, scale, shift), whatever the thread count.
 *   2. save() then load() on a fresh source over the same shards gives the same next batches.
 */
#ifndef VS_MAE_SHARDS_H
#define VS_MAE_SHARDS_H

#include <stdint.h>

#include "mae_data.h"
#include "shard.h"

typedef struct mae_shards_config {
    const char *dir;     /* a shard folder, or an ingest output folder holding shards/ */
    shard_filter filter; /* which volumes (modality, body part, minimum shape) */
    int crop[3];         /* (z, y, x): the trainer's crop; smaller volumes are padded */
    float pad_value;     /* value of padding (e.g. -1000 for raw CT, 0 after normalisation) */
    uint64_t seed;
    int prefetch;       /* crops kept ready (0: none, made on demand) */
    int threads;        /* prefetch threads */
    size_t cache_bytes; /* decompressed chunks kept between crops (0: none) */
} mae_shards_config;

vs_status mae_source_shards(mae_source *src, const mae_shards_config *cfg, const mae_aug *aug,
                            vs_error *err);

/* A crop-sized float32 volume for previews, drawn apart from the training stream (same
 * (seed, stream) always gives the same crop). The caller frees it with volume_free. */
vs_status mae_shards_preview_crop(const mae_shards_config *cfg, volume *out, vs_error *err);

#endif
