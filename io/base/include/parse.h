/* parse.h — numbers from text (command-line options, study values), one rule for all: the
 * whole text is one decimal number in [lo, hi] and nothing else (no leading or trailing
 * spaces, no trailing characters, no overflow).
 *
 * Each returns 1 and sets *out, or 0 and leaves *out alone. */
#ifndef VS_PARSE_H
#define VS_PARSE_H

#include <stdint.h>

/* An integer with an optional sign. */
int vs_parse_i64(const char *text, int64_t lo, int64_t hi, int64_t *out);
/* An integer without a sign. */
int vs_parse_u64(const char *text, uint64_t lo, uint64_t hi, uint64_t *out);
/* An int (a convenience for the many int-sized settings). */
int vs_parse_int(const char *text, int lo, int hi, int *out);
/* A finite real number (strtod's forms: "0.5", "1e-4", "-3"), neither overflowing nor
 * underflowing a double. */
int vs_parse_double(const char *text, double lo, double hi, double *out);

#endif
