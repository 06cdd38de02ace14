/* dcmwrite.h — vesalius's own DICOM writer (DCMTK behind a C API), used by the demo cohort
 * generator and by tests that need DICOM files with known content.
 *
 * A dcm_writer builds one dataset: attributes are put by tag (VR from DCMTK's data dictionary, or
 * given explicitly for private tags), sequence items open and close like brackets, pixel data
 * is 16-bit grey. dcm_writer_save encodes the pixel data in the requested transfer syntax
 * (uncompressed LE/BE, deflated, RLE, JPEG lossless, JPEG-LS lossless) and writes a Part 10 file.
 */
#ifndef VS_DCMWRITE_H
#define VS_DCMWRITE_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcm_writer dcm_writer;

#define DCM_TAG(g, e) ((uint32_t)(((uint32_t)(g) << 16) | (uint32_t)(e)))

vs_status dcm_writer_create(dcm_writer **out, vs_error *err);
void dcm_writer_free(dcm_writer *w);

/* Put a string value (multiple values separated by '\'); numbers are given as text (DS, IS,
 * and binary VRs such as US, SS, UL, FD parsed from text). */
vs_status dcm_writer_put(dcm_writer *w, uint32_t tag, const char *value, vs_error *err);
/* The same with an explicit VR ("LO", "SH", ...), for private tags. */
vs_status dcm_writer_put_vr(dcm_writer *w, uint32_t tag, const char *vr, const char *value,
                            vs_error *err);

/* Open a new item of sequence seq_tag in the current item; later puts go into it. */
vs_status dcm_writer_item_begin(dcm_writer *w, uint32_t seq_tag, vs_error *err);
vs_status dcm_writer_item_end(dcm_writer *w, vs_error *err);

/* Grey pixel data, 16 bits allocated, rows*cols values (signed when pixel_representation=1). */
vs_status dcm_writer_put_pixels(dcm_writer *w, uint16_t rows, uint16_t cols, uint16_t bits_stored,
                                int pixel_representation, const uint16_t *pixels, vs_error *err);

/* Write a Part 10 file in the transfer syntax named by its UID. */
vs_status dcm_writer_save(dcm_writer *w, const char *path, const char *transfer_syntax_uid,
                          vs_error *err);

#ifdef __cplusplus
}
#endif
#endif
