/* splits.h — patient-level cohorts: k folds, and within each fold a train/validation/test role.
 *
 * Invariants (tests/unit/test_splits.c checks each):
 *   1. Every patient is in exactly one fold; fold sizes differ by at most one, and so do the
 *      counts of positive patients per fold (stratified by `positive`).
 *   2. For fold f, role TEST is exactly the patients of fold f; VALIDATION is a deterministic
 *      share of the others; no patient has two roles in one fold.
 *   3. The assignment depends only on the seed and the SET of patient keys (not their order).
 *   4. splits_save then splits_load gives the same table; a saved table is reused by reruns.
 */
#ifndef VS_SPLITS_H
#define VS_SPLITS_H

#include <stdint.h>

#include "status.h"

typedef enum { SPLIT_TRAIN = 0, SPLIT_VALIDATION = 1, SPLIT_TEST = 2 } split_role;

typedef struct split_table {
    uint32_t n;          /* patients */
    int k;               /* folds */
    uint64_t seed;
    double val_fraction; /* share of each fold's training patients held out for early stopping */
    char (*patient)[65]; /* pseudonymous patient keys, sorted */
    uint8_t *positive;   /* 1 when the patient has a positive label (for stratification) */
    int *fold;           /* fold of each patient, in [0, k) */
    uint8_t *val_mask;   /* n*k: val_mask[f*n + i] = 1 when patient i validates fold f */
} split_table;

/* keys: n pseudonymous patient keys (duplicates refused); positive: n flags or NULL. */
vs_status splits_make(const char *const *keys, const uint8_t *positive, uint32_t n, int k,
                      double val_fraction, uint64_t seed, split_table **out, vs_error *err);
void splits_free(split_table *t);

split_role splits_role(const split_table *t, int fold, uint32_t patient);
/* Index of a patient key, or -1. */
int64_t splits_find(const split_table *t, const char *key);

/* CSV: a '#' header line with k, seed and val_fraction, then "patient,positive,fold,validation_folds". */
vs_status splits_save(const split_table *t, const char *path, vs_error *err);
vs_status splits_load(const char *path, split_table **out, vs_error *err);

#endif
