#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rng.h"

void synth_geometry(volume *v, double angle, const double spacing[3], const double origin[3]) {
    double ax[3] = {1, 2, 3}, n = sqrt(14.0);
    for (int i = 0; i < 3; i++)
        ax[i] /= n;
    double c = cos(angle), s = sin(angle), t = 1 - c;
    double r[9] = {
        t * ax[0] * ax[0] + c,         t * ax[0] * ax[1] - s * ax[2], t * ax[0] * ax[2] + s * ax[1],
        t * ax[0] * ax[1] + s * ax[2], t * ax[1] * ax[1] + c,         t * ax[1] * ax[2] - s * ax[0],
        t * ax[0] * ax[2] - s * ax[1], t * ax[1] * ax[2] + s * ax[0], t * ax[2] * ax[2] + c};
    memcpy(v->direction, r, sizeof r);
    memcpy(v->spacing, spacing, sizeof v->spacing);
    memcpy(v->origin, origin, sizeof v->origin);
    volume_update_affine(v);
}

static void name_keys(volume *v, const char *key, const char *modality, const char *units,
                      const char *body_part) {
    snprintf(v->series_key, sizeof v->series_key, "%s", key);
    snprintf(v->study_key, sizeof v->study_key, "st-%.40s", key);
    snprintf(v->patient_key, sizeof v->patient_key, "pt-%.40s", key);
    snprintf(v->modality, sizeof v->modality, "%s", modality);
    snprintf(v->units, sizeof v->units, "%s", units);
    snprintf(v->body_part, sizeof v->body_part, "%s", body_part);
}

static double sq(double x) { return x * x; }

/* Tissue class of a normalised position (u, w across, z along), as CT numbers. */
static double ct_value(double u, double w, double z, double organ_z) {
    if (sq(u / 0.85) + sq(w / 0.62) > 1.0) return -1000.0;                /* air */
    if (sq((u - 0.0) / 0.09) + sq((w - 0.42) / 0.09) < 1.0) return 700.0; /* spine */
    if (sq((u + 0.38) / 0.27) + sq((w + 0.02) / 0.38) < 1.0 ||
        sq((u - 0.38) / 0.27) + sq((w + 0.02) / 0.38) < 1.0) {               /* lungs */
        if (sq(u - 0.3) + sq(w + 0.1) + sq(z - organ_z) < 0.01) return 30.0; /* nodule */
        return -850.0;
    }
    if (sq(u + 0.1) + sq(w + 0.1) + sq(z + 0.3) < 0.12) return 60.0; /* liver */
    if (sq(u / 0.8) + sq(w / 0.58) > 1.0) return -100.0;             /* fat rim */
    return 40.0;
}

vs_status synth_ct(volume *v, int64_t nz, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                   vs_error *err) {
    memset(v, 0, sizeof *v);
    vs_status st = volume_alloc(v, nz, ny, nx, VOL_INT16, 0, err);
    if (st != VS_OK) return st;
    rng r;
    rng_seed(&r, seed, 11);
    double organ_z = rng_double(&r) - 0.5;
    int16_t *p = v->voxels;
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++) {
                double u = (i - 0.5 * nx) / (0.5 * nx), w = (j - 0.5 * ny) / (0.5 * ny);
                double z = nz > 1 ? (k - 0.5 * nz) / (0.5 * nz) : 0.0;
                double hu = ct_value(u, w, z, organ_z) + 12.0 * (rng_double(&r) - 0.5) * 2.0;
                *p++ = (int16_t)lrint(hu < -1024 ? -1024 : hu);
            }
    double sp[3] = {0.78, 0.78, 2.5}, org[3] = {-180.0 + (double)(seed % 7), -160.0, 40.0};
    synth_geometry(v, 0.2 + 0.01 * (double)(seed % 5), sp, org);
    name_keys(v, key, "CT", "HU", "CHEST");
    return VS_OK;
}

vs_status synth_mr(volume *v, int64_t nz, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                   vs_error *err) {
    memset(v, 0, sizeof *v);
    vs_status st = volume_alloc(v, nz, ny, nx, VOL_FLOAT32, 0, err);
    if (st != VS_OK) return st;
    rng r;
    rng_seed(&r, seed, 12);
    float *p = v->voxels;
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++) {
                double u = (i - 0.5 * nx) / (0.5 * nx), w = (j - 0.5 * ny) / (0.5 * ny);
                double z = nz > 1 ? (k - 0.5 * nz) / (0.5 * nz) : 0.0;
                double rr = sq(u) + sq(w) + sq(z);
                double tissue = rr > 0.8 ? 5.0 : rr > 0.5 ? 300.0 : rr > 0.1 ? 600.0 : 900.0;
                double bias = 1.0 + 0.3 * u + 0.2 * w * w; /* smooth coil inhomogeneity */
                *p++ = (float)(tissue * bias + 10.0 * rng_normal(&r));
            }
    double sp[3] = {1.0, 1.0, 1.2}, org[3] = {-90.0, -110.0, -70.0};
    synth_geometry(v, -0.35, sp, org);
    name_keys(v, key, "MR", "arbitrary", "BRAIN");
    return VS_OK;
}

vs_status synth_xray(volume *v, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                     vs_error *err) {
    memset(v, 0, sizeof *v);
    vs_status st = volume_alloc(v, 1, ny, nx, VOL_INT16, 0, err);
    if (st != VS_OK) return st;
    rng r;
    rng_seed(&r, seed, 13);
    int16_t *p = v->voxels;
    for (int64_t j = 0; j < ny; j++)
        for (int64_t i = 0; i < nx; i++) {
            double u = (i - 0.5 * nx) / (0.5 * nx), w = (j - 0.5 * ny) / (0.5 * ny);
            double ct = ct_value(u, w, 0.0, 0.0);
            p[j * nx + i] = (int16_t)(2000 + ct + rng_below(&r, 40));
        }
    double sp[3] = {0.15, 0.15, 1.0}, org[3] = {-200.0, -200.0, 0.0};
    memset(v->direction, 0, sizeof v->direction);
    v->direction[0] = v->direction[4] = v->direction[8] = 1.0;
    memcpy(v->spacing, sp, sizeof sp);
    memcpy(v->origin, org, sizeof org);
    volume_update_affine(v);
    name_keys(v, key, "DX", "arbitrary", "CHEST");
    return VS_OK;
}
