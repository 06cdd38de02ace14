/* cmd_inspect.c — `vesalius inspect PATH...`: what vesalius sees in a file or folder.
 * Built for shards (a shard file, a shard folder, or an ingest output folder); a kind of
 * input is one row of `inspectors`, so DICOM and checkpoints add a row each. */
#include "cli.h"
#include "log.h"
#include "shard.h"

#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ctx: the last object printed (a header line starts each new one). */
static int print_attr(void *ctx, const char *object, const char *name, const char *value) {
    char *last = ctx;
    if (strcmp(last, object) != 0) printf("  %s\n", object);
    snprintf(last, 128, "%s", object);
    printf("    %-22s %s\n", name, value);
    return 0;
}

static vs_status inspect_shard(const char *path, vs_error *err) {
    printf("%s\n", path);
    char last[128] = "";
    return shard_each_text(path, print_attr, last, err);
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Every sealed shard in dir (or dir/shards), in name order. */
static vs_status inspect_shard_dir(const char *dir, vs_error *err) {
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/shards", dir);
    struct stat st;
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) dir = sub;
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) return VS_FAIL(err, VS_ERR_IO, "%s: cannot list the folder", dir);
    vs_status rc = VS_OK;
    int found = 0;
    for (int i = 0; i < n; i++) {
        if (rc == VS_OK && strncmp(names[i]->d_name, "shard-", 6) == 0 &&
            has_suffix(names[i]->d_name, ".h5")) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            rc = inspect_shard(path, err);
            found++;
        }
        free(names[i]);
    }
    free(names);
    if (rc == VS_OK && !found)
        rc = VS_FAIL(err, VS_ERR_FORMAT, "%s: no shards in this folder", dir);
    return rc;
}

typedef struct inspector {
    int is_dir;         /* 1: for folders; 0: for files */
    const char *suffix; /* file name ending it recognises ("" for any folder) */
    vs_status (*run)(const char *path, vs_error *err);
} inspector;

static const inspector inspectors[] = {
    {0, ".h5", inspect_shard},
    {1, "", inspect_shard_dir},
};

int cmd_inspect(int argc, char **argv) {
    static const struct option opts[] = {{0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
        return cli_usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
    if (optind >= argc) return cli_usage_error("inspect", "give at least one PATH");
    int exit_code = VS_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        vs_error err;
        struct stat st;
        vs_status rc;
        if (stat(argv[i], &st) != 0) {
            rc = VS_FAIL(&err, VS_ERR_IO, "%s: no such file or folder", argv[i]);
        } else {
            const inspector *found = NULL;
            for (size_t k = 0; k < sizeof inspectors / sizeof inspectors[0]; k++)
                if (inspectors[k].is_dir == !!S_ISDIR(st.st_mode) &&
                    has_suffix(argv[i], inspectors[k].suffix))
                    found = &inspectors[k];
            rc = found ? found->run(argv[i], &err)
                       : VS_FAIL(&err, VS_ERR_FORMAT,
                                 "%s: not a shard or shard folder (this build inspects shards)",
                                 argv[i]);
        }
        if (rc != VS_OK) {
            int code = cli_fail("inspect", &err);
            if (exit_code == VS_EXIT_OK) exit_code = code;
        }
    }
    return exit_code;
}
