/* fuzz_dicom — libFuzzer target: one input is one DICOM file; it is checked, loaded, scanned,
 * grouped and assembled exactly as `vesalius inspect FILE` would, with small limits so that a
 * size field cannot make a legal allocation large. Built only with -DVESALIUS_FUZZ=ON (clang). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "dicom.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A memory file keeps the fuzzer off the disk; DCMTK and mmap read it by path. */
    int fd = memfd_create("fuzz_dicom", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    dcm_options opt = {0};
    opt.limits.max_file_bytes = 16u << 20;
    opt.limits.max_voxels = 1u << 22;
    opt.max_volume_voxels = 1u << 22;
    vs_error err;
    dcm_scan *s = NULL;
    if (dcm_scan_open(&opt, &s, &err) == VS_OK && dcm_scan_add(s, path, &err) == VS_OK &&
        dcm_scan_group(s, &err) == VS_OK) {
        for (;;) {
            dcm_series *v = NULL;
            if (dcm_scan_next(s, &v, &err) != VS_OK || !v) break;
            dcm_series_free(v);
        }
        dcm_counts c;
        dcm_scan_counts(s, &c);
        if (c.pending) __builtin_trap(); /* invariant 1 of dicom.h */
    }
    dcm_scan_close(s);
    close(fd);
    return 0;
}
