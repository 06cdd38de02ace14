/* inspect_shard.c — the shard half of `vesalius inspect`: a shard file, a shard folder, or an
 * ingest output folder (DIR/shards). cmd_inspect.c sends such paths here. */
#include "inspect.h"
#include "log.h"
#include "shard.h"

#include <dirent.h>
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

int inspect_is_shard_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return has_suffix(path, ".h5");
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/shards", path);
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) return 1;
    struct dirent **names = NULL;
    int n = scandir(path, &names, NULL, alphasort), found = 0;
    for (int i = 0; i < n; i++) {
        found |= strncmp(names[i]->d_name, "shard-", 6) == 0 && has_suffix(names[i]->d_name, ".h5");
        free(names[i]);
    }
    free(names);
    return found;
}

vs_status inspect_shard_path(const char *path, vs_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return VS_FAIL(err, VS_ERR_IO, "%s: no such file or folder", path);
    return S_ISDIR(st.st_mode) ? inspect_shard_dir(path, err) : inspect_shard(path, err);
}
