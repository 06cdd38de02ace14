/* status.h — the error convention shared by every vesalius module.
 *
 * Library code returns a vs_status and, on failure, fills a caller-owned vs_error
 * (code, one-line message, source file and line). Only pipeline/ turns a status into an
 * exit code and a line on stderr.
 *
 * Invariants:
 *   1. A function that returns VS_OK leaves the error record untouched.
 *   2. A function that fails sets err->code to the status it returns (when err is not NULL).
 *   3. A message is one line (no newline), at most VS_ERROR_MSG_MAX-1 bytes, and never holds
 *      patient data: it may name a local file path and a DICOM tag, never a header value.
 */
#ifndef VS_STATUS_H
#define VS_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" { /* the DCMTK and ITK shims call these from C++ */
#endif

typedef enum vs_status {
    VS_OK = 0,
    VS_ERR_USAGE,       /* bad arguments or options */
    VS_ERR_CONFIG,      /* a study file or option value is wrong */
    VS_ERR_IO,          /* a read, write, rename or directory operation failed */
    VS_ERR_FORMAT,      /* input data is malformed or unsupported (the input is rejected) */
    VS_ERR_NOMEM,       /* an allocation failed or a size would overflow / exceed a limit */
    VS_ERR_LIBRARY,     /* a library (DCMTK, ITK, HDF5, SQLite, ...) reported an error */
    VS_ERR_ENV,         /* the environment is wrong: permissions, missing key, missing package */
    VS_ERR_BUSY,        /* another process holds a lock we need */
    VS_ERR_INTERRUPTED, /* stopped by a signal after saving state */
    VS_ERR_INTERNAL,    /* a bug: an invariant did not hold */
    VS_ERR_PEER,        /* a network peer (PACS) is unreachable, refused us or stopped answering */
    VS_STATUS_COUNT
} vs_status;

#define VS_ERROR_MSG_MAX 512

typedef struct vs_error {
    vs_status code;
    const char *src_file; /* where the error was raised (for developers) */
    int src_line;
    char msg[VS_ERROR_MSG_MAX];
} vs_error;

/* Short stable name of a status, e.g. "format". Never NULL. */
const char *vs_status_name(vs_status s);

/* Fill err (if not NULL) and return code. Newlines in the message become spaces. */
vs_status vs_error_set(vs_error *err, vs_status code, const char *src_file, int src_line,
                       const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Prefix an existing message with context ("reading x.dcm: ..."); keeps the code. */
vs_status vs_error_prefix(vs_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

void vs_error_clear(vs_error *err);

#define VS_FAIL(err, code, ...) vs_error_set((err), (code), __FILE__, __LINE__, __VA_ARGS__)

/* Overflow-checked size arithmetic: return 0 and leave *out unchanged on overflow. */
int vs_size_mul(size_t a, size_t b, size_t *out);
int vs_size_add(size_t a, size_t b, size_t *out);

#ifdef __cplusplus
}
#endif
#endif
