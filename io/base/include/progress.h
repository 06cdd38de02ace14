/* progress.h — a one-line progress bar for long loops (count, rate, ETA).
 *
 * Drawn on stderr only when stderr is a terminal and human logging is on; otherwise every
 * call is a no-op, so cron output and JSON logs stay clean. Redraws at most ~10 times a second.
 */
#ifndef VS_PROGRESS_H
#define VS_PROGRESS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct progress {
    const char *label;
    uint64_t total; /* 0: unknown */
    uint64_t done;
    double t_start, t_last_draw;
    int active; /* 0 when silent */
    const char *unit;
} progress;

void progress_begin(progress *p, const char *label, uint64_t total, const char *unit);
void progress_update(progress *p, uint64_t done);
void progress_end(progress *p);

/* Format the bar into buf (exposed for tests); returns buf. */
char *progress_format(const progress *p, double now, char *buf, int n);

/* Monotonic seconds. */
double progress_now(void);

#ifdef __cplusplus
}
#endif
#endif
