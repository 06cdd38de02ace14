#include "cli.h"

#include "blas.h"
#include "libinfo.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

extern const char *const vs_git_revision;

cli_common g_cli = {0, LOG_INFO, 0};

/* One row per status: the documented exit code it maps to. */
static const int status_exit[VS_STATUS_COUNT] = {
    [VS_OK] = VS_EXIT_OK,
    [VS_ERR_USAGE] = VS_EXIT_USAGE,
    [VS_ERR_CONFIG] = VS_EXIT_USAGE,
    [VS_ERR_IO] = VS_EXIT_ENV,
    [VS_ERR_FORMAT] = VS_EXIT_FAILURE,
    [VS_ERR_NOMEM] = VS_EXIT_FAILURE,
    [VS_ERR_LIBRARY] = VS_EXIT_FAILURE,
    [VS_ERR_ENV] = VS_EXIT_ENV,
    [VS_ERR_BUSY] = VS_EXIT_BUSY,
    [VS_ERR_INTERRUPTED] = VS_EXIT_FAILURE,
    [VS_ERR_INTERNAL] = VS_EXIT_FAILURE,
};

int cli_exit_code(vs_status s) {
    if ((unsigned)s >= VS_STATUS_COUNT) return VS_EXIT_FAILURE;
    return status_exit[s];
}

int cli_fail(const char *cmd, const vs_error *err) {
    const char *fields[] = {"status", vs_status_name(err->code), NULL, NULL};
    log_config cfg = *log_current();
    cfg.component = cmd;
    log_configure(&cfg);
    log_event(LOG_ERROR, "error", err->msg, cfg.json ? fields : NULL);
    return cli_exit_code(err->code);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "vesalius %s: %s\nTry 'vesalius %s --help'.\n", cmd, msg, cmd);
    else
        fprintf(stderr, "vesalius: %s\nTry 'vesalius --help'.\n", msg);
    return VS_EXIT_USAGE;
}

void cli_print_version(void) {
    printf("vesalius %s (git %s)\n", VESALIUS_VERSION, vs_git_revision);
    lib_version libs[16];
    int n = libinfo_io(libs, 16);
    for (int i = 0; i < n; i++) printf("  %-10s %s\n", libs[i].name, libs[i].version);
    printf("  %-10s %s\n", "OpenBLAS", blas_version());
}
