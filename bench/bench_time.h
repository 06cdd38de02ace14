/* bench_time.h — the timing helpers the C benchmarks share (wall time is progress_now()). */
#ifndef VS_BENCH_TIME_H
#define VS_BENCH_TIME_H

#include <stdlib.h>
#include <time.h>

/* CPU seconds of the whole process (every thread). */
static inline double bench_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (n >= 1), which it sorts. */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

#endif
