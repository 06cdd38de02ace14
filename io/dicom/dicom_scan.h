/* dicom_scan.h — the scan's inside, shared by dicom.c (scan, group, account) and
 * dicom_assemble.c (one volume from its slices). Not a public header. */
#ifndef VS_DICOM_SCAN_H
#define VS_DICOM_SCAN_H

#include "dicom.h"
#include "dicom_internal.h"

typedef struct file_rec {
    char *path;
    char *reason; /* skipped / rejected reason, never holding header values */
    dcm_state state;
    int volume;     /* when used */
    int projection; /* a 2D radiograph without patient geometry */
    dcm_kind kind;
    dcm_header h; /* kept while pending */
} file_rec;

typedef struct slice_ref {
    int32_t file;  /* index into files */
    int32_t frame; /* 0-based frame of that file */
} slice_ref;

typedef struct group {
    slice_ref *s; /* slices of one volume, in key order until assembly sorts them */
    int32_t n;
    int32_t first_file; /* smallest file index, for ordering groups */
} group;

typedef struct vol_info {
    int index;
    dcm_kind kind;
    char modality[17];
    char dtype[8];
    int64_t shape[3]; /* slices, rows, cols */
    double spacing[3], origin[3], direction[9];
    int n_files;
    int resampled;
} vol_info;

struct dcm_series {
    volume vol;
    dcm_file **files; /* [n_files], in slice order */
    int n_files;
    dcm_kind kind;
    int index;
    int resampled;
    char series_uid[65]; /* original SeriesInstanceUID: only for the Retain UIDs option */
};

/* Assemble group g into a new series; on a bad group return VS_ERR_FORMAT with a reason
 * (no path) in err; other codes stop the run. */
vs_status dcm_assemble(const dcm_options *opt, file_rec *files, group *g, int index,
                       dcm_series **out, vs_error *err);

#endif
