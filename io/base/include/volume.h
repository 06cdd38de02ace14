/* volume.h — the one volume type that crosses every seam (DICOM → de-id → shards → models).
 *
 * Array order (fixed): voxels[(k * n_rows + j) * n_cols + i], i.e. [slice][row][column],
 * slices in increasing position along the slice normal, column fastest. This is what stacking
 * pydicom's pixel_arrays after sorting gives, and the shape an h5py user sees.
 *
 * Geometry is in INDEX order (i = column, j = row, k = slice), LPS millimetres, as ITK and
 * SimpleITK do (so spacing/origin/direction read reversed relative to the array shape):
 *   LPS(i, j, k) = origin + i*spacing[0]*d0 + j*spacing[1]*d1 + k*spacing[2]*d2
 * where d_c = (direction[0*3+c], direction[1*3+c], direction[2*3+c]) is column c of the
 * row-major 3x3 `direction`. `affine` is the same map as a row-major 4x4 matrix acting on
 * (i, j, k, 1). With gantry tilt d2 is not orthogonal to d0 and d1; the affine stays exact.
 * Geometry is computed once, in io/dicom, and never re-derived elsewhere.
 *
 * Invariants:
 *   1. voxels holds n_slices*n_rows*n_cols elements of dtype, owned by the volume.
 *   2. affine == volume_affine_from(spacing, origin, direction) at every seam.
 *   3. The text fields hold no patient data: modality, body part, units and pseudonymous keys.
 */
#ifndef VS_VOLUME_H
#define VS_VOLUME_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vol_dtype {
    VOL_INT16 = 1,   /* stored values after an exact integer rescale (CT HU, most MR) */
    VOL_FLOAT32 = 2, /* anything that is not exact in int16, and preprocessed volumes */
    VOL_UINT8 = 3,   /* label masks */
} vol_dtype;

typedef struct volume {
    int64_t n_slices, n_rows, n_cols;
    vol_dtype dtype;
    void *voxels;

    double spacing[3];   /* (column, row, slice) step in mm */
    double origin[3];    /* LPS mm of the centre of voxel (0, 0, 0) */
    double direction[9]; /* row-major 3x3, columns are the index axes' LPS unit vectors */
    double affine[16];   /* row-major 4x4: LPS = affine * (i, j, k, 1) */

    char modality[17];    /* DICOM Modality: "CT", "MR", "CR", "DX", "MG", "XA", ... */
    char body_part[65];   /* BodyPartExamined, or "" */
    char units[16];       /* "HU" for rescaled CT, otherwise "arbitrary" */
    char patient_key[65]; /* pseudonymous keys (io/deid); never original identifiers */
    char study_key[65];
    char series_key[65];
} volume;

size_t vol_dtype_size(vol_dtype t);
const char *vol_dtype_name(vol_dtype t);

/* Allocate zeroed voxels for the given shape; refuses sizes over max_voxels (0: no limit)
 * or whose byte count overflows. On failure the volume holds no voxels. */
vs_status volume_alloc(volume *v, int64_t n_slices, int64_t n_rows, int64_t n_cols, vol_dtype t,
                       uint64_t max_voxels, vs_error *err);
void volume_free(volume *v);
uint64_t volume_n_voxels(const volume *v);

/* Fill affine from spacing, origin and direction (invariant 2). */
void volume_update_affine(volume *v);

/* The one mapping between voxel indices and world coordinates, used by fine-tuning,
 * prediction, label import and the demo generator alike. Indices are continuous
 * (column, row, slice); lps_to_index inverts the full affine (shear included) and returns
 * VS_ERR_FORMAT when the affine is singular. */
void volume_index_to_lps(const volume *v, const double ijk[3], double lps[3]);
vs_status volume_lps_to_index(const volume *v, const double lps[3], double ijk[3], vs_error *err);

#ifdef __cplusplus
}
#endif
#endif
