/* synth.c — the tests' volumes: the phantom framed, rendered and converted to what each test
 * stores. */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void synth_oblique(volume *v, double angle) {
    double ax[3] = {1, 2, 3}, n = sqrt(14.0);
    for (int i = 0; i < 3; i++)
        ax[i] /= n;
    double c = cos(angle), s = sin(angle), t = 1 - c;
    double r[9] = {
        t * ax[0] * ax[0] + c,         t * ax[0] * ax[1] - s * ax[2], t * ax[0] * ax[2] + s * ax[1],
        t * ax[0] * ax[1] + s * ax[2], t * ax[1] * ax[1] + c,         t * ax[1] * ax[2] - s * ax[0],
        t * ax[0] * ax[2] - s * ax[1], t * ax[1] * ax[2] + s * ax[0], t * ax[2] * ax[2] + c};
    double mid[3] = {0.5 * (double)(v->n_cols - 1), 0.5 * (double)(v->n_rows - 1),
                     0.5 * (double)(v->n_slices - 1)},
           centre[3], d[9];
    volume_index_to_lps(v, mid, centre);
    for (int i = 0; i < 3; i++) /* d = r * direction */
        for (int j = 0; j < 3; j++)
            d[i * 3 + j] = r[i * 3] * v->direction[j] + r[i * 3 + 1] * v->direction[3 + j] +
                           r[i * 3 + 2] * v->direction[6 + j];
    memcpy(v->direction, d, sizeof d);
    for (int i = 0; i < 3; i++) /* the middle voxel stays where it was */
        v->origin[i] =
            centre[i] - (d[i * 3] * v->spacing[0] * mid[0] + d[i * 3 + 1] * v->spacing[1] * mid[1] +
                         d[i * 3 + 2] * v->spacing[2] * mid[2]);
    volume_update_affine(v);
}

/* The subject of a seed and stream; r continues the stream (the noise draws from it). */
static void subject(phantom *p, uint64_t seed, uint64_t stream, rng *r) {
    rng_seed(r, seed, stream);
    phantom_make(p, r);
    if (stream == SYNTH_STREAM_MR) { /* a receive coil's falloff, for N4 to remove */
        memset(p->bias, 0, sizeof p->bias);
        p->bias[0] = 0.3, p->bias[1] = 0.2;
    }
}

void synth_subject(phantom *p, uint64_t seed, uint64_t stream) {
    rng r;
    subject(p, seed, stream, &r);
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

/* Render p on v's geometry (float32 voxels allocated here); v's voxels NULL on failure. */
static vs_status render(const phantom *p, volume *v, int is_mr, double sigma, rng *r,
                        vs_error *err) {
    vs_status st = volume_alloc(v, v->n_slices, v->n_rows, v->n_cols, VOL_FLOAT32, 0, err);
    if (st == VS_OK) st = phantom_render(p, v, is_mr, sigma, r, err);
    if (st != VS_OK) volume_free(v);
    return st;
}

/* float32 HU -> int16, rounded, clipped to -1024 (the scanner's floor) and 32767. */
static vs_status to_int16(volume *v, vs_error *err) {
    uint64_t n = volume_n_voxels(v);
    int16_t *out = malloc(sizeof *out * (size_t)n);
    if (!out)
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate %llu voxels", (unsigned long long)n);
    const float *in = v->voxels;
    for (uint64_t i = 0; i < n; i++) {
        double hu = rint(in[i]);
        out[i] = (int16_t)(hu < -1024 ? -1024 : hu > 32767 ? 32767 : hu);
    }
    free(v->voxels);
    v->voxels = out;
    v->dtype = VOL_INT16;
    return VS_OK;
}

vs_status synth_ct(volume *v, int64_t nz, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                   vs_error *err) {
    memset(v, 0, sizeof *v);
    rng r;
    phantom p;
    subject(&p, seed, SYNTH_STREAM_CT, &r);
    phantom_frame(&p, v, nz, ny, nx, p.center[2] + 20.0, 2.5);
    synth_oblique(v, 0.2 + 0.01 * (double)(seed % 5));
    vs_status st = render(&p, v, 0, 8.0, &r, err);
    if (st == VS_OK && (st = to_int16(v, err)) != VS_OK) volume_free(v);
    name_keys(v, key, "CT", "HU", "CHEST");
    return st;
}

vs_status synth_mr(volume *v, int64_t nz, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                   vs_error *err) {
    memset(v, 0, sizeof *v);
    rng r;
    phantom p;
    subject(&p, seed, SYNTH_STREAM_MR, &r);
    phantom_frame(&p, v, nz, ny, nx, p.center[2] - 60.0, 4.0);
    synth_oblique(v, -0.35);
    vs_status st = render(&p, v, 1, 10.0, &r, err);
    name_keys(v, key, "MR", "arbitrary", "ABDOMEN");
    return st;
}

vs_status synth_xray(volume *v, int64_t ny, int64_t nx, uint64_t seed, const char *key,
                     vs_error *err) {
    memset(v, 0, sizeof *v);
    rng r;
    phantom p;
    subject(&p, seed, SYNTH_STREAM_XRAY, &r);
    vs_status st = volume_alloc(v, 1, ny, nx, VOL_INT16, 0, err);
    uint16_t *img = st == VS_OK ? malloc(sizeof *img * (size_t)(ny * nx)) : NULL;
    if (st == VS_OK && !img) st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the radiograph");
    if (st != VS_OK) {
        volume_free(v);
        return st;
    }
    double px = 2.0 * 1.06 * p.body_a * 1.3 / (double)nx, zc = p.center[2] + 60.0;
    /* 5 mm steps along A-P: a fifth of the demo's cost, as smooth at these pixel sizes */
    phantom_radiograph(&p, (int)ny, (int)nx, px, zc, 5.0, img);
    int16_t *out = v->voxels;
    for (int64_t i = 0; i < ny * nx; i++)
        out[i] = (int16_t)img[i]; /* 0..4095 */
    free(img);
    /* coronal: columns along +L, rows along -S, the beam along +P */
    static const double coronal[9] = {1, 0, 0, 0, 0, 1, 0, -1, 0};
    memcpy(v->direction, coronal, sizeof coronal);
    v->spacing[0] = v->spacing[1] = px, v->spacing[2] = 1.0;
    v->origin[0] = p.center[0] + (0.5 - 0.5 * (double)nx) * px;
    v->origin[1] = p.center[1];
    v->origin[2] = zc + (0.5 * (double)ny - 0.5) * px;
    volume_update_affine(v);
    name_keys(v, key, "DX", "arbitrary", "CHEST");
    return VS_OK;
}

vs_status synth_normalized_ct(volume *v, int64_t nz, int64_t ny, int64_t nx, rng *r,
                              vs_error *err) {
    static const double window[2] = {-1000.0, 1000.0};
    return phantom_windowed_ct(v, nz, ny, nx, window, r, err);
}
