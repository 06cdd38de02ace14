/* froc.h — lesion-level detection metrics: FROC with the LUNA16 hit criterion, the LUNA16
 * competition performance metric (CPM) and average precision at the same criterion.
 *
 * Matching (done once, froc_match_build), exactly as LUNA16's noduleCADEvaluationLUNA16.py:
 *   - a candidate hits a lesion of the same scan when its squared distance to the lesion
 *     centre is strictly below (diameter / 2)^2 (LPS millimetres);
 *   - for each relevant lesion, the hits on it count once, with their highest probability;
 *     a relevant lesion with no hit is missed (it still counts in the sensitivity denominator);
 *   - a candidate that hits a lesion marked irrelevant is ignored (neither TP nor FP), unless
 *     it also hits a relevant lesion;
 *   - every other candidate is a false positive.
 * The FROC curve is then, for every distinct probability threshold t (descending):
 *   sensitivity(t) = detected relevant lesions with probability >= t / all relevant lesions,
 *   fps(t)         = false positives with probability >= t / number of scans,
 * starting at (0, 0). Scans carry weights (bootstrap multiplicities; 1 by default).
 *
 * Invariants:
 *   1. froc_sensitivity_at interpolates like numpy.interp(f, fps, sens): linear between the
 *      last point with fps <= f and the next one, constant beyond the last point.
 *   2. CPM is the mean of froc_sensitivity_at over 1/8, 1/4, 1/2, 1, 2, 4 and 8 FP per scan.
 *   3. A curve with no relevant lesion (weight 0) fails with VS_ERR_FORMAT, never NaN.
 */
#ifndef VS_FROC_H
#define VS_FROC_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define FROC_N_CPM 7
extern const double froc_cpm_fps[FROC_N_CPM]; /* 0.125 ... 8 */

typedef struct froc_lesion {
    uint32_t scan;
    double x, y, z;  /* centre, LPS mm */
    double diameter; /* mm, > 0 */
    int irrelevant;  /* 1: hits are ignored and the lesion is not counted */
} froc_lesion;

typedef struct froc_candidate {
    uint32_t scan;
    double x, y, z; /* LPS mm */
    double p;       /* probability */
} froc_candidate;

/* The result of matching, independent of scan weights. An event is a relevant lesion (kind 1,
 * p = its best hit or -inf when missed) or a false positive (kind 0), sorted by descending p. */
typedef struct froc_event {
    double p;
    uint32_t scan;
    int kind;
} froc_event;

typedef struct froc_match {
    size_t n_scans;
    size_t n_events;
    froc_event *events;       /* (n_events), descending p */
    size_t n_lesions;         /* relevant lesions */
    size_t n_detected;        /* relevant lesions with at least one hit */
    size_t n_fp;              /* false-positive candidates */
    size_t n_duplicate_hits;  /* hits beyond the first on a lesion (ignored) */
    size_t n_irrelevant_hits; /* candidates ignored because they hit an irrelevant lesion */
} froc_match;

typedef struct froc_point {
    double threshold;
    double fps; /* false positives per scan */
    double sensitivity;
} froc_point;

/* Match candidates to lesions. Lesions and candidates must name scans below n_scans. */
vs_status froc_match_build(const froc_lesion *lesions, size_t n_lesions,
                           const froc_candidate *cands, size_t n_cands, size_t n_scans,
                           froc_match *out, vs_error *err);
void froc_match_free(froc_match *m);

/* The FROC curve under scan weights w (NULL: all 1). *pts is malloc'ed. */
vs_status froc_curve(const froc_match *m, const double *w, froc_point **pts, size_t *n_pts,
                     vs_error *err);

/* Sensitivity at fps_target false positives per scan (numpy.interp rule). */
double froc_sensitivity_at(const froc_point *pts, size_t n_pts, double fps_target);

/* CPM and (optionally) the seven sensitivities it averages, under scan weights w. */
vs_status froc_cpm(const froc_match *m, const double *w, double *cpm, double sens[FROC_N_CPM],
                   vs_error *err);

/* Average precision at the same hit criterion: sum over distinct thresholds of
 * (R_k - R_{k-1}) * P_k with recall over all relevant lesions (missed ones included) and
 * precision = detected / (detected + false positives) above the threshold. */
vs_status froc_ap(const froc_match *m, const double *w, double *ap, vs_error *err);

#endif
