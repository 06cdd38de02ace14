/* labels.h — lesion and volume labels in the forms researchers have them, imported under
 * pseudonymous series keys.
 *
 *   points   LUNA16 CSV: seriesuid,coordX,coordY,coordZ,diameter_mm (LPS mm, the frame of ITK
 *            and of volume.h); also accepted: series,x,y,z,diameter
 *   volume   CSV: seriesuid,label (1 the series holds a lesion, 0 it does not)
 *   masks    a folder of label maps named <seriesuid>.nii.gz / .nii / .nrrd / .mha / .mhd,
 *            each aligned to its series by its own geometry; every connected region of a
 *            non-zero label is a lesion (centroid, equivalent-sphere diameter)
 *
 * Invariants:
 *   1. Labels name ORIGINAL SeriesInstanceUIDs; with a de-identification context every one is
 *      replaced by its keyed pseudonym (deid_uid_key) as it is read, and no original UID is
 *      kept in memory past its line, written, or quoted in an error message. Without a context
 *      the files must already hold pseudonymous keys (the alphabet of validation/FORMATS.md).
 *   2. World to voxel goes only through volume_lps_to_index (labels_lesion_zyx); masks reach the
 *      volume's grid only by nearest-neighbour resampling, so label values are kept.
 *   3. A malformed line fails with the file and line number named.
 */
#ifndef VS_LABELS_H
#define VS_LABELS_H

#include "deid.h"
#include "status.h"
#include "volume.h"

#define LABEL_KEY_MAX 65

typedef struct label_lesion {
    double lps[3];   /* centre, LPS mm */
    double diameter; /* mm */
} label_lesion;

typedef struct label_series {
    char key[LABEL_KEY_MAX]; /* pseudonymous series key */
    int label;               /* 1 / 0 from a volume CSV; -1 when only lesions or a mask name it */
    int n_lesions, cap;
    label_lesion *lesions;
    char *mask_path; /* a label map for this series, or NULL */
} label_series;

typedef struct label_set {
    int n, cap;
    label_series *s;
} label_set;

/* Read into ls (zero-initialised by the caller, or holding earlier reads). key: the site's
 * de-identification context, or NULL when the files already hold pseudonymous keys. */
vs_status labels_read_points(label_set *ls, const char *path, const deid_ctx *key, vs_error *err);
vs_status labels_read_volume(label_set *ls, const char *path, const deid_ctx *key, vs_error *err);
vs_status labels_scan_masks(label_set *ls, const char *dir, const deid_ctx *key, vs_error *err);
void labels_free(label_set *ls);

/* The series with this pseudonymous key, or NULL. */
label_series *labels_find(const label_set *ls, const char *key);
/* The volume-level label: the CSV's when given, else 1 with lesions and 0 without. */
int labels_volume_label(const label_series *s);

/* A mask resampled (nearest neighbour) onto ref's voxel grid: out is uint8 (values kept) or,
 * for a non-label image, float32. */
vs_status labels_mask_on_grid(const char *mask_path, const volume *ref, volume *out, vs_error *err);
/* Append the lesions of s's mask, seen on ref's grid: one per 26-connected region of each
 * non-zero value, at its centroid, diameter of the sphere of its volume. */
vs_status labels_mask_lesions(label_series *s, const volume *ref, vs_error *err);

/* Lesion centre as continuous voxel coordinates (z, y, x) = (slice, row, column) of v. */
vs_status labels_lesion_zyx(const volume *v, const label_lesion *l, double zyx[3], vs_error *err);

#endif
