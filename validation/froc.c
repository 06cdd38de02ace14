/* froc.c — LUNA16 matching, FROC, CPM and AP (see froc.h for the definitions). */
#include "froc.h"

#include <math.h>
#include <stdlib.h>

const double froc_cpm_fps[FROC_N_CPM] = {0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0};

static int hits(const froc_candidate *c, const froc_lesion *l) {
    double dx = c->x - l->x, dy = c->y - l->y, dz = c->z - l->z;
    double r = l->diameter / 2.0;
    return dx * dx + dy * dy + dz * dz < r * r;
}

static int by_event_desc(const void *a, const void *b) {
    const froc_event *x = a, *y = b;
    if (x->p > y->p) return -1;
    if (x->p < y->p) return 1;
    if (x->kind != y->kind) return x->kind > y->kind ? -1 : 1;
    return (x->scan > y->scan) - (x->scan < y->scan);
}

/* Per-scan index of lesions: first[s] .. first[s+1] into by_scan. */
static vs_status index_lesions(const froc_lesion *l, size_t n, size_t n_scans, size_t **first,
                               uint32_t **by_scan, vs_error *err) {
    size_t *f = calloc(n_scans + 1, sizeof *f);
    uint32_t *b = malloc((n ? n : 1) * sizeof *b);
    if (!f || !b) {
        free(f);
        free(b);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory indexing %zu lesions", n);
    }
    for (size_t i = 0; i < n; i++)
        f[l[i].scan + 1]++;
    for (size_t s = 0; s < n_scans; s++)
        f[s + 1] += f[s];
    size_t *fill = calloc(n_scans + 1, sizeof *fill);
    if (!fill) {
        free(f);
        free(b);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory indexing %zu lesions", n);
    }
    for (size_t i = 0; i < n; i++)
        b[f[l[i].scan] + fill[l[i].scan]++] = (uint32_t)i;
    free(fill);
    *first = f;
    *by_scan = b;
    return VS_OK;
}

vs_status froc_match_build(const froc_lesion *lesions, size_t n_lesions,
                           const froc_candidate *cands, size_t n_cands, size_t n_scans,
                           froc_match *out, vs_error *err) {
    *out = (froc_match){0};
    for (size_t i = 0; i < n_lesions; i++)
        if (lesions[i].scan >= n_scans || !(lesions[i].diameter > 0) || !isfinite(lesions[i].x) ||
            !isfinite(lesions[i].y) || !isfinite(lesions[i].z))
            return VS_FAIL(err, VS_ERR_FORMAT, "lesion %zu: bad scan, centre or diameter", i);
    for (size_t i = 0; i < n_cands; i++)
        if (cands[i].scan >= n_scans || !isfinite(cands[i].p) || !isfinite(cands[i].x) ||
            !isfinite(cands[i].y) || !isfinite(cands[i].z))
            return VS_FAIL(err, VS_ERR_FORMAT, "candidate %zu: bad scan, position or probability",
                           i);
    size_t *first = NULL;
    uint32_t *by_scan = NULL;
    vs_status s = index_lesions(lesions, n_lesions, n_scans, &first, &by_scan, err);
    if (s != VS_OK) return s;
    double *best = malloc((n_lesions ? n_lesions : 1) * sizeof *best);
    froc_event *ev = malloc((n_lesions + n_cands + 1) * sizeof *ev);
    if (!best || !ev) {
        s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory matching %zu candidates", n_cands);
        goto done;
    }
    for (size_t i = 0; i < n_lesions; i++)
        best[i] = -INFINITY;
    size_t k = 0;
    for (size_t c = 0; c < n_cands; c++) {
        const froc_candidate *cd = &cands[c];
        int n_rel = 0, n_irr = 0;
        for (size_t j = first[cd->scan]; j < first[cd->scan + 1]; j++) {
            const froc_lesion *l = &lesions[by_scan[j]];
            if (!hits(cd, l)) continue;
            if (l->irrelevant) {
                n_irr++;
                continue;
            }
            n_rel++;
            if (best[by_scan[j]] != -INFINITY) out->n_duplicate_hits++;
            if (cd->p > best[by_scan[j]]) best[by_scan[j]] = cd->p;
        }
        if (n_rel == 0 && n_irr > 0) out->n_irrelevant_hits++;
        if (n_rel == 0 && n_irr == 0) {
            ev[k++] = (froc_event){cd->p, cd->scan, 0};
            out->n_fp++;
        }
    }
    for (size_t i = 0; i < n_lesions; i++) {
        if (lesions[i].irrelevant) continue;
        ev[k++] = (froc_event){best[i], lesions[i].scan, 1};
        out->n_lesions++;
        if (best[i] != -INFINITY) out->n_detected++;
    }
    qsort(ev, k, sizeof *ev, by_event_desc);
    out->events = ev;
    out->n_events = k;
    out->n_scans = n_scans;
    ev = NULL;
done:
    free(ev);
    free(best);
    free(first);
    free(by_scan);
    return s;
}

void froc_match_free(froc_match *m) {
    free(m->events);
    *m = (froc_match){0};
}

/* Total weight of relevant lesions and of scans; fails without relevant lesions. */
static vs_status totals(const froc_match *m, const double *w, double *lesions, double *scans,
                        vs_error *err) {
    double l = 0, s = 0;
    for (size_t i = 0; i < m->n_events; i++)
        if (m->events[i].kind) l += w ? w[m->events[i].scan] : 1.0;
    for (size_t i = 0; i < m->n_scans; i++)
        s += w ? w[i] : 1.0;
    *lesions = l;
    *scans = s;
    if (l <= 0 || s <= 0)
        return VS_FAIL(err, VS_ERR_FORMAT, "FROC needs at least one relevant lesion");
    return VS_OK;
}

vs_status froc_curve(const froc_match *m, const double *w, froc_point **pts, size_t *n_pts,
                     vs_error *err) {
    *pts = NULL;
    *n_pts = 0;
    double n_les, n_scans;
    vs_status s = totals(m, w, &n_les, &n_scans, err);
    if (s != VS_OK) return s;
    froc_point *p = malloc((m->n_events + 1) * sizeof *p);
    if (!p) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %zu FROC points", m->n_events);
    size_t k = 0;
    p[k++] = (froc_point){INFINITY, 0.0, 0.0};
    double tp = 0, fp = 0;
    size_t i = 0;
    /* Missed lesions (p = -inf) are never reached by a threshold: they only lower sensitivity. */
    while (i < m->n_events && m->events[i].p != -INFINITY) {
        double t = m->events[i].p;
        int any = 0;
        for (; i < m->n_events && m->events[i].p == t; i++) {
            double wi = w ? w[m->events[i].scan] : 1.0;
            if (wi <= 0) continue;
            any = 1;
            if (m->events[i].kind)
                tp += wi;
            else
                fp += wi;
        }
        if (any) p[k++] = (froc_point){t, fp / n_scans, tp / n_les};
    }
    *pts = p;
    *n_pts = k;
    return VS_OK;
}

double froc_sensitivity_at(const froc_point *pts, size_t n_pts, double f) {
    size_t j = 0; /* last point with fps <= f (pts[0].fps == 0 <= f) */
    while (j + 1 < n_pts && pts[j + 1].fps <= f)
        j++;
    if (j + 1 >= n_pts) return pts[j].sensitivity;
    const froc_point *a = &pts[j], *b = &pts[j + 1];
    return a->sensitivity + (b->sensitivity - a->sensitivity) * (f - a->fps) / (b->fps - a->fps);
}

vs_status froc_cpm(const froc_match *m, const double *w, double *cpm, double sens[FROC_N_CPM],
                   vs_error *err) {
    froc_point *pts = NULL;
    size_t n = 0;
    vs_status s = froc_curve(m, w, &pts, &n, err);
    if (s != VS_OK) return s;
    double sum = 0;
    for (int i = 0; i < FROC_N_CPM; i++) {
        double v = froc_sensitivity_at(pts, n, froc_cpm_fps[i]);
        if (sens) sens[i] = v;
        sum += v;
    }
    *cpm = sum / FROC_N_CPM;
    free(pts);
    return VS_OK;
}

vs_status froc_ap(const froc_match *m, const double *w, double *ap, vs_error *err) {
    double n_les, n_scans;
    vs_status s = totals(m, w, &n_les, &n_scans, err);
    if (s != VS_OK) return s;
    double tp = 0, fp = 0, prev_recall = 0, sum = 0;
    size_t i = 0;
    while (i < m->n_events && m->events[i].p != -INFINITY) {
        double t = m->events[i].p;
        for (; i < m->n_events && m->events[i].p == t; i++) {
            double wi = w ? w[m->events[i].scan] : 1.0;
            if (m->events[i].kind)
                tp += wi;
            else
                fp += wi;
        }
        if (tp + fp <= 0) continue;
        double recall = tp / n_les;
        sum += (recall - prev_recall) * (tp / (tp + fp));
        prev_recall = recall;
    }
    *ap = sum;
    return VS_OK;
}
