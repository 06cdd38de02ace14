/* synth.h — the tests' volumes, rendered from the phantom (studies/phantom.h: procedural
 * anatomy in world coordinates, not patient data): int16 CT in HU, float32 MR with a strong
 * coil bias field, an int16 radiograph as a one-slice volume, and float32 CT windowed to
 * [0, 1] as preprocessing stores it (the pretraining tests). Each names the series `key`
 * (patient and study keys derive from it); the same seed gives the same volume. */
#ifndef VS_TEST_SYNTH_H
#define VS_TEST_SYNTH_H

#include <stdint.h>

#include "phantom.h"
#include "rng.h"
#include "status.h"
#include "volume.h"

/* Tilt v's grid by `angle` radians about the axis (1, 2, 3)/|.| through its middle voxel:
 * every axis oblique, the body still in the field of view. Updates the affine. */
void synth_oblique(volume *v, double angle);

/* The subject synth_ct, synth_mr or synth_xray (by its stream) renders for a seed, MR bias
 * field included: for tests that compare a volume with the anatomy it was rendered from. */
void synth_subject(phantom *p, uint64_t seed, uint64_t stream);

/* Shape (n_slices, n_rows, n_cols). CT: chest at the lung bases (lungs, heart, liver dome,
 * spine, fat), 2.5 mm slices, noise 8 HU, oblique; body part CHEST. MR: upper abdomen (liver,
 * kidneys, spleen), 4 mm slices, the phantom's bias field set to 30% left-right and 20%
 * anterior-posterior, Rician noise 10, oblique; body part ABDOMEN. */
vs_status synth_ct(volume *v, int64_t nz, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                   vs_error *err);
vs_status synth_mr(volume *v, int64_t nz, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                   vs_error *err);
/* A coronal chest radiograph (phantom_radiograph, values 0..4095) of ny x nx pixels. */
vs_status synth_xray(volume *v, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                     vs_error *err);
/* A pretraining volume drawn from r: phantom_windowed_ct through preprocess.ct_window's
 * default window, -1000..1000 HU. */
vs_status synth_normalized_ct(volume *v, int64_t nz, int64_t ny, int64_t nx, rng *r, vs_error *err);

/* The streams synth_ct, synth_mr and synth_xray seed with their seed. */
enum { SYNTH_STREAM_CT = 11, SYNTH_STREAM_MR = 12, SYNTH_STREAM_XRAY = 13 };

#endif
