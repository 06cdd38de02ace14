#include "volume.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t vol_dtype_size(vol_dtype t) {
    switch (t) {
    case VOL_INT16: return 2;
    case VOL_FLOAT32: return 4;
    case VOL_UINT8: return 1;
    }
    return 0;
}

const char *vol_dtype_name(vol_dtype t) {
    switch (t) {
    case VOL_INT16: return "int16";
    case VOL_FLOAT32: return "float32";
    case VOL_UINT8: return "uint8";
    }
    return "unknown";
}

vs_status volume_alloc(volume *v, int64_t n_slices, int64_t n_rows, int64_t n_cols, vol_dtype t,
                       uint64_t max_voxels, vs_error *err) {
    v->voxels = NULL;
    size_t es = vol_dtype_size(t);
    if (es == 0) return VS_FAIL(err, VS_ERR_INTERNAL, "unknown voxel type %d", (int)t);
    if (n_slices < 1 || n_rows < 1 || n_cols < 1)
        return VS_FAIL(err, VS_ERR_FORMAT, "volume shape %lldx%lldx%lld is empty",
                       (long long)n_slices, (long long)n_rows, (long long)n_cols);
    size_t n, bytes;
    if (!vs_size_mul((size_t)n_slices, (size_t)n_rows, &n) || !vs_size_mul(n, (size_t)n_cols, &n) ||
        !vs_size_mul(n, es, &bytes) || (max_voxels && n > max_voxels))
        return VS_FAIL(err, VS_ERR_NOMEM, "volume shape %lldx%lldx%lld exceeds the voxel limit",
                       (long long)n_slices, (long long)n_rows, (long long)n_cols);
    v->voxels = calloc(n, es);
    if (!v->voxels) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate %zu bytes of voxels", bytes);
    v->n_slices = n_slices;
    v->n_rows = n_rows;
    v->n_cols = n_cols;
    v->dtype = t;
    return VS_OK;
}

void volume_free(volume *v) {
    free(v->voxels);
    v->voxels = NULL;
}

uint64_t volume_n_voxels(const volume *v) {
    return (uint64_t)v->n_slices * (uint64_t)v->n_rows * (uint64_t)v->n_cols;
}

void volume_update_affine(volume *v) {
    memset(v->affine, 0, sizeof v->affine);
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++)
            v->affine[r * 4 + c] = v->direction[r * 3 + c] * v->spacing[c];
        v->affine[r * 4 + 3] = v->origin[r];
    }
    v->affine[15] = 1.0;
}

void volume_index_to_lps(const volume *v, const double ijk[3], double lps[3]) {
    for (int r = 0; r < 3; r++)
        lps[r] = v->affine[r * 4 + 0] * ijk[0] + v->affine[r * 4 + 1] * ijk[1] +
                 v->affine[r * 4 + 2] * ijk[2] + v->affine[r * 4 + 3];
}

vs_status volume_lps_to_index(const volume *v, const double lps[3], double ijk[3], vs_error *err) {
    const double *a = v->affine;
    double m[3][3] = {{a[0], a[1], a[2]}, {a[4], a[5], a[6]}, {a[8], a[9], a[10]}};
    double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                 m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if (!(fabs(det) > 1e-12)) return VS_FAIL(err, VS_ERR_FORMAT, "volume affine is singular");
    double b[3] = {lps[0] - a[3], lps[1] - a[7], lps[2] - a[11]};
    /* Cramer's rule on the 3x3 linear part. */
    for (int c = 0; c < 3; c++) {
        double t[3][3];
        memcpy(t, m, sizeof t);
        for (int r = 0; r < 3; r++)
            t[r][c] = b[r];
        double d = t[0][0] * (t[1][1] * t[2][2] - t[1][2] * t[2][1]) -
                   t[0][1] * (t[1][0] * t[2][2] - t[1][2] * t[2][0]) +
                   t[0][2] * (t[1][0] * t[2][1] - t[1][1] * t[2][0]);
        ijk[c] = d / det;
    }
    return VS_OK;
}
