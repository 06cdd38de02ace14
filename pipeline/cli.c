#include "cli.h"

#include "dist.h"
#include "log.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

cli_common g_cli = {0, LOG_INFO, 0, DIST_AUTO, 0};

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
    [VS_ERR_PEER] = VS_EXIT_PEER,
};

int cli_exit_code(vs_status s) {
    if ((unsigned)s >= VS_STATUS_COUNT) return VS_EXIT_FAILURE;
    return status_exit[s];
}

int cli_fail(const char *cmd, const vs_error *err) {
    if (g_cli.rank > 0) return cli_exit_code(err->code); /* rank 0 says it (cli.h) */
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
    if (g_cli.rank > 0) return VS_EXIT_USAGE; /* every rank parsed the same options */
    if (cmd)
        fprintf(stderr, "vesalius %s: %s\nTry 'vesalius %s --help'.\n", cmd, msg, cmd);
    else
        fprintf(stderr, "vesalius: %s\nTry 'vesalius --help'.\n", msg);
    return VS_EXIT_USAGE;
}

int cli_run(const cli_command *cmd, int argc, char **argv) {
    static char component[64];
    log_level level = (log_level)g_cli.log_level;
    if (g_cli.rank > 0) {
        snprintf(component, sizeof component, "%s (rank %d)", cmd->name, g_cli.rank);
        if (level < LOG_WARN) level = LOG_WARN;
    } else {
        snprintf(component, sizeof component, "%s", cmd->name);
    }
    log_config cfg = {level, g_cli.log_json, NULL, component};
    log_configure(&cfg);
    vs_error err;
    if (!cmd->run) {
        VS_FAIL(&err, VS_ERR_INTERNAL, "the '%s' command is not built yet in this version",
                cmd->name);
        return cli_fail(cmd->name, &err);
    }
    if (!(cmd->flags & CLI_RANKS) &&
        dist_refuse_ranks(cmd->name, g_cli.distributed, &g_cli.rank, &err) != VS_OK)
        return cli_fail(cmd->name, &err); /* said once, by the launcher's rank 0 */
    optind = 0;                           /* reset getopt for the command's own parsing */
    opterr = 0;
    return cmd->run(argc, argv);
}
