#include "progress.h"

#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_begin(progress *p, const char *label, uint64_t total, const char *unit) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->unit = unit ? unit : "it";
    p->t_start = progress_now();
    const log_config *cfg = log_current();
    p->active = isatty(STDERR_FILENO) && !cfg->json && cfg->min_level <= LOG_INFO &&
                (cfg->stream == NULL || cfg->stream == stderr);
}

static void fmt_secs(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

char *progress_format(const progress *p, double now, char *buf, int n) {
    double el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0.0;
    char eta[32] = "--:--";
    if (p->total && rate > 0) fmt_secs((double)(p->total - p->done) / rate, eta, sizeof eta);
    if (p->total) {
        int width = 24, fill = (int)((double)width * (double)p->done / (double)p->total);
        if (fill > width) fill = width;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        snprintf(buf, (size_t)n, "%s [%s] %llu/%llu %.1f %s/s ETA %s", p->label, bar,
                 (unsigned long long)p->done, (unsigned long long)p->total, rate, p->unit, eta);
    } else {
        snprintf(buf, (size_t)n, "%s %llu %.1f %s/s", p->label, (unsigned long long)p->done, rate,
                 p->unit);
    }
    return buf;
}

void progress_update(progress *p, uint64_t done) {
    p->done = done;
    if (!p->active) return;
    double now = progress_now();
    if (now - p->t_last_draw < 0.1 && done != p->total) return;
    p->t_last_draw = now;
    char buf[256];
    fprintf(stderr, "\r\033[K%s", progress_format(p, now, buf, sizeof buf));
    fflush(stderr);
}

void progress_end(progress *p) {
    if (!p->active) return;
    char buf[256];
    fprintf(stderr, "\r\033[K%s\n", progress_format(p, progress_now(), buf, sizeof buf));
    fflush(stderr);
    p->active = 0;
}
