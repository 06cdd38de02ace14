/* dicom_internal.h — what io/dicom/dicom.c and its DCMTK shim (dicom_dcmtk.cc) share.
 * Not a public header: only dicom*.c / dicom*.cc include it. */
#ifndef VS_DICOM_INTERNAL_H
#define VS_DICOM_INTERNAL_H

#include <stdint.h>

#include "dcmfile.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DCM_NO_INT INT32_MIN

/* Geometry and rescale of one frame (single-frame files have exactly one). */
typedef struct dcm_frame {
    int has_ipp, has_iop;
    double ipp[3];     /* ImagePositionPatient, LPS mm */
    double iop[6];     /* ImageOrientationPatient: row cosines (along columns i), column cosines */
    double spacing[2]; /* PixelSpacing: [0] between rows (j), [1] between columns (i); 0: none */
    double slope, intercept;
    int32_t temporal; /* temporal position / stack distinction for enhanced objects */
} dcm_frame;

/* The header strings as read; dicom.c interns the repeated ones (one copy per scan). */
typedef struct dcm_header_text {
    char sop_class[65], sop_instance[65], study_uid[65], series_uid[65], patient_id[65];
    char modality[17], body_part[65], photometric[17];
    char image_type[96];
} dcm_header_text;

/* The header fields the reader needs, kept per file for the whole scan (a few hundred bytes:
 * the strings point into the scan's pool). Identifying strings (UIDs, patient ID) only ever
 * serve as grouping keys in memory; they are never printed or written. */
typedef struct dcm_header {
    const char *sop_class, *study_uid, *series_uid, *patient_id; /* interned */
    const char *modality, *body_part, *photometric, *image_type; /* interned */
    char *sop_instance; /* owned; freed once duplicates are settled */
    int32_t rows, cols, frames, samples, bits_allocated, bits_stored, high_bit, pixel_rep;
    int has_pixel_data, has_padding;
    int32_t padding; /* PixelPaddingValue as stored (US or SS) */
    int32_t echo, temporal, acquisition, series_number;
    double slice_thickness, spacing_between; /* 0 when absent */
    int spacing_is_imager;                   /* spacing came from ImagerPixelSpacing */
    int enhanced;                            /* per-frame functional groups were read */
    int is_dicomdir;
    const char *frames_problem; /* why the per-frame groups are unusable, or NULL */
    dcm_frame *frame; /* [frames]; malloc'd by dcm_shim_read_header, freed by dcm_header_free */
} dcm_header;

/* Register DCMTK's RLE, JPEG and JPEG-LS decoders (once, thread-safe). */
void dcm_shim_register_codecs(void);

/* Fill h's numbers and t's strings from a loaded file (h's string pointers are left NULL).
 * Fails (VS_ERR_FORMAT) on values that cannot be parsed. */
vs_status dcm_shim_read_header(dcm_file *f, dcm_header *h, dcm_header_text *t, vs_error *err);
void dcm_header_free(dcm_header *h);

/* Decode frame `frame` into buf as native-endian samples of BitsAllocated bits
 * (buf_bytes == Rows*Columns*Samples*BitsAllocated/8): the stored bits, which the pixel rules
 * then mask and sign-extend by the header's BitsStored and PixelRepresentation, whatever the
 * syntax. A JPEG 2000 codestream's own signedness does not decide: vendors write unsigned
 * codestreams for signed images (pydicom's J2K_pixelrep_mismatch.dcm: Bits Stored 13, signed,
 * codestream unsigned; read as the header says it is plain CT in HU). */
vs_status dcm_shim_decode_frame(dcm_file *f, uint32_t frame, uint32_t *start_fragment, void *buf,
                                uint64_t buf_bytes, vs_error *err);

/* JPEG 2000 (dicom_j2k.cc, OpenJPEG): is `ts` one of its UIDs; decode one grey frame. */
int dcm_shim_is_jpeg2000(const char *ts);
vs_status dcm_shim_decode_j2k(dcm_file *f, uint32_t frame, void *buf, uint64_t buf_bytes,
                              vs_error *err);

/* Referenced files of a DICOMDIR: calls add(ctx, relative_path_with_slashes) for each. */
vs_status dcm_shim_dicomdir_files(dcm_file *f, void (*add)(void *ctx, const char *rel), void *ctx,
                                  vs_error *err);

#ifdef __cplusplus
}
#endif
#endif
