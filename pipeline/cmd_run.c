/* cmd_run.c — `vesalius run STUDY.yaml [--stages LIST] [--from STAGE] [--dry-run]`. */
#include "cli.h"
#include "parse.h"
#include "runner.h"
#include "study.h"

#include <getopt.h>

int cmd_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"stages", required_argument, 0, 's'},
        {"from", required_argument, 0, 'f'},
        {"dry-run", no_argument, 0, 'n'},
        {"lock-timeout", required_argument, 0, 't'},
        {0, 0, 0, 0},
    };
    runner_options ro = {NULL, NULL, 0, 0};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': ro.stages = optarg; break;
        case 'f': ro.from = optarg; break;
        case 'n': ro.dry_run = 1; break;
        case 't':
            if (!vs_parse_int(optarg, 0, 86400, &ro.lock_timeout_s))
                return cli_usage_error("run", "--lock-timeout wants seconds, 0 to 86400");
            break;
        default:
            return cli_usage_error("run", "option '%s' is unknown or needs a value",
                                   argv[optind - 1]);
        }
    }
    if (optind + 1 != argc) return cli_usage_error("run", "give one study file");
    study *s = NULL;
    vs_error err = {0};
    if (study_load(argv[optind], &s, &err) != VS_OK) return cli_fail("run", &err);
    int code = runner_run(s, argv[optind], &ro);
    study_free(s);
    return code;
}
