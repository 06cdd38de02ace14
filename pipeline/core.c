/* core.c — the entry points of libvesalius_core.so, the part of vesalius that links HDF5,
 * ITK, OpenBLAS and the rest. The lean front (main.c, front.c) has already parsed the common
 * options and found the command; these are the only symbols the library exports (core.map),
 * so its own copies of the shared code (log, status, cli) never bind to the front's. */
#include "blas.h"
#include "cli.h"
#include "libinfo.h"

#include <stdio.h>

extern const char *const vs_git_revision;

/* The build this library belongs to; the front refuses a core of another build (the struct
 * and the table it passes must be the ones this library was compiled with). */
void vesalius_core_build(const char **version, const char **revision) {
    *version = VESALIUS_VERSION;
    *revision = vs_git_revision;
}

/* Run the command argv[0] (a row of the command table) with the front's common options. */
int vesalius_core_run(const cli_common *common, int argc, char **argv) {
    g_cli = *common;
    const cli_command *cmd = cli_find(argv[0]);
    if (!cmd) return cli_usage_error(NULL, "unknown command '%s'", argv[0]);
    return cli_run(cmd, argc, argv);
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
