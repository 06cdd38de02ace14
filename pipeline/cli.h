/* cli.h — the `vesalius` command line: exit codes, the command table, shared option handling.
 *
 * Only pipeline/ maps a vs_status to an exit code; library modules never exit.
 * The exit codes are documented in README.md and `vesalius --help`, and are the same for
 * every command.
 */
#ifndef VS_CLI_H
#define VS_CLI_H

#include "status.h"

enum vs_exit {
    VS_EXIT_OK = 0, /* done */
    VS_EXIT_FAILURE =
        1, /* failed (bad data in a way that stops the command, a bug, a library error) */
    VS_EXIT_USAGE = 2,   /* usage error: unknown command or option, missing argument */
    VS_EXIT_ENV = 3,     /* environment error: unsafe or missing key file, permissions, I/O */
    VS_EXIT_REJECTS = 4, /* done, but some inputs were rejected (listed in the run summary) */
    VS_EXIT_NOTHING = 5, /* nothing to do: every input was already processed */
    VS_EXIT_BUSY = 6,    /* another run holds this output folder's lock */
    VS_EXIT_FOUND = 7,   /* verify-deid found identifying data */
    VS_EXIT_PEER = 8,    /* a PACS is unreachable or refused us (connection, association, TLS) */
};

typedef struct cli_command {
    const char *name;
    const char *summary;               /* one line for `vesalius --help` */
    const char *usage;                 /* full text for `vesalius NAME --help` */
    int (*run)(int argc, char **argv); /* NULL: planned, not built yet */
    unsigned settings; /* ST_* bits (studies/study.h): the settings it takes as options, listed
                          after `usage` by --help; 0: none */
    unsigned flags;    /* CLI_* below */
} cli_command;

enum {
    /* runs across the processes of a launcher (pipeline/dist.h; core.c starts MPI for it);
     * every other command refuses a launcher of more than one process */
    CLI_RANKS = 1u << 0,
    /* re-executes itself with OMP_WAIT_POLICY=PASSIVE unless the user set a policy (core.c) */
    CLI_OMP_PASSIVE = 1u << 1,
};

/* Options every command accepts (before or after the command name). */
typedef struct cli_common {
    int log_json;
    int log_level;   /* log_level */
    int threads;     /* 0: default */
    int distributed; /* DIST_AUTO or DIST_OFF (pipeline/dist.h) */
    int rank;        /* this process's rank when it runs across ranks (0 otherwise): above 0, log
                        lines name it, info lines are dropped, and errors are left to rank 0
                        (every failure of such a command is every rank's, with its message) */
} cli_common;

extern cli_common g_cli;

/* Map a status to the documented exit code. */
int cli_exit_code(vs_status s);
/* Print "vesalius CMD: error: MSG" (or a JSON line) and return the exit code for err. */
int cli_fail(const char *cmd, const vs_error *err);
/* Print a usage error and a hint to run --help; returns VS_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The row of the command table named name, or NULL. */
const cli_command *cli_find(const char *name);
/* Run a command with argv[0] its name and the common options already in g_cli: configure
 * logging for it, refuse one not built yet (exit 1) or one without CLI_RANKS under a launcher
 * of several processes (exit 2), reset getopt and call its entry point. */
int cli_run(const cli_command *cmd, int argc, char **argv);

/* Print version lines (vesalius, git revision, every linked library) to stdout and return the
 * exit code: 3 when the core library cannot be loaded to name its libraries (pipeline/front.c). */
int cli_print_version(void);

/* The lean front (the `vesalius` executable) runs the commands it links itself; every other
 * command runs in libvesalius_core.so beside it, loaded on first use (pipeline/front.c). In the
 * front build their rows' entry point is cli_run_core, which hands argv and g_cli to the core.
 * Exit 3 with one line naming the library when it is missing or from another build. */
int cli_run_core(int argc, char **argv);

extern const cli_command cli_commands[];
extern const int cli_n_commands;

#endif
