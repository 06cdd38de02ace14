/* demo.c — the demo cohort generator (see demo.h). */
#include "demo.h"
#include "fsdir.h"

#include "dcmwrite.h"
#include "log.h"
#include "phantom.h"
#include "progress.h"
#include "rng.h"
#include "volume.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PI 3.14159265358979323846
#define UID_ROOT "1.3.6.1.4.1.59620.42" /* an organisation-style root, as real scanners use */

enum { MOD_CT = 0, MOD_MR = 1, MOD_DX = 2 };
enum { STREAM_PLAN = 1, STREAM_PATIENT = 100000, STREAM_SERIES = 200000 };

void demo_config_default(demo_config *c) {
    memset(c, 0, sizeof *c);
    c->seed = 2026;
    c->n_unlabeled = 200;
    c->n_labeled = 40;
    c->positive_share = 0.5;
    c->n_radiographs = 8;
    c->matrix = 128;
    c->min_slices = 40;
    c->max_slices = 64;
    c->mr_share = 0.3;
    c->oblique_share = 0.2;
    c->subtle_share = 0.2;
    c->min_diameter = 8.0;
    c->max_diameter = 30.0;
    c->contrast = 1.0;
    c->cyst_share = 0.35;
    c->labeled_modality = MOD_CT;
}

/* ---- identities: fake but realistic values, all planted identifiers ---------------------- */
static const char *const last_names[] = {
    "ABERNATHY", "BACKSTROM", "CASTELLANO", "DRUMMOND",   "EVERHART",   "FAIRWEATHER", "GALLOWAY",
    "HOLLINGER", "IVANOVA",   "JABLONSKI",  "KETTERING",  "LINDQVIST",  "MONTGOMERY",  "NAKAMURA",
    "OYELARAN",  "PELLETIER", "QUARTERMAN", "ROSENQUIST", "SANTORELLI", "THORNBURY"};
static const char *const first_names[] = {
    "ADELAIDE", "BARTHOLOMEW", "CORDELIA", "DESMOND",   "EVANGELINE", "FREDERICK",  "GWENDOLYN",
    "HORATIO",  "ISADORA",     "JEREMIAH", "KATHARINA", "LEOPOLD",    "MARGUERITE", "NATHANIEL",
    "OPHELIA",  "PERCIVAL",    "ROSALIND", "SEBASTIAN", "THEODORA",   "WINIFRED"};
static const char *const institutions[] = {"SAINT BARNABY GENERAL HOSPITAL",
                                           "NORTHFIELD UNIVERSITY CLINIC",
                                           "RIVERSIDE MEMORIAL MEDICAL CENTER"};
static const char *const streets[] = {"ELM GROVE ROAD", "HARBOUR VIEW LANE", "MILLSTONE AVENUE",
                                      "QUARRY HILL STREET"};

typedef struct identity {
    char name[64], name_plain[64], id[16], other_id[16], birth[9], sex[2], age[5];
    char address[96], phone[24];
    char institution[64], referring[64], performing[64], operator_name[64], requesting[64];
    char station[24], serial[24];
    char study_date[2][9], study_time[2][7], accession[2][16], study_uid[2][72], study_id[2][12];
} identity;

static void person(rng *r, char *pn, size_t n) {
    snprintf(pn, n, "%s^%s^%c", last_names[rng_below(r, 20)], first_names[rng_below(r, 20)],
             'A' + (int)rng_below(r, 26));
}

static void date_str(rng *r, int y0, int y1, char out[9]) {
    int y = y0 + (int)rng_below(r, (uint32_t)(y1 - y0 + 1)), m = 1 + (int)rng_below(r, 12),
        d = 1 + (int)rng_below(r, 28);
    snprintf(out, 9, "%04d%02d%02d", y, m, d);
}

static void make_identity(identity *p, uint64_t seed, int index) {
    rng r;
    rng_seed(&r, seed, STREAM_PATIENT + (uint64_t)index);
    person(&r, p->name, sizeof p->name);
    const char *ln = p->name, *caret = strchr(ln, '^');
    const char *fn = caret + 1, *caret2 = strchr(fn, '^');
    snprintf(p->name_plain, sizeof p->name_plain, "%.*s %.*s", (int)(caret2 - fn), fn,
             (int)(caret - ln), ln);
    snprintf(p->id, sizeof p->id, "MRN%07u", 1000000u + (unsigned)index * 7919u % 8999999u);
    snprintf(p->other_id, sizeof p->other_id, "HX-%06u", (unsigned)rng_below(&r, 999999));
    date_str(&r, 1935, 2004, p->birth);
    p->sex[0] = rng_u32(&r) & 1 ? 'F' : 'M';
    snprintf(p->address, sizeof p->address, "%u %s, SPRINGFIELD", 10 + (unsigned)rng_below(&r, 980),
             streets[rng_below(&r, 4)]);
    snprintf(p->phone, sizeof p->phone, "+1-555-%03u-%04u", (unsigned)rng_below(&r, 1000),
             (unsigned)rng_below(&r, 10000));
    snprintf(p->institution, sizeof p->institution, "%s", institutions[rng_below(&r, 3)]);
    person(&r, p->referring, sizeof p->referring);
    person(&r, p->performing, sizeof p->performing);
    person(&r, p->operator_name, sizeof p->operator_name);
    person(&r, p->requesting, sizeof p->requesting);
    snprintf(p->station, sizeof p->station, "SCANROOM%02u", (unsigned)rng_below(&r, 40));
    snprintf(p->serial, sizeof p->serial, "SN%08u", (unsigned)rng_below(&r, 99999999));
    for (int s = 0; s < 2; s++) {
        date_str(&r, 2018, 2026, p->study_date[s]);
        snprintf(p->study_time[s], 7, "%02u%02u%02u", 7 + (unsigned)rng_below(&r, 12),
                 (unsigned)rng_below(&r, 60), (unsigned)rng_below(&r, 60));
        snprintf(p->accession[s], sizeof p->accession[s], "ACC%08u",
                 (unsigned)rng_below(&r, 99999999));
        snprintf(p->study_uid[s], sizeof p->study_uid[s], UID_ROOT ".1.%s.%d.%d", p->study_date[s],
                 index, s);
        snprintf(p->study_id[s], sizeof p->study_id[s], "S%06u", (unsigned)rng_below(&r, 999999));
    }
    int birth_year = atoi(p->birth) / 10000, study_year = atoi(p->study_date[0]) / 10000;
    snprintf(p->age, sizeof p->age, "%03dY", study_year - birth_year);
}

/* ---- the plan: which series exist, for whom ---------------------------------------------- */
typedef struct series_plan {
    int patient, study, modality, labeled, positive;
} series_plan;

typedef struct plan {
    int n_patients, n_series;
    series_plan *series;
} plan;

static vs_status make_plan(const demo_config *c, plan *pl, vs_error *err) {
    int cap = c->n_unlabeled + c->n_labeled + c->n_radiographs;
    pl->series = calloc((size_t)(cap > 0 ? cap : 1), sizeof *pl->series);
    if (!pl->series) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    rng r;
    rng_seed(&r, c->seed, STREAM_PLAN);
    int patient = 0, n = 0;
    for (int v = 0; v < c->n_unlabeled;) { /* 30% of pool patients have two studies */
        int studies = rng_double(&r) < 0.3 && v + 1 < c->n_unlabeled ? 2 : 1;
        for (int s = 0; s < studies; s++, v++) {
            series_plan *sp = &pl->series[n++];
            sp->patient = patient;
            sp->study = s;
            sp->modality = rng_double(&r) < c->mr_share ? MOD_MR : MOD_CT;
        }
        patient++;
    }
    int pool_patients = patient;
    for (int i = 0; i < c->n_radiographs; i++) {
        series_plan *sp = &pl->series[n++];
        sp->patient = pool_patients ? (int)rng_below(&r, (uint32_t)pool_patients) : patient++;
        sp->study = 1;
        sp->modality = MOD_DX;
    }
    int n_pos = (int)lround(c->positive_share * c->n_labeled);
    uint32_t *order = malloc(sizeof *order * (size_t)(c->n_labeled > 0 ? c->n_labeled : 1));
    if (!order) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->n_labeled; i++)
        order[i] = (uint32_t)i;
    rng_shuffle_u32(&r, order, (uint32_t)c->n_labeled);
    for (int i = 0; i < c->n_labeled; i++) {
        series_plan *sp = &pl->series[n++];
        sp->patient = patient++;
        sp->modality = c->labeled_modality;
        sp->labeled = 1;
        sp->positive = (int)order[i] < n_pos;
    }
    free(order);
    pl->n_patients = patient;
    pl->n_series = n;
    return VS_OK;
}

/* ---- geometry of one series --------------------------------------------------------------- */
static void rotation(double axis[3], double angle, double m[9]) {
    double n = sqrt(axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]);
    double x = axis[0] / n, y = axis[1] / n, z = axis[2] / n, c = cos(angle), s = sin(angle),
           t = 1 - c;
    double r[9] = {t * x * x + c,     t * x * y - s * z, t * x * z + s * y,
                   t * x * y + s * z, t * y * y + c,     t * y * z - s * x,
                   t * x * z - s * y, t * y * z + s * x, t * z * z + c};
    memcpy(m, r, sizeof r);
}

/* Shape, spacing, direction and origin for a series centred at `center` (LPS mm). */
static void series_geometry(const demo_config *c, rng *r, int modality, const double center[3],
                            volume *v, double *tilt_deg) {
    int nz = c->min_slices + (int)rng_below(r, (uint32_t)(c->max_slices - c->min_slices + 1));
    double ps = (2.7 + 0.6 * rng_double(r)) * 128.0 / c->matrix;
    double ss = modality == MOD_MR ? 3.5 + 2.0 * rng_double(r) : 2.5 + 2.5 * rng_double(r);
    v->n_slices = nz;
    v->n_rows = v->n_cols = c->matrix;
    v->spacing[0] = v->spacing[1] = ps;
    v->spacing[2] = ss;
    double dir[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    *tilt_deg = 0.0;
    if (rng_double(r) < c->oblique_share) {
        double axis[3] = {rng_double(r) - 0.5, rng_double(r) - 0.5, rng_double(r) - 0.5};
        rotation(axis, (5.0 + 15.0 * rng_double(r)) * PI / 180.0, dir);
    } else if (modality == MOD_CT && rng_double(r) < 0.08) {
        /* gantry tilt: rows stay left-right, columns tilt, slices still step along z */
        double t = (8.0 + 12.0 * rng_double(r)) * PI / 180.0;
        *tilt_deg = t * 180.0 / PI;
        double tilted[9] = {1, 0, 0, 0, cos(t), 0, 0, sin(t), 1};
        memcpy(dir, tilted, sizeof dir);
    }
    memcpy(v->direction, dir, sizeof dir);
    /* origin so that the volume centre lands on `center` */
    for (int a = 0; a < 3; a++) {
        double half = 0.0;
        int64_t n[3] = {v->n_cols, v->n_rows, v->n_slices};
        for (int k = 0; k < 3; k++)
            half += (double)(n[k] - 1) / 2.0 * v->spacing[k] * dir[a * 3 + k];
        v->origin[a] = center[a] - half;
    }
    volume_update_affine(v);
}

static int inside(const volume *v, const double q[3], double margin_vox) {
    double ijk[3];
    if (volume_lps_to_index(v, q, ijk, NULL) != VS_OK) return 0;
    double n[3] = {(double)v->n_cols, (double)v->n_rows, (double)v->n_slices};
    for (int a = 0; a < 3; a++)
        if (ijk[a] < margin_vox || ijk[a] > n[a] - 1 - margin_vox) return 0;
    return 1;
}

/* ---- writing ------------------------------------------------------------------------------ */
static const struct {
    const char *uid;
    double weight;
    int compressed;
} syntaxes[] = {
    {"1.2.840.10008.1.2.1", 0.40, 0},    /* explicit VR little endian */
    {"1.2.840.10008.1.2", 0.20, 0},      /* implicit VR little endian */
    {"1.2.840.10008.1.2.2", 0.05, 0},    /* explicit VR big endian (retired, still in archives) */
    {"1.2.840.10008.1.2.1.99", 0.05, 0}, /* deflated explicit VR little endian */
    {"1.2.840.10008.1.2.5", 0.10, 1},    /* RLE lossless */
    {"1.2.840.10008.1.2.4.80", 0.10, 1}, /* JPEG-LS lossless */
    {"1.2.840.10008.1.2.4.70", 0.10, 1}, /* JPEG lossless, first-order prediction */
};

static int pick_syntax(rng *r) {
    double u = rng_double(r), acc = 0.0;
    int n = (int)(sizeof syntaxes / sizeof syntaxes[0]);
    for (int i = 0; i < n; i++) {
        acc += syntaxes[i].weight;
        if (u < acc) return i;
    }
    return 0;
}

typedef struct series_out {
    char series_uid[80];
    int n_files, n_lesions, labeled, positive;
    double lesion[PHANTOM_MAX_LESIONS][4]; /* x, y, z (LPS mm), diameter (mm) */
    int n_cysts;
    double cyst[PHANTOM_MAX_LESIONS][4]; /* benign lookalikes in the field of view, same form */
    vs_status status;
    vs_error err;
} series_out;

#define PUT(tag, value)                                                                            \
    do {                                                                                           \
        if ((st = dcm_writer_put(w, (tag), (value), err)) != VS_OK) return st;                     \
    } while (0)
#define PUTF(tag, ...)                                                                             \
    do {                                                                                           \
        snprintf(buf, sizeof buf, __VA_ARGS__);                                                    \
        PUT(tag, buf);                                                                             \
    } while (0)

/* Attributes shared by every image of a patient's study, identifying ones included. */
static vs_status put_patient_study(dcm_writer *w, const identity *id, int study, int modality,
                                   int describe_by_name, vs_error *err) {
    vs_status st;
    char buf[256];
    PUT(DCM_TAG(0x0008, 0x0005), "ISO_IR 100");
    PUT(DCM_TAG(0x0008, 0x0020), id->study_date[study]);
    PUT(DCM_TAG(0x0008, 0x0030), id->study_time[study]);
    PUT(DCM_TAG(0x0008, 0x0050), id->accession[study]);
    PUT(DCM_TAG(0x0008, 0x0070), "ACME MEDICAL SYSTEMS");
    PUT(DCM_TAG(0x0008, 0x0080), id->institution);
    PUTF(DCM_TAG(0x0008, 0x0081), "1 HOSPITAL PLAZA, %s", "SPRINGFIELD");
    PUT(DCM_TAG(0x0008, 0x0090), id->referring);
    PUT(DCM_TAG(0x0008, 0x1010), id->station);
    if (describe_by_name)
        PUTF(DCM_TAG(0x0008, 0x1030), "%s follow-up for %s", modality == MOD_MR ? "MR" : "CT",
             id->name_plain);
    else
        PUTF(DCM_TAG(0x0008, 0x1030), "%s",
             modality == MOD_MR   ? "MR ABDOMEN"
             : modality == MOD_DX ? "XR CHEST"
                                  : "CT CHEST ABDOMEN");
    PUT(DCM_TAG(0x0008, 0x1050), id->performing);
    PUT(DCM_TAG(0x0008, 0x1070), id->operator_name);
    PUT(DCM_TAG(0x0010, 0x0010), id->name);
    PUT(DCM_TAG(0x0010, 0x0020), id->id);
    PUT(DCM_TAG(0x0010, 0x0030), id->birth);
    PUT(DCM_TAG(0x0010, 0x0040), id->sex);
    PUT(DCM_TAG(0x0010, 0x1000), id->other_id);
    PUT(DCM_TAG(0x0010, 0x1010), id->age);
    PUT(DCM_TAG(0x0010, 0x1040), id->address);
    PUT(DCM_TAG(0x0010, 0x2154), id->phone);
    PUT(DCM_TAG(0x0018, 0x1000), id->serial);
    PUT(DCM_TAG(0x0020, 0x000D), id->study_uid[study]);
    PUT(DCM_TAG(0x0020, 0x0010), id->study_id[study]);
    PUT(DCM_TAG(0x0032, 0x1032), id->requesting);
    /* identifiers nested three levels deep, and dates inside sequences */
    if ((st = dcm_writer_item_begin(w, DCM_TAG(0x0040, 0x0275), err)) != VS_OK) return st;
    PUT(DCM_TAG(0x0040, 0x1001), id->accession[study]);
    PUT(DCM_TAG(0x0040, 0x0009), id->study_id[study]);
    PUT(DCM_TAG(0x0040, 0x0002), id->study_date[study]);
    if ((st = dcm_writer_item_begin(w, DCM_TAG(0x0008, 0x1110), err)) != VS_OK) return st;
    PUT(DCM_TAG(0x0008, 0x1150), "1.2.840.10008.3.1.2.3.1");
    PUT(DCM_TAG(0x0008, 0x1155), id->study_uid[study]);
    if ((st = dcm_writer_item_begin(w, DCM_TAG(0x0040, 0xA730), err)) != VS_OK) return st;
    PUT(DCM_TAG(0x0040, 0xA040), "PNAME");
    PUT(DCM_TAG(0x0040, 0xA123), id->name);
    if ((st = dcm_writer_item_end(w, err)) != VS_OK) return st;
    if ((st = dcm_writer_item_end(w, err)) != VS_OK) return st;
    if ((st = dcm_writer_item_end(w, err)) != VS_OK) return st;
    /* a vendor's private block copying identifiers, as real scanners do */
    if ((st = dcm_writer_put_vr(w, DCM_TAG(0x0009, 0x0010), "LO", "ACME PRIVATE 1.0", err)) !=
        VS_OK)
        return st;
    if ((st = dcm_writer_put_vr(w, DCM_TAG(0x0009, 0x1001), "LO", id->name, err)) != VS_OK)
        return st;
    if ((st = dcm_writer_put_vr(w, DCM_TAG(0x0009, 0x1002), "LO", id->id, err)) != VS_OK) return st;
    if ((st = dcm_writer_put_vr(w, DCM_TAG(0x0009, 0x1003), "DA", id->birth, err)) != VS_OK)
        return st;
    return VS_OK;
}

static vs_status put_image_common(dcm_writer *w, const identity *id, int study, int modality,
                                  const char *series_uid, int series_number, const char *sop_uid,
                                  vs_error *err) {
    vs_status st;
    char buf[256];
    static const char *const sop_class[] = {
        "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.1.1"};
    static const char *const mod_name[] = {"CT", "MR", "DX"};
    PUT(DCM_TAG(0x0008, 0x0016), sop_class[modality]);
    PUT(DCM_TAG(0x0008, 0x0018), sop_uid);
    PUT(DCM_TAG(0x0008, 0x0060), mod_name[modality]);
    PUT(DCM_TAG(0x0008, 0x0021), id->study_date[study]);
    PUT(DCM_TAG(0x0008, 0x0022), id->study_date[study]);
    PUT(DCM_TAG(0x0008, 0x0023), id->study_date[study]);
    PUT(DCM_TAG(0x0008, 0x0031), id->study_time[study]);
    PUT(DCM_TAG(0x0008, 0x0033), id->study_time[study]);
    PUT(DCM_TAG(0x0020, 0x000E), series_uid);
    PUTF(DCM_TAG(0x0020, 0x0011), "%d", series_number);
    PUT(DCM_TAG(0x0020, 0x0012), "1");
    PUT(DCM_TAG(0x0028, 0x0301), "NO");
    return VS_OK;
}

/* One CT or MR series: render, then one file per slice. */
static vs_status write_volume_series(const demo_config *c, const char *dir, int series_index,
                                     const series_plan *sp, const identity *id, series_out *so,
                                     rng *r, vs_error *err) {
    rng pr;
    rng_seed(&pr, c->seed, STREAM_PATIENT + 50000 + (uint64_t)sp->patient);
    phantom ph;
    phantom_make(&ph, &pr); /* the same anatomy for every series of a patient */
    volume v;
    memset(&v, 0, sizeof v);
    double center[3] = {ph.center[0] + (rng_double(r) - 0.5) * 20,
                        ph.center[1] + (rng_double(r) - 0.5) * 20,
                        ph.center[2] - 120.0 + 170.0 * rng_double(r)};
    if (sp->labeled) center[2] = ph.center[2] - 70.0 + 40.0 * rng_double(r); /* liver and kidneys */
    double tilt = 0.0;
    series_geometry(c, r, sp->modality, center, &v, &tilt);
    int want = 0;
    if (sp->positive)
        want = 1 + (int)rng_below(r, 3);
    else if (!sp->labeled && sp->modality != MOD_DX && rng_double(r) < 0.3)
        want = 1; /* archives hold tumours too */
    for (int tries = 0; so->n_lesions < want && tries < 60; tries++) {
        double d = c->min_diameter + (c->max_diameter - c->min_diameter) * rng_double(r);
        double scale =
            rng_double(r) < c->subtle_share ? 0.4 + 0.2 * rng_double(r) : 0.8 + 0.4 * rng_double(r);
        if (!phantom_add_lesion(&ph, r, d, scale * c->contrast)) continue;
        phantom_lesion *l = &ph.lesions[ph.n_lesions - 1];
        if (!inside(&v, l->center, d / 2.0 / v.spacing[0] + 1.0)) {
            ph.n_lesions--; /* outside this series' field of view */
            continue;
        }
        double *row = so->lesion[so->n_lesions++];
        row[0] = l->center[0];
        row[1] = l->center[1];
        row[2] = l->center[2];
        row[3] = d;
    }
    /* benign cysts, in positive and negative volumes alike: lookalikes no label marks */
    if (sp->modality != MOD_DX && rng_double(r) < c->cyst_share) {
        int cysts = 1 + (int)rng_below(r, 2);
        for (int tries = 0; cysts > 0 && tries < 20; tries++) {
            double d = 5.0 + 15.0 * rng_double(r);
            if (!phantom_add_cyst(&ph, r, d)) continue;
            cysts--;
            const phantom_lesion *l = &ph.lesions[ph.n_lesions - 1];
            if (inside(&v, l->center, 0.0)) {
                double *row = so->cyst[so->n_cysts++];
                memcpy(row, l->center, 3 * sizeof *row);
                row[3] = d;
            }
        }
    }
    so->positive = so->n_lesions > 0;
    vs_status st = volume_alloc(&v, v.n_slices, v.n_rows, v.n_cols, VOL_FLOAT32, 0, err);
    if (st != VS_OK) return st;
    int is_mr = sp->modality == MOD_MR;
    st = phantom_render(&ph, &v, is_mr,
                        is_mr ? 12.0 + 8.0 * rng_double(r) : 6.0 + 8.0 * rng_double(r), r, err);
    int syntax = pick_syntax(r);
    int is_signed = !is_mr && !syntaxes[syntax].compressed && rng_double(r) < 0.4;
    int order_mode =
        (int)rng_below(r, 3); /* 0 ascending, 1 descending, 2 shuffled instance numbers */
    uint32_t *inst = malloc(sizeof *inst * (size_t)v.n_slices),
             *fname = malloc(sizeof *fname * (size_t)v.n_slices);
    uint16_t *pix = malloc(sizeof *pix * (size_t)(v.n_rows * v.n_cols));
    if (st == VS_OK && (!inst || !fname || !pix)) st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    for (uint32_t k = 0; st == VS_OK && k < (uint32_t)v.n_slices; k++) {
        inst[k] = order_mode == 1 ? (uint32_t)v.n_slices - k : k + 1;
        fname[k] = k;
    }
    if (st == VS_OK && order_mode == 2) rng_shuffle_u32(r, inst, (uint32_t)v.n_slices);
    if (st == VS_OK)
        rng_shuffle_u32(r, fname, (uint32_t)v.n_slices); /* file names never follow slices */
    int describe_by_name = rng_double(r) < 0.25;
    int series_number = 2 + series_index % 7;
    const double *d = v.direction;
    for (int64_t k = 0; st == VS_OK && k < v.n_slices; k++) {
        dcm_writer *w = NULL;
        if ((st = dcm_writer_create(&w, err)) != VS_OK) break;
        char buf[256], sop[96], path[1024];
        snprintf(sop, sizeof sop, "%s.%lld", so->series_uid, (long long)k + 1);
        double ijk[3] = {0, 0, (double)k}, ipp[3];
        volume_index_to_lps(&v, ijk, ipp);
        const float *slice = (const float *)v.voxels + k * v.n_rows * v.n_cols;
        for (int64_t t = 0; t < v.n_rows * v.n_cols; t++) {
            double s = is_mr ? slice[t] : is_signed ? slice[t] : slice[t] + 1024.0;
            s = s < (is_signed ? -1024.0 : 0.0) ? (is_signed ? -1024.0 : 0.0)
                : s > 4095.0                    ? 4095.0
                                                : s;
            pix[t] = (uint16_t)(int16_t)lround(s);
        }
        st = put_patient_study(w, id, sp->study, sp->modality, describe_by_name, err);
        if (st == VS_OK)
            st = put_image_common(w, id, sp->study, sp->modality, so->series_uid, series_number,
                                  sop, err);
#define P(tag, ...)                                                                                \
    if (st == VS_OK) {                                                                             \
        snprintf(buf, sizeof buf, __VA_ARGS__);                                                    \
        st = dcm_writer_put(w, (tag), buf, err);                                                   \
    }
        P(DCM_TAG(0x0008, 0x0008), "ORIGINAL\\PRIMARY\\AXIAL");
        P(DCM_TAG(0x0008, 0x0032), "%s", id->study_time[sp->study]);
        P(DCM_TAG(0x0008, 0x103E), "%s", is_mr ? "T1 VIBE AXIAL" : "ABDOMEN 3MM STD");
        P(DCM_TAG(0x0018, 0x0015), "%s", center[2] > ph.center[2] ? "CHEST" : "ABDOMEN");
        P(DCM_TAG(0x0018, 0x0050), "%.4f", v.spacing[2]);
        P(DCM_TAG(0x0018, 0x5100), "HFS");
        P(DCM_TAG(0x0020, 0x0013), "%u", inst[k]);
        P(DCM_TAG(0x0020, 0x0032), "%.6f\\%.6f\\%.6f", ipp[0], ipp[1], ipp[2]);
        P(DCM_TAG(0x0020, 0x0037), "%.8f\\%.8f\\%.8f\\%.8f\\%.8f\\%.8f", d[0], d[3], d[6], d[1],
          d[4], d[7]);
        P(DCM_TAG(0x0020, 0x0052), "%s.9", so->series_uid);
        P(DCM_TAG(0x0020, 0x1040), "%s", "");
        P(DCM_TAG(0x0020, 0x1041), "%.4f", ipp[2]);
        P(DCM_TAG(0x0020, 0x4000), "Pt %s, %s", id->name_plain, id->id);
        P(DCM_TAG(0x0028, 0x0004), "MONOCHROME2");
        P(DCM_TAG(0x0028, 0x0030), "%.6f\\%.6f", v.spacing[1], v.spacing[0]);
        if (is_mr) {
            P(DCM_TAG(0x0018, 0x0080), "%.1f", 4.5 + rng_double(r));
            P(DCM_TAG(0x0018, 0x0081), "%.2f", 2.1 + 0.2 * rng_double(r));
            P(DCM_TAG(0x0018, 0x0086), "1");
            P(DCM_TAG(0x0018, 0x0087), "1.5");
            P(DCM_TAG(0x0028, 0x1050), "400");
            P(DCM_TAG(0x0028, 0x1051), "900");
        } else {
            P(DCM_TAG(0x0018, 0x0060), "120");
            P(DCM_TAG(0x0018, 0x1120), "%.2f", tilt);
            P(DCM_TAG(0x0018, 0x1210), "STANDARD");
            P(DCM_TAG(0x0028, 0x1050), "40");
            P(DCM_TAG(0x0028, 0x1051), "400");
            P(DCM_TAG(0x0028, 0x1052), "%s", is_signed ? "0" : "-1024");
            P(DCM_TAG(0x0028, 0x1053), "1");
            P(DCM_TAG(0x0028, 0x1054), "HU");
        }
#undef P
        if (st == VS_OK)
            st = dcm_writer_put_pixels(w, (uint16_t)v.n_rows, (uint16_t)v.n_cols,
                                       is_signed ? 16 : 12, is_signed, pix, err);
        snprintf(path, sizeof path, "%s/im%04u.dcm", dir, fname[k]);
        if (st == VS_OK) st = dcm_writer_save(w, path, syntaxes[syntax].uid, err);
        dcm_writer_free(w);
        so->n_files++;
    }
    free(inst);
    free(fname);
    free(pix);
    volume_free(&v);
    return st;
}

static vs_status write_radiograph(const demo_config *c, const char *dir, int series_index,
                                  const series_plan *sp, const identity *id, series_out *so, rng *r,
                                  vs_error *err) {
    (void)c;
    rng pr;
    rng_seed(&pr, c->seed, STREAM_PATIENT + 50000 + (uint64_t)sp->patient);
    phantom ph;
    phantom_make(&ph, &pr);
    int rows = 256, cols = 256;
    double pixel = 1.6 + 0.2 * rng_double(r);
    uint16_t *img = malloc(sizeof *img * (size_t)(rows * cols));
    if (!img) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    phantom_radiograph(&ph, rows, cols, pixel, ph.center[2] + 60.0, 1.5, img);
    int mono1 = rng_double(r) < 0.3;
    for (int t = 0; t < rows * cols; t++) {
        double s = img[t] + 20.0 * rng_normal(r);
        s = s < 0 ? 0 : s > 4095 ? 4095 : s;
        img[t] = (uint16_t)lround(mono1 ? 4095.0 - s : s);
    }
    dcm_writer *w = NULL;
    vs_status st = dcm_writer_create(&w, err);
    char buf[256], sop[96], path[1024];
    snprintf(sop, sizeof sop, "%s.1", so->series_uid);
    if (st == VS_OK) st = put_patient_study(w, id, sp->study, MOD_DX, 0, err);
    if (st == VS_OK)
        st = put_image_common(w, id, sp->study, MOD_DX, so->series_uid, 1 + series_index % 5, sop,
                              err);
#define P(tag, ...)                                                                                \
    if (st == VS_OK) {                                                                             \
        snprintf(buf, sizeof buf, __VA_ARGS__);                                                    \
        st = dcm_writer_put(w, (tag), buf, err);                                                   \
    }
    P(DCM_TAG(0x0008, 0x0008), "ORIGINAL\\PRIMARY");
    P(DCM_TAG(0x0008, 0x0068), "FOR PRESENTATION");
    P(DCM_TAG(0x0018, 0x0015), "CHEST");
    P(DCM_TAG(0x0018, 0x1164), "%.4f\\%.4f", pixel, pixel);
    P(DCM_TAG(0x0018, 0x5101), "PA");
    P(DCM_TAG(0x0020, 0x0013), "1");
    P(DCM_TAG(0x0020, 0x0020), "L\\F");
    P(DCM_TAG(0x0028, 0x0004), "%s", mono1 ? "MONOCHROME1" : "MONOCHROME2");
    P(DCM_TAG(0x0028, 0x1040), "LIN");
#undef P
    if (st == VS_OK) st = dcm_writer_put_pixels(w, (uint16_t)rows, (uint16_t)cols, 12, 0, img, err);
    snprintf(path, sizeof path, "%s/im0000.dcm", dir);
    if (st == VS_OK) st = dcm_writer_save(w, path, syntaxes[pick_syntax(r)].uid, err);
    dcm_writer_free(w);
    free(img);
    so->n_files = 1;
    return st;
}

/* ---- the cohort ---------------------------------------------------------------------------- */
static vs_status make_dir(const char *path, vs_error *err) { return vs_mkdirs(path, 0755, err); }

static vs_status write_text(const char *path, const char *text, size_t n, vs_error *err) {
    FILE *f = fopen(path, "w");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot write (%s)", path, strerror(errno));
    size_t put = fwrite(text, 1, n, f);
    if (fclose(f) != 0 || put != n) return VS_FAIL(err, VS_ERR_IO, "%s: short write", path);
    return VS_OK;
}

/* A growing text buffer for the CSV and PHI files. */
typedef struct text {
    char *s;
    size_t n, cap;
} text;

static int text_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int text_add(text *t, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(t->s ? t->s + t->n : NULL, t->s ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return 0;
        if (t->s && t->n + (size_t)k < t->cap) {
            t->n += (size_t)k;
            return 1;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)k;
        char *s = realloc(t->s, cap);
        if (!s) return 0;
        t->s = s;
        t->cap = cap;
    }
}

static vs_status generate_series(const demo_config *c, const char *out_dir, const plan *pl,
                                 const identity *ids, series_out *outs, int i) {
    const series_plan *sp = &pl->series[i];
    series_out *so = &outs[i];
    const identity *id = &ids[sp->patient];
    so->labeled = sp->labeled;
    snprintf(so->series_uid, sizeof so->series_uid, "%s.%d", id->study_uid[sp->study], 100 + i);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/dicom/%s/s%04d", out_dir, sp->labeled ? "labeled" : "unlabeled",
             i);
    vs_status st = make_dir(dir, &so->err);
    rng r;
    rng_seed(&r, c->seed, STREAM_SERIES + (uint64_t)i);
    if (st == VS_OK) {
        if (sp->modality == MOD_DX)
            st = write_radiograph(c, dir, i, sp, id, so, &r, &so->err);
        else
            st = write_volume_series(c, dir, i, sp, id, so, &r, &so->err);
    }
    so->status = st;
    return st;
}

vs_status demo_generate(const demo_config *c, const char *out_dir, demo_summary *summary,
                        vs_error *err) {
    memset(summary, 0, sizeof *summary);
    if (c->matrix < 16 || c->matrix > 1024 || c->min_slices < 2 || c->max_slices < c->min_slices ||
        c->n_unlabeled < 0 || c->n_labeled < 0 || c->n_radiographs < 0)
        return VS_FAIL(err, VS_ERR_USAGE, "demo cohort settings are out of range");
    char path[1024];
    vs_status st = make_dir(out_dir, err);
    const char *const sub[] = {"dicom", "dicom/unlabeled", "dicom/labeled", "labels"};
    for (int i = 0; st == VS_OK && i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", out_dir, sub[i]);
        st = make_dir(path, err);
    }
    if (st != VS_OK) return st;
    plan pl = {0, 0, NULL};
    if ((st = make_plan(c, &pl, err)) != VS_OK) return st;
    identity *ids = calloc((size_t)(pl.n_patients ? pl.n_patients : 1), sizeof *ids);
    series_out *outs = calloc((size_t)(pl.n_series ? pl.n_series : 1), sizeof *outs);
    if (!ids || !outs) {
        free(pl.series);
        free(ids);
        free(outs);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    }
    for (int p = 0; p < pl.n_patients; p++)
        make_identity(&ids[p], c->seed, p);
    progress bar;
    progress_begin(&bar, "demo cohort", (uint64_t)pl.n_series, "series");
    int done = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(c->threads > 0 ? c->threads : 2)
    for (int i = 0; i < pl.n_series; i++) {
        generate_series(c, out_dir, &pl, ids, outs, i);
#pragma omp critical
        progress_update(&bar, (uint64_t)++done);
    }
    progress_end(&bar);
    for (int i = 0; i < pl.n_series && st == VS_OK; i++)
        if (outs[i].status != VS_OK) {
            *err = outs[i].err;
            st = outs[i].status;
        }
    /* labels and the planted identifiers, in series order (deterministic) */
    text ann = {0}, vol = {0}, phi = {0}, look = {0};
    int ok = text_add(&ann, "seriesuid,coordX,coordY,coordZ,diameter_mm\n") &&
             text_add(&vol, "seriesuid,label\n") &&
             text_add(&look, "seriesuid,coordX,coordY,coordZ,diameter_mm,kind\n");
    for (int i = 0; ok && st == VS_OK && i < pl.n_series; i++) {
        series_out *so = &outs[i];
        summary->n_series++;
        summary->n_files += so->n_files;
        if (!so->labeled) continue;
        ok = text_add(&vol, "%s,%d\n", so->series_uid, so->positive);
        summary->n_positive += so->positive;
        for (int l = 0; ok && l < so->n_lesions; l++, summary->n_lesions++)
            ok = text_add(&ann, "%s,%.3f,%.3f,%.3f,%.2f\n", so->series_uid, so->lesion[l][0],
                          so->lesion[l][1], so->lesion[l][2], so->lesion[l][3]);
        for (int l = 0; ok && l < so->n_cysts; l++)
            ok = text_add(&look, "%s,%.3f,%.3f,%.3f,%.2f,cyst\n", so->series_uid, so->cyst[l][0],
                          so->cyst[l][1], so->cyst[l][2], so->cyst[l][3]);
    }
    for (int p = 0; ok && p < pl.n_patients; p++) {
        const identity *id = &ids[p];
        ok = text_add(&phi, "%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n", id->name,
                      id->name_plain, id->id, id->other_id, id->birth, id->address, id->phone,
                      id->referring, id->performing, id->operator_name, id->requesting, id->serial);
        for (int s = 0; ok && s < 2; s++)
            ok = text_add(&phi, "%s\n%s\n", id->accession[s], id->study_uid[s]);
    }
    for (int i = 0; ok && i < pl.n_series; i++)
        ok = text_add(&phi, "%s\n", outs[i].series_uid);
    if (st == VS_OK && !ok) st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (st == VS_OK) {
        snprintf(path, sizeof path, "%s/labels/annotations.csv", out_dir);
        st = write_text(path, ann.s, ann.n, err);
    }
    if (st == VS_OK) {
        snprintf(path, sizeof path, "%s/labels/volumes.csv", out_dir);
        st = write_text(path, vol.s, vol.n, err);
    }
    if (st == VS_OK) {
        snprintf(path, sizeof path, "%s/labels/lookalikes.csv", out_dir);
        st = write_text(path, look.s, look.n, err);
    }
    if (st == VS_OK) {
        snprintf(path, sizeof path, "%s/phi.txt", out_dir);
        st = write_text(path, phi.s, phi.n, err);
    }
    free(ann.s);
    free(vol.s);
    free(phi.s);
    free(look.s);
    free(pl.series);
    free(ids);
    free(outs);
    return st;
}
