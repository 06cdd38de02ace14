/* libinfo.h — versions of the libraries vesalius is linked with, for --version and the
 * provenance block of reports. */
#ifndef VS_LIBINFO_H
#define VS_LIBINFO_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lib_version {
    const char *name; /* "DCMTK" */
    char version[96]; /* as the library reports it at run time */
    const char *role; /* what vesalius uses it for */
} lib_version;

/* Fill up to max entries with the io/ libraries (DCMTK, ITK, HDF5, zlib, ...); returns count. */
int libinfo_io(lib_version *out, int max);

#ifdef __cplusplus
}
#endif
#endif
