/* group.c — the helpers of group.h over a group's gather. */
#include "group.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int vs_group_size(const vs_group *g) { return g ? g->size : 1; }
int vs_group_rank(const vs_group *g) { return g ? g->rank : 0; }

typedef struct agree_rec {
    int32_t code, line;
    char msg[VS_ERROR_MSG_MAX];
} agree_rec;

vs_status vs_group_agree(const vs_group *g, vs_status st, vs_error *err) {
    if (!g || g->size == 1) return st;
    agree_rec mine;
    memset(&mine, 0, sizeof mine);
    mine.code = (int32_t)st;
    if (st != VS_OK && err) {
        mine.line = err->src_line;
        memcpy(mine.msg, err->msg, sizeof mine.msg);
        mine.msg[sizeof mine.msg - 1] = '\0';
    }
    agree_rec *all = malloc((size_t)g->size * sizeof *all);
    /* without memory for the records the vote cannot happen, and the others wait in it */
    if (!all) abort();
    g->gather(g->ctx, &mine, all, sizeof mine);
    vs_status out = VS_OK;
    int first = -1, same = 1; /* the lowest failing rank; whether every rank failed alike */
    for (int r = 0; r < g->size; r++) {
        all[r].msg[sizeof all[r].msg - 1] = '\0';
        if (all[r].code != all[0].code || strcmp(all[r].msg, all[0].msg) != 0) same = 0;
        if (all[r].code != VS_OK && first < 0) first = r;
    }
    if (first >= 0) {
        agree_rec *f = &all[first];
        out = (unsigned)f->code < VS_STATUS_COUNT ? (vs_status)f->code : VS_ERR_INTERNAL;
        if (same) /* every rank says the same: no rank to name */
            vs_error_set(err, out, __FILE__, f->line, "%s", f->msg);
        else
            vs_error_set(err, out, __FILE__, f->line, "rank %d: %s", first, f->msg);
    }
    free(all);
    return out;
}

int vs_group_max(const vs_group *g, int v) {
    if (!g || g->size == 1) return v;
    int32_t mine = v, *all = malloc((size_t)g->size * sizeof *all);
    if (!all) abort();
    g->gather(g->ctx, &mine, all, sizeof mine);
    int m = all[0];
    for (int r = 1; r < g->size; r++)
        if (all[r] > m) m = all[r];
    free(all);
    return m;
}
