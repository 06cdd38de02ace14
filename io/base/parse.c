#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* strto* skip leading spaces; the rule here does not. */
static int starts_well(const char *s, int sign_ok) {
    if (!s || !*s || isspace((unsigned char)*s)) return 0;
    return sign_ok || isdigit((unsigned char)*s);
}

int vs_parse_i64(const char *text, int64_t lo, int64_t hi, int64_t *out) {
    if (!starts_well(text, 1)) return 0;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int vs_parse_u64(const char *text, uint64_t lo, uint64_t hi, uint64_t *out) {
    if (!starts_well(text, 0)) return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int vs_parse_int(const char *text, int lo, int hi, int *out) {
    int64_t v;
    if (!vs_parse_i64(text, lo, hi, &v)) return 0;
    *out = (int)v;
    return 1;
}

int vs_parse_double(const char *text, double lo, double hi, double *out) {
    if (!starts_well(text, 1)) return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}
