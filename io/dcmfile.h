/* dcmfile.h — one DICOM file held in memory (a DCMTK DcmFileFormat behind an opaque handle).
 *
 * This is the seam between the DICOM reader (io/dicom), de-identification (io/deid) and the
 * DICOM writer: C code passes dcmfile handles around; the C++ shims reach the dataset
 * through dcmfile_impl.hh. No exception crosses this boundary.
 *
 * Invariants:
 *   1. dcmfile_load never asks DCMTK to allocate more than the limits allow: lengths are
 *      validated against the file size before the dataset is loaded.
 *   2. A failed load returns VS_ERR_FORMAT (bad data) or VS_ERR_IO (cannot read) with one
 *      line naming the file and the reason, and *out is NULL.
 */
#ifndef VS_DCMFILE_H
#define VS_DCMFILE_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcmfile dcmfile;

typedef struct dcmfile_limits {
    uint64_t max_file_bytes;   /* refuse larger files (0: 4 GiB) */
    uint64_t max_voxels;       /* refuse Rows*Columns*Frames above this (0: 2^31) */
} dcmfile_limits;

vs_status dcmfile_load(const char *path, const dcmfile_limits *limits, dcmfile **out,
                       vs_error *err);
/* Write with the file's own transfer syntax and fresh meta information. */
vs_status dcmfile_save(dcmfile *f, const char *path, vs_error *err);
void dcmfile_free(dcmfile *f);

/* The transfer syntax UID of the loaded file ("" when unknown). */
const char *dcmfile_transfer_syntax(const dcmfile *f);

#ifdef __cplusplus
}
#endif
#endif
