#include "log.h"
#include "utc.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>

static log_config g_cfg = {LOG_INFO, 0, NULL, NULL};
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warning", "error", "quiet"};

void log_configure(const log_config *cfg) { g_cfg = *cfg; }
const log_config *log_current(void) { return &g_cfg; }

int log_level_parse(const char *s) {
    static const char *const accepted[] = {"debug", "info", "warn", "error", "quiet"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, accepted[i]) == 0) return i;
    if (strcmp(s, "warning") == 0) return LOG_WARN;
    return -1;
}

const char *log_level_name(log_level level) {
    if ((unsigned)level > LOG_QUIET) return "unknown";
    return level_names[level];
}

void log_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void emit(log_level level, const char *event, const char *msg, const char *const *fields) {
    if (level < g_cfg.min_level || g_cfg.min_level == LOG_QUIET) return;
    FILE *f = g_cfg.stream ? g_cfg.stream : stderr;
    const char *comp = g_cfg.component ? g_cfg.component : "vesalius";
    pthread_mutex_lock(&g_lock);
    if (g_cfg.json) {
        char ts[40];
        vs_utc_now(ts, sizeof ts, 1);
        fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":", ts, level_names[level]);
        log_json_string(f, comp);
        if (event) {
            fputs(",\"event\":", f);
            log_json_string(f, event);
        }
        fputs(",\"msg\":", f);
        log_json_string(f, msg);
        for (const char *const *kv = fields; kv && kv[0] && kv[1]; kv += 2) {
            fputc(',', f);
            log_json_string(f, kv[0]);
            fputc(':', f);
            log_json_string(f, kv[1]);
        }
        fputs("}\n", f);
    } else {
        if (level == LOG_INFO || level == LOG_DEBUG)
            fprintf(f, "vesalius %s: %s", comp, msg);
        else
            fprintf(f, "vesalius %s: %s: %s", comp, level_names[level], msg);
        for (const char *const *kv = fields; kv && kv[0] && kv[1]; kv += 2)
            fprintf(f, " %s=%s", kv[0], kv[1]);
        fputc('\n', f);
    }
    fflush(f);
    pthread_mutex_unlock(&g_lock);
}

void log_msg(log_level level, const char *fmt, ...) {
    if (level < g_cfg.min_level) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    emit(level, NULL, buf, NULL);
}

void log_event(log_level level, const char *event, const char *msg, const char *const *fields) {
    emit(level, event, msg, fields);
}
