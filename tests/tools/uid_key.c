/* uid_key — experiment helper: the series key (pseudonym) a site key gives each UID read from
 * standard input, one a line, printed as "UID,KEY". The generator's truth files (a synthetic
 * cohort's lookalikes.csv) name original UIDs; predictions name keys (docs/experiments).
 * Usage: uid_key SITE_KEY <uids.txt */
#include "deid.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: uid_key SITE_KEY <uids.txt\n");
        return 2;
    }
    if (access(argv[1], R_OK) != 0) { /* deid_open would create a new key: other pseudonyms */
        fprintf(stderr, "uid_key: %s: no readable site key\n", argv[1]);
        return 3;
    }
    deid_options o;
    memset(&o, 0, sizeof o);
    deid_ctx *ctx = NULL;
    vs_error err;
    if (deid_open(&o, argv[1], &ctx, &err) != VS_OK) {
        fprintf(stderr, "uid_key: %s\n", err.msg);
        return 3;
    }
    char line[256], key[DEID_KEY_MAX];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) continue;
        deid_uid_key(ctx, line, key);
        printf("%s,%s\n", line, key);
    }
    deid_close(ctx);
    return 0;
}
