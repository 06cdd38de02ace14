/* report_text.h — private to validation/: the byte buffer the three reports are built in, the
 * one number format, the definitions table and the three writers (report_write.c builds
 * report.json, report_html.c report.html and report.md). Not a public header. */
#ifndef VS_REPORT_TEXT_H
#define VS_REPORT_TEXT_H

#include "report.h"

typedef struct report_text report_text; /* growable byte buffer */
struct report_text {
    char *p;
    size_t n, cap;
    int oom;
};
void report_text_put(report_text *t, const char *s);
void report_text_printf(report_text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A number in the one fixed format: up to 6 decimals, trailing zeros dropped, '.' always;
 * "null" (json) or "n/a" (text) when not finite. */
void report_text_num(report_text *t, double v, int json);
/* Fixed-point with the given decimals and '.' as separator, whatever the locale. */
void report_text_fixed(report_text *t, double v, int decimals);
void report_text_free(report_text *t);
vs_status report_text_save(const report_text *t, const char *dir, const char *name, vs_error *err);
const char *report_definition(const char *metric); /* the definitions table, by metric */
typedef struct report_def {
    const char *metric, *text;
} report_def;
extern const report_def report_defs[];
extern const size_t report_n_defs;
void report_md(report_text *t, const report_input *in, const report_results *res,
               const report_provenance *prov, const char *start, const char *end);
void report_html(report_text *t, const report_input *in, const report_results *res,
                 const report_provenance *prov, const char *start, const char *end);
void report_json(report_text *t, const report_input *in, const report_results *res,
                 const report_provenance *prov, const char *start, const char *end);

#endif
