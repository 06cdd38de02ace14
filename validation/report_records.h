/* report_records.h — private to validation/: one reader for the two syntaxes the inputs
 * come in, CSV with a header row and JSON lines with flat objects, both yielding records of
 * named fields. (Not a public header: only the .c files of validation/ include it.) */
#ifndef VS_REPORT_RECORDS_H
#define VS_REPORT_RECORDS_H

#include <stdio.h>

#include "status.h"

#define REC_MAX_FIELDS 64

typedef struct rec_reader {
    FILE *f;
    const char *path;
    int json; /* 1: JSON lines; 0: CSV */
    long lineno;
    char *line; /* current line (getline buffer) */
    size_t cap;
    char *scratch; /* unescaped JSON strings */
    size_t scratch_cap;
    char *hdr_buf; /* CSV header names */
    const char *hdr[REC_MAX_FIELDS];
    int n_hdr;
} rec_reader;

typedef struct rec {
    int n;
    const char *key[REC_MAX_FIELDS];
    const char *val[REC_MAX_FIELDS]; /* "" for empty / null */
} rec;

/* Open path; CSV is refused when allow_csv is 0. */
vs_status rec_open(rec_reader *r, const char *path, int allow_csv, vs_error *err);
/* Next record: VS_OK with *got = 1, or VS_OK with *got = 0 at the end of the file. */
vs_status rec_next(rec_reader *r, rec *out, int *got, vs_error *err);
void rec_close(rec_reader *r);
/* The value of key, or NULL when absent or empty. */
const char *rec_get(const rec *r, const char *key);
/* Parse a finite decimal number / a whole number in [lo, hi]; 0 on success. */
int rec_double(const char *s, double *out);
int rec_int(const char *s, long lo, long hi, long *out);

#endif
