/* cmd_verify.c — `vesalius verify DIR`: re-read every volume of every shard and compare it
 * with its SHA-256; report each corrupt shard or volume (one line each) and go on. */
#include "cli.h"
#include "log.h"
#include "shard.h"

#include <getopt.h>
#include <stdio.h>
#include <sys/stat.h>

int cmd_verify(int argc, char **argv) {
    static const struct option opts[] = {{0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
        return cli_usage_error("verify", "unknown option '%s'", argv[optind - 1]);
    if (optind + 1 != argc) return cli_usage_error("verify", "give one folder (DIR or DIR/shards)");
    char dir[4200];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/shards", argv[optind]);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) snprintf(dir, sizeof dir, "%s", argv[optind]);
    shard_verify_result r;
    vs_error err;
    vs_status rc = shard_verify_dir(dir, &r, &err);
    if (rc != VS_OK) return cli_fail("verify", &err);
    printf("verify: %d shards, %d volumes, %d corrupt shards, %d corrupt volumes\n", r.n_shards,
           r.n_volumes, r.n_bad_shards, r.n_bad_volumes);
    return r.n_bad_shards || r.n_bad_volumes ? VS_EXIT_FAILURE : VS_EXIT_OK;
}
