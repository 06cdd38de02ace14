/* prep.h — preprocessing between de-identification and the shard writer, chosen per study:
 * reorient (exact axis permutation/flip), foreground crop, N4 (MR), resample to a target
 * spacing (ITK, linear or nearest), CT window or percentile normalisation; or none.
 *
 * Order of the steps (each optional): reorient → crop → N4 → resample → intensity.
 *
 * Invariants:
 *   1. Geometry stays exact: after every step spacing/origin/direction describe the new voxel
 *      grid and the affine is recomputed (volume_update_affine), so a world point keeps its
 *      anatomy. Reorient and crop move no voxel value; they only relabel indices.
 *   2. "none" leaves the volume untouched (same voxels, same type, same geometry).
 *   3. Every step that changes intensities outputs float32; `applied` names what was done to
 *      that volume (stored as the shard's `preprocessing` attribute).
 *   4. CT window applies to CT only, N4 to MR only, percentile normalisation to non-CT.
 */
#ifndef VS_PREP_H
#define VS_PREP_H

#include "status.h"
#include "volume.h"

typedef struct prep_options {
    int reorient;      /* permute/flip axes so direction is closest to identity (LPS) */
    double spacing[3]; /* target spacing (column, row, slice) mm; 0 keeps an axis */
    int nearest;       /* nearest-neighbour resampling (label maps) instead of linear */
    int ct_window;     /* CT: clip to [window[0], window[1]] HU, scale to [0, 1] */
    double window[2];
    int n4;         /* MR: N4 bias-field correction */
    int percentile; /* non-CT: map percentiles pct[0] → 0 and pct[1] → 1 */
    double pct[2];
    int crop; /* crop to the box of voxels > crop_threshold, plus a margin */
    double crop_threshold;
    int crop_margin; /* voxels */
} prep_options;

/* Parse "none" or a comma-separated list of: reorient, spacing=XxYxZ, nearest,
 * ct-window=LO:HI, n4, percentile=LO:HI, crop=THRESHOLD, margin=N. VS_ERR_CONFIG on a bad
 * item, naming it. */
vs_status prep_parse(const char *spec, prep_options *o, vs_error *err);
/* The canonical text of o (what prep_parse reads back); "none" when o does nothing. */
void prep_describe(const prep_options *o, char *buf, size_t cap);
int prep_is_none(const prep_options *o);

/* Apply o to v in place (v's voxels may be replaced). `applied` (cap bytes) receives the
 * steps actually applied to this volume, e.g. "reorient,spacing=1x1x1,ct-window=-1000:400"
 * or "none". On failure v is unchanged. */
vs_status prep_apply(volume *v, const prep_options *o, char *applied, size_t cap, vs_error *err);

/* The individual steps, for tests and tools. */
vs_status prep_reorient(volume *v, vs_error *err);
vs_status prep_crop_foreground(volume *v, double threshold, int margin, vs_error *err);
vs_status prep_resample(volume *v, const double spacing[3], int nearest, vs_error *err);
/* The p-th percentile (0..100) of the voxels, linear between order statistics (numpy's
 * default); over a fixed stride subsample when the volume has more than 2^24 voxels. */
vs_status prep_percentile(const volume *v, double p, double *out, vs_error *err);

#endif
