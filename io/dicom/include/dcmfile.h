/* dcmfile.h — one DICOM file held in memory (a DCMTK DcmFileFormat behind an opaque handle).
 *
 * This is the seam between the DICOM reader (io/dicom), de-identification (io/deid) and the
 * DICOM writer: C code passes dcmfile handles around; the C++ shims reach the dataset
 * through dcmfile_impl.hh. No exception crosses this boundary.
 *
 * Invariants:
 *   1. dcmfile_load never asks DCMTK to allocate more than the limits allow: dcmfile_check
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

typedef struct dcmfile dcmfile;

typedef struct dcmfile_limits {
    uint64_t max_file_bytes; /* refuse larger files (0: 4 GiB) */
    uint64_t max_voxels;     /* refuse Rows*Columns*Frames above this (0: 2^31) */
} dcmfile_limits;

/* What dcmfile_check learned from a file's structure (no header values beyond these). */
typedef struct dcmfile_facts {
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
} dcmfile_facts;

/* Walk the file's element structure without DCMTK (see invariant 1). On failure returns
 * VS_ERR_FORMAT (or VS_ERR_IO) with one line naming the file and the reason; facts->is_dicom
 * then tells garbage-that-claims-to-be-DICOM (reject) from other files (skip). */
vs_status dcmfile_check(const char *path, const dcmfile_limits *limits, dcmfile_facts *facts,
                        vs_error *err);

/* The transfer syntaxes dcmfile_check accepts: the UID of entry i, NULL past the last (a PACS
 * retrieval offers exactly these, io/pacs). */
const char *dcmfile_transfer_syntax_at(int i);

/* A checked file still open: its descriptor, its size and its first `have` bytes, read (never
 * mapped: a file truncated while mapped kills the process with SIGBUS); the rest is read with
 * pread when asked. */
typedef struct dcmfile_src {
    int fd;                     /* -1 when closed */
    const unsigned char *bytes; /* the first `have` bytes; NULL when closed */
    size_t have, size;
} dcmfile_src;

/* dcmfile_check that leaves the file open in *src with the bytes it read (so that DCMTK parses
 * the header from them instead of opening the file again). On failure nothing is left open:
 * src->fd is -1 and src->bytes NULL. Release with dcmfile_src_close. */
vs_status dcmfile_check_src(const char *path, const dcmfile_limits *limits, dcmfile_facts *facts,
                            dcmfile_src *src, vs_error *err);
/* Free src's bytes, and close its descriptor unless keep_fd (the caller then owns src->fd). */
void dcmfile_src_close(dcmfile_src *src, int keep_fd);

/* dcmfile_check, then DCMTK's parse of the checked bytes (the file is opened once). Values over
 * 4 KiB (pixel data) stay on disk until asked, then read by path. */
vs_status dcmfile_load(const char *path, const dcmfile_limits *limits, dcmfile **out,
                       vs_error *err);
/* dcmfile_load that keeps the source open until dcmfile_free (one descriptor per loaded file),
 * so that dcmfile_save_copy copies the pixels from it instead of opening the file a third time.
 * For callers that hold one file at a time per thread (anonymize), not a whole series. */
vs_status dcmfile_load_open(const char *path, const dcmfile_limits *limits, dcmfile **out,
                            vs_error *err);
/* dcmfile_load that also returns the structure facts, filled even when the load fails. */
vs_status dcmfile_load_facts(const char *path, const dcmfile_limits *limits, dcmfile **out,
                             dcmfile_facts *facts, vs_error *err);
/* Write with the file's own transfer syntax and fresh meta information. */
vs_status dcmfile_save(dcmfile *f, const char *path, vs_error *err);
/* The same bytes as dcmfile_save, faster for pixel data still on disk in its source file:
 * DCMTK writes the rest into memory (one write) and the pixel element is copied from the
 * source inside the kernel (copy_file_range). Taken for little-endian native pixel data not
 * in memory and for encapsulated pixel data in its original representation, when PixelData
 * is the last element left in the dataset (what followed it in the source was removed) and the
 * source still holds it where dcmfile_check found it; other files go through dcmfile_save.
 * The source file must not have changed since dcmfile_load. The source is the descriptor
 * dcmfile_load_open kept, else the file opened again by path. *copied (may be NULL) is 1 when
 * the kernel copied the pixels, 0 when dcmfile_save wrote the file. */
vs_status dcmfile_save_copy(dcmfile *f, const char *path, int *copied, vs_error *err);
void dcmfile_free(dcmfile *f);

/* The transfer syntax UID of the loaded file ("" when unknown). */
const char *dcmfile_transfer_syntax(const dcmfile *f);
/* The path the file was loaded from. */
const char *dcmfile_path(const dcmfile *f);
/* The facts dcmfile_check found when the file was loaded. */
const dcmfile_facts *dcmfile_get_facts(const dcmfile *f);

/* Silence DCMTK's own logger for the process (once, thread-safe): its parser warnings can
 * quote header bytes, and every failure reaches us as an OFCondition anyway. */
void dcmfile_quiet(void);

#ifdef __cplusplus
}
#endif
#endif
