/* splits.h — the comparison protocol's cohorts: every labeled patient gets one role (train, dev
 * or test) once per study, and each run seed takes the label budgets' patients from the
 * training patients in a seeded, stratified order.
 *
 * Ranks. Every seeded order here sorts patients by a rank: the first 8 bytes (little-endian)
 * of BLAKE2b with an 8-byte digest (libsodium's crypto_generichash, Python's
 * hashlib.blake2b(key, digest_size=8, key=K)) of the patient key's bytes, keyed with the 16
 * bytes K = seed (u64 LE) | purpose (u32 LE: 1 roles, 2 budget order) | run seed (u32 LE, 0 for
 * roles); ties (never seen) fall back to the key's byte order.
 *
 * Roles (splits_make). Within each class (positive, negative) separately, patients sorted by
 * their role rank: the first round(test_share x m) are test, the next round(dev_share x m) dev
 * (fewer when the two would exceed m), the rest train, where m is the class's patients and
 * round() rounds halves up (floor(x + 0.5)). Test comes first, so dev_share never moves a test
 * patient.
 *
 * Budgets (splits_budget_order). The training patients of each class sorted by their budget
 * rank for run seed s, then dealt into one list: position k (0-based) takes a positive when
 * 2 x ((k + 1) x P - p x N) >= N, where P of N training patients are positive and p positives
 * were dealt already (the class that falls short of its share by half a patient or more), except
 * that position 1 takes the class position 0 did not when both exist. Budget b is the first b
 * patients of that list (0: all), so budgets are nested within a run seed and every budget of
 * two or more holds both classes when the pool does.
 *
 * Invariants (tests/unit/test_splits.c checks each):
 *   1. Every patient has exactly one role; per class, test and dev counts follow the rounding
 *      rule above.
 *   2. Roles, budget orders and fit seeds depend only on the seed (and run seed) and the SET of
 *      patient keys with their classes: not on the order they are given in.
 *   3. For one run seed, budget a < b: the patients of a are the first a of b.
 *   4. splits_save then splits_load gives the same table.
 */
#ifndef VS_SPLITS_H
#define VS_SPLITS_H

#include <stdint.h>

#include "status.h"

typedef enum { SPLIT_TRAIN = 0, SPLIT_DEV = 1, SPLIT_TEST = 2 } split_role;

/* "train", "dev", "test". */
const char *splits_role_name(split_role r);

typedef struct split_table {
    uint32_t n; /* patients */
    uint64_t seed;
    double dev_share, test_share;
    char (*patient)[65]; /* pseudonymous patient keys, sorted (bytes) */
    uint8_t *positive;   /* 1: the patient has a positive series */
    uint8_t *role;       /* split_role of each patient */
} split_table;

/* keys: n pseudonymous patient keys (duplicates refused); positive: n flags or NULL (all
 * negative). Shares in [0, 1) with dev_share + test_share < 1; fails with VS_ERR_CONFIG when
 * no training patient would be left. */
vs_status splits_make(const char *const *keys, const uint8_t *positive, uint32_t n,
                      double dev_share, double test_share, uint64_t seed, split_table **out,
                      vs_error *err);
void splits_free(split_table *t);

/* Index of a patient key, or -1. */
int64_t splits_find(const split_table *t, const char *key);
/* Patients with role r. */
uint32_t splits_count(const split_table *t, split_role r);

/* The training patients in the order run seed s takes them (indices into t); *order is
 * malloc'ed, *n = the training patients. */
vs_status splits_budget_order(const split_table *t, int run_seed, uint32_t **order, uint32_t *n,
                              vs_error *err);
/* The patients of budget b for run seed s (0: every training patient): the first b of the
 * order. VS_ERR_CONFIG naming both numbers when b exceeds the training patients. */
vs_status splits_budget(const split_table *t, int run_seed, int budget, uint32_t **idx, uint32_t *n,
                        vs_error *err);

/* The seed of fit s (the detector's initialisation and crop sequence): the first 8 bytes (LE)
 * of BLAKE2b-64 of the 3 bytes "fit", keyed with K = seed | 3 | s. Both arms use it. */
uint64_t splits_fit_seed(uint64_t seed, int run_seed);

/* CSV: "# vesalius splits v2 seed=S dev_share=X test_share=Y", then "patient,positive,role",
 * one line per patient in key order. Written durably (temporary file, fsync, rename). */
vs_status splits_save(const split_table *t, const char *path, vs_error *err);
/* Refuses, naming the file and line, anything else (a v1 k-fold file included). */
vs_status splits_load(const char *path, split_table **out, vs_error *err);

#endif
