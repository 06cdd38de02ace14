/* blas.h — the BLAS vesalius computes with (OpenBLAS), its version and thread count. */
#ifndef VS_BLAS_H
#define VS_BLAS_H

/* OpenBLAS's own configuration string, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Zen". */
const char *blas_version(void);
/* Set OpenBLAS's thread count (results are bitwise stable only at a fixed count). */
void blas_set_threads(int n);
int blas_get_threads(void);
/* Stop OpenBLAS's idle worker threads. The pthread build starts them when the library loads and
 * lets them spin (sched_yield) for about 2^28 cycles before sleeping: CPU time stolen from a
 * command that never calls BLAS. A later multi-threaded BLAS call starts them again. */
void blas_release_threads(void);

#endif
