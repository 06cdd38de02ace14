/* log.h — one logger for the whole program.
 *
 * Human lines on stderr ("vesalius ingest: warning: ..."), or JSON lines when --log-json is
 * given, one object per line: {"time":..., "level":..., "component":..., "msg":...} plus
 * optional extra fields. A log line never holds patient data: callers pass file paths,
 * tags, counts and pseudonymous keys only.
 *
 * Not thread-safe by design for configuration (log_configure once, from main); emitting is
 * safe from several threads (one fwrite per line under a mutex).
 */
#ifndef VS_LOG_H
#define VS_LOG_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_QUIET } log_level;

typedef struct log_config {
    log_level min_level;   /* lines below this are dropped */
    int json;              /* 1: JSON lines; 0: human lines */
    FILE *stream;          /* NULL: stderr */
    const char *component; /* e.g. "ingest"; NULL: "vesalius" */
} log_config;

void log_configure(const log_config *cfg);
const log_config *log_current(void);

/* Parse "debug", "info", "warn", "error", "quiet"; return -1 when unknown. */
int log_level_parse(const char *s);
const char *log_level_name(log_level level);

void log_msg(log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A structured event: `event` names it (e.g. "ingest.reject"); `fields` is a NULL-terminated
 * list of key/value string pairs added to the JSON object (in human mode appended as k=v). */
void log_event(log_level level, const char *event, const char *msg, const char *const *fields);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Write s as a JSON string literal (with quotes) to f; escapes control characters. */
void log_json_string(FILE *f, const char *s);

#ifdef __cplusplus
}
#endif
#endif
