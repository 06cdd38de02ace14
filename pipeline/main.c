/* main.c — `vesalius COMMAND [OPTIONS]`: global options, then dispatch to a command.
 *
 * This is the lean front: it links DCMTK's dcmdata, libsodium and SQLite only, runs the
 * commands linked into it (anonymize) itself and hands every other command to
 * libvesalius_core.so (pipeline/front.c), so that a command that needs no HDF5, ITK or BLAS
 * does not pay for loading them (some 80 shared libraries, ~25 ms per start). */
#include "cli.h"
#include "dcmdict.h"
#include "dist.h"
#include "log.h"
#include "parse.h"
#include "study.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_help(FILE *f) {
    fprintf(f, "vesalius - DICOM archive to pretrained 3D model and validated tumor detector\n"
               "\n"
               "Usage: vesalius [GLOBAL OPTIONS] COMMAND [OPTIONS]\n"
               "       vesalius COMMAND --help\n"
               "\n"
               "Commands:\n");
    for (int i = 0; i < cli_n_commands; i++)
        fprintf(f, "  %-12s %s%s\n", cli_commands[i].name, cli_commands[i].summary,
                cli_commands[i].run ? "" : " (not built yet)");
    fprintf(f,
            "\n"
            "Global options (also accepted after COMMAND):\n"
            "  -h, --help          show this help\n"
            "  -V, --version       show the version and the library versions\n"
            "      --log-json      log JSON lines on stderr (for cron and batch jobs)\n"
            "      --log-level L   debug, info, warn, error or quiet (default info)\n"
            "  -j, --threads N     worker threads (default 0: all cores)\n"
            "      --distributed M auto: run across the processes mpirun or srun started, when\n"
            "                      their variables say so (pretrain, ingest, finetune); off: one\n"
            "                      process, whatever the environment says (default auto)\n"
            "\n"
            "Exit codes (the same for every command):\n"
            "  0  done\n"
            "  1  failed\n"
            "  2  usage error (unknown command or option, bad study file)\n"
            "  3  environment error (unsafe or missing key file, permissions, I/O)\n"
            "  4  done, but some inputs were rejected (see the run summary)\n"
            "  5  nothing to do (every input already processed)\n"
            "  6  another run holds the output folder's lock\n"
            "  7  verify-deid found identifying data\n"
            "  8  a PACS is unreachable or refused us (connection, association, TLS)\n");
}

/* Apply a common option; returns 0 if handled, -1 on a bad value. */
static int apply_common(int opt, const char *arg, const char *cmd) {
    switch (opt) {
    case 1000: g_cli.log_json = 1; return 0;
    case 1001: {
        int lvl = log_level_parse(arg);
        if (lvl < 0) {
            cli_usage_error(cmd, "unknown log level '%s'", arg);
            return -1;
        }
        g_cli.log_level = lvl;
        return 0;
    }
    case 1002:
        if (strcmp(arg, "auto") == 0 || strcmp(arg, "off") == 0) {
            g_cli.distributed = arg[0] == 'o' ? DIST_OFF : DIST_AUTO;
            return 0;
        }
        cli_usage_error(cmd, "--distributed wants auto or off, not '%s'", arg);
        return -1;
    case 'j':
        /* 0: all cores, the default, as the study key `threads: 0` (settings_cli_threads) */
        if (!vs_parse_int(arg, 0, 1024, &g_cli.threads)) {
            cli_usage_error(
                cmd, "--threads wants a whole number from 0 (all cores) to 1024, not '%s'", arg);
            return -1;
        }
        return 0;
    }
    return -1;
}

static const struct option global_opts[] = {
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {"log-json", no_argument, 0, 1000},
    {"log-level", required_argument, 0, 1001},
    {"threads", required_argument, 0, 'j'},
    {"distributed", required_argument, 0, 1002},
    {0, 0, 0, 0},
};

int main(int argc, char **argv) {
    /* Global options stop at the first non-option (the command). */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "+hVj:", global_opts, NULL)) != -1) {
        switch (opt) {
        case 'h': print_help(stdout); return VS_EXIT_OK;
        case 'V': return cli_print_version();
        case '?':
            if (optopt)
                return cli_usage_error(NULL, "option '-%c' is unknown or needs a value", optopt);
            return cli_usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
        default:
            if (apply_common(opt, optarg, NULL) < 0) return VS_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        print_help(stderr);
        return VS_EXIT_USAGE;
    }
    const char *name = argv[optind];
    const cli_command *cmd = cli_find(name);
    if (!cmd) return cli_usage_error(NULL, "unknown command '%s'", name);

    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    /* Strip the common options wherever they appear after the command, and catch --help. */
    int out = 1;
    for (int i = 1; i < sub_argc; i++) {
        const char *a = sub_argv[i];
        if (strcmp(a, "--") == 0) {
            while (i < sub_argc)
                sub_argv[out++] = sub_argv[i++];
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(cmd->usage, stdout);
            if (cmd->settings) study_print_options(stdout, cmd->settings);
            return VS_EXIT_OK;
        }
        if (strcmp(a, "--log-json") == 0) {
            g_cli.log_json = 1;
            continue;
        }
        if (strcmp(a, "--log-level") == 0 || strcmp(a, "--threads") == 0 || strcmp(a, "-j") == 0 ||
            strcmp(a, "--distributed") == 0) {
            if (i + 1 >= sub_argc) return cli_usage_error(name, "option '%s' needs a value", a);
            int id = a[1] == 'j' ? 'j' : a[2] == 'l' ? 1001 : a[2] == 'd' ? 1002 : 'j';
            if (apply_common(id, sub_argv[i + 1], name) < 0) return VS_EXIT_USAGE;
            i++;
            continue;
        }
        if (strncmp(a, "--distributed=", 14) == 0) {
            if (apply_common(1002, a + 14, name) < 0) return VS_EXIT_USAGE;
            continue;
        }
        if (strncmp(a, "--log-level=", 12) == 0) {
            if (apply_common(1001, a + 12, name) < 0) return VS_EXIT_USAGE;
            continue;
        }
        if (strncmp(a, "--threads=", 10) == 0) {
            if (apply_common('j', a + 10, name) < 0) return VS_EXIT_USAGE;
            continue;
        }
        sub_argv[out++] = sub_argv[i];
    }
    sub_argc = out;
    sub_argv[sub_argc] = NULL;
    /* DCMTK's dictionary from the built-in table rather than its text files (dcmdict.h):
     * here, while the process has one thread and has not touched DCMTK. */
    dcm_dict_install();
    return cli_run(cmd, sub_argc, sub_argv);
}
