/* itk_shim.h — the C face of vesalius's ITK code (image formats, resampling, N4).
 * No ITK exception crosses this boundary: every entry point catches and returns a status. */
#ifndef VS_ITK_SHIM_H
#define VS_ITK_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* status.h and volume.h are C headers without their own guards */
#endif

#include "status.h"
#include "volume.h"

/* ITK's full version string, e.g. "5.2.1". */
const char *itkshim_version(void);

/* Resample `in` onto the grid (size (slice, row, column), spacing / origin / direction in
 * volume.h index order) with ITK's ResampleImageFilter: trilinear (out is float32) or
 * nearest neighbour (out keeps the input type; for label maps). Points outside the input
 * get 0. Copies the text fields and sets the affine. */
vs_status itkshim_resample(const volume *in, const int64_t size[3], const double spacing[3],
                           const double origin[3], const double direction[9], int nearest,
                           volume *out, vs_error *err);

/* N4 bias-field correction of a float32 volume in place (Tustison 2010, ITK's filter),
 * estimated on the voxels where mask != 0 at `shrink`-times coarser resolution with
 * `levels` fitting levels of at most `iterations` each; the field is reconstructed at full
 * resolution and divided out everywhere. Voxels <= 0 are left as they are. */
vs_status itkshim_n4(volume *v, const uint8_t *mask /* (Z, Y, X) */, int shrink, int levels,
                     int iterations, vs_error *err);

/* Read a 3D image file (NIfTI .nii/.nii.gz, NRRD .nrrd/.nhdr, MetaImage .mha/.mhd; the format
 * from the name) with its geometry in LPS (ITK's frame). Values that are all integers in
 * 0..255 give a uint8 volume (a label map), anything else float32. Text fields are empty.
 * VS_ERR_FORMAT naming the file when ITK cannot read it. */
vs_status itkshim_read_image(const char *path, volume *out, vs_error *err);
/* Write v (as float32) to path in the format its name says, with its geometry. */
vs_status itkshim_write_image(const volume *v, const char *path, vs_error *err);

#ifdef __cplusplus
}
#endif
#endif
