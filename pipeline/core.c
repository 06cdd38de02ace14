/* core.c — the entry points of libvesalius_core.so, the part of vesalius that links HDF5,
 * ITK, OpenBLAS and the rest. The lean front (main.c, front.c) has already parsed the common
 * options and found the command; these are the only symbols the library exports (core.map),
 * so its own copies of the shared code (log, status, cli) never bind to the front's. */
#include "blas.h"
#include "cli.h"
#include "dist.h"
#include "libinfo.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const char *const vs_git_revision;

/* The build this library belongs to; the front refuses a core of another build (the struct
 * and the table it passes must be the ones this library was compiled with). */
void vesalius_core_build(const char **version, const char **revision) {
    *version = VESALIUS_VERSION;
    *revision = vs_git_revision;
}

/* libgomp reads OMP_WAIT_POLICY once, when it loads, and by default spin-waits at every
 * barrier: on a shared machine that makes two threads slower than one (measured 12 vs 23
 * samples/s at load 6 on 2 cores). Unless the user chose a policy, re-execute once with
 * PASSIVE, the setting the PyTorch twin needs too. On any failure, carry on as we are. */
static void ensure_passive_wait(void) {
    if (getenv("OMP_WAIT_POLICY")) return;
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (!f) return;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int whole = feof(f);
    fclose(f);
    if (!whole || n == 0) return;
    buf[n] = 0;
    char *args[1024];
    int k = 0;
    for (size_t i = 0; i < n && k < 1023; i += strlen(buf + i) + 1)
        args[k++] = buf + i;
    args[k] = NULL;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    execv("/proc/self/exe", args);
    unsetenv("OMP_WAIT_POLICY"); /* exec failed: run with the default policy */
}

/* Run the command argv[0] (a row of the command table) with the front's common options. A
 * command that runs across ranks re-executes first (if it does), then starts MPI when a
 * launcher started it (dist.h: never a re-exec or fork after MPI_Init), and ends it last. */
int vesalius_core_run(const cli_common *common, int argc, char **argv) {
    g_cli = *common;
    const cli_command *cmd = cli_find(argv[0]);
    if (!cmd) return cli_usage_error(NULL, "unknown command '%s'", argv[0]);
    if (cmd->flags & CLI_OMP_PASSIVE) ensure_passive_wait();
    if (!(cmd->flags & CLI_RANKS)) return cli_run(cmd, argc, argv);
    vs_error err;
    if (dist_start(g_cli.distributed, &err) != VS_OK) {
        log_config cfg = {(log_level)g_cli.log_level, g_cli.log_json, NULL, cmd->name};
        log_configure(&cfg);
        return dist_end(cli_fail(cmd->name, &err));
    }
    g_cli.rank = dist_rank();
    return dist_end(cli_run(cmd, argc, argv));
}

/* The library lines of `vesalius --version`. */
void vesalius_core_versions(void) {
    lib_version libs[16];
    int n = libinfo_io(libs, 16);
    for (int i = 0; i < n; i++)
        printf("  %-10s %s\n", libs[i].name, libs[i].version);
    printf("  %-10s %s\n", "OpenBLAS", blas_version());
    fflush(stdout);
}
