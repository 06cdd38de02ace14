#include "status.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[VS_STATUS_COUNT] = {
    [VS_OK] = "ok",
    [VS_ERR_USAGE] = "usage",
    [VS_ERR_CONFIG] = "config",
    [VS_ERR_IO] = "io",
    [VS_ERR_FORMAT] = "format",
    [VS_ERR_NOMEM] = "nomem",
    [VS_ERR_LIBRARY] = "library",
    [VS_ERR_ENV] = "environment",
    [VS_ERR_BUSY] = "busy",
    [VS_ERR_INTERRUPTED] = "interrupted",
    [VS_ERR_INTERNAL] = "internal",
    [VS_ERR_PEER] = "peer",
};

const char *vs_status_name(vs_status s) {
    if ((unsigned)s >= VS_STATUS_COUNT) return "unknown";
    return status_names[s];
}

static void one_line(char *s) {
    for (; *s; s++)
        if (*s == '\n' || *s == '\r') *s = ' ';
}

vs_status vs_error_set(vs_error *err, vs_status code, const char *src_file, int src_line,
                       const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    err->src_file = src_file;
    err->src_line = src_line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    one_line(err->msg);
    return code;
}

vs_status vs_error_prefix(vs_error *err, const char *fmt, ...) {
    if (!err) return VS_ERR_INTERNAL;
    char prefix[VS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[VS_ERROR_MSG_MAX];
    int n = snprintf(joined, sizeof joined, "%s: %s", prefix, err->msg);
    if (n < 0) return err->code;               /* keep the message as it was */
    memcpy(err->msg, joined, sizeof err->msg); /* truncated to one record when too long */
    one_line(err->msg);
    return err->code;
}

void vs_error_clear(vs_error *err) {
    if (!err) return;
    memset(err, 0, sizeof *err);
}

int vs_size_mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int vs_size_add(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}
