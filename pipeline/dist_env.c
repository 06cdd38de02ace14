/* dist_env.c — the launcher as the environment describes it (dist.h); no MPI here, so the lean
 * front refuses a one-process command under a launcher without loading anything. */
#include "dist.h"

#include "parse.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A whole number in 0..1<<20 from variable `name`, or -1 when absent or not a number. */
static int env_int(char *(*get)(const char *), const char *name) {
    const char *v = get(name);
    int n = -1;
    if (v && !vs_parse_int(v, 0, 1 << 20, &n)) n = -1;
    return n;
}

/* One row per launcher, tried in order: the variable that says it is there, its size and
 * rank variables (NULL: it does not say), and whether it wires MPI processes together. */
static const struct launcher_row {
    const char *name, *present, *size, *rank;
    int wired;
} launchers[] = {
    {"mpirun (Open MPI)", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
     1},
    {"PMIx", "PMIX_RANK", "SLURM_STEP_NUM_TASKS", "PMIX_RANK", 1},
    {"PMI", "PMI_SIZE", "PMI_SIZE", "PMI_RANK", 1},
    {"PMI", "PMI_RANK", NULL, "PMI_RANK", 1},
    {"srun", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", 0},
};

void dist_detect(char *(*get)(const char *name), dist_launch *out) {
    *out = (dist_launch){NULL, 0, -1, 0};
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0]; i++) {
        const struct launcher_row *l = &launchers[i];
        if (!get(l->present)) continue;
        int size = l->size ? env_int(get, l->size) : -1;
        *out = (dist_launch){l->name, size > 0 ? size : 0, env_int(get, l->rank), l->wired};
        return;
    }
}

vs_status dist_refuse_ranks(const char *cmd, int mode, int *rank, vs_error *err) {
    if (mode == DIST_OFF) return VS_OK;
    dist_launch l;
    dist_detect(getenv, &l);
    if (l.launcher && l.size > 1 && l.rank > 0) *rank = l.rank;
    if (l.launcher && l.size > 1 && strcmp(cmd, "run") == 0)
        return VS_FAIL(err, VS_ERR_USAGE,
                       "vesalius run starts the ranks of the stages that scale itself, but %s "
                       "started %d copies of it: run it as one process, with the launcher in "
                       "the study (distributed: {launcher: [mpirun], ranks: %d})",
                       l.launcher, l.size, l.size);
    if (l.launcher && l.size > 1)
        return VS_FAIL(err, VS_ERR_USAGE,
                       "vesalius %s runs as one process, but %s started %d: run it without the "
                       "launcher (or with --distributed off in every copy, if %d independent runs "
                       "are what you want)",
                       cmd, l.launcher, l.size, l.size);
    return VS_OK;
}
