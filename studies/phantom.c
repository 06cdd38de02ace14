/* phantom.c — procedural anatomy and tumours, evaluated at world positions (LPS mm). */
#include "phantom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

/* One row per class: CT HU, MR T1-like signal, texture amplitude (HU), texture scale (mm). */
static const struct {
    double hu, mr, tex_hu, tex_mm;
} tissue_table[TISSUE_COUNT] = {
    [TISSUE_AIR] = {-1000, 0, 0, 10},          [TISSUE_FAT] = {-100, 900, 10, 6},
    [TISSUE_MUSCLE] = {45, 330, 8, 5},         [TISSUE_LUNG] = {-850, 40, 25, 4},
    [TISSUE_HEART] = {40, 300, 6, 8},          [TISSUE_LIVER] = {60, 450, 8, 6},
    [TISSUE_SPLEEN] = {50, 380, 6, 6},         [TISSUE_KIDNEY] = {35, 320, 12, 4},
    [TISSUE_BOWEL_GAS] = {-950, 10, 20, 5},    [TISSUE_CORTEX] = {750, 60, 40, 3},
    [TISSUE_MARROW] = {230, 550, 40, 3},       [TISSUE_DISC] = {90, 250, 10, 4},
    [TISSUE_AORTA] = {160, 150, 5, 10},        [TISSUE_IVC] = {130, 160, 5, 10},
    [TISSUE_VISCERAL_FAT] = {-90, 880, 12, 5},
};

/* ---- value noise: deterministic lattice noise in [-1, 1] --------------------------------- */
static inline uint32_t hash3(int32_t x, int32_t y, int32_t z, uint32_t seed) {
    uint32_t h = seed * 0x9E3779B1u ^ (uint32_t)x * 0x85EBCA77u ^ (uint32_t)y * 0xC2B2AE3Du ^
                 (uint32_t)z * 0x27D4EB2Fu;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    h *= 0x297A2D39u;
    h ^= h >> 15;
    return h;
}

static inline double lattice(int32_t x, int32_t y, int32_t z, uint32_t seed) {
    return (double)hash3(x, y, z, seed) * (2.0 / 4294967295.0) - 1.0;
}

static inline double smooth(double t) { return t * t * (3.0 - 2.0 * t); }

static double vnoise(const double p[3], double scale, uint32_t seed) {
    double x = p[0] / scale, y = p[1] / scale, z = p[2] / scale;
    double fx = floor(x), fy = floor(y), fz = floor(z);
    int32_t ix = (int32_t)fx, iy = (int32_t)fy, iz = (int32_t)fz;
    double tx = smooth(x - fx), ty = smooth(y - fy), tz = smooth(z - fz);
    double c[2][2][2];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int d = 0; d < 2; d++)
                c[a][b][d] = lattice(ix + a, iy + b, iz + d, seed);
    double x00 = c[0][0][0] + tx * (c[1][0][0] - c[0][0][0]);
    double x10 = c[0][1][0] + tx * (c[1][1][0] - c[0][1][0]);
    double x01 = c[0][0][1] + tx * (c[1][0][1] - c[0][0][1]);
    double x11 = c[0][1][1] + tx * (c[1][1][1] - c[0][1][1]);
    double y0 = x00 + ty * (x10 - x00), y1 = x01 + ty * (x11 - x01);
    return y0 + tz * (y1 - y0);
}

/* ---- anatomy ----------------------------------------------------------------------------- */
static double uniform(rng *r, double lo, double hi) { return lo + (hi - lo) * rng_double(r); }

static void add_organ(phantom *p, phantom_tissue t, double dx, double dy, double dz, double ax,
                      double ay, double az, double angle) {
    if (p->n_organs >= PHANTOM_MAX_ORGANS) return;
    phantom_organ *o = &p->organs[p->n_organs++];
    o->tissue = t;
    o->center[0] = p->center[0] + dx;
    o->center[1] = p->center[1] + dy;
    o->center[2] = p->center[2] + dz;
    o->axes[0] = ax;
    o->axes[1] = ay;
    o->axes[2] = az;
    o->angle = angle;
}

void phantom_make(phantom *p, rng *r) {
    memset(p, 0, sizeof *p);
    p->center[0] = uniform(r, -15, 15);
    p->center[1] = uniform(r, -15, 15);
    p->center[2] = uniform(r, -40, 40);
    p->body_a = uniform(r, 140, 185);
    p->body_b = p->body_a * uniform(r, 0.62, 0.78);
    p->fat = uniform(r, 6, 28);
    p->spine_radius = uniform(r, 15, 20);
    p->vertebra_period = uniform(r, 27, 34);
    p->aorta_radius = uniform(r, 9, 13);
    p->texture_seed = rng_u32(r);
    double a = p->body_a, b = p->body_b, s = uniform(r, 0.9, 1.1); /* organ size variation */
    /* Patient right is -x in LPS; posterior is +y; superior is +z. */
    add_organ(p, TISSUE_LUNG, -0.45 * a, 0.05 * b, 110, 0.36 * a * s, 0.75 * b, 125 * s,
              uniform(r, -0.1, 0.1));
    add_organ(p, TISSUE_LUNG, 0.45 * a, 0.05 * b, 110, 0.34 * a * s, 0.75 * b, 120 * s,
              uniform(r, -0.1, 0.1));
    add_organ(p, TISSUE_HEART, 0.12 * a, -0.3 * b, 55, 55 * s, 45 * s, 50 * s,
              uniform(r, 0.2, 0.6));
    add_organ(p, TISSUE_LIVER, -0.4 * a, -0.05 * b, -45, 0.5 * a * s, 0.72 * b, 85 * s,
              uniform(r, -0.3, 0.1));
    add_organ(p, TISSUE_SPLEEN, 0.58 * a, 0.3 * b, -40, 38 * s, 28 * s, 55 * s,
              uniform(r, -0.6, -0.2));
    add_organ(p, TISSUE_KIDNEY, -0.38 * a, 0.48 * b, -130, 28 * s, 24 * s, 55 * s,
              uniform(r, 0.2, 0.5));
    add_organ(p, TISSUE_KIDNEY, 0.38 * a, 0.48 * b, -125, 28 * s, 24 * s, 55 * s,
              uniform(r, -0.5, -0.2));
    int gas = 2 + (int)rng_below(r, 3);
    for (int i = 0; i < gas; i++)
        add_organ(p, TISSUE_BOWEL_GAS, uniform(r, -0.4, 0.4) * a, uniform(r, -0.6, 0.0) * b,
                  uniform(r, -230, -150), uniform(r, 10, 25), uniform(r, 8, 18), uniform(r, 10, 30),
                  uniform(r, 0, PI));
    for (int i = 0; i < 6; i++)
        p->bias[i] = uniform(r, -0.12, 0.12);
}

static int in_organ(const phantom_organ *o, const double q[3], double *rho) {
    double dx = q[0] - o->center[0], dy = q[1] - o->center[1], dz = q[2] - o->center[2];
    double c = cos(o->angle), s = sin(o->angle);
    double u = (c * dx + s * dy) / o->axes[0], v = (-s * dx + c * dy) / o->axes[1],
           w = dz / o->axes[2];
    *rho = u * u + v * v + w * w;
    return *rho < 1.0;
}

static phantom_tissue classify(const phantom *p, const double q[3]) {
    double dx = q[0] - p->center[0], dy = q[1] - p->center[1], dz = q[2] - p->center[2];
    double sway = 1.0 + 0.06 * sin(dz / 70.0);
    double A = p->body_a * sway, B = p->body_b * sway;
    double e = (dx / A) * (dx / A) + (dy / B) * (dy / B);
    if (e >= 1.0) return TISSUE_AIR;
    double ai = A - p->fat, bi = B - 0.8 * p->fat;
    double ei = (dx / ai) * (dx / ai) + (dy / bi) * (dy / bi);
    if (ei >= 1.0) return TISSUE_FAT;
    /* spine: vertebral bodies (cortex + marrow) separated by discs */
    double sx = dx, sy = dy - 0.55 * B;
    double sr = sqrt(sx * sx + sy * sy);
    if (sr < p->spine_radius) {
        double ph = fmod(dz + 1000.0 * p->vertebra_period, p->vertebra_period) / p->vertebra_period;
        if (ph < 0.18) return TISSUE_DISC;
        return sr > p->spine_radius - 2.5 || ph < 0.25 || ph > 0.93 ? TISSUE_CORTEX : TISSUE_MARROW;
    }
    double ay = 0.55 * B - p->spine_radius - p->aorta_radius - 4.0;
    double ax = dx - 18.0, ady = dy - ay;
    if (ax * ax + ady * ady < p->aorta_radius * p->aorta_radius) return TISSUE_AORTA;
    double ix = dx + 22.0;
    if (dz < 30.0 && ix * ix + ady * ady < 121.0) return TISSUE_IVC;
    phantom_tissue c = TISSUE_MUSCLE;
    for (int i = 0; i < p->n_organs; i++) {
        double rho;
        if (in_organ(&p->organs[i], q, &rho)) c = p->organs[i].tissue;
    }
    if (c == TISSUE_MUSCLE && dz < -20.0 && vnoise(q, 18.0, p->texture_seed + 7u) > 0.25)
        return TISSUE_VISCERAL_FAT;
    return c;
}

/* Two noise fields' shared zero set: thin curved tubes (vessels), weight 1 on the axis. */
static double tube(const phantom *p, const double q[3], double scale, double width, uint32_t salt) {
    double a = vnoise(q, scale, p->texture_seed + salt),
           b = vnoise(q, scale, p->texture_seed + salt + 1u);
    double rr = sqrt(a * a + b * b);
    return rr >= width ? 0.0 : rr <= 0.5 * width ? 1.0 : smooth((width - rr) / (0.5 * width));
}

/* Host value plus organ texture; lungs get thin bright vessels from ridges of a noise field,
 * the liver its portal and hepatic veins (contrast-filled tubes, bright blobs in a slice). */
static double tissue_value(const phantom *p, phantom_tissue c, const double q[3], int is_mr) {
    double base = is_mr ? tissue_table[c].mr : tissue_table[c].hu;
    double amp = tissue_table[c].tex_hu * (is_mr ? 2.0 : 1.0);
    double t = vnoise(q, tissue_table[c].tex_mm, p->texture_seed + (uint32_t)c) +
               0.5 * vnoise(q, tissue_table[c].tex_mm * 0.4, p->texture_seed + 31u * (uint32_t)c);
    double v = base + amp * t;
    if (c == TISSUE_LUNG) {
        double n = fabs(vnoise(q, 14.0, p->texture_seed + 101u));
        if (n < 0.06) v = is_mr ? 120.0 : 20.0 + 400.0 * (0.06 - n);
    } else if (c == TISSUE_LIVER) {
        double w = tube(p, q, 26.0, 0.13, 201u);
        double vessel = is_mr ? tissue_table[TISSUE_IVC].mr : tissue_table[TISSUE_IVC].hu + 20.0;
        if (w > 0.0) v += w * (vessel - v);
    }
    return v;
}

/* How much of point q lies inside lesion l (0..1, the partial-volume margin included), and
 * q's distance from the centre relative to the local surface radius. */
static double lesion_weight(const phantom_lesion *l, const double q[3], double *rel) {
    double d[3] = {q[0] - l->center[0], q[1] - l->center[1], q[2] - l->center[2]};
    double dist = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    if (dist > l->radius * 1.6 + 3.0 * l->edge + 3.0) return 0.0;
    double th = atan2(d[1], d[0]), ph = dist > 1e-9 ? acos(d[2] / dist) : 0.0;
    double R = l->radius * (1.0 + l->lobes[0] * sin(2 * th + l->phase[0]) +
                            l->lobes[1] * sin(3 * ph + l->phase[1]) +
                            l->lobes[2] * sin(th + 2 * ph + l->phase[2]));
    if (l->roughness > 0.0)
        R *= 1.0 + l->roughness * vnoise(q, 0.45 * l->radius + 1.5, l->texture_seed + 7u);
    *rel = dist / R;
    return 1.0 / (1.0 + exp(-(R - dist) / (0.25 * l->edge)));
}

static double evaluate(const phantom *p, const double q[3], int is_mr) {
    phantom_tissue c = classify(p, q);
    double v = tissue_value(p, c, q, is_mr);
    for (int i = 0; i < p->n_lesions; i++) {
        const phantom_lesion *l = &p->lesions[i];
        double rel = 0.0, w = lesion_weight(l, q, &rel);
        if (w < 1e-4 && l->rim == 0.0) continue;
        double host = is_mr ? tissue_table[l->host].mr : tissue_table[l->host].hu;
        double delta = is_mr ? l->mr_rel * host : l->ct_delta;
        delta *= 1.0 + l->heterogeneity * vnoise(q, 2.5, l->texture_seed);
        if (l->necrosis > 0.0) { /* a core falling towards water density */
            double water = is_mr ? 0.2 * host : 12.0;
            double core = 1.0 / (1.0 + exp((rel - 0.45) / 0.06));
            delta += core * l->necrosis * (water - (host + delta));
        }
        v += w * delta;
        if (l->rim != 0.0) { /* an enhancing ring at the surface */
            double x = (rel - 0.92) / 0.12;
            v += (is_mr ? 0.01 * l->rim * host : l->rim) * exp(-x * x);
        }
    }
    return v;
}

phantom_tissue phantom_tissue_at(const phantom *p, const double lps[3]) { return classify(p, lps); }

double phantom_ct(const phantom *p, const double lps[3]) { return evaluate(p, lps, 0); }

double phantom_mr(const phantom *p, const double lps[3]) {
    double dx = (lps[0] - p->center[0]) / 200.0, dy = (lps[1] - p->center[1]) / 200.0,
           dz = (lps[2] - p->center[2]) / 200.0;
    double bias = 1.0 + p->bias[0] * dx + p->bias[1] * dy + p->bias[2] * dz + p->bias[3] * dx * dy +
                  p->bias[4] * dz * dz + p->bias[5] * dx * dz;
    return evaluate(p, lps, 1) * bias;
}

/* A random point of organ o at least `margin` mm inside it and not covered by another organ;
 * 0 when none was found. */
static int organ_point(const phantom *p, rng *r, const phantom_organ *o, double margin,
                       double q[3]) {
    double minax = fmin(o->axes[0], fmin(o->axes[1], o->axes[2]));
    if (minax < margin + 1.0) return 0;
    for (int attempt = 0; attempt < 20; attempt++) {
        double u[3];
        do {
            for (int i = 0; i < 3; i++)
                u[i] = uniform(r, -1, 1);
        } while (u[0] * u[0] + u[1] * u[1] + u[2] * u[2] > 1.0);
        double c = cos(o->angle), s = sin(o->angle);
        double lx = u[0] * (o->axes[0] - margin), ly = u[1] * (o->axes[1] - margin);
        q[0] = o->center[0] + c * lx - s * ly;
        q[1] = o->center[1] + s * lx + c * ly;
        q[2] = o->center[2] + u[2] * (o->axes[2] - margin);
        if (classify(p, q) == o->tissue) return 1;
    }
    return 0;
}

/* Lesions do not touch: a new one keeps this far (mm) from every other one's surface. */
static int apart(const phantom *p, const double q[3], double radius) {
    for (int i = 0; i < p->n_lesions; i++) {
        const phantom_lesion *l = &p->lesions[i];
        double d[3] = {q[0] - l->center[0], q[1] - l->center[1], q[2] - l->center[2]};
        double gap = radius + l->radius * 1.3 + 4.0;
        if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < gap * gap) return 0;
    }
    return 1;
}

static phantom_lesion *place(phantom *p, rng *r, double radius, int allow_lung,
                             const phantom_organ **host) {
    if (p->n_lesions >= PHANTOM_MAX_LESIONS) return NULL;
    for (int attempt = 0; attempt < 200; attempt++) {
        const phantom_organ *o = &p->organs[rng_below(r, (uint32_t)p->n_organs)];
        if (o->tissue == TISSUE_HEART || o->tissue == TISSUE_BOWEL_GAS) continue;
        if (o->tissue == TISSUE_LUNG && !allow_lung) continue;
        double q[3];
        if (!organ_point(p, r, o, radius + 5.0, q) || !apart(p, q, radius)) continue;
        phantom_lesion *l = &p->lesions[p->n_lesions];
        memset(l, 0, sizeof *l);
        memcpy(l->center, q, sizeof q);
        l->radius = radius;
        l->host = o->tissue;
        l->texture_seed = rng_u32(r);
        for (int i = 0; i < 3; i++)
            l->phase[i] = uniform(r, 0, 2 * PI);
        *host = o;
        return l;
    }
    return NULL;
}

int phantom_add_lesion(phantom *p, rng *r, double diameter_mm, double contrast_scale) {
    const phantom_organ *o = NULL;
    phantom_lesion *l = place(p, r, diameter_mm / 2.0, 1, &o);
    if (!l) return 0;
    double s = contrast_scale, host_hu = tissue_table[o->tissue].hu;
    l->kind = LESION_TUMOUR;
    int hypo = 1;
    switch (o->tissue) {
    case TISSUE_LUNG: /* a solid nodule is soft tissue (-50..+40 HU); a subtle one part-solid */
        l->ct_delta =
            (contrast_scale < 0.6 ? uniform(r, -450, -250) : uniform(r, -50, 40)) - host_hu;
        l->mr_rel = contrast_scale < 0.6 ? uniform(r, 2, 4) : uniform(r, 5, 7);
        hypo = 0;
        break;
    case TISSUE_LIVER: /* metastases: mostly hypodense, some hypervascular */
        hypo = rng_double(r) < 0.7;
        l->ct_delta = hypo ? -uniform(r, 25, 55) * s : uniform(r, 30, 60) * s;
        break;
    case TISSUE_KIDNEY: /* renal cell carcinoma: heterogeneous, either side of the cortex */
        hypo = rng_u32(r) & 1;
        l->ct_delta = (hypo ? -1.0 : 1.0) * uniform(r, 25, 50) * s;
        break;
    default: l->ct_delta = -uniform(r, 25, 50) * s; /* spleen, muscle */
    }
    if (o->tissue != TISSUE_LUNG) /* T1: lesions darker than the organ, hypervascular less so */
        l->mr_rel =
            hypo ? -uniform(r, 0.25, 0.5) * fmin(s, 1.8) : -uniform(r, 0.05, 0.2) * fmin(s, 1.8);
    l->edge = uniform(r, 1.2, 3.5);
    l->heterogeneity = uniform(r, 0.2, 0.45);
    l->roughness = uniform(r, 0.05, 0.18);
    for (int i = 0; i < 3; i++)
        l->lobes[i] = uniform(r, 0.0, 0.15);
    if (hypo && o->tissue == TISSUE_LIVER && rng_double(r) < 0.4) l->rim = uniform(r, 15, 35) * s;
    if (l->radius > 8.0 && o->tissue != TISSUE_LUNG && rng_double(r) < 0.5)
        l->necrosis = uniform(r, 0.3, 0.7);
    p->n_lesions++;
    return 1;
}

int phantom_add_cyst(phantom *p, rng *r, double diameter_mm) {
    const phantom_organ *o = NULL;
    phantom_lesion *l = place(p, r, diameter_mm / 2.0, 0, &o);
    if (!l) return 0;
    l->kind = LESION_CYST;
    l->ct_delta = uniform(r, 0, 10) - tissue_table[o->tissue].hu; /* water */
    l->mr_rel = -uniform(r, 0.7, 0.85);                           /* fluid: dark on T1 */
    l->edge = uniform(r, 0.3, 0.6);
    l->heterogeneity = 0.0;
    l->roughness = 0.0;
    for (int i = 0; i < 3; i++)
        l->lobes[i] = uniform(r, 0.0, 0.03);
    p->n_lesions++;
    return 1;
}

/* [1 2 1]/4 along one axis of a (nz, ny, nx) float grid, in place, using a line buffer. */
static void blur_axis(float *v, int64_t nz, int64_t ny, int64_t nx, int axis, float *line) {
    int64_t n = axis == 0 ? nz : axis == 1 ? ny : nx;
    int64_t stride = axis == 0 ? ny * nx : axis == 1 ? nx : 1;
    int64_t outer = nz * ny * nx / n;
    if (n < 3) return;
    for (int64_t o = 0; o < outer; o++) {
        int64_t base;
        if (axis == 2)
            base = o * nx;
        else if (axis == 1)
            base = (o / nx) * ny * nx + o % nx;
        else
            base = o;
        for (int64_t t = 0; t < n; t++)
            line[t] = v[base + t * stride];
        for (int64_t t = 0; t < n; t++) {
            float a = line[t > 0 ? t - 1 : 0], b = line[t], c = line[t < n - 1 ? t + 1 : n - 1];
            v[base + t * stride] = 0.25f * a + 0.5f * b + 0.25f * c;
        }
    }
}

vs_status phantom_render(const phantom *p, volume *v, int is_mr, double noise_sigma, rng *r,
                         vs_error *err) {
    if (v->dtype != VOL_FLOAT32 || !v->voxels)
        return VS_FAIL(err, VS_ERR_INTERNAL, "phantom_render wants float32 voxels");
    float *out = v->voxels;
    int64_t nz = v->n_slices, ny = v->n_rows, nx = v->n_cols;
    for (int64_t k = 0; k < nz; k++)
        for (int64_t j = 0; j < ny; j++)
            for (int64_t i = 0; i < nx; i++) {
                double ijk[3] = {(double)i, (double)j, (double)k}, q[3];
                volume_index_to_lps(v, ijk, q);
                out[(k * ny + j) * nx + i] = (float)(is_mr ? phantom_mr(p, q) : phantom_ct(p, q));
            }
    int64_t longest = nz > ny ? (nz > nx ? nz : nx) : (ny > nx ? ny : nx);
    float *line = malloc(sizeof *line * (size_t)longest);
    if (!line) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int axis = 0; axis < 3; axis++)
        blur_axis(out, nz, ny, nx, axis, line);
    free(line);
    uint64_t n = volume_n_voxels(v);
    for (uint64_t t = 0; t < n; t++) {
        if (is_mr) { /* Rician: magnitude of a complex signal with Gaussian noise */
            double re = out[t] + noise_sigma * rng_normal(r), im = noise_sigma * rng_normal(r);
            out[t] = (float)sqrt(re * re + im * im);
        } else {
            out[t] += (float)(noise_sigma * rng_normal(r));
        }
    }
    return VS_OK;
}

void phantom_radiograph(const phantom *p, int rows, int cols, double pixel_mm, double z_center,
                        double step_mm, uint16_t *out) {
    double y0 = p->center[1] - p->body_b - 20.0, y1 = p->center[1] + p->body_b + 20.0, dy = step_mm;
    for (int v = 0; v < rows; v++)
        for (int u = 0; u < cols; u++) {
            double q[3] = {p->center[0] + (u - cols / 2.0 + 0.5) * pixel_mm, 0.0,
                           z_center + (rows / 2.0 - v - 0.5) * pixel_mm};
            double integral = 0.0;
            for (double y = y0; y < y1; y += dy) {
                q[1] = y;
                double hu = phantom_ct(p, q);
                double mu = 0.019 * (1.0 + hu / 1000.0);
                if (mu > 0) integral += mu * dy;
            }
            double val = integral * 420.0;
            out[v * cols + u] = (uint16_t)(val < 0 ? 0 : val > 4095 ? 4095 : val);
        }
}

void phantom_frame(const phantom *p, volume *v, int64_t nz, int64_t ny, int64_t nx, double z,
                   double slice_mm) {
    /* the widest cross-section (the body sways by 6% along S-I), 30% more */
    double w = 2.0 * 1.06 * p->body_a * 1.3, h = 2.0 * 1.06 * p->body_b * 1.3;
    double px = fmax(w / (double)nx, h / (double)ny);
    v->n_slices = nz, v->n_rows = ny, v->n_cols = nx;
    memset(v->direction, 0, sizeof v->direction);
    v->direction[0] = v->direction[4] = v->direction[8] = 1.0;
    v->spacing[0] = v->spacing[1] = px;
    v->spacing[2] = slice_mm > 0.0 ? slice_mm : px;
    v->origin[0] = p->center[0] - 0.5 * (double)(nx - 1) * px;
    v->origin[1] = p->center[1] - 0.5 * (double)(ny - 1) * px;
    v->origin[2] = z - 0.5 * (double)(nz - 1) * v->spacing[2];
    volume_update_affine(v);
}

vs_status phantom_windowed_ct(volume *v, int64_t nz, int64_t ny, int64_t nx, const double window[2],
                              rng *r, vs_error *err) {
    memset(v, 0, sizeof *v);
    if (!(window[1] > window[0]))
        return VS_FAIL(err, VS_ERR_CONFIG, "the CT window's low end must be below its high end");
    phantom ph;
    phantom_make(&ph, r);
    phantom_frame(&ph, v, nz, ny, nx, ph.center[2] + uniform(r, -60.0, 20.0), 0.0);
    vs_status st = volume_alloc(v, nz, ny, nx, VOL_FLOAT32, 0, err);
    if (st == VS_OK) st = phantom_render(&ph, v, 0, 10.0, r, err);
    if (st != VS_OK) {
        volume_free(v);
        return st;
    }
    float *x = v->voxels;
    double lo = window[0], hi = window[1], inv = 1.0 / (hi - lo); /* io/prep's scale() */
    for (uint64_t i = 0; i < volume_n_voxels(v); i++) {
        double hu = x[i];
        x[i] = (float)(((hu < lo ? lo : hu > hi ? hi : hu) - lo) * inv);
    }
    snprintf(v->modality, sizeof v->modality, "CT");
    snprintf(v->units, sizeof v->units, "normalized");
    return VS_OK;
}
