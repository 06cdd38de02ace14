#include "blas.h"

#include <cblas.h>

const char *blas_version(void) { return openblas_get_config(); }
void blas_set_threads(int n) { openblas_set_num_threads(n); }
int blas_get_threads(void) { return openblas_get_num_threads(); }
