/* cmd_demo.c — `vesalius demo-cohort`: write the synthetic demo cohort (studies/demo.h). */
#include "cli.h"
#include "demo.h"
#include "det_cli.h"
#include "log.h"
#include "parse.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_demo_cohort(int argc, char **argv) {
    demo_config c;
    demo_config_default(&c);
    c.threads = g_cli.threads;
    const char *out = NULL;
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"unlabeled", required_argument, 0, 'u'},
                                         {"labeled", required_argument, 0, 'l'},
                                         {"radiographs", required_argument, 0, 'r'},
                                         {"matrix", required_argument, 0, 'm'},
                                         {"slices", required_argument, 0, 's'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"positive-share", required_argument, 0, 'p'},
                                         {"contrast", required_argument, 0, 'c'},
                                         {"diameter", required_argument, 0, 'd'},
                                         {"subtle-share", required_argument, 0, 't'},
                                         {"cyst-share", required_argument, 0, 'y'},
                                         {"labeled-modality", required_argument, 0, 'M'},
                                         {0, 0, 0, 0}};
    int opt, a, b;
    while ((opt = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 'u':
            if (!vs_parse_int(optarg, 0, 100000, &c.n_unlabeled))
                return cli_usage_error("demo-cohort", "bad --unlabeled '%s'", optarg);
            break;
        case 'l':
            if (!vs_parse_int(optarg, 0, 100000, &c.n_labeled))
                return cli_usage_error("demo-cohort", "bad --labeled '%s'", optarg);
            break;
        case 'r':
            if (!vs_parse_int(optarg, 0, 100000, &c.n_radiographs))
                return cli_usage_error("demo-cohort", "bad --radiographs '%s'", optarg);
            break;
        case 'm':
            if (!vs_parse_int(optarg, 16, 1024, &c.matrix))
                return cli_usage_error("demo-cohort", "--matrix wants 16 to 1024, not '%s'",
                                       optarg);
            break;
        case 's':
            if (sscanf(optarg, "%d:%d", &a, &b) != 2 || a < 2 || b < a || b > 2048)
                return cli_usage_error("demo-cohort", "--slices wants MIN:MAX, not '%s'", optarg);
            c.min_slices = a;
            c.max_slices = b;
            break;
        case 'S':
            if (!vs_parse_u64(optarg, 0, UINT64_MAX, &c.seed))
                return cli_usage_error("demo-cohort", "--seed wants a whole number, not '%s'",
                                       optarg);
            break;
        case 'p':
            if (detcli_number(optarg, 0, 1, &c.positive_share) != 0)
                return cli_usage_error("demo-cohort", "--positive-share wants 0 to 1, not '%s'",
                                       optarg);
            break;
        case 'c':
            if (detcli_number(optarg, 1e-3, 20, &c.contrast) != 0)
                return cli_usage_error("demo-cohort",
                                       "--contrast wants a factor in (0, 20], not '%s'", optarg);
            break;
        case 'd': { /* MIN:MAX, each checked whole */
            char lo[32] = "";
            const char *colon = strchr(optarg, ':');
            if (colon && colon > optarg && colon - optarg < (long)sizeof lo)
                memcpy(lo, optarg, (size_t)(colon - optarg));
            if (!lo[0] || detcli_number(lo, 2, 80, &c.min_diameter) != 0 ||
                detcli_number(colon + 1, c.min_diameter, 80, &c.max_diameter) != 0)
                return cli_usage_error("demo-cohort",
                                       "--diameter wants MIN:MAX mm (2 to 80), not '%s'", optarg);
            break;
        }
        case 't':
            if (detcli_number(optarg, 0, 1, &c.subtle_share) != 0)
                return cli_usage_error("demo-cohort", "--subtle-share wants 0 to 1, not '%s'",
                                       optarg);
            break;
        case 'y':
            if (detcli_number(optarg, 0, 1, &c.cyst_share) != 0)
                return cli_usage_error("demo-cohort", "--cyst-share wants 0 to 1, not '%s'",
                                       optarg);
            break;
        case 'M':
            if (strcmp(optarg, "CT") == 0)
                c.labeled_modality = DEMO_CT;
            else if (strcmp(optarg, "MR") == 0)
                c.labeled_modality = DEMO_MR;
            else
                return cli_usage_error("demo-cohort", "--labeled-modality wants CT or MR, not '%s'",
                                       optarg);
            break;
        default: return cli_usage_error("demo-cohort", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!out) return cli_usage_error("demo-cohort", "--out DIR is required");
    if (optind < argc)
        return cli_usage_error("demo-cohort", "unexpected argument '%s'", argv[optind]);
    demo_summary s;
    vs_error err = {0};
    vs_status st = demo_generate(&c, out, &s, &err);
    if (st != VS_OK) return cli_fail("demo-cohort", &err);
    log_info("wrote %d series (%d files), %d labeled volumes with tumours, %d tumours, under %s",
             s.n_series, s.n_files, s.n_positive, s.n_lesions, out);
    return VS_EXIT_OK;
}
