/* dcm_save_tool — test helper for test_dcm_save_copy: `dcm_save_tool KEY IN SLOW FAST`
 * loads IN twice, de-identifies both copies under the basic profile, writes one with
 * dcm_file_save (DCMTK, loaded with dcm_file_load) and the other with dcm_file_save_copy (loaded
 * with dcm_file_load_open, as anonymize does: pixels copied from the descriptor kept open by the
 * load), and prints "copied" or "dcmtk"
 * for the path dcm_file_save_copy took. The test compares the two files byte for byte. */
#include <stdio.h>
#include <string.h>

#include "deid.h"

static int one(deid_ctx *ctx, const char *in, const char *out, int fast, int *copied) {
    vs_error err;
    dcm_file *f = NULL;
    deid_file_result res;
    vs_status s = fast ? dcm_file_load_open(in, NULL, &f, &err) : dcm_file_load(in, NULL, &f, &err);
    if (s == VS_OK) s = deid_apply(ctx, f, &res, &err);
    if (s == VS_OK)
        s = fast ? dcm_file_save_copy(f, out, copied, &err) : dcm_file_save(f, out, &err);
    dcm_file_free(f);
    if (s != VS_OK) fprintf(stderr, "dcm_save_tool: %s\n", err.msg);
    return s != VS_OK;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: dcm_save_tool KEY IN SLOW FAST\n");
        return 2;
    }
    deid_options opt;
    memset(&opt, 0, sizeof opt);
    opt.accept_burned_in = 1;
    deid_ctx *ctx = NULL;
    vs_error err;
    if (deid_open(&opt, argv[1], &ctx, &err) != VS_OK) {
        fprintf(stderr, "dcm_save_tool: %s\n", err.msg);
        return 1;
    }
    int copied = 0;
    int rc = one(ctx, argv[2], argv[3], 0, NULL) || one(ctx, argv[2], argv[4], 1, &copied);
    deid_close(ctx);
    if (!rc) printf("%s\n", copied ? "copied" : "dcmtk");
    return rc;
}
