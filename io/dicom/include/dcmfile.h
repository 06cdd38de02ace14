/* dcmfile.h — one DICOM file held in memory (a DCMTK DcmFileFormat behind an opaque handle).
 *
 * This is the seam between the DICOM reader (io/dicom), de-identification (io/deid) and the
 * DICOM writer: C code passes dcm_file handles around; the C++ shims reach the dataset
 * through dcmfile_impl.hh. No exception crosses this boundary.
 *
 * Invariants:
 *   1. dcm_file_load never asks DCMTK to allocate more than the limits allow: dcm_file_check
 *      walks every element header first and refuses any length that points past its
 *      container, any invalid VR, nesting deeper than 24 levels, an unsupported transfer
 *      syntax, an image over the voxel limit and native pixel data shorter than the image.
 *   2. A failed load returns VS_ERR_FORMAT (bad data) or VS_ERR_IO (cannot read) with one
 *      line naming the file and the reason, and *out is NULL.
 */
#ifndef VS_DCMFILE_H
#define VS_DCMFILE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Inside extern "C": the C++ shims call vs_error_set, which is a C function. */
#include "status.h"

typedef struct dcm_file dcm_file;

typedef struct dcm_file_limits {
    uint64_t max_file_bytes; /* refuse larger files (0: 4 GiB) */
    uint64_t max_voxels;     /* refuse Rows*Columns*Frames above this (0: 2^31) */
} dcm_file_limits;

/* What dcm_file_check learned from a file's structure (no header values beyond these). */
typedef struct dcm_file_facts {
    int is_dicom; /* 0: the bytes do not look like DICOM at all (skip, not reject) */
    int has_meta; /* a 128-byte preamble, "DICM" and the meta group were present */
    char transfer_syntax[65];
    uint64_t file_bytes;
    int has_pixel_data;     /* (7FE0,0010) at the top level */
    int pixel_encapsulated; /* compressed: fragments, not a native value */
    uint64_t pixel_length;  /* native value length in bytes */
    /* Where the top-level PixelData element sits in the file: the offset of its header and the
     * offset just past its value (past the sequence delimiter when encapsulated); both 0 when
     * unknown (no pixel data, a deflated dataset, whose offsets are not file offsets, or more
     * than one top-level PixelData element). */
    uint64_t pixel_offset, pixel_end;
    uint32_t rows, cols, frames, samples, bits_allocated; /* 0 when absent */
} dcm_file_facts;

/* Walk the file's element structure without DCMTK (see invariant 1). On failure returns
 * VS_ERR_FORMAT (or VS_ERR_IO) with one line naming the file and the reason; facts->is_dicom
 * then tells garbage-that-claims-to-be-DICOM (reject) from other files (skip). */
vs_status dcm_file_check(const char *path, const dcm_file_limits *limits, dcm_file_facts *facts,
                         vs_error *err);

/* The transfer syntaxes dcm_file_check accepts: the UID of entry i, NULL past the last (a PACS
 * retrieval offers exactly these, io/pacs). */
const char *dcm_file_transfer_syntax_at(int i);

/* A checked file still open: its descriptor, its size and its first `have` bytes, read (never
 * mapped: a file truncated while mapped kills the process with SIGBUS); the rest is read with
 * pread when asked. */
typedef struct dcm_file_src {
    int fd;                     /* -1 when closed */
    const unsigned char *bytes; /* the first `have` bytes; NULL when closed */
    size_t have, size;
} dcm_file_src;

/* dcm_file_check that leaves the file open in *src with the bytes it read (so that DCMTK parses
 * the header from them instead of opening the file again). On failure nothing is left open:
 * src->fd is -1 and src->bytes NULL. Release with dcm_file_src_close. */
vs_status dcm_file_check_src(const char *path, const dcm_file_limits *limits, dcm_file_facts *facts,
                             dcm_file_src *src, vs_error *err);
/* Free src's bytes, and close its descriptor unless keep_fd (the caller then owns src->fd). */
void dcm_file_src_close(dcm_file_src *src, int keep_fd);

/* dcm_file_check, then DCMTK's parse of the checked bytes (the file is opened once). Values over
 * 4 KiB (pixel data) stay on disk until asked, then read by path. */
vs_status dcm_file_load(const char *path, const dcm_file_limits *limits, dcm_file **out,
                        vs_error *err);
/* dcm_file_load that keeps the source open until dcm_file_free (one descriptor per loaded file),
 * so that dcm_file_save_copy copies the pixels from it instead of opening the file a third time.
 * For callers that hold one file at a time per thread (anonymize), not a whole series. */
vs_status dcm_file_load_open(const char *path, const dcm_file_limits *limits, dcm_file **out,
                             vs_error *err);
/* dcm_file_load that also returns the structure facts, filled even when the load fails. */
vs_status dcm_file_load_facts(const char *path, const dcm_file_limits *limits, dcm_file **out,
                              dcm_file_facts *facts, vs_error *err);
/* Write with the file's own transfer syntax and fresh meta information. */
vs_status dcm_file_save(dcm_file *f, const char *path, vs_error *err);
/* The same bytes as dcm_file_save, faster for pixel data still on disk in its source file:
 * DCMTK writes the rest into memory (one write) and the pixel element is copied from the
 * source inside the kernel (copy_file_range). Taken for little-endian native pixel data not
 * in memory and for encapsulated pixel data in its original representation, when PixelData
 * is the last element left in the dataset (what followed it in the source was removed) and the
 * source still holds it where dcm_file_check found it; other files go through dcm_file_save.
 * The source file must not have changed since dcm_file_load. The source is the descriptor
 * dcm_file_load_open kept, else the file opened again by path. *copied (may be NULL) is 1 when
 * the kernel copied the pixels, 0 when dcm_file_save wrote the file. */
vs_status dcm_file_save_copy(dcm_file *f, const char *path, int *copied, vs_error *err);
void dcm_file_free(dcm_file *f);

/* The transfer syntax UID of the loaded file ("" when unknown). */
const char *dcm_file_transfer_syntax(const dcm_file *f);
/* The path the file was loaded from. */
const char *dcm_file_path(const dcm_file *f);
/* The facts dcm_file_check found when the file was loaded. */
const dcm_file_facts *dcm_file_get_facts(const dcm_file *f);

/* Silence DCMTK's own logger for the process (once, thread-safe): its parser warnings can
 * quote header bytes, and every failure reaches us as an OFCondition anyway. */
void dcm_file_quiet(void);

#ifdef __cplusplus
}
#endif
#endif
