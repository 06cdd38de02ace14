/* deid_shard.c — verify-deid on an HDF5 shard: every object name, every attribute name and
 * string value, and every string in any dataset (the per-shard index), checked against the
 * listed identifiers, for UIDs of an organisation's root (io/deid/deid_scan.c invariant 2), and
 * against shard schema version 1 (io/shard/SHARD_SCHEMA.md); then the raw bytes of the file.
 *
 * Invariants:
 *   1. The walk is over what the FILE holds (H5Lvisit over every link, H5Aiterate over every
 *      attribute), not over what the index says it holds: a dataset the index does not list is
 *      scanned, and flagged.
 *   2. Any object, attribute or index field whose name the schema does not define is a hit, so
 *      a future field that may carry patient data is flagged until this table learns it.
 *   3. A UID of an organisation's root passes only in `series_instance_uid` of a volume in a
 *      shard whose creation_parameters record the Retain UIDs option (and, for the raw-byte
 *      scan, only those values).
 *   4. Names that are not clean are never printed: such an object is named by its position
 *      ("/volumes/[#3]"), such an attribute by its number.
 */
#include "deid_internal.h"
#include "shard_h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum obj_kind { OBJ_ROOT, OBJ_VOLUMES, OBJ_VOLUME, OBJ_INDEX, OBJ_OTHER } obj_kind;

/* Attributes of schema version 1, per object. */
static const struct {
    obj_kind kind;
    const char *name;
} schema_attrs[] = {
    {OBJ_ROOT, "format"},
    {OBJ_ROOT, "schema_version"},
    {OBJ_ROOT, "vesalius_version"},
    {OBJ_ROOT, "sequence"},
    {OBJ_ROOT, "n_volumes"},
    {OBJ_ROOT, "creation_parameters"},
    {OBJ_VOLUME, "spacing"},
    {OBJ_VOLUME, "origin"},
    {OBJ_VOLUME, "direction"},
    {OBJ_VOLUME, "affine"},
    {OBJ_VOLUME, "modality"},
    {OBJ_VOLUME, "body_part"},
    {OBJ_VOLUME, "units"},
    {OBJ_VOLUME, "preprocessing"},
    {OBJ_VOLUME, "patient_key"},
    {OBJ_VOLUME, "study_key"},
    {OBJ_VOLUME, "series_key"},
    {OBJ_VOLUME, "checksum"},
    {OBJ_VOLUME, "series_instance_uid"}, /* only with Retain UIDs (invariant 3) */
};

static const char *const index_fields[] = {"key",   "modality",    "body_part", "dtype",
                                           "shape", "first_voxel", "checksum",  "spacing"};

#define MAX_RETAINED 4096

typedef struct h5scan {
    const char *path;
    const deid_phi *phi;
    deid_hit_fn fn;
    void *user;
    int hits;
    int retain_uids; /* creation_parameters record the Retain UIDs option */
    int n_objects;   /* links visited so far (names unclean objects) */
    char **retained; /* series_instance_uid values (for the raw-byte scan) */
    int n_retained;
    vs_status st;
    vs_error *err;
} h5scan;

static void hit(h5scan *s, const char *where, const char *what) {
    deid_report(s->path, where, what, s->fn, s->user, &s->hits);
}

static int scan_text(h5scan *s, const char *where, const char *v, size_t n, int uid_retained) {
    const char *allowed[1] = {NULL};
    char *copy = NULL;
    if (uid_retained && (copy = strndup(v, n))) allowed[0] = copy;
    int found = deid_scan_string(s->path, where, v, n, s->phi, allowed, allowed[0] ? 1 : 0, s->fn,
                                 s->user, &s->hits);
    if (copy && !found && s->n_retained < MAX_RETAINED) {
        char **r = realloc(s->retained, (size_t)(s->n_retained + 1) * sizeof *r);
        if (r) {
            s->retained = r;
            s->retained[s->n_retained++] = copy;
            copy = NULL;
        }
    }
    free(copy);
    return found;
}

static int attr_in_schema(obj_kind kind, const char *name, int retain_uids) {
    for (size_t i = 0; i < sizeof schema_attrs / sizeof schema_attrs[0]; i++)
        if (schema_attrs[i].kind == kind && strcmp(schema_attrs[i].name, name) == 0)
            return strcmp(name, "series_instance_uid") != 0 || retain_uids;
    return 0;
}

static int field_in_index(const char *name) {
    for (size_t i = 0; i < sizeof index_fields / sizeof index_fields[0]; i++)
        if (strcmp(index_fields[i], name) == 0) return 1;
    return 0;
}

/* Every string of an attribute (is_attr) or dataset obj whose elements are of string type st,
 * or (member != NULL) hold st as the compound member `member`: read and scanned. */
static int scan_strings(h5scan *s, hid_t obj, int is_attr, hid_t st, const char *member,
                        const char *label, int uid_retained) {
    int rc = -1;
    hid_t space = is_attr ? H5Aget_space(obj) : H5Dget_space(obj), mem = -1, wrap = -1;
    char *buf = NULL;
    if (space < 0) return -1;
    hssize_t n = H5Sget_simple_extent_npoints(space);
    htri_t vlen = H5Tis_variable_str(st);
    size_t size = vlen > 0 ? sizeof(char *) : H5Tget_size(st);
    if (n < 0 || vlen < 0 || size == 0 || (uint64_t)n * size > (1u << 30)) goto done;
    if (n == 0) {
        rc = 0;
        goto done;
    }
    if ((mem = H5Tcopy(st)) < 0) goto done;
    if (member &&
        ((wrap = H5Tcreate(H5T_COMPOUND, size)) < 0 || H5Tinsert(wrap, member, 0, mem) < 0))
        goto done;
    hid_t t = member ? wrap : mem;
    if (!(buf = calloc((size_t)n, size))) goto done;
    if ((is_attr ? H5Aread(obj, t, buf) : H5Dread(obj, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)) < 0)
        goto done;
    for (hssize_t i = 0; i < n; i++) {
        const char *p = vlen > 0 ? ((char **)buf)[i] : buf + (size_t)i * size;
        size_t len = !p ? 0 : vlen > 0 ? strlen(p) : strnlen(p, size);
        char where[96];
        if (member)
            snprintf(where, sizeof where, "%s[%lld].%s", label, (long long)i, member);
        else if (n > 1)
            snprintf(where, sizeof where, "%s[%lld]", label, (long long)i);
        else
            snprintf(where, sizeof where, "%s", label);
        if (p) scan_text(s, where, p, len, uid_retained);
    }
    if (vlen > 0) H5Dvlen_reclaim(t, space, H5P_DEFAULT, buf);
    rc = 0;
done:
    free(buf);
    if (wrap >= 0) H5Tclose(wrap);
    if (mem >= 0) H5Tclose(mem);
    H5Sclose(space);
    return rc;
}

typedef struct attr_walk {
    h5scan *s;
    obj_kind kind;
    const char *label; /* the object's printable name */
    int k;             /* attributes seen */
} attr_walk;

static herr_t scan_attr(hid_t obj, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    attr_walk *w = data;
    h5scan *s = w->s;
    char where[96];
    int k = w->k++;
    /* the name itself: schema-defined names are clean by construction */
    int in_schema = attr_in_schema(w->kind, name, s->retain_uids);
    if (in_schema) {
        snprintf(where, sizeof where, "%s @%s", w->label, name);
    } else {
        snprintf(where, sizeof where, "%s attribute #%d", w->label, k);
        char named[96];
        snprintf(named, sizeof named, "%s (its name)", where);
        scan_text(s, named, name, strlen(name), 0);
        hit(s, where, "attribute the shard schema does not define");
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = -1;
    if (a < 0) {
        hit(s, where, "attribute that cannot be read (not scanned)");
        return 0;
    }
    if ((t = H5Aget_type(a)) >= 0 && H5Tget_class(t) == H5T_STRING) {
        int retained = in_schema && w->kind == OBJ_VOLUME && !strcmp(name, "series_instance_uid");
        if (scan_strings(s, a, 1, t, NULL, where, retained) < 0)
            hit(s, where, "string attribute that cannot be read (not scanned)");
        if (w->kind == OBJ_ROOT && !strcmp(name, "creation_parameters")) {
            char params[8192];
            if (shard_h5_read_attr_string(obj, name, params, sizeof params) == 0)
                s->retain_uids = strstr(params, "\"retain_uids\":true") != NULL;
        }
    }
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return 0;
}

static vs_status scan_attrs(h5scan *s, hid_t obj, obj_kind kind, const char *label) {
    attr_walk w = {s, kind, label, 0};
    hsize_t idx = 0;
    if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, scan_attr, &w) < 0)
        return shard_h5_fail(s->err, s->path, "cannot read attributes");
    return VS_OK;
}

/* The strings of a dataset: string elements, or the string members of a compound (the index,
 * whose member names must be the schema's). */
static void scan_dataset(h5scan *s, hid_t d, obj_kind kind, const char *label) {
    hid_t t = H5Dget_type(d);
    if (t < 0) {
        hit(s, label, "dataset whose type cannot be read (not scanned)");
        return;
    }
    H5T_class_t cls = H5Tget_class(t);
    if (cls == H5T_STRING && scan_strings(s, d, 0, t, NULL, label, 0) < 0)
        hit(s, label, "strings that cannot be read (not scanned)");
    int n = cls == H5T_COMPOUND ? H5Tget_nmembers(t) : 0;
    for (int m = 0; m < n; m++) {
        char *name = H5Tget_member_name(t, (unsigned)m);
        hid_t mt = H5Tget_member_type(t, (unsigned)m);
        char where[96];
        if (!name || mt < 0) {
            snprintf(where, sizeof where, "%s field #%d", label, m);
            hit(s, where, "field that cannot be read (not scanned)");
        } else if (kind != OBJ_INDEX || !field_in_index(name)) {
            snprintf(where, sizeof where, "%s field #%d", label, m);
            char named[96];
            snprintf(named, sizeof named, "%s (its name)", where);
            scan_text(s, named, name, strlen(name), 0);
            hit(s, where, "index field the shard schema does not define");
        }
        if (name && mt >= 0 && H5Tget_class(mt) == H5T_STRING &&
            scan_strings(s, d, 0, mt, name, label, 0) < 0) {
            snprintf(where, sizeof where, "%s field #%d", label, m);
            hit(s, where, "strings that cannot be read (not scanned)");
        }
        if (mt >= 0) H5Tclose(mt);
        if (name) H5free_memory(name);
    }
    H5Tclose(t);
}

/* The kind of the object at path (relative to the root) and its printable name. */
static obj_kind classify(h5scan *s, const char *path, H5I_type_t type, char *label, size_t cap) {
    const char *key = strncmp(path, "volumes/", 8) == 0 ? path + 8 : NULL;
    if (!strcmp(path, "volumes") && type == H5I_GROUP) {
        snprintf(label, cap, "/volumes");
        return OBJ_VOLUMES;
    }
    if (!strcmp(path, "index") && type == H5I_DATASET) {
        snprintf(label, cap, "/index");
        return OBJ_INDEX;
    }
    size_t at = 0;
    int clean = key && shard_key_valid(key) && !deid_phi_find(s->phi, key, strlen(key), &at);
    size_t pos = 0, len = 0;
    if (clean && deid_find_org_uid(key, strlen(key), &pos, &len)) clean = 0;
    if (clean && type == H5I_DATASET) {
        snprintf(label, cap, "/volumes/%s", key);
        return OBJ_VOLUME;
    }
    snprintf(label, cap, "object #%d", s->n_objects);
    if (key && type == H5I_DATASET && shard_key_valid(key)) return OBJ_VOLUME;
    return OBJ_OTHER;
}

static herr_t visit_link(hid_t root, const char *path, const H5L_info_t *info, void *data) {
    h5scan *s = data;
    char label[96], where[128];
    s->n_objects++;
    if (info->type != H5L_TYPE_HARD) {
        snprintf(label, sizeof label, "object #%d", s->n_objects);
        snprintf(where, sizeof where, "%s (its name)", label);
        scan_text(s, where, path, strlen(path), 0);
        hit(s, label, "link the shard schema does not define");
        return 0;
    }
    hid_t o = H5Oopen(root, path, H5P_DEFAULT);
    if (o < 0) {
        snprintf(label, sizeof label, "object #%d", s->n_objects);
        hit(s, label, "object that cannot be opened (not scanned)");
        return 0;
    }
    H5I_type_t type = H5Iget_type(o);
    obj_kind kind = classify(s, path, type, label, sizeof label);
    snprintf(where, sizeof where, "%s (its name)", label);
    scan_text(s, where, path, strlen(path), 0);
    if (kind == OBJ_OTHER) hit(s, label, "object the shard schema does not define");
    s->st = scan_attrs(s, o, kind, label);
    if (s->st == VS_OK && type == H5I_DATASET) scan_dataset(s, o, kind, label);
    H5Oclose(o);
    return s->st == VS_OK ? 0 : -1;
}

vs_status deid_verify_shard(const char *path, const deid_phi *phi, deid_hit_fn fn, void *user,
                            int *n_hits, vs_error *err) {
    shard_h5_quiet();
    h5scan s = {path, phi, fn, user, 0, 0, 0, NULL, 0, VS_OK, err};
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return shard_h5_fail(err, path, "not a readable HDF5 file");
    char format[64];
    if (shard_h5_read_attr_string(f, "format", format, sizeof format) < 0 ||
        strcmp(format, "vesalius-shard") != 0)
        hit(&s, "/", "HDF5 file that is not a vesalius shard");
    vs_status st = scan_attrs(&s, f, OBJ_ROOT, "/");
    if (st == VS_OK && H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit_link, &s) < 0)
        st = s.st != VS_OK ? s.st : shard_h5_fail(err, path, "cannot walk the file");
    H5Fclose(f);
    if (st == VS_OK)
        st = deid_scan_raw(path, phi, (const char *const *)s.retained, s.n_retained, fn, user,
                           &s.hits, err);
    for (int i = 0; i < s.n_retained; i++)
        free(s.retained[i]);
    free(s.retained);
    *n_hits += s.hits;
    return st;
}
