/* synth.h — realistic synthetic volumes for tests and benchmarks (not patient data):
 * int16 CT-like (air, body, lungs, spine, organs, noise), float32 MR-like (smooth bias field,
 * tissue classes), and 2D radiographs as one-slice volumes; all on oblique geometry. */
#ifndef VS_TEST_SYNTH_H
#define VS_TEST_SYNTH_H

#include <stdint.h>

#include "status.h"
#include "volume.h"

/* Oblique geometry: a rotation by `angle` radians about the axis (1, 2, 3)/|.| applied to the
 * LPS axes, spacing (column, row, slice), and an origin. Updates the affine. */
void synth_geometry(volume *v, double angle, const double spacing[3], const double origin[3]);

/* Shape (n_slices, n_rows, n_cols); `key` names the series (patient/study keys derive from it). */
vs_status synth_ct(volume *v, int64_t nz, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                   vs_error *err);
vs_status synth_mr(volume *v, int64_t nz, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                   vs_error *err);
vs_status synth_xray(volume *v, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                     vs_error *err);

#endif
