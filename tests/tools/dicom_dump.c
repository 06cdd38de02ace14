/* dicom_dump — test helper: scan PATH..., assemble every volume, write OUT/vol_N.raw (voxels
 * as stored in memory, native endian) and OUT/summary.json (the run summary). Used by the
 * Python comparisons against pydicom and dcm2niix; not installed.
 * Usage: dicom_dump [--resample] [--threads N] OUT PATH... (3 threads unless told) */
#include "dicom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    dcm_options opt = {0};
    opt.threads = 3; /* the comparisons check the threaded decoder; --threads 1 the serial one */
    int a = 1;
    for (; a < argc; a++) {
        if (strcmp(argv[a], "--resample") == 0)
            opt.resample_uneven = 1;
        else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc)
            opt.threads = atoi(argv[++a]);
        else
            break;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: dicom_dump [--resample] [--threads N] OUT PATH...\n");
        return 2;
    }
    const char *out = argv[a++];
    vs_error err;
    dcm_scan *s = NULL;
    if (dcm_scan_open(&opt, &s, &err)) goto fail;
    for (; a < argc; a++)
        if (dcm_scan_add(s, argv[a], &err)) goto fail;
    if (dcm_scan_group(s, &err)) goto fail;
    for (;;) {
        dcm_series *v = NULL;
        if (dcm_scan_next(s, &v, &err)) goto fail;
        if (!v) break;
        const volume *vol = dcm_series_volume(v);
        char path[4096];
        snprintf(path, sizeof path, "%s/vol_%d.raw", out, dcm_series_index(v));
        FILE *f = fopen(path, "wb");
        size_t n = (size_t)volume_n_voxels(vol);
        if (!f || fwrite(vol->voxels, vol_dtype_size(vol->dtype), n, f) != n || fclose(f)) {
            fprintf(stderr, "dicom_dump: cannot write %s\n", path);
            return 1;
        }
        dcm_series_free(v);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/summary.json", out);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    if (dcm_scan_write_summary(s, f, &err)) goto fail;
    fclose(f);
    dcm_scan_close(s);
    return 0;
fail:
    fprintf(stderr, "dicom_dump: %s\n", err.msg);
    dcm_scan_close(s);
    return 1;
}
