#include "splits.h"

#include "rng.h"
#include "fsdir.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Streams of the study seed used here, so splits never share draws with training. */
enum { STREAM_FOLDS = 0x5f11u, STREAM_VALIDATION = 0x5f12u };

typedef struct keyed {
    const char *key;
    uint8_t positive;
} keyed;

static int cmp_key(const void *a, const void *b) {
    return strcmp(((const keyed *)a)->key, ((const keyed *)b)->key);
}

static split_table *table_alloc(uint32_t n, int k) {
    split_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n = n;
    t->k = k;
    t->patient = calloc(n ? n : 1, sizeof *t->patient);
    t->positive = calloc(n ? n : 1, 1);
    t->fold = calloc(n ? n : 1, sizeof *t->fold);
    t->val_mask = calloc((size_t)(n ? n : 1) * (size_t)k, 1);
    if (!t->patient || !t->positive || !t->fold || !t->val_mask) {
        splits_free(t);
        return NULL;
    }
    return t;
}

void splits_free(split_table *t) {
    if (!t) return;
    free(t->patient);
    free(t->positive);
    free(t->fold);
    free(t->val_mask);
    free(t);
}

/* Validation patients of fold f: a seeded share of the training patients, stratified. */
static void choose_validation(split_table *t) {
    for (int f = 0; f < t->k; f++) {
        rng r;
        rng_seed(&r, t->seed, STREAM_VALIDATION + (uint64_t)f);
        for (int cls = 0; cls < 2; cls++) {
            uint32_t *idx = malloc(sizeof *idx * (t->n ? t->n : 1));
            if (!idx) return;
            uint32_t m = 0;
            for (uint32_t i = 0; i < t->n; i++)
                if (t->fold[i] != f && t->positive[i] == cls) idx[m++] = i;
            rng_shuffle_u32(&r, idx, m);
            uint32_t take = (uint32_t)(t->val_fraction * (double)m + 0.5);
            if (t->val_fraction > 0 && take == 0 && m > 1) take = 1;
            for (uint32_t j = 0; j < take; j++) t->val_mask[(size_t)f * t->n + idx[j]] = 1;
            free(idx);
        }
    }
}

vs_status splits_make(const char *const *keys, const uint8_t *positive, uint32_t n, int k,
                      double val_fraction, uint64_t seed, split_table **out, vs_error *err) {
    *out = NULL;
    if (k < 2) return VS_FAIL(err, VS_ERR_CONFIG, "k-fold splits need at least 2 folds, not %d", k);
    if (n < (uint32_t)k)
        return VS_FAIL(err, VS_ERR_CONFIG, "%u patients cannot fill %d folds", n, k);
    if (!(val_fraction >= 0 && val_fraction < 1))
        return VS_FAIL(err, VS_ERR_CONFIG, "validation fraction %g is outside [0, 1)", val_fraction);
    /* Sort (key, flag) pairs by key so the input order cannot matter (invariant 3). */
    keyed *sorted = malloc(sizeof *sorted * n);
    if (!sorted) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        sorted[i].key = keys[i];
        sorted[i].positive = positive && positive[i] ? 1 : 0;
    }
    qsort(sorted, n, sizeof *sorted, cmp_key);
    split_table *t = table_alloc(n, k);
    if (!t) {
        free(sorted);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    t->seed = seed;
    t->val_fraction = val_fraction;
    for (uint32_t i = 0; i < n; i++) {
        if (strlen(sorted[i].key) >= sizeof t->patient[i] || !sorted[i].key[0]) {
            free(sorted);
            splits_free(t);
            return VS_FAIL(err, VS_ERR_FORMAT, "patient key %u is empty or longer than 64 characters", i);
        }
        if (i && strcmp(sorted[i].key, sorted[i - 1].key) == 0) {
            splits_free(t);
            vs_status st = VS_FAIL(err, VS_ERR_FORMAT, "patient key %s is listed twice", sorted[i].key);
            free(sorted);
            return st;
        }
        strcpy(t->patient[i], sorted[i].key);
        t->positive[i] = sorted[i].positive;
    }
    free(sorted);
    /* Stratified dealing: shuffle each class, deal folds round-robin, continuing the counter
     * across classes so totals stay balanced too (invariant 1). */
    rng r;
    rng_seed(&r, seed, STREAM_FOLDS);
    uint32_t *idx = malloc(sizeof *idx * n);
    if (!idx) {
        splits_free(t);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    uint32_t dealt = 0;
    for (int cls = 1; cls >= 0; cls--) {
        uint32_t m = 0;
        for (uint32_t i = 0; i < n; i++)
            if (t->positive[i] == cls) idx[m++] = i;
        rng_shuffle_u32(&r, idx, m);
        for (uint32_t j = 0; j < m; j++) t->fold[idx[j]] = (int)(dealt++ % (uint32_t)k);
    }
    free(idx);
    choose_validation(t);
    *out = t;
    return VS_OK;
}

split_role splits_role(const split_table *t, int fold, uint32_t patient) {
    if (t->fold[patient] == fold) return SPLIT_TEST;
    if (t->val_mask[(size_t)fold * t->n + patient]) return SPLIT_VALIDATION;
    return SPLIT_TRAIN;
}

int64_t splits_find(const split_table *t, const char *key) {
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->patient[mid], key);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

vs_status splits_save(const split_table *t, const char *path, vs_error *err) {
    vs_atomic a;
    vs_status st = vs_atomic_open(&a, path, err);
    if (st != VS_OK) return st;
    FILE *f = a.f;
    fprintf(f, "# vesalius splits v1 k=%d seed=%" PRIu64 " val_fraction=%.17g\n", t->k, t->seed,
            t->val_fraction);
    fprintf(f, "patient,positive,fold,validation_folds\n");
    for (uint32_t i = 0; i < t->n; i++) {
        fprintf(f, "%s,%d,%d,", t->patient[i], t->positive[i], t->fold[i]);
        int any = 0;
        for (int fo = 0; fo < t->k; fo++)
            if (t->val_mask[(size_t)fo * t->n + i]) fprintf(f, "%s%d", any++ ? ";" : "", fo);
        fputc('\n', f);
    }
    return vs_atomic_commit(&a, err);
}

vs_status splits_load(const char *path, split_table **out, vs_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read (%s)", path, strerror(errno));
    char line[1024];
    int k = 0;
    uint64_t seed = 0;
    double vf = 0;
    if (!fgets(line, sizeof line, f) ||
        sscanf(line, "# vesalius splits v1 k=%d seed=%" SCNu64 " val_fraction=%lf", &k, &seed, &vf) != 3 ||
        k < 2 || k > 1000 || !fgets(line, sizeof line, f)) {
        fclose(f);
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: not a vesalius splits file", path);
    }
    uint32_t n = 0;
    long start = ftell(f);
    while (fgets(line, sizeof line, f)) n++;
    split_table *t = table_alloc(n, k);
    if (!t) {
        fclose(f);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    t->seed = seed;
    t->val_fraction = vf;
    fseek(f, start, SEEK_SET);
    for (uint32_t i = 0; i < n; i++) {
        int pos, fold, consumed = 0;
        if (!fgets(line, sizeof line, f) ||
            sscanf(line, "%64[^,],%d,%d,%n", t->patient[i], &pos, &fold, &consumed) != 3 ||
            fold < 0 || fold >= k || (pos != 0 && pos != 1) ||
            (i && strcmp(t->patient[i - 1], t->patient[i]) >= 0)) {
            fclose(f);
            splits_free(t);
            return VS_FAIL(err, VS_ERR_FORMAT, "%s: line %u is malformed", path, i + 3);
        }
        t->positive[i] = (uint8_t)pos;
        t->fold[i] = fold;
        for (char *p = line + consumed; *p && *p != '\n';) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v >= k) break;
            t->val_mask[(size_t)v * n + i] = 1;
            p = *end == ';' ? end + 1 : end;
        }
    }
    fclose(f);
    *out = t;
    return VS_OK;
}
