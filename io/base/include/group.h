/* group.h — the collectives a data-parallel computation needs from the processes it runs in,
 * as a struct of function pointers: pipeline/dist.c implements them over MPI; a NULL group is
 * one process. Nothing here depends on MPI, so models/ and the tests use it as they are.
 *
 * Invariants:
 *   1. Every member calls the same operations in the same order with the same sizes (a rank
 *      that failed still takes part, and says so through vs_group_agree).
 *   2. sum_f32 adds the members' arrays element by element in rank order, in float:
 *      ((x_0 + x_1) + x_2) + ...; every member receives the same bits, whatever the MPI
 *      library and whatever algorithm it picks for its own reductions.
 *   3. A failed transfer does not return: the implementation ends the whole job (a rank left
 *      waiting for a message that never comes would hang it).
 */
#ifndef VS_GROUP_H
#define VS_GROUP_H

#include <stddef.h>

#include "status.h"

typedef struct vs_group {
    int rank, size;
    void *ctx;
    /* all (size * bytes) receives every member's `bytes` bytes of `mine`, in rank order */
    void (*gather)(void *ctx, const void *mine, void *all, size_t bytes);
    /* x (n) becomes the rank-order sum of every member's x (invariant 2) */
    void (*sum_f32)(void *ctx, float *x, size_t n);
    /* buf (bytes) becomes rank 0's buf on every member */
    void (*bcast)(void *ctx, void *buf, size_t bytes);
} vs_group;

/* The group's size and this process's rank; a NULL group is one process of rank 0. */
int vs_group_size(const vs_group *g);
int vs_group_rank(const vs_group *g);

/* Every member passes its own status (and err, filled when st != VS_OK); all return the same
 * result: VS_OK when every member is, else the status of the lowest failing rank with its
 * message in err, prefixed "rank R: " unless every member failed alike. One gather of a fixed
 * record (the message bytes included). */
vs_status vs_group_agree(const vs_group *g, vs_status st, vs_error *err);

/* An int from each member (e.g. a stop flag): returns the largest. */
int vs_group_max(const vs_group *g, int v);

#endif
