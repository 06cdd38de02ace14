/* test_labels — label import (studies/labels.h): a lesion planted at a known LPS position in
 * an oblique, non-isotropic series is found at the right voxel (geometry written out here,
 * independently of io/base/volume.c); original UIDs become keyed pseudonyms and never appear in
 * messages; volume labels; masks in NIfTI, NRRD and MetaImage resampled by nearest neighbour
 * keep their labels and give one lesion per region. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "itk_shim.h"
#include "labels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UID1 "1.2.840.99.7.1"
#define UID2 "1.2.840.99.7.2"

static char g_dir[64];
static deid_ctx *g_key;

/* The oblique series: 30 degrees about S-I, slices tilted; spacing 0.7 x 0.9 x 2.5 mm. */
static const double SP[3] = {0.7, 0.9, 2.5}, ORG[3] = {-120.0, 40.5, -300.25};
static double DIR[9];

/* LPS of continuous index (i, j, k), written out: origin + sum_c idx_c spacing_c column_c. */
static void lps_of(const double ijk[3], double out[3]) {
    for (int r = 0; r < 3; r++) {
        out[r] = ORG[r];
        for (int c = 0; c < 3; c++)
            out[r] += ijk[c] * SP[c] * DIR[r * 3 + c];
    }
}

static void make_series(volume *v) {
    double a = 30.0 * M_PI / 180.0;
    double d[9] = {cos(a), -sin(a), 0.0, sin(a), cos(a), 0.25, 0.0, 0.0, 0.97};
    memcpy(DIR, d, sizeof d);
    vs_error err;
    memset(v, 0, sizeof *v);
    assert_int_equal(volume_alloc(v, 20, 40, 36, VOL_FLOAT32, 0, &err), VS_OK);
    memcpy(v->spacing, SP, sizeof SP), memcpy(v->origin, ORG, sizeof ORG),
        memcpy(v->direction, DIR, sizeof DIR);
    volume_update_affine(v);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/vs_labels_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    char key[128];
    snprintf(key, sizeof key, "%s/site.key", g_dir);
    deid_options o;
    memset(&o, 0, sizeof o);
    vs_error err;
    return deid_open(&o, key, &g_key, &err) == VS_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    deid_close(g_key);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_points_oblique(void **state) {
    (void)state;
    volume v;
    make_series(&v);
    /* plant a blob at index (12.1, 21.1, 7.05): the nearest voxel is (12, 21, 7) */
    double ijk0[3] = {12.1, 21.1, 7.05}, c[3];
    lps_of(ijk0, c);
    float *vx = v.voxels;
    for (int k = 0; k < 20; k++)
        for (int j = 0; j < 40; j++)
            for (int i = 0; i < 36; i++) {
                double p[3], ijk[3] = {i, j, k}, d2 = 0;
                lps_of(ijk, p);
                for (int a = 0; a < 3; a++)
                    d2 += (p[a] - c[a]) * (p[a] - c[a]);
                vx[((size_t)k * 40 + j) * 36 + i] = (float)exp(-d2 / (2.0 * 3.0 * 3.0));
            }
    char csv[128], text[512];
    snprintf(csv, sizeof csv, "%s/annotations.csv", g_dir);
    snprintf(text, sizeof text,
             "seriesuid,coordX,coordY,coordZ,diameter_mm\n%s,%.9f,%.9f,%.9f,8.0\n", UID1, c[0],
             c[1], c[2]);
    write_file(csv, text);
    label_set ls = {0};
    vs_error err;
    assert_int_equal(labels_read_points(&ls, csv, g_key, &err), VS_OK);
    assert_int_equal(ls.n, 1);
    char want[DEID_KEY_MAX];
    deid_uid_key(g_key, UID1, want);
    assert_string_equal(ls.s[0].key, want);
    assert_null(strstr(ls.s[0].key, UID1));
    assert_int_equal(strncmp(ls.s[0].key, "2.25.", 5), 0);
    assert_int_equal(labels_volume_label(&ls.s[0]), 1);
    double zyx[3];
    assert_int_equal(labels_lesion_zyx(&v, &ls.s[0].lesions[0], zyx, &err), VS_OK);
    assert_float_equal(zyx[0], 7.05, 1e-6), assert_float_equal(zyx[1], 21.1, 1e-6),
        assert_float_equal(zyx[2], 12.1, 1e-6);
    size_t best = 0;
    for (size_t i = 1; i < volume_n_voxels(&v); i++)
        if (vx[i] > vx[best]) best = i;
    assert_int_equal(best, ((size_t)lround(zyx[0]) * 40 + (size_t)lround(zyx[1])) * 36 +
                               (size_t)lround(zyx[2]));
    labels_free(&ls);

    /* malformed lines are named by file and line, never quoting the UID */
    snprintf(text, sizeof text,
             "seriesuid,coordX,coordY,coordZ,diameter_mm\n%s,1,2,3,4\n%s,1,abc,3,4\n", UID1, UID2);
    write_file(csv, text);
    assert_int_equal(labels_read_points(&ls, csv, g_key, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, ":3:"));
    assert_null(strstr(err.msg, UID2));
    labels_free(&ls);
    /* without the site key an original UID with spaces is refused, unquoted */
    write_file(csv, "series,x,y,z,diameter\nJohn Smith 1.2,1,2,3,4\n");
    assert_int_equal(labels_read_points(&ls, csv, NULL, &err), VS_ERR_FORMAT);
    assert_null(strstr(err.msg, "Smith"));
    labels_free(&ls);
    volume_free(&v);
}

static void test_volume_labels(void **state) {
    (void)state;
    char csv[128];
    snprintf(csv, sizeof csv, "%s/volumes.csv", g_dir);
    write_file(csv, "seriesuid,label\n" UID1 ",1\n" UID2 ",0\n\n");
    label_set ls = {0};
    vs_error err;
    assert_int_equal(labels_read_volume(&ls, csv, g_key, &err), VS_OK);
    assert_int_equal(ls.n, 2);
    char k2[DEID_KEY_MAX];
    deid_uid_key(g_key, UID2, k2);
    label_series *s = labels_find(&ls, k2);
    assert_non_null(s);
    assert_int_equal(labels_volume_label(s), 0);
    labels_free(&ls);
    write_file(csv, "seriesuid,label\n" UID1 ",2\n");
    assert_int_equal(labels_read_volume(&ls, csv, g_key, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, ":2:"));
    labels_free(&ls);
}

static void test_masks(void **state) {
    (void)state;
    volume ref;
    make_series(&ref);
    double ijk0[3] = {18.0, 20.0, 10.0}, p1[3], p2[3];
    lps_of(ijk0, p1);
    double shift[3] = {9.0, -7.0, 6.0};
    for (int a = 0; a < 3; a++)
        p2[a] = p1[a] + shift[a];
    /* the mask on its own axis-aligned 0.8 mm grid: a sphere (label 1, r 5 mm) at p1 and a cube
     * (label 2, half-edge 3.5 mm) at p2 */
    volume m;
    memset(&m, 0, sizeof m);
    vs_error err;
    assert_int_equal(volume_alloc(&m, 50, 60, 60, VOL_UINT8, 0, &err), VS_OK);
    double id[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    memcpy(m.direction, id, sizeof id);
    for (int a = 0; a < 3; a++)
        m.spacing[a] = 0.8, m.origin[a] = p1[a] - 20.0;
    volume_update_affine(&m);
    uint8_t *mv = m.voxels;
    for (int k = 0; k < 50; k++)
        for (int j = 0; j < 60; j++)
            for (int i = 0; i < 60; i++) {
                double p[3] = {m.origin[0] + 0.8 * i, m.origin[1] + 0.8 * j, m.origin[2] + 0.8 * k},
                       d2 = 0, dc = 0;
                for (int a = 0; a < 3; a++)
                    d2 += (p[a] - p1[a]) * (p[a] - p1[a]), dc = fmax(dc, fabs(p[a] - p2[a]));
                mv[((size_t)k * 60 + j) * 60 + i] = d2 < 25.0 ? 1 : dc < 3.5 ? 2 : 0;
            }
    static const char *const ext[] = {".nii.gz", ".nrrd", ".mha"};
    for (int e = 0; e < 3; e++) {
        char sub[128], path[256];
        snprintf(sub, sizeof sub, "%s/masks%d", g_dir, e);
        assert_int_equal(mkdir(sub, 0700), 0);
        snprintf(path, sizeof path, "%s/%s%s", sub, UID1, ext[e]);
        assert_int_equal(itkshim_write_image(&m, path, &err), VS_OK);
        label_set ls = {0};
        assert_int_equal(labels_scan_masks(&ls, sub, g_key, &err), VS_OK);
        assert_int_equal(ls.n, 1);
        assert_null(strstr(ls.s[0].key, UID1));
        volume g;
        assert_int_equal(labels_mask_on_grid(ls.s[0].mask_path, &ref, &g, &err), VS_OK);
        assert_int_equal(g.dtype, VOL_UINT8);
        const uint8_t *gv = g.voxels;
        int seen[3] = {0, 0, 0};
        for (int k = 0; k < 20; k++)
            for (int j = 0; j < 40; j++)
                for (int i = 0; i < 36; i++) {
                    double ijk[3] = {i, j, k}, p[3], d2 = 0, dc = 0;
                    lps_of(ijk, p);
                    for (int a = 0; a < 3; a++)
                        d2 += (p[a] - p1[a]) * (p[a] - p1[a]), dc = fmax(dc, fabs(p[a] - p2[a]));
                    uint8_t got = gv[((size_t)k * 40 + j) * 36 + i];
                    assert_true(got <= 2);
                    seen[got]++;
                    /* nearest neighbour: at most half a mask voxel diagonal (0.7 mm) from the truth
                     */
                    if (sqrt(d2) < 5.0 - 0.7)
                        assert_int_equal(got, 1);
                    else if (dc < 3.5 - 0.7)
                        assert_int_equal(got, 2);
                    else if (sqrt(d2) > 5.0 + 0.7 && dc > 3.5 + 0.7)
                        assert_int_equal(got, 0);
                }
        assert_true(seen[1] > 20 && seen[2] > 20);
        volume_free(&g);
        assert_int_equal(labels_mask_lesions(&ls.s[0], &ref, &err), VS_OK);
        assert_int_equal(ls.s[0].n_lesions, 2);
        const double *want[2] = {p1, p2};
        for (int l = 0; l < 2; l++) {
            double d2 = 0;
            for (int a = 0; a < 3; a++)
                d2 += (ls.s[0].lesions[l].lps[a] - want[l][a]) *
                      (ls.s[0].lesions[l].lps[a] - want[l][a]);
            printf("  %s lesion %d: centroid %.2f mm from the truth, diameter %.2f mm\n", ext[e], l,
                   sqrt(d2), ls.s[0].lesions[l].diameter);
            assert_true(sqrt(d2) < 1.5);
        }
        assert_true(fabs(ls.s[0].lesions[0].diameter - 10.0) < 2.0);
        labels_free(&ls);
    }
    char bad[256];
    snprintf(bad, sizeof bad, "%s/masks0/broken.nii.gz", g_dir);
    write_file(bad, "not an image");
    volume g;
    assert_int_equal(labels_mask_on_grid(bad, &ref, &g, &err), VS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "broken.nii.gz"));
    volume_free(&m);
    volume_free(&ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_points_oblique),
        cmocka_unit_test(test_volume_labels),
        cmocka_unit_test(test_masks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
