/* dicom.h — DICOM files, folders and DICOMDIRs in; 3D volumes and an account of every file out.
 *
 * Three steps, streaming, memory bounded by one series:
 *   1. dcm_scan_add: read the headers (never the pixels) of a file, a directory tree or a
 *      DICOMDIR's referenced files; each file gets a record: pending, skipped or rejected.
 *   2. dcm_scan_group: patient -> study -> series -> volume. A series is split where it mixes
 *      orientation, rows/columns, echo, temporal position, acquisition number (not for CT,
 *      as dcm2niix's default merge does) or image type; localizers and derived images are
 *      their own volumes.
 *   3. dcm_scan_next: load, decode and assemble ONE volume; the caller gets the volume and
 *      the dcm_file handles of its files (for de-identification in memory) and frees them
 *      with dcm_series_free before asking for the next. A volume that cannot be assembled
 *      (missing slices, uneven spacing, decode failure) rejects its files and the iterator
 *      moves on.
 * dcm_scan_write_summary writes the machine-readable account (counts, every skip and reject
 * with its path and reason); it never holds header values.
 *
 * Volume conventions are those of volume.h: voxels [slice][row][col], slices in increasing
 * position along the normal (IOP row x column cosines), geometry in index order, LPS mm.
 * Pixel rules, in order: BitsStored masking and sign extension (PixelRepresentation); the
 * MONOCHROME1 inversion on stored values (unsigned: 2^BitsStored-1-v, signed: -1-v);
 * RescaleSlope/Intercept in double; PixelPaddingValue voxels become the smallest non-padding
 * value of the volume. The result is int16 when every value is an exact integer that fits,
 * otherwise float32. A JPEG 2000 codestream's own signedness wins over PixelRepresentation.
 * The pseudonymous keys of the volume are left empty.
 *
 * Invariants:
 *   1. Every path given (or found) ends in exactly one state: used (in one volume), skipped
 *      or rejected, each with a reason that names no header value.
 *   2. The scan itself holds no voxels and no dcm_file handles between calls: a caller that
 *      frees each series before the next keeps one series in memory (about 1.1x its voxel
 *      bytes for int16 volumes, at most 2x otherwise) plus a few hundred bytes per file.
 *   3. The same files in any order, with any InstanceNumbers, give the same volumes.
 */
#ifndef VS_DICOM_H
#define VS_DICOM_H

#include <stdint.h>
#include <stdio.h>

#include "dcmfile.h"
#include "status.h"
#include "volume.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcm_options {
    dcm_file_limits limits;     /* per file: bytes and Rows x Columns x Frames */
    uint64_t max_volume_voxels; /* refuse a volume larger than this (0: 2^31) */
    int resample_uneven;        /* 1: resample uneven series and gaps of up to 4 steps */
    double spacing_tolerance;   /* relative slice-step deviation allowed (0: 0.01) */
    int threads; /* threads loading and decoding a volume's files (0 or 1: the caller alone;
                    at most DCM_MAX_THREADS); volumes do not depend on it */
} dcm_options;

#define DCM_MAX_THREADS 64

typedef enum dcm_state {
    DCM_PENDING = 0, /* scanned, not yet assembled */
    DCM_USED,
    DCM_SKIPPED,
    DCM_REJECTED,
} dcm_state;

typedef enum dcm_kind { DCM_KIND_ORIGINAL = 0, DCM_KIND_DERIVED, DCM_KIND_LOCALIZER } dcm_kind;

typedef struct dcm_counts {
    int64_t files, used, skipped, rejected, pending;
    int64_t volumes; /* assembled so far */
} dcm_counts;

typedef struct dcm_scan dcm_scan;
typedef struct dcm_series dcm_series;

vs_status dcm_scan_open(const dcm_options *opt, dcm_scan **out, vs_error *err);
void dcm_scan_close(dcm_scan *s);

/* Add a file, a folder (walked by the rule of io/base walk.h, as every command walks) or a
 * DICOMDIR. Bad files are recorded, not returned as errors; the call fails only when `path`
 * itself does not exist. A file reached twice (two paths, a DICOMDIR and its folder) counts
 * once. */
vs_status dcm_scan_add(dcm_scan *s, const char *path, vs_error *err);

/* Sort and group what was added; call once, after the last dcm_scan_add. */
vs_status dcm_scan_group(dcm_scan *s, vs_error *err);
/* Number of volumes grouping produced (before assembly may reject some). */
int dcm_scan_n_groups(const dcm_scan *s);

/* Incremental runs: before assembling a volume, dcm_scan_next asks known(ctx, paths, n) about
 * its files (a path may repeat for multi-frame files); when it returns 1 the volume is not read
 * and its files end skipped ("unchanged since an earlier run"). dcm_scan_n_known counts them. */
void dcm_scan_set_known(dcm_scan *s, int (*known)(void *ctx, const char *const *paths, int n),
                        void *ctx);
int dcm_scan_n_known(const dcm_scan *s);

/* Assemble the next volume. *out is NULL when there is none left. Returns a failure only for
 * conditions that stop the whole run (out of memory for bookkeeping, a bug). */
vs_status dcm_scan_next(dcm_scan *s, dcm_series **out, vs_error *err);

/* ---- one scan, several processes (pipeline/cmd_ingest.c across ranks) -------------------
 * dcm_scan_next is three steps, which a writer and its workers may run apart: the writer
 * takes the groups in order (dcm_scan_take), a worker that scanned the same sources (the same
 * groups: invariant 3, checked by dcm_scan_digest) assembles one (dcm_scan_assemble), and the
 * writer settles each outcome in the order it took them (dcm_scan_settle). The writer's
 * per-file account and volume numbers are then those of dcm_scan_next. */
typedef enum dcm_group_outcome {
    DCM_GROUP_ASSEMBLED = 0,
    DCM_GROUP_REJECTED, /* its files are rejected for `reason` */
    DCM_GROUP_KNOWN,    /* the caller holds it (dcm_scan_set_known): its files end skipped */
} dcm_group_outcome;

/* What became of one group; plain data (no pointers), so it can travel between processes. */
typedef struct dcm_assembly {
    dcm_group_outcome outcome;
    char reason[VS_ERROR_MSG_MAX]; /* DCM_GROUP_REJECTED: why; names no header value */
    /* DCM_GROUP_ASSEMBLED: the volume as assembled, for the scan's account */
    dcm_kind kind;
    char modality[17];
    vol_dtype dtype;
    int64_t shape[3];
    double spacing[3], origin[3], direction[9];
    int n_files, resampled;
} dcm_assembly;

/* The next group (0-based) in the order dcm_scan_next takes them, or -1 when none is left (or
 * the scan is not grouped); *known: the caller holds it already (dcm_scan_set_known). */
int dcm_scan_take(dcm_scan *s, int *known);
/* Load, decode and assemble group g as volume number `index` (dcm_series_index; the number is
 * for log lines only). A group that cannot be assembled is no failure: *out NULL and the reason
 * in *a. Fails only as dcm_scan_next does. */
vs_status dcm_scan_assemble(dcm_scan *s, int g, int index, dcm_series **out, dcm_assembly *a,
                            vs_error *err);
/* Settle group g's files by outcome *a, in the order dcm_scan_take gave the groups; *index
 * receives the volume's number (-1 unless assembled). Fails only out of memory. */
vs_status dcm_scan_settle(dcm_scan *s, int g, const dcm_assembly *a, int *index, vs_error *err);
/* A digest of the grouped scan (paths, their states before assembly, groups): two processes
 * that scanned the same files alike have equal digests. */
uint64_t dcm_scan_digest(const dcm_scan *s);

const volume *dcm_series_volume(const dcm_series *v);
volume *dcm_series_volume_mut(dcm_series *v);
int dcm_series_n_files(const dcm_series *v);
dcm_file *dcm_series_file(dcm_series *v, int i); /* in slice order */
dcm_kind dcm_series_kind(const dcm_series *v);
int dcm_series_index(const dcm_series *v); /* 0-based volume number in this scan */
int dcm_series_resampled(const dcm_series *v);
/* The original SeriesInstanceUID ("" when absent). An identifier: kept in memory, written only
 * to a shard under the Retain UIDs option, never logged. */
const char *dcm_series_uid(const dcm_series *v);
/* Free the volume and every handle; NULL is fine. */
void dcm_series_free(dcm_series *v);

void dcm_scan_counts(const dcm_scan *s, dcm_counts *out);
/* Per-file records, in sorted path order. */
int64_t dcm_scan_n_files(const dcm_scan *s);
const char *dcm_scan_file_path(const dcm_scan *s, int64_t i);
dcm_state dcm_scan_file_state(const dcm_scan *s, int64_t i);
const char *dcm_scan_file_reason(const dcm_scan *s, int64_t i); /* "" when used */
int dcm_scan_file_volume(const dcm_scan *s, int64_t i);         /* -1 unless used */

/* The run summary as one JSON object (schema "vesalius.dicom-summary/1"). */
vs_status dcm_scan_write_summary(const dcm_scan *s, FILE *f, vs_error *err);

const char *dcm_state_name(dcm_state st);
const char *dcm_kind_name(dcm_kind k);

#ifdef __cplusplus
}
#endif
#endif
