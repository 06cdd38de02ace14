/* splits.c — roles, budget orders and fit seeds of splits.h. */
#include "splits.h"

#include "fsdir.h"
#include "parse.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The purpose word of the rank key (splits.h). */
enum { PURPOSE_ROLES = 1, PURPOSE_BUDGET = 2, PURPOSE_FIT = 3 };

static const char *const role_names[3] = {"train", "dev", "test"};

const char *splits_role_name(split_role r) { return r <= SPLIT_TEST ? role_names[r] : "?"; }

/* BLAKE2b-64 of msg keyed with seed | purpose | run seed, as a little-endian integer. */
static uint64_t rank_of(uint64_t seed, uint32_t purpose, uint32_t run, const char *msg) {
    unsigned char key[16], out[8];
    for (int i = 0; i < 8; i++)
        key[i] = (unsigned char)(seed >> (8 * i));
    for (int i = 0; i < 4; i++) {
        key[8 + i] = (unsigned char)(purpose >> (8 * i));
        key[12 + i] = (unsigned char)(run >> (8 * i));
    }
    /* sodium_init is idempotent and thread-safe; the hash itself needs no initialisation */
    crypto_generichash(out, sizeof out, (const unsigned char *)msg, strlen(msg), key, sizeof key);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | out[i];
    return v;
}

uint64_t splits_fit_seed(uint64_t seed, int run_seed) {
    return rank_of(seed, PURPOSE_FIT, (uint32_t)run_seed, "fit");
}

typedef struct ranked {
    uint64_t rank;
    uint32_t idx;
    const char *key;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return strcmp(x->key, y->key);
}

static split_table *table_alloc(uint32_t n) {
    split_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n = n;
    t->patient = calloc(n ? n : 1, sizeof *t->patient);
    t->positive = calloc(n ? n : 1, 1);
    t->role = calloc(n ? n : 1, 1);
    if (!t->patient || !t->positive || !t->role) {
        splits_free(t);
        return NULL;
    }
    return t;
}

void splits_free(split_table *t) {
    if (!t) return;
    free(t->patient);
    free(t->positive);
    free(t->role);
    free(t);
}

typedef struct keyed {
    const char *key;
    uint8_t positive;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    return strcmp(((const keyed *)a)->key, ((const keyed *)b)->key);
}

/* Patients of class `cls` among idx[0..n) (or all patients when idx is NULL) ranked for
 * (purpose, run): into r, returns how many. */
static uint32_t rank_class(const split_table *t, const uint32_t *idx, uint32_t n, int cls,
                           uint32_t purpose, uint32_t run, ranked *r) {
    uint32_t m = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint32_t i = idx ? idx[j] : j;
        if (t->positive[i] != cls) continue;
        r[m++] = (ranked){rank_of(t->seed, purpose, run, t->patient[i]), i, t->patient[i]};
    }
    qsort(r, m, sizeof *r, cmp_ranked);
    return m;
}

static uint32_t round_share(double share, uint32_t m) {
    return (uint32_t)floor(share * (double)m + 0.5);
}

vs_status splits_make(const char *const *keys, const uint8_t *positive, uint32_t n,
                      double dev_share, double test_share, uint64_t seed, split_table **out,
                      vs_error *err) {
    *out = NULL;
    if (!(dev_share >= 0 && test_share >= 0 && dev_share + test_share < 1))
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "the dev share %g and the test share %g must be >= 0 with a sum below 1",
                       dev_share, test_share);
    if (sodium_init() < 0) return VS_FAIL(err, VS_ERR_LIBRARY, "libsodium failed to initialise");
    keyed *sorted = malloc(sizeof *sorted * (n ? n : 1));
    ranked *r = malloc(sizeof *r * (n ? n : 1));
    split_table *t = table_alloc(n);
    vs_status st = VS_OK;
    if (!sorted || !r || !t) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < n; i++)
        sorted[i] = (keyed){keys[i], positive && positive[i] ? 1 : 0};
    qsort(sorted, n, sizeof *sorted, cmp_keyed); /* invariant 2: the order given cannot matter */
    t->seed = seed, t->dev_share = dev_share, t->test_share = test_share;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = strlen(sorted[i].key);
        if (len == 0 || len >= sizeof t->patient[i]) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "patient key %u is empty or longer than 64 characters",
                         i);
            goto done;
        }
        if (i && strcmp(sorted[i].key, sorted[i - 1].key) == 0) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "patient key %s is listed twice", sorted[i].key);
            goto done;
        }
        memcpy(t->patient[i], sorted[i].key, len + 1);
        t->positive[i] = sorted[i].positive;
    }
    for (int cls = 0; cls < 2; cls++) {
        uint32_t m = rank_class(t, NULL, n, cls, PURPOSE_ROLES, 0, r);
        uint32_t n_test = round_share(test_share, m), n_dev = round_share(dev_share, m);
        if (n_test > m) n_test = m;
        if (n_dev > m - n_test) n_dev = m - n_test;
        for (uint32_t j = 0; j < m; j++)
            t->role[r[j].idx] = j < n_test           ? SPLIT_TEST
                                : j < n_test + n_dev ? SPLIT_DEV
                                                     : SPLIT_TRAIN;
    }
    if (splits_count(t, SPLIT_TRAIN) == 0)
        st = VS_FAIL(err, VS_ERR_CONFIG,
                     "%u labeled patients with dev share %g and test share %g leave no training "
                     "patient",
                     n, dev_share, test_share);
done:
    free(sorted);
    free(r);
    if (st != VS_OK)
        splits_free(t);
    else
        *out = t;
    return st;
}

int64_t splits_find(const split_table *t, const char *key) {
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->patient[mid], key);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

uint32_t splits_count(const split_table *t, split_role role) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < t->n; i++)
        k += t->role[i] == role;
    return k;
}

vs_status splits_budget_order(const split_table *t, int run_seed, uint32_t **order, uint32_t *n,
                              vs_error *err) {
    *order = NULL, *n = 0;
    if (run_seed < 0) return VS_FAIL(err, VS_ERR_USAGE, "run seed %d is negative", run_seed);
    uint32_t n_train = splits_count(t, SPLIT_TRAIN);
    uint32_t *train = malloc(sizeof *train * (n_train + 1)),
             *out = malloc(sizeof *out * (n_train + 1));
    ranked *cls[2] = {malloc(sizeof(ranked) * (n_train + 1)),
                      malloc(sizeof(ranked) * (n_train + 1))};
    if (!train || !out || !cls[0] || !cls[1]) {
        free(train), free(out), free(cls[0]), free(cls[1]);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->role[i] == SPLIT_TRAIN) train[k++] = i;
    uint32_t m[2];
    for (int c = 0; c < 2; c++)
        m[c] = rank_class(t, train, n_train, c, PURPOSE_BUDGET, (uint32_t)run_seed, cls[c]);
    int64_t P = m[1], N = n_train;
    uint32_t taken[2] = {0, 0};
    for (int64_t pos = 0; pos < N; pos++) {
        int c;
        if (taken[1] == m[1])
            c = 0;
        else if (taken[0] == m[0])
            c = 1;
        else if (pos == 1) /* the second patient is of the class the first was not */
            c = taken[1] ? 0 : 1;
        else /* the class short of its share by half a patient or more: positives on a tie */
            c = 2 * ((pos + 1) * P - (int64_t)taken[1] * N) >= N ? 1 : 0;
        out[pos] = cls[c][taken[c]++].idx;
    }
    free(train), free(cls[0]), free(cls[1]);
    *order = out, *n = n_train;
    return VS_OK;
}

vs_status splits_budget(const split_table *t, int run_seed, int budget, uint32_t **idx, uint32_t *n,
                        vs_error *err) {
    vs_status st = splits_budget_order(t, run_seed, idx, n, err);
    if (st != VS_OK) return st;
    if (budget < 0 || (uint32_t)budget > *n) {
        uint32_t pool = *n;
        free(*idx);
        *idx = NULL, *n = 0;
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "label budget %d is larger than the %u training patients of the split",
                       budget, pool);
    }
    if (budget > 0) *n = (uint32_t)budget;
    return VS_OK;
}

/* The shortest %g text that reads back as v (0.2, not 0.20000000000000001). */
static const char *shortest(double v, char buf[40]) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, 40, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

vs_status splits_save(const split_table *t, const char *path, vs_error *err) {
    vs_atomic a;
    vs_status st = vs_atomic_open(&a, path, err);
    if (st != VS_OK) return st;
    char dev[40], test[40];
    fprintf(a.f, "# vesalius splits v2 seed=%" PRIu64 " dev_share=%s test_share=%s\n", t->seed,
            shortest(t->dev_share, dev), shortest(t->test_share, test));
    fputs("patient,positive,role\n", a.f);
    for (uint32_t i = 0; i < t->n; i++)
        fprintf(a.f, "%s,%d,%s\n", t->patient[i], t->positive[i], splits_role_name(t->role[i]));
    return vs_atomic_commit(&a, err);
}

static int key_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* "patient,positive,role" into row i of t; 0 when well formed. */
static int parse_row(char *line, split_table *t, uint32_t i) {
    line[strcspn(line, "\r\n")] = '\0';
    char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    if (!c1 || !c2 || strchr(c2 + 1, ',')) return -1;
    *c1 = *c2 = '\0';
    size_t len = strlen(line);
    if (len == 0 || len >= sizeof t->patient[i]) return -1;
    for (size_t k = 0; k < len; k++)
        if (!key_char(line[k])) return -1;
    memcpy(t->patient[i], line, len + 1);
    if (strcmp(c1 + 1, "0") && strcmp(c1 + 1, "1")) return -1;
    t->positive[i] = (uint8_t)(c1[1] - '0');
    for (int r = 0; r < 3; r++)
        if (strcmp(c2 + 1, role_names[r]) == 0) {
            t->role[i] = (uint8_t)r;
            return i && strcmp(t->patient[i - 1], t->patient[i]) >= 0 ? -1 : 0;
        }
    return -1;
}

vs_status splits_load(const char *path, split_table **out, vs_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read (%s)", path, strerror(errno));
    char line[1024], seed_s[32], dev_s[64], test_s[64];
    uint64_t seed = 0;
    double dev = 0, test = 0;
    if (!fgets(line, sizeof line, f) ||
        sscanf(line, "# vesalius splits v2 seed=%31s dev_share=%63s test_share=%63s", seed_s, dev_s,
               test_s) != 3 ||
        !vs_parse_u64(seed_s, 0, UINT64_MAX, &seed) || !vs_parse_double(dev_s, 0, 1, &dev) ||
        !vs_parse_double(test_s, 0, 1, &test) || !fgets(line, sizeof line, f) ||
        strcmp(line, "patient,positive,role\n") != 0) {
        fclose(f);
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "%s: not a vesalius splits file of version 2 (rerun `vesalius split`)",
                       path);
    }
    long start = ftell(f);
    uint32_t n = 0;
    while (fgets(line, sizeof line, f))
        n++;
    split_table *t = table_alloc(n);
    if (!t || fseek(f, start, SEEK_SET) != 0) {
        fclose(f);
        splits_free(t);
        return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
    }
    t->seed = seed, t->dev_share = dev, t->test_share = test;
    for (uint32_t i = 0; i < n; i++)
        if (!fgets(line, sizeof line, f) || parse_row(line, t, i) != 0) {
            fclose(f);
            splits_free(t);
            return VS_FAIL(err, VS_ERR_FORMAT,
                           "%s line %u: not 'patient,positive(0|1),role(train|dev|test)' in key "
                           "order",
                           path, i + 3);
        }
    fclose(f);
    *out = t;
    return VS_OK;
}
