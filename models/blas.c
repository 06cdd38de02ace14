#include "blas.h"

#include <cblas.h>

const char *blas_version(void) { return openblas_get_config(); }
void blas_set_threads(int n) { openblas_set_num_threads(n); }
int blas_get_threads(void) { return openblas_get_num_threads(); }

/* Exported by OpenBLAS (driver/others/blas_server.c) though cblas.h does not declare it; its
 * pthread server restarts the pool on the next threaded call (blas_server_avail == 0). */
int blas_thread_shutdown_(void);
void blas_release_threads(void) {
    if (openblas_get_parallel() == 1) blas_thread_shutdown_(); /* 1: the pthread build */
}
