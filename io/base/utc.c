#include "utc.h"

#include <stdio.h>
#include <time.h>

void vs_utc_now(char *buf, size_t cap, int with_ms) {
    if (cap == 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    if (with_ms)
        snprintf(buf + k, cap - k, ".%03ldZ", ts.tv_nsec / 1000000L);
    else
        snprintf(buf + k, cap - k, "Z");
}
