/* dicom.c — scan files, folders and DICOMDIRs; classify, group and account for every file.
 * Volume assembly lives in dicom_assemble.c; DCMTK calls in dicom_dcmtk.cc. */
#include "dicom_scan.h"

#include "log.h"
#include "walk.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- a small string set (open addressing, FNV-1a), for real paths and SOP instances ---- */

typedef struct str_set {
    char **slot;
    size_t cap, n;
} str_set;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Insert a copy of s; returns 1 if added, 0 if present, -1 when out of memory. */
static int str_set_add(str_set *t, const char *s) {
    if (t->n * 2 >= t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        char **ns = calloc(ncap, sizeof *ns);
        if (!ns) return -1;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slot[i]) continue;
            size_t j = fnv1a(t->slot[i]) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = t->slot[i];
        }
        free(t->slot);
        t->slot = ns;
        t->cap = ncap;
    }
    size_t j = fnv1a(s) & (t->cap - 1);
    while (t->slot[j]) {
        if (strcmp(t->slot[j], s) == 0) return 0;
        j = (j + 1) & (t->cap - 1);
    }
    if (!(t->slot[j] = strdup(s))) return -1;
    t->n++;
    return 1;
}

/* The stored copy of s (added if new), or NULL when out of memory. */
static const char *str_set_intern(str_set *t, const char *s) {
    if (str_set_add(t, s) < 0) return NULL;
    size_t j = fnv1a(s) & (t->cap - 1);
    while (strcmp(t->slot[j], s) != 0)
        j = (j + 1) & (t->cap - 1);
    return t->slot[j];
}

static void str_set_free(str_set *t) {
    for (size_t i = 0; i < t->cap; i++)
        free(t->slot[i]);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* ---- the scan ---- */

struct dcm_scan {
    dcm_options opt;
    file_rec *files;
    int64_t n_files, cap_files;
    str_set seen_paths;
    str_set strings; /* interned header strings shared by the files of a series */
    group *groups;
    int n_groups, next_group;
    vol_info *vols;
    int n_vols;
    int grouped;
    int (*known)(void *ctx, const char *const *paths, int n); /* see dcm_scan_set_known */
    void *known_ctx;
    int n_known;
};

/* Non-image objects: skipped, by SOP class prefix. */
static const struct {
    const char *prefix;
    const char *reason;
} skip_classes[] = {
    {"1.2.840.10008.5.1.4.1.1.88.", "structured report or key object selection (SR/KO)"},
    {"1.2.840.10008.5.1.4.1.1.11.", "presentation state (PR)"},
    {"1.2.840.10008.5.1.4.1.1.481.", "radiotherapy object (RT)"},
    {"1.2.840.10008.5.1.4.1.1.9.", "waveform"},
    {"1.2.840.10008.5.1.4.1.1.66", "segmentation, registration or fiducials object"},
    {"1.2.840.10008.5.1.4.1.1.104.", "encapsulated document"},
    {"1.2.840.10008.5.1.4.1.1.6", "ultrasound image (no volume geometry)"},
    {"1.2.840.10008.5.1.4.1.1.77.", "visible light image"},
};

/* Photometric interpretations named in reasons; anything else is not echoed. */
static const char *const colour_models[] = {
    "RGB",     "YBR_FULL", "YBR_FULL_422",  "YBR_PARTIAL_422", "YBR_PARTIAL_420",
    "YBR_ICT", "YBR_RCT",  "PALETTE COLOR", "MONOCHROME1",     "MONOCHROME2"};

/* Projection radiographs: one-slice volumes without patient geometry. */
static const char *const projection_modalities[] = {"CR", "DX", "MG", "XA", "RF", "IO", "PX"};

const char *dcm_state_name(dcm_state st) {
    static const char *const names[] = {"pending", "used", "skipped", "rejected"};
    return st <= DCM_REJECTED ? names[st] : "unknown";
}

const char *dcm_kind_name(dcm_kind k) {
    static const char *const names[] = {"original", "derived", "localizer"};
    return k <= DCM_KIND_LOCALIZER ? names[k] : "unknown";
}

vs_status dcm_scan_open(const dcm_options *opt, dcm_scan **out, vs_error *err) {
    *out = NULL;
    dcm_shim_register_codecs();
    dcm_scan *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (opt) s->opt = *opt;
    if (!s->opt.spacing_tolerance) s->opt.spacing_tolerance = 0.01;
    if (!s->opt.max_volume_voxels) s->opt.max_volume_voxels = 1ull << 31;
    *out = s;
    return VS_OK;
}

void dcm_scan_close(dcm_scan *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n_files; i++) {
        free(s->files[i].path);
        free(s->files[i].reason);
        dcm_header_free(&s->files[i].h);
    }
    free(s->files);
    for (int i = 0; i < s->n_groups; i++)
        free(s->groups[i].s);
    free(s->groups);
    free(s->vols);
    str_set_free(&s->seen_paths);
    str_set_free(&s->strings);
    free(s);
}

static file_rec *new_record(dcm_scan *s, const char *path, vs_error *err) {
    if (s->n_files == s->cap_files) {
        int64_t ncap = s->cap_files ? s->cap_files * 2 : 256;
        file_rec *nf = realloc(s->files, (size_t)ncap * sizeof *nf);
        if (!nf) {
            VS_FAIL(err, VS_ERR_NOMEM, "out of memory for file records");
            return NULL;
        }
        s->files = nf;
        s->cap_files = ncap;
    }
    file_rec *r = &s->files[s->n_files];
    memset(r, 0, sizeof *r);
    r->volume = -1;
    if (!(r->path = strdup(path))) {
        VS_FAIL(err, VS_ERR_NOMEM, "out of memory for file records");
        return NULL;
    }
    s->n_files++;
    return r;
}

/* Set a final state; `reason` may start with "PATH: " (from a vs_error), which is dropped. */
static void settle(file_rec *r, dcm_state st, const char *reason) {
    size_t n = strlen(r->path);
    if (reason && strncmp(reason, r->path, n) == 0 && strncmp(reason + n, ": ", 2) == 0)
        reason += n + 2;
    free(r->reason);
    r->reason = strdup(reason ? reason : "");
    r->state = st;
    if (st != DCM_PENDING && st != DCM_USED) dcm_header_free(&r->h);
}

static int has_component(const char *image_type, const char *word) {
    size_t n = strlen(word);
    for (const char *p = image_type; *p;) {
        const char *e = strchr(p, '\\');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static dcm_kind kind_of(const char *image_type) {
    if (has_component(image_type, "LOCALIZER")) return DCM_KIND_LOCALIZER;
    if (strncmp(image_type, "DERIVED", 7) == 0 || has_component(image_type, "SECONDARY"))
        return DCM_KIND_DERIVED;
    return DCM_KIND_ORIGINAL;
}

static int iop_valid(const double *iop) {
    double a = iop[0] * iop[0] + iop[1] * iop[1] + iop[2] * iop[2];
    double b = iop[3] * iop[3] + iop[4] * iop[4] + iop[5] * iop[5];
    double d = iop[0] * iop[3] + iop[1] * iop[4] + iop[2] * iop[5];
    return fabs(a - 1) < 1e-2 && fabs(b - 1) < 1e-2 && fabs(d) < 1e-2;
}

/* Decide skip / reject / pending for an image header; returns the reason or NULL. */
static const char *classify(file_rec *r, dcm_state *st, char *buf, size_t n) {
    dcm_header *h = &r->h;
    *st = DCM_SKIPPED;
    for (size_t i = 0; i < sizeof skip_classes / sizeof skip_classes[0]; i++)
        if (strncmp(h->sop_class, skip_classes[i].prefix, strlen(skip_classes[i].prefix)) == 0)
            return skip_classes[i].reason;
    if (!h->has_pixel_data) return "no pixel data (not an image)";
    if (h->frames_problem) {
        *st = DCM_REJECTED;
        return h->frames_problem;
    }
    if (h->samples != 1 || (strcmp(h->photometric, "MONOCHROME1") != 0 &&
                            strcmp(h->photometric, "MONOCHROME2") != 0)) {
        const char *pi = "unrecognised PhotometricInterpretation";
        for (size_t i = 0; i < sizeof colour_models / sizeof colour_models[0]; i++)
            if (strcmp(h->photometric, colour_models[i]) == 0) pi = colour_models[i];
        snprintf(buf, n, "colour image (%s, %d samples per pixel)", pi, (int)h->samples);
        return buf;
    }
    if (has_component(h->image_type, "MOSAIC")) return "Siemens MOSAIC image (not supported)";
    *st = DCM_REJECTED;
    if (h->rows < 1 || h->cols < 1) return "Rows or Columns missing or zero";
    if (h->bits_allocated != 8 && h->bits_allocated != 16 && h->bits_allocated != 32) {
        snprintf(buf, n, "BitsAllocated %d is not supported", (int)h->bits_allocated);
        return buf;
    }
    if (h->bits_stored < 1 || h->bits_stored > h->bits_allocated ||
        h->high_bit >= h->bits_allocated || h->high_bit + 1 < h->bits_stored)
        return "BitsStored / HighBit inconsistent with BitsAllocated";
    if (h->pixel_rep != 0 && h->pixel_rep != 1) return "PixelRepresentation is neither 0 nor 1";
    int geometry = 1;
    for (int32_t f = 0; f < h->frames; f++)
        if (!h->frame[f].has_ipp || !h->frame[f].has_iop) geometry = 0;
    if (h->frames > 1 && !h->enhanced) {
        *st = DCM_SKIPPED;
        return "multi-frame image without per-frame geometry (cine, NM or dose grid)";
    }
    if (!geometry) {
        int proj = 0;
        for (size_t i = 0; i < sizeof projection_modalities / sizeof projection_modalities[0]; i++)
            if (strcmp(h->modality, projection_modalities[i]) == 0) proj = 1;
        if (!proj || h->frames != 1) {
            *st = DCM_SKIPPED;
            return "no patient geometry (ImagePositionPatient/ImageOrientationPatient) and not a "
                   "projection radiograph";
        }
        r->projection = 1;
        if (h->frame[0].spacing[0] <= 0 || h->frame[0].spacing[1] <= 0)
            return "radiograph without PixelSpacing or ImagerPixelSpacing";
        return NULL;
    }
    for (int32_t f = 0; f < h->frames; f++) {
        if (!iop_valid(h->frame[f].iop))
            return "ImageOrientationPatient is not two orthogonal unit vectors";
        if (h->frame[f].spacing[0] <= 0 || h->frame[f].spacing[1] <= 0)
            return "PixelSpacing missing or not positive";
    }
    return NULL;
}

static vs_status add_file(dcm_scan *s, const char *path, vs_error *err);

typedef struct dir_ctx {
    dcm_scan *s;
    char base[PATH_MAX];
    vs_status st;
    vs_error *err;
    int n;
} dir_ctx;

static void dicomdir_add(void *p, const char *rel) {
    dir_ctx *c = p;
    if (c->st) return;
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", c->base, rel);
    struct stat st;
    if (stat(path, &st) != 0) {
        /* Media file IDs are upper case; the copy on disk may not be. */
        for (char *q = path + strlen(c->base) + 1; *q; q++)
            if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
        if (stat(path, &st) != 0) snprintf(path, sizeof path, "%s/%s", c->base, rel);
    }
    c->n++;
    c->st = add_file(c->s, path, c->err);
}

/* Keep a code string to the characters it may hold: it reaches summaries and volumes. */
static void sanitize_cs(char *p) {
    for (; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == ' '))
            *p = '?';
}

/* Point h's strings at the scan's pool; the SOP instance UID is the file's own. */
static vs_status intern_header(dcm_scan *s, dcm_header *h, dcm_header_text *t) {
    sanitize_cs(t->modality);
    sanitize_cs(t->body_part);
    h->sop_class = str_set_intern(&s->strings, t->sop_class);
    h->study_uid = str_set_intern(&s->strings, t->study_uid);
    h->series_uid = str_set_intern(&s->strings, t->series_uid);
    h->patient_id = str_set_intern(&s->strings, t->patient_id);
    h->modality = str_set_intern(&s->strings, t->modality);
    h->body_part = str_set_intern(&s->strings, t->body_part);
    h->photometric = str_set_intern(&s->strings, t->photometric);
    h->image_type = str_set_intern(&s->strings, t->image_type);
    h->sop_instance = strdup(t->sop_instance);
    if (!h->sop_class || !h->study_uid || !h->series_uid || !h->patient_id || !h->modality ||
        !h->body_part || !h->photometric || !h->image_type || !h->sop_instance)
        return VS_ERR_NOMEM;
    return VS_OK;
}

static vs_status add_file(dcm_scan *s, const char *path, vs_error *err) {
    char real[PATH_MAX];
    const char *key = realpath(path, real) ? real : path;
    int added = str_set_add(&s->seen_paths, key);
    if (added < 0) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (added == 0) return VS_OK; /* the same file reached twice (DICOMDIR and its folder) */
    file_rec *r = new_record(s, path, err);
    if (!r) return err->code;
    int64_t ri = s->n_files - 1; /* a DICOMDIR adds records, which may move the array */
    dcm_file *f = NULL;
    dcm_file_facts facts;
    vs_error e;
    if (dcm_file_load_facts(path, &s->opt.limits, &f, &facts, &e) != VS_OK) {
        if (e.code == VS_ERR_IO)
            settle(r, DCM_REJECTED, e.msg);
        else
            settle(r, facts.is_dicom ? DCM_REJECTED : DCM_SKIPPED,
                   facts.is_dicom ? e.msg : "not DICOM");
        return VS_OK;
    }
    dcm_header_text text;
    if (dcm_shim_read_header(f, &r->h, &text, &e) != VS_OK) {
        settle(r, DCM_REJECTED, e.msg);
        dcm_file_free(f);
        return VS_OK;
    }
    if (intern_header(s, &r->h, &text) != VS_OK) {
        dcm_file_free(f);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for header strings");
    }
    if (r->h.is_dicomdir) {
        dir_ctx c = {.s = s, .st = VS_OK, .err = err};
        snprintf(c.base, sizeof c.base, "%s", path);
        char *slash = strrchr(c.base, '/');
        if (slash)
            *slash = 0;
        else
            strcpy(c.base, ".");
        vs_error de;
        vs_status ds = dcm_shim_dicomdir_files(f, dicomdir_add, &c, &de);
        dcm_file_free(f);
        if (c.st) return c.st;
        char why[96];
        snprintf(why, sizeof why, "DICOMDIR (its %d referenced files were read)", c.n);
        settle(&s->files[ri], ds ? DCM_REJECTED : DCM_SKIPPED, ds ? de.msg : why);
        return VS_OK;
    }
    dcm_file_free(f);
    char buf[160];
    dcm_state st;
    const char *why = classify(r, &st, buf, sizeof buf);
    r->kind = kind_of(r->h.image_type);
    if (why) settle(r, st, why);
    return VS_OK;
}

/* A file of the walk (io/base/walk.h: the one rule every command follows). One that cannot be
 * read still goes to add_file, which rejects it by name with the reason. */
static vs_status walk_file(void *ctx, const char *path, int errno_, vs_error *err) {
    (void)errno_;
    return add_file(ctx, path, err);
}

vs_status dcm_scan_add(dcm_scan *s, const char *path, vs_error *err) {
    if (s->grouped) return VS_FAIL(err, VS_ERR_INTERNAL, "dcm_scan_add after dcm_scan_group");
    return vs_walk(&path, 1, walk_file, s, err);
}

/* ---- grouping ---- */

static int cmp_path(const void *a, const void *b) {
    return strcmp(((const file_rec *)a)->path, ((const file_rec *)b)->path);
}

static int cmp_int(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

static const file_rec *g_files; /* for qsort comparators (grouping is single-threaded) */

/* A radiograph is a volume by itself; so is a file without a SeriesInstanceUID, which cannot be
 * told apart from other series (its own frames may still form one volume). */
static int alone(const file_rec *r) { return r->projection || !r->h.series_uid[0]; }

/* The volume key of a slice: everything that must be equal inside one volume. */
static int cmp_slice_key(const void *pa, const void *pb) {
    const slice_ref *a = pa, *b = pb;
    const file_rec *fa = &g_files[a->file], *fb = &g_files[b->file];
    const dcm_header *ha = &fa->h, *hb = &fb->h;
    int c;
    if ((c = strcmp(ha->patient_id, hb->patient_id))) return c;
    if ((c = strcmp(ha->study_uid, hb->study_uid))) return c;
    if ((c = strcmp(ha->series_uid, hb->series_uid))) return c;
    if ((c = cmp_int(alone(fa), alone(fb)))) return c;
    if (alone(fa))
        return cmp_int(a->file, b->file) ? cmp_int(a->file, b->file) : cmp_int(a->frame, b->frame);
    if ((c = cmp_int(fa->kind, fb->kind))) return c;
    if ((c = strcmp(ha->image_type, hb->image_type))) return c;
    if ((c = cmp_int(ha->rows, hb->rows))) return c;
    if ((c = cmp_int(ha->cols, hb->cols))) return c;
    /* dcm2niix's default (-m 2) merges CT acquisitions; so do we. */
    if (strcmp(ha->modality, "CT") != 0 && (c = cmp_int(ha->acquisition, hb->acquisition)))
        return c;
    if ((c = cmp_int(ha->echo, hb->echo))) return c;
    if ((c = cmp_int(ha->temporal, hb->temporal))) return c;
    const dcm_frame *ra = &ha->frame[a->frame], *rb = &hb->frame[b->frame];
    if ((c = cmp_int(ra->temporal, rb->temporal))) return c;
    for (int i = 0; i < 6; i++)
        if ((c = cmp_int(llround(ra->iop[i] * 1e4), llround(rb->iop[i] * 1e4)))) return c;
    if ((c = cmp_int(llround(ra->spacing[0] * 1e4), llround(rb->spacing[0] * 1e4)))) return c;
    if ((c = cmp_int(llround(ra->spacing[1] * 1e4), llround(rb->spacing[1] * 1e4)))) return c;
    if ((c = cmp_int(a->file, b->file))) return c;
    return cmp_int(a->frame, b->frame);
}

static int same_volume(const slice_ref *a, const slice_ref *b) {
    /* The fields of cmp_slice_key, without its final file/frame tie-breakers. */
    const file_rec *fa = &g_files[a->file], *fb = &g_files[b->file];
    if (alone(fa) || alone(fb)) return a->file == b->file && !fa->projection;
    const dcm_header *ha = &fa->h, *hb = &fb->h;
    if (strcmp(ha->patient_id, hb->patient_id) || strcmp(ha->study_uid, hb->study_uid) ||
        strcmp(ha->series_uid, hb->series_uid) || fa->kind != fb->kind ||
        strcmp(ha->image_type, hb->image_type) || ha->rows != hb->rows || ha->cols != hb->cols ||
        (strcmp(ha->modality, "CT") != 0 && ha->acquisition != hb->acquisition) ||
        ha->echo != hb->echo || ha->temporal != hb->temporal)
        return 0;
    const dcm_frame *ra = &ha->frame[a->frame], *rb = &hb->frame[b->frame];
    if (ra->temporal != rb->temporal) return 0;
    for (int i = 0; i < 6; i++)
        if (llround(ra->iop[i] * 1e4) != llround(rb->iop[i] * 1e4)) return 0;
    for (int i = 0; i < 2; i++)
        if (llround(ra->spacing[i] * 1e4) != llround(rb->spacing[i] * 1e4)) return 0;
    return 1;
}

static int cmp_group(const void *pa, const void *pb) {
    return cmp_int(((const group *)pa)->first_file, ((const group *)pb)->first_file);
}

/* Later copies of one SOP instance (same UID in another file) are skipped; the first path in
 * byte order wins, so the choice does not depend on the order files were given. */
static vs_status skip_duplicate_instances(dcm_scan *s, vs_error *err) {
    str_set uids = {0};
    for (int64_t i = 0; i < s->n_files; i++) {
        file_rec *r = &s->files[i];
        if (r->state != DCM_PENDING || !r->h.sop_instance || !r->h.sop_instance[0]) continue;
        int added = str_set_add(&uids, r->h.sop_instance);
        if (added < 0) {
            str_set_free(&uids);
            return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        }
        if (added == 0)
            settle(r, DCM_SKIPPED, "duplicate SOP instance (the same image is in an earlier file)");
    }
    str_set_free(&uids);
    for (int64_t i = 0; i < s->n_files; i++) { /* not needed any more */
        free(s->files[i].h.sop_instance);
        s->files[i].h.sop_instance = NULL;
    }
    return VS_OK;
}

vs_status dcm_scan_group(dcm_scan *s, vs_error *err) {
    if (s->grouped) return VS_OK;
    s->grouped = 1;
    qsort(s->files, (size_t)s->n_files, sizeof *s->files, cmp_path);
    vs_status st = skip_duplicate_instances(s, err);
    if (st) return st;
    size_t n_slices = 0;
    for (int64_t i = 0; i < s->n_files; i++)
        if (s->files[i].state == DCM_PENDING) n_slices += (size_t)s->files[i].h.frames;
    if (n_slices == 0) return VS_OK;
    slice_ref *all = malloc(n_slices * sizeof *all);
    if (!all) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %zu slices", n_slices);
    size_t k = 0;
    for (int64_t i = 0; i < s->n_files; i++) {
        if (s->files[i].state != DCM_PENDING) continue;
        for (int32_t f = 0; f < s->files[i].h.frames; f++)
            all[k++] = (slice_ref){(int32_t)i, f};
    }
    g_files = s->files;
    qsort(all, n_slices, sizeof *all, cmp_slice_key);
    size_t n_groups = 0;
    for (size_t i = 0; i < n_slices; i++)
        if (i == 0 || !same_volume(&all[i - 1], &all[i])) n_groups++;
    s->groups = calloc(n_groups, sizeof *s->groups);
    if (!s->groups) {
        free(all);
        return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %zu groups", n_groups);
    }
    for (size_t i = 0, g = 0; i < n_slices;) {
        size_t j = i + 1;
        while (j < n_slices && same_volume(&all[j - 1], &all[j]))
            j++;
        group *gr = &s->groups[g++];
        gr->n = (int32_t)(j - i);
        gr->s = malloc((size_t)gr->n * sizeof *gr->s);
        if (!gr->s) {
            s->n_groups = (int)g;
            free(all);
            return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for a group");
        }
        memcpy(gr->s, all + i, (size_t)gr->n * sizeof *gr->s);
        gr->first_file = gr->s[0].file;
        for (int32_t m = 0; m < gr->n; m++)
            if (gr->s[m].file < gr->first_file) gr->first_file = gr->s[m].file;
        i = j;
    }
    s->n_groups = (int)n_groups;
    free(all);
    qsort(s->groups, n_groups, sizeof *s->groups, cmp_group);
    return VS_OK;
}

int dcm_scan_n_groups(const dcm_scan *s) { return s->n_groups; }

/* ---- the iterator ---- */

void dcm_scan_set_known(dcm_scan *s, int (*known)(void *ctx, const char *const *paths, int n),
                        void *ctx) {
    s->known = known;
    s->known_ctx = ctx;
}

int dcm_scan_n_known(const dcm_scan *s) { return s->n_known; }

/* Whether the caller already holds group g (dcm_scan_set_known); no file is settled. */
static int group_known(dcm_scan *s, const group *g) {
    const char **paths = malloc(sizeof *paths * (size_t)(g->n ? g->n : 1));
    if (!paths) return 0; /* assemble it instead: correct, only slower */
    for (int32_t i = 0; i < g->n; i++)
        paths[i] = s->files[g->s[i].file].path;
    int known = s->known(s->known_ctx, paths, g->n);
    free(paths);
    return known;
}

int dcm_scan_take(dcm_scan *s, int *known) {
    *known = 0;
    if (!s->grouped || s->next_group >= s->n_groups) return -1;
    int g = s->next_group++;
    *known = s->known && group_known(s, &s->groups[g]);
    return g;
}

vs_status dcm_scan_assemble(dcm_scan *s, int g, int index, dcm_series **out, dcm_assembly *a,
                            vs_error *err) {
    *out = NULL;
    memset(a, 0, sizeof *a);
    if (g < 0 || g >= s->n_groups)
        return VS_FAIL(err, VS_ERR_INTERNAL, "no group %d in a scan of %d", g, s->n_groups);
    group *gr = &s->groups[g];
    dcm_series *v = NULL;
    vs_error e;
    vs_status st = dcm_assemble(&s->opt, s->files, gr, index, &v, &e);
    if (st == VS_ERR_FORMAT || st == VS_ERR_NOMEM) {
        a->outcome = DCM_GROUP_REJECTED;
        snprintf(a->reason, sizeof a->reason, "%s", e.msg);
        log_warn("volume of %d slices rejected: %s", (int)gr->n, e.msg);
        return VS_OK;
    }
    if (st) {
        *err = e;
        return st;
    }
    a->outcome = DCM_GROUP_ASSEMBLED;
    a->kind = v->kind;
    snprintf(a->modality, sizeof a->modality, "%s", v->vol.modality);
    a->dtype = v->vol.dtype;
    a->shape[0] = v->vol.n_slices;
    a->shape[1] = v->vol.n_rows;
    a->shape[2] = v->vol.n_cols;
    memcpy(a->spacing, v->vol.spacing, sizeof a->spacing);
    memcpy(a->origin, v->vol.origin, sizeof a->origin);
    memcpy(a->direction, v->vol.direction, sizeof a->direction);
    a->n_files = v->n_files;
    a->resampled = v->resampled;
    *out = v;
    return VS_OK;
}

vs_status dcm_scan_settle(dcm_scan *s, int g, const dcm_assembly *a, int *index, vs_error *err) {
    *index = -1;
    if (g < 0 || g >= s->n_groups)
        return VS_FAIL(err, VS_ERR_INTERNAL, "no group %d in a scan of %d", g, s->n_groups);
    const group *gr = &s->groups[g];
    dcm_state st = a->outcome == DCM_GROUP_KNOWN      ? DCM_SKIPPED
                   : a->outcome == DCM_GROUP_REJECTED ? DCM_REJECTED
                                                      : DCM_USED;
    const char *reason = a->outcome == DCM_GROUP_KNOWN      ? "unchanged since an earlier run"
                         : a->outcome == DCM_GROUP_REJECTED ? a->reason
                                                            : "";
    if (st == DCM_USED) { /* the volume's account, then its number */
        vol_info *nv = realloc(s->vols, (size_t)(s->n_vols + 1) * sizeof *nv);
        if (!nv) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        s->vols = nv;
        vol_info *i = &s->vols[s->n_vols];
        memset(i, 0, sizeof *i);
        i->index = *index = s->n_vols++;
        i->kind = a->kind;
        snprintf(i->modality, sizeof i->modality, "%s", a->modality);
        snprintf(i->dtype, sizeof i->dtype, "%s", vol_dtype_name(a->dtype));
        memcpy(i->shape, a->shape, sizeof i->shape);
        memcpy(i->spacing, a->spacing, sizeof i->spacing);
        memcpy(i->origin, a->origin, sizeof i->origin);
        memcpy(i->direction, a->direction, sizeof i->direction);
        i->n_files = a->n_files;
        i->resampled = a->resampled;
    }
    for (int32_t i = 0; i < gr->n; i++) {
        file_rec *r = &s->files[gr->s[i].file];
        if (r->state != DCM_PENDING) continue;
        settle(r, st, reason);
        if (st == DCM_USED) r->volume = *index;
    }
    if (a->outcome == DCM_GROUP_KNOWN) s->n_known++;
    return VS_OK;
}

uint64_t dcm_scan_digest(const dcm_scan *s) {
    uint64_t h = 1469598103934665603ULL;
#define MIX(p, n)                                                                                  \
    for (size_t k_ = 0; k_ < (size_t)(n); k_++)                                                    \
        h = (h ^ ((const unsigned char *)(p))[k_]) * 1099511628211ULL;
    MIX(&s->n_files, sizeof s->n_files);
    for (int64_t i = 0; i < s->n_files; i++) {
        MIX(s->files[i].path, strlen(s->files[i].path) + 1);
        MIX(&s->files[i].state, sizeof s->files[i].state);
    }
    MIX(&s->n_groups, sizeof s->n_groups);
    for (int g = 0; g < s->n_groups; g++) {
        MIX(&s->groups[g].n, sizeof s->groups[g].n);
        for (int32_t i = 0; i < s->groups[g].n; i++)
            MIX(&s->groups[g].s[i], sizeof s->groups[g].s[i]);
    }
#undef MIX
    return h;
}

/* One volume: take, assemble and settle, the steps a writer and its workers share (dicom.h). */
vs_status dcm_scan_next(dcm_scan *s, dcm_series **out, vs_error *err) {
    *out = NULL;
    if (!s->grouped) {
        vs_status st = dcm_scan_group(s, err);
        if (st) return st;
    }
    for (;;) {
        int known = 0, index = -1;
        int g = dcm_scan_take(s, &known);
        if (g < 0) return VS_OK;
        dcm_assembly a;
        dcm_series *v = NULL;
        vs_status st = VS_OK;
        if (known) {
            memset(&a, 0, sizeof a);
            a.outcome = DCM_GROUP_KNOWN;
        } else {
            st = dcm_scan_assemble(s, g, s->n_vols, &v, &a, err);
        }
        if (st == VS_OK) st = dcm_scan_settle(s, g, &a, &index, err);
        if (st != VS_OK) {
            dcm_series_free(v);
            return st;
        }
        if (v) {
            *out = v;
            return VS_OK;
        }
    }
}

const volume *dcm_series_volume(const dcm_series *v) { return &v->vol; }
volume *dcm_series_volume_mut(dcm_series *v) { return &v->vol; }
int dcm_series_n_files(const dcm_series *v) { return v->n_files; }
dcm_file *dcm_series_file(dcm_series *v, int i) { return v->files[i]; }
dcm_kind dcm_series_kind(const dcm_series *v) { return v->kind; }
int dcm_series_index(const dcm_series *v) { return v->index; }
int dcm_series_resampled(const dcm_series *v) { return v->resampled; }
const char *dcm_series_uid(const dcm_series *v) { return v->series_uid; }

void dcm_series_free(dcm_series *v) {
    if (!v) return;
    for (int i = 0; i < v->n_files; i++)
        dcm_file_free(v->files[i]);
    free(v->files);
    volume_free(&v->vol);
    free(v);
}

/* ---- accounting ---- */

void dcm_scan_counts(const dcm_scan *s, dcm_counts *c) {
    memset(c, 0, sizeof *c);
    c->files = s->n_files;
    for (int64_t i = 0; i < s->n_files; i++) {
        switch (s->files[i].state) {
        case DCM_USED: c->used++; break;
        case DCM_SKIPPED: c->skipped++; break;
        case DCM_REJECTED: c->rejected++; break;
        case DCM_PENDING: c->pending++; break;
        }
    }
    c->volumes = s->n_vols;
}

int64_t dcm_scan_n_files(const dcm_scan *s) { return s->n_files; }
const char *dcm_scan_file_path(const dcm_scan *s, int64_t i) { return s->files[i].path; }
dcm_state dcm_scan_file_state(const dcm_scan *s, int64_t i) { return s->files[i].state; }
const char *dcm_scan_file_reason(const dcm_scan *s, int64_t i) {
    return s->files[i].reason ? s->files[i].reason : "";
}
int dcm_scan_file_volume(const dcm_scan *s, int64_t i) { return s->files[i].volume; }

static void json_vec(FILE *f, const double *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.17g", i ? "," : "", v[i]);
    fputc(']', f);
}

/* A path as a JSON string: file names are bytes, JSON is UTF-8, so bytes that do not form
 * valid UTF-8 are written as U+FFFD instead of making the summary unreadable. */
static void json_path(FILE *f, const char *path) {
    char buf[4096 * 3 + 1];
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)path;
    while (*p && o + 4 < sizeof buf) {
        int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        int ok = n > 0;
        for (int k = 1; ok && k < n; k++)
            ok = (p[k] >> 6) == 2;
        if (!ok) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
            continue;
        }
        memcpy(buf + o, p, (size_t)n);
        o += (size_t)n;
        p += n;
    }
    buf[o] = 0;
    log_json_string(f, buf);
}

static void write_file_list(const dcm_scan *s, FILE *f, dcm_state st) {
    int first = 1;
    fputc('[', f);
    for (int64_t i = 0; i < s->n_files; i++) {
        const file_rec *r = &s->files[i];
        if (r->state != st) continue;
        fputs(first ? "\n  {\"path\":" : ",\n  {\"path\":", f);
        first = 0;
        json_path(f, r->path);
        if (st == DCM_USED)
            fprintf(f, ",\"volume\":%d}", r->volume);
        else {
            fputs(",\"reason\":", f);
            log_json_string(f, r->reason ? r->reason : "");
            fputc('}', f);
        }
    }
    fputs(first ? "]" : "\n ]", f);
}

vs_status dcm_scan_write_summary(const dcm_scan *s, FILE *f, vs_error *err) {
    dcm_counts c;
    dcm_scan_counts(s, &c);
    fprintf(f,
            "{\"schema\":\"vesalius.dicom-summary/1\",\"files\":%lld,\"used\":%lld,"
            "\"skipped\":%lld,\"rejected\":%lld,\"pending\":%lld,\"volumes\":%lld,\n"
            " \"volume_list\":[",
            (long long)c.files, (long long)c.used, (long long)c.skipped, (long long)c.rejected,
            (long long)c.pending, (long long)c.volumes);
    for (int i = 0; i < s->n_vols; i++) {
        const vol_info *v = &s->vols[i];
        fprintf(f, "%s\n  {\"index\":%d,\"kind\":\"%s\",\"modality\":", i ? "," : "", v->index,
                dcm_kind_name(v->kind));
        log_json_string(f, v->modality);
        fprintf(f, ",\"dtype\":\"%s\",\"shape\":[%lld,%lld,%lld],\"spacing\":", v->dtype,
                (long long)v->shape[0], (long long)v->shape[1], (long long)v->shape[2]);
        json_vec(f, v->spacing, 3);
        fputs(",\"origin\":", f);
        json_vec(f, v->origin, 3);
        fputs(",\"direction\":", f);
        json_vec(f, v->direction, 9);
        fprintf(f, ",\"files\":%d,\"resampled\":%s}", v->n_files, v->resampled ? "true" : "false");
    }
    fputs(s->n_vols ? "\n ],\n \"used_files\":" : "],\n \"used_files\":", f);
    write_file_list(s, f, DCM_USED);
    fputs(",\n \"skipped_files\":", f);
    write_file_list(s, f, DCM_SKIPPED);
    fputs(",\n \"rejected_files\":", f);
    write_file_list(s, f, DCM_REJECTED);
    fputs("}\n", f);
    if (ferror(f)) return VS_FAIL(err, VS_ERR_IO, "cannot write the run summary");
    return VS_OK;
}
