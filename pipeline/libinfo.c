#include "libinfo.h"

#include "dcmtk_shim.h"
#include "itk_shim.h"

#include <hdf5.h>
#include <libdeflate.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

static void put(lib_version *v, const char *name, const char *version, const char *role) {
    v->name = name;
    snprintf(v->version, sizeof v->version, "%s", version);
    v->role = role;
}

int libinfo_io(lib_version *out, int max) {
    int n = 0;
    char buf[64];
    if (n < max) put(&out[n++], "DCMTK", dcm_shim_version(), "DICOM reading, decoding and writing");
    if (n < max)
        put(&out[n++], "ITK", itkshim_version(), "image formats, resampling, N4 bias correction");
    unsigned maj = 0, min = 0, rel = 0;
    if (H5get_libversion(&maj, &min, &rel) < 0)
        snprintf(buf, sizeof buf, "unknown");
    else
        snprintf(buf, sizeof buf, "%u.%u.%u", maj, min, rel);
    if (n < max) put(&out[n++], "HDF5", buf, "training shards");
    if (n < max) put(&out[n++], "zlib", zlibVersion(), "deflated DICOM");
    if (n < max)
        put(&out[n++], "libdeflate", LIBDEFLATE_VERSION_STRING,
            "shard compression and decompression");
    if (n < max)
        put(&out[n++], "OpenSSL", OpenSSL_version(OPENSSL_VERSION_STRING), "voxel SHA-256");
    return n;
}
