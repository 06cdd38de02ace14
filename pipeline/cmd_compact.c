/* cmd_compact.c — `vesalius compact DIR [--min-live F] [--shard-mb N] [--lock-timeout S]`:
 * rewrite the shards of an ingest output folder whose live share fell below F (volumes
 * superseded by rebuilt series) into new shards, crash-safely (store.h, store_compact).
 * Run by hand or by cron after ingest; it takes the same lock as ingest. */
#include "cli.h"
#include "log.h"
#include "parse.h"
#include "settings_cli.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

enum { OPT_MIN_LIVE = 1000, OPT_SHARD_MB, OPT_LOCK };

int cmd_compact(int argc, char **argv) {
    static const struct option opts[] = {{"min-live", required_argument, 0, OPT_MIN_LIVE},
                                         {"shard-mb", required_argument, 0, OPT_SHARD_MB},
                                         {"lock-timeout", required_argument, 0, OPT_LOCK},
                                         {0, 0, 0, 0}};
    store_options so;
    store_options_default(&so);
    so.shard.threads = settings_cli_threads(NULL);
    double min_live = 0.5, x;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_MIN_LIVE:
            if (!vs_parse_double(optarg, 0.0, 1.0, &min_live))
                return cli_usage_error("compact", "--min-live wants a share from 0 to 1");
            break;
        case OPT_SHARD_MB:
            if (!vs_parse_double(optarg, 0.01, 1 << 20, &x))
                return cli_usage_error("compact", "--shard-mb wants 0.01 to 1048576");
            so.shard_max_bytes = (uint64_t)(x * 1048576.0);
            break;
        case OPT_LOCK:
            if (!vs_parse_double(optarg, 0, 86400, &x))
                return cli_usage_error("compact", "--lock-timeout wants seconds, 0 to 86400");
            so.lock_timeout_ms = (int)(x * 1000);
            break;
        default:
            return cli_usage_error("compact", "option '%s' is unknown or needs a value",
                                   argv[optind - 1]);
        }
    }
    if (optind + 1 != argc) return cli_usage_error("compact", "give one ingest output folder");
    char params[128];
    snprintf(params, sizeof params, "{\"command\":\"compact\",\"min_live\":%g}", min_live);
    so.run_params = params;
    store *s = NULL;
    vs_error err;
    char cat[4200];
    snprintf(cat, sizeof cat, "%s/catalog.sqlite", argv[optind]);
    if (access(cat, F_OK) != 0) {
        VS_FAIL(&err, VS_ERR_IO, "%s: not an ingest output folder (no catalog.sqlite)",
                argv[optind]);
        return cli_fail("compact", &err);
    }
    store_compact_summary sum;
    store_summary ss;
    vs_status st = store_open(argv[optind], &so, &s, &err);
    if (st != VS_OK) return cli_fail("compact", &err);
    if ((st = store_compact(s, min_live, &sum, &err)) != VS_OK) {
        store_abort(s);
        return cli_fail("compact", &err);
    }
    if ((st = store_close(s, &ss, &err)) != VS_OK) return cli_fail("compact", &err);
    printf("compact: %d shards rewritten into %d, %d volumes moved, dead voxels %lld -> %lld\n",
           sum.n_shards_compacted, sum.n_shards_written, sum.n_volumes_moved,
           (long long)sum.dead_voxels_before, (long long)sum.dead_voxels_after);
    return sum.n_shards_compacted ? VS_EXIT_OK : VS_EXIT_NOTHING;
}
