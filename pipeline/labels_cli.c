/* labels_cli.c — see labels_cli.h. */
#include "labels_cli.h"

#include "deid.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

vs_status labels_cli_read(const study *s, label_set *ls, vs_error *err) {
    const study_labels *l = &s->labels;
    const char *points = l->file && l->format == STUDY_LABELS_POINTS ? l->file : NULL;
    const char *masks = l->file && l->format == STUDY_LABELS_MASKS ? l->file : NULL;
    const char *volumes = l->volumes                                    ? l->volumes
                          : l->file && l->format == STUDY_LABELS_VOLUME ? l->file
                                                                        : NULL;
    if (!points && !masks && !volumes)
        return VS_FAIL(
            err, VS_ERR_USAGE,
            "give labels: --labels CSV (points), --volume-labels CSV and/or --masks DIR");
    deid_ctx *key = NULL;
    vs_status st = VS_OK;
    if (s->deid.key_file) {
        if (access(s->deid.key_file, R_OK) != 0)
            return VS_FAIL(err, VS_ERR_ENV, "cannot read the site key %s: %s", s->deid.key_file,
                           strerror(errno));
        deid_options dopt;
        memset(&dopt, 0, sizeof dopt);
        st = deid_open(&dopt, s->deid.key_file, &key, err);
    }
    if (st == VS_OK && volumes) st = labels_read_volume(ls, volumes, key, err);
    if (st == VS_OK && points) st = labels_read_points(ls, points, key, err);
    if (st == VS_OK && masks) st = labels_scan_masks(ls, masks, key, err);
    deid_close(key);
    return st;
}

typedef struct pat {
    char key[65];
    uint8_t positive;
} pat;

static int cmp_pat(const void *a, const void *b) {
    return strcmp(((const pat *)a)->key, ((const pat *)b)->key);
}

vs_status labels_cli_patients(shard_set *set, const label_set *ls, char (**keys)[65],
                              uint8_t **positive, uint32_t *n, int *n_series, vs_error *err) {
    *keys = NULL, *positive = NULL, *n = 0, *n_series = 0;
    int total = shard_set_count(set);
    pat *p = calloc((size_t)total + 1, sizeof *p);
    if (!p) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    vs_status st = VS_OK;
    int k = 0;
    for (int i = 0; i < total && st == VS_OK; i++) {
        const label_series *ser = labels_find(ls, shard_set_entry(set, i)->key);
        if (!ser) continue;
        volume v;
        st = shard_set_read_meta(set, i, &v, err);
        if (st != VS_OK) break;
        snprintf(p[k].key, sizeof p[k].key, "%s", v.patient_key[0] ? v.patient_key : v.series_key);
        p[k++].positive = labels_volume_label(ser) == 1;
    }
    if (st == VS_OK && k < ls->n)
        log_warn("%d labeled series are not in the shards (a different site key, or not ingested)",
                 ls->n - k);
    qsort(p, (size_t)k, sizeof *p, cmp_pat);
    uint32_t m = 0; /* one row per patient, positive when any of its series is */
    for (int i = 0; i < k; i++) {
        if (m && strcmp(p[m - 1].key, p[i].key) == 0)
            p[m - 1].positive |= p[i].positive;
        else
            p[m++] = p[i];
    }
    if (st == VS_OK) {
        *keys = calloc(m + 1, sizeof **keys);
        *positive = calloc(m + 1, 1);
        if (!*keys || !*positive) st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; st == VS_OK && i < m; i++) {
        memcpy((*keys)[i], p[i].key, sizeof p[i].key);
        (*positive)[i] = p[i].positive;
    }
    free(p);
    if (st != VS_OK) {
        free(*keys), free(*positive);
        *keys = NULL, *positive = NULL;
        return st;
    }
    *n = m, *n_series = k;
    return VS_OK;
}
