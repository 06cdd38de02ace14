/* test_shard — shard writer and reader on synthetic CT, MR and radiograph volumes:
 * bit-exact round trip, byte-identical rewrites, crops against a naive copy loop, padding,
 * the prefetch stream against the synchronous draw, corrupt / truncated / newer shards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hdf5.h>
#include <zlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "shard.h"
#include "synth.h"

#define N_VOL 3

static char g_root[256];

/* The three volumes every test writes, rendered once (the radiograph takes a second) and
 * copied to each test. */
static volume g_proto[N_VOL];

static int render_volumes(void **state) {
    (void)state;
    vs_error err;
    return synth_ct(&g_proto[0], 40, 96, 80, 1, "ct-series-1", &err) != VS_OK ||
           synth_mr(&g_proto[1], 30, 50, 70, 2, "mr-series-2", &err) != VS_OK ||
           synth_xray(&g_proto[2], 300, 256, 3, "dx-series-3", &err) != VS_OK;
}

static int free_protos(void **state) {
    (void)state;
    for (int i = 0; i < N_VOL; i++)
        volume_free(&g_proto[i]);
    return 0;
}

static void make_volumes(volume v[N_VOL]) {
    for (int i = 0; i < N_VOL; i++) {
        size_t bytes = volume_n_voxels(&g_proto[i]) * vol_dtype_size(g_proto[i].dtype);
        v[i] = g_proto[i];
        v[i].voxels = malloc(bytes);
        assert_non_null(v[i].voxels);
        memcpy(v[i].voxels, g_proto[i].voxels, bytes);
    }
}

static void free_volumes(volume v[N_VOL]) {
    for (int i = 0; i < N_VOL; i++)
        volume_free(&v[i]);
}

static void write_shard_chunked(const char *dir, uint64_t seq, volume *v, int n, int retain,
                                int threads, const int chunk[3]) {
    mkdir(dir, 0700);
    shard_options o;
    shard_options_default(&o);
    o.threads = threads;
    memcpy(o.chunk, chunk, sizeof o.chunk);
    o.retain_uids = retain;
    o.params = "{\"test\":true}";
    shard_writer *w = NULL;
    vs_error err;
    assert_int_equal(shard_writer_open(dir, seq, &o, &w, &err), VS_OK);
    for (int i = 0; i < n; i++) {
        shard_extra x = {"none", "1.2.3.4.5"};
        shard_entry e;
        if (shard_writer_add(w, &v[i], &x, &e, &err) != VS_OK) fail_msg("%s", err.msg);
        assert_string_equal(e.key, v[i].series_key);
    }
    assert_int_equal(shard_writer_count(w), n);
    assert_true(shard_writer_bytes(w) > 0);
    assert_int_equal(shard_writer_seal(w, &err), VS_OK);
}

static void write_shard_threads(const char *dir, uint64_t seq, volume *v, int n, int retain,
                                int threads) {
    static const int chunk[3] = {16, 32, 32}; /* partial edge chunks everywhere */
    write_shard_chunked(dir, seq, v, n, retain, threads, chunk);
}

static void write_shard(const char *dir, uint64_t seq, volume *v, int n, int retain) {
    write_shard_threads(dir, seq, v, n, retain, 1);
}

static void path_of(char *buf, size_t cap, const char *sub, uint64_t seq) {
    char name[64];
    shard_name(seq, name, sizeof name);
    snprintf(buf, cap, "%s/%s/%s", g_root, sub, name);
}

static long file_size(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 ? (long)s.st_size : -1;
}

static void test_round_trip(void **state) {
    (void)state;
    volume v[N_VOL];
    make_volumes(v);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/rt", g_root);
    write_shard(dir, 1, v, N_VOL, 1);
    char tmp[400];
    path_of(tmp, sizeof tmp, "rt", 1);
    strcat(tmp, ".tmp");
    assert_int_equal(access(tmp, F_OK), -1); /* renamed, no temp left */

    shard_set *s = NULL;
    vs_error err;
    assert_int_equal(shard_set_open(dir, NULL, &s, &err), VS_OK);
    assert_int_equal(shard_set_count(s), N_VOL);
    for (int i = 0; i < N_VOL; i++) {
        const shard_entry *e = shard_set_entry(s, i);
        assert_string_equal(e->key, v[i].series_key);
        assert_int_equal(e->shape[0], v[i].n_slices);
        assert_int_equal(e->shape[2], v[i].n_cols);
        volume r;
        char prep[64];
        if (shard_set_read(s, i, &r, prep, sizeof prep, &err) != VS_OK) fail_msg("%s", err.msg);
        assert_int_equal(r.dtype, v[i].dtype);
        assert_memory_equal(r.voxels, v[i].voxels,
                            volume_n_voxels(&v[i]) * vol_dtype_size(v[i].dtype));
        assert_memory_equal(r.spacing, v[i].spacing, sizeof r.spacing);
        assert_memory_equal(r.origin, v[i].origin, sizeof r.origin);
        assert_memory_equal(r.direction, v[i].direction, sizeof r.direction);
        assert_memory_equal(r.affine, v[i].affine, sizeof r.affine);
        assert_string_equal(r.modality, v[i].modality);
        assert_string_equal(r.units, v[i].units);
        assert_string_equal(r.body_part, v[i].body_part);
        assert_string_equal(r.patient_key, v[i].patient_key);
        assert_string_equal(r.study_key, v[i].study_key);
        assert_string_equal(prep, "none");
        volume_free(&r);
    }
    /* filters */
    shard_set_close(s);
    shard_filter f = {"CT", NULL, {0, 0, 0}, NULL, 0};
    assert_int_equal(shard_set_open(dir, &f, &s, &err), VS_OK);
    assert_int_equal(shard_set_count(s), 1);
    shard_set_close(s);
    shard_filter g = {NULL, "CHEST", {2, 0, 0}, NULL, 0};
    assert_int_equal(shard_set_open(dir, &g, &s, &err), VS_OK);
    assert_int_equal(shard_set_count(s), 1); /* the CT; the radiograph has one slice */
    shard_set_close(s);
    free_volumes(v);
}

static int files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_identical_bytes(void **state) {
    (void)state;
    volume v[N_VOL];
    make_volumes(v);
    char d1[300], d2[300], p1[400], p2[400];
    snprintf(d1, sizeof d1, "%s/same1", g_root);
    snprintf(d2, sizeof d2, "%s/same2", g_root);
    write_shard(d1, 7, v, N_VOL, 0);
    sleep(1);                                   /* a stored time stamp would differ */
    write_shard_threads(d2, 7, v, N_VOL, 0, 3); /* the thread count does not change bytes */
    path_of(p1, sizeof p1, "same1", 7);
    path_of(p2, sizeof p2, "same2", 7);
    assert_true(file_size(p1) > 1000);
    assert_true(files_equal(p1, p2));
    free_volumes(v);
}

/* Our parallel filters write chunks HDF5's own pipeline reads back: the same stored layout as
 * HDF5 writing the same voxels with the same creation properties (chunk offsets, filter mask
 * 0), each chunk inflating (zlib's own uncompress, not libdeflate) to exactly the shuffled bytes
 * HDF5's chunk inflates to, with a Fletcher-32 that HDF5 checks on H5Dread. */
static void test_chunks_match_hdf5_filters(void **state) {
    (void)state;
    volume v;
    vs_error err;
    assert_int_equal(synth_mr(&v, 32, 64, 96, 12, "mr-chunks", &err), VS_OK); /* whole chunks */
    char dir[300], ours[400], ref[400];
    snprintf(dir, sizeof dir, "%s/chunks", g_root);
    write_shard_threads(dir, 1, &v, 1, 0, 2);
    path_of(ours, sizeof ours, "chunks", 1);
    snprintf(ref, sizeof ref, "%s/chunks/reference.h5", g_root);
    hid_t f = H5Fopen(ours, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/volumes/mr-chunks", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d), space = H5Dget_space(d);
    hid_t g = H5Fcreate(ref, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t e = H5Dcreate2(g, "v", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(e >= 0);
    assert_true(H5Dwrite(e, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.voxels) >= 0);
    hsize_t n = 0;
    assert_true(H5Dget_num_chunks(d, space, &n) >= 0);
    assert_int_equal(n, 2 * 2 * 3);
    static unsigned char a[1 << 20], b[1 << 20], ia[1 << 20], ib[1 << 20];
    hsize_t cd[3];
    assert_int_equal(H5Pget_chunk(dcpl, 3, cd), 3);
    for (hsize_t i = 0; i < n; i++) {
        hsize_t off[3], sa, sb;
        unsigned mask;
        haddr_t addr;
        assert_true(H5Dget_chunk_info(d, space, i, off, &mask, &addr, &sa) >= 0);
        assert_true(H5Dget_chunk_storage_size(e, off, &sb) >= 0);
        uint32_t fa = 1, fb = 1;
        assert_true(H5Dread_chunk(d, H5P_DEFAULT, off, &fa, a) >= 0);
        assert_true(H5Dread_chunk(e, H5P_DEFAULT, off, &fb, b) >= 0);
        assert_int_equal(fa, 0);
        assert_int_equal(fb, 0);
        uLongf la = sizeof ia, lb = sizeof ib; /* the last 4 bytes are the Fletcher-32 */
        assert_int_equal(uncompress(ia, &la, a, (uLong)(sa - 4)), Z_OK);
        assert_int_equal(uncompress(ib, &lb, b, (uLong)(sb - 4)), Z_OK);
        assert_int_equal(la, cd[0] * cd[1] * cd[2] * sizeof(float));
        assert_int_equal(la, lb);
        assert_memory_equal(ia, ib, la);
    }
    /* HDF5's own read path (inflate + Fletcher-32 check + unshuffle) gives the voxels back. */
    float *back = malloc(volume_n_voxels(&v) * sizeof *back);
    assert_non_null(back);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    assert_memory_equal(back, v.voxels, volume_n_voxels(&v) * sizeof *back);
    free(back);
    H5Dclose(e);
    H5Fclose(g);
    H5Sclose(space);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
    volume_free(&v);
}

static float voxel_f(const volume *v, int64_t k, int64_t j, int64_t i) {
    size_t at = (size_t)((k * v->n_rows + j) * v->n_cols + i);
    switch (v->dtype) {
    case VOL_INT16: return (float)((const int16_t *)v->voxels)[at];
    case VOL_FLOAT32: return ((const float *)v->voxels)[at];
    case VOL_UINT8: return (float)((const uint8_t *)v->voxels)[at];
    }
    return 0;
}

/* Compare a crop with a naive copy from the in-memory volume (pad where outside). */
static void check_crop(const volume *v, const int size[3], const shard_crop_info *in,
                       const float *crop, float pad) {
    int64_t dim[3] = {v->n_slices, v->n_rows, v->n_cols};
    for (int a = 0; a < 3; a++) {
        assert_true(in->start[a] >= 0);
        if (dim[a] >= size[a])
            assert_true(in->start[a] + size[a] <= dim[a]);
        else
            assert_true(in->offset[a] + dim[a] <= size[a]);
    }
    for (int z = 0; z < size[0]; z++)
        for (int y = 0; y < size[1]; y++)
            for (int x = 0; x < size[2]; x++) {
                int64_t k = in->start[0] + z - in->offset[0], j = in->start[1] + y - in->offset[1],
                        i = in->start[2] + x - in->offset[2];
                float want = (k < 0 || j < 0 || i < 0 || k >= dim[0] || j >= dim[1] || i >= dim[2])
                                 ? pad
                                 : voxel_f(v, k, j, i);
                float got = crop[((size_t)z * size[1] + y) * size[2] + x];
                if (got != want) fail_msg("crop voxel (%d,%d,%d) %g != %g", z, y, x, got, want);
            }
}

/* HDF5's own reading (H5Dread of a hyperslab as float, its filter pipeline) of box i. */
static void h5_read_box(const char *path, const char *key, const int64_t start[3],
                        const int64_t size[3], float *out) {
    char name[128];
    snprintf(name, sizeof name, "/volumes/%s", key);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT), fs = H5Dget_space(d);
    hsize_t off[3], cnt[3];
    for (int a = 0; a < 3; a++)
        off[a] = (hsize_t)start[a], cnt[a] = (hsize_t)size[a];
    hid_t ms = H5Screate_simple(3, cnt, NULL);
    assert_true(H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
}

/* The raw-chunk reader (libdeflate, our unshuffle, 1 or 3 threads per box) returns exactly
 * what H5Dread returns, for chunk shapes that do not divide the volumes, boxes on the edges,
 * whole volumes and volumes smaller than a chunk; padded crops match the naive copy. */
static void test_raw_chunks_match_h5dread(void **state) {
    (void)state;
    volume v[N_VOL + 1];
    make_volumes(v);
    vs_error err;
    assert_int_equal(synth_ct(&v[N_VOL], 3, 5, 4, 9, "ct-tiny-4", &err), VS_OK);
    static const int chunks[4][3] = {{7, 13, 5}, {32, 32, 32}, {1, 64, 1}, {64, 64, 64}};
    for (int c = 0; c < 4; c++) {
        char dir[300], path[400], sub[32];
        snprintf(sub, sizeof sub, "raw%d", c);
        snprintf(dir, sizeof dir, "%s/%s", g_root, sub);
        write_shard_chunked(dir, 1, v, N_VOL + 1, 0, 2, chunks[c]);
        path_of(path, sizeof path, sub, 1);
        for (int threads = 1; threads <= 3; threads += 2) {
            shard_set *s = NULL;
            assert_int_equal(shard_set_open(dir, NULL, &s, &err), VS_OK);
            shard_set_read_threads(s, threads);
            rng r;
            rng_seed(&r, 31, (uint64_t)(c * 10 + threads));
            for (int i = 0; i < shard_set_count(s); i++) {
                const shard_entry *e = shard_set_entry(s, i);
                for (int b = 0; b < 12; b++) {
                    int64_t start[3], size[3];
                    for (int a = 0; a < 3; a++) {
                        int64_t dim = e->shape[a];
                        size[a] = b == 0 ? dim : 1 + (int64_t)rng_below(&r, (uint32_t)dim);
                        /* every other box ends on the far edge of the volume */
                        start[a] = b % 2 ? dim - size[a]
                                         : (int64_t)rng_below(&r, (uint32_t)(dim - size[a] + 1));
                    }
                    size_t n = (size_t)(size[0] * size[1] * size[2]);
                    float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
                    if (shard_set_read_box(s, i, start, size, got, &err) != VS_OK)
                        fail_msg("%s", err.msg);
                    h5_read_box(path, e->key, start, size, want);
                    for (size_t k = 0; k < n; k++)
                        if (memcmp(&got[k], &want[k], sizeof got[k]) != 0)
                            fail_msg("chunk %dx%dx%d, %s, voxel %zu: %g != H5Dread %g",
                                     chunks[c][0], chunks[c][1], chunks[c][2], e->key, k, got[k],
                                     want[k]);
                    free(got);
                    free(want);
                }
            }
            int size[3] = {6, 40, 40}; /* larger than the tiny volume on every axis */
            float *crop = malloc(6 * 40 * 40 * sizeof *crop);
            for (int k = 0; k < 16; k++) {
                shard_crop_info info;
                assert_int_equal(shard_set_crop(s, &r, size, -3.0f, crop, &info, &err), VS_OK);
                check_crop(&v[info.volume], size, &info, crop, -3.0f);
            }
            free(crop);
            shard_set_close(s);
        }
    }
    for (int i = 0; i <= N_VOL; i++)
        volume_free(&v[i]);
}

static void test_crops(void **state) {
    (void)state;
    volume v[N_VOL];
    make_volumes(v);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/rt", g_root);
    shard_set *s = NULL;
    vs_error err;
    assert_int_equal(shard_set_open(dir, NULL, &s, &err), VS_OK);
    const int sizes[3][3] = {{16, 24, 24}, {1, 224, 224}, {48, 64, 64}};
    for (int t = 0; t < 3; t++) {
        size_t n = (size_t)sizes[t][0] * sizes[t][1] * sizes[t][2];
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        rng r1, r2;
        rng_seed(&r1, 99, t);
        rng_seed(&r2, 99, t);
        for (int c = 0; c < 12; c++) {
            shard_crop_info i1, i2;
            assert_int_equal(shard_set_crop(s, &r1, sizes[t], -7.0f, a, &i1, &err), VS_OK);
            assert_int_equal(shard_set_crop(s, &r2, sizes[t], -7.0f, b, &i2, &err), VS_OK);
            assert_memory_equal(&i1, &i2, sizeof i1);
            assert_memory_equal(a, b, n * sizeof *a);
            check_crop(&v[i1.volume], sizes[t], &i1, a, -7.0f);
        }
        free(a);
        free(b);
    }
    shard_set_close(s);
    free_volumes(v);
}

/* The decompressed-chunk cache changes no crop, with room for everything or for two chunks. */
static void test_cache_changes_nothing(void **state) {
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/rt", g_root);
    vs_error err;
    shard_set *plain = NULL, *big = NULL, *tiny = NULL;
    assert_int_equal(shard_set_open(dir, NULL, &plain, &err), VS_OK);
    assert_int_equal(shard_set_open(dir, NULL, &big, &err), VS_OK);
    assert_int_equal(shard_set_open(dir, NULL, &tiny, &err), VS_OK);
    assert_int_equal(shard_set_cache(big, 64u << 20, &err), VS_OK);
    assert_int_equal(shard_set_cache(tiny, 2 * 16 * 32 * 32 * 4, &err), VS_OK);
    int size[3] = {12, 40, 40};
    size_t n = 12 * 40 * 40;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    rng ra, rb, rc;
    rng_seed(&ra, 4, 4), rng_seed(&rb, 4, 4), rng_seed(&rc, 4, 4);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(shard_set_crop(plain, &ra, size, 0.0f, a, NULL, &err), VS_OK);
        assert_int_equal(shard_set_crop(big, &rb, size, 0.0f, b, NULL, &err), VS_OK);
        assert_int_equal(shard_set_crop(tiny, &rc, size, 0.0f, c, NULL, &err), VS_OK);
        assert_memory_equal(a, b, n * sizeof *a);
        assert_memory_equal(a, c, n * sizeof *a);
    }
    uint64_t hits, misses;
    shard_set_cache_stats(big, &hits, &misses);
    print_message("chunk cache: %llu hits, %llu misses\n", (unsigned long long)hits,
                  (unsigned long long)misses);
    assert_true(hits > misses);
    free(a), free(b), free(c);
    shard_set_close(plain);
    shard_set_close(big);
    shard_set_close(tiny);
}

static void test_stream_matches_sync(void **state) {
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/rt", g_root);
    shard_set *s1 = NULL, *s2 = NULL;
    vs_error err;
    assert_int_equal(shard_set_open(dir, NULL, &s1, &err), VS_OK);
    assert_int_equal(shard_set_open(dir, NULL, &s2, &err), VS_OK);
    int size[3] = {8, 32, 32};
    size_t n = 8 * 32 * 32;
    shard_stream *a = NULL, *b = NULL;
    assert_int_equal(shard_stream_open(s1, 5, size, 0.0f, NULL, 6, 3, &a, &err), VS_OK);
    assert_int_equal(shard_stream_open(s2, 5, size, 0.0f, NULL, 0, 1, &b, &err), VS_OK);
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *saved = malloc(n * sizeof *y);
    for (int i = 0; i < 10; i++) {
        shard_crop_info ia, ib;
        assert_int_equal(shard_stream_next(a, x, &ia, &err), VS_OK);
        assert_int_equal(shard_stream_next(b, y, &ib, &err), VS_OK);
        assert_memory_equal(&ia, &ib, sizeof ia);
        assert_memory_equal(x, y, n * sizeof *x);
        if (i == 6) memcpy(saved, x, n * sizeof *x);
    }
    assert_int_equal(shard_stream_position(a), 10);
    /* A resumed trainer seeks to its saved position and sees the same crops. */
    assert_int_equal(shard_stream_seek(a, 6, &err), VS_OK);
    assert_int_equal(shard_stream_next(a, x, NULL, &err), VS_OK);
    assert_memory_equal(x, saved, n * sizeof *x);
    shard_stream_close(a);
    shard_stream_close(b);
    shard_set_close(s1);
    shard_set_close(s2);
    free(x);
    free(y);
    free(saved);
}

static void test_newer_series_wins(void **state) {
    (void)state;
    volume v[N_VOL], w;
    make_volumes(v);
    vs_error err;
    assert_int_equal(synth_ct(&w, 12, 40, 40, 9, "ct-series-1", &err), VS_OK); /* same key */
    char dir[300];
    snprintf(dir, sizeof dir, "%s/dedup", g_root);
    write_shard(dir, 1, v, N_VOL, 0);
    write_shard(dir, 2, &w, 1, 0);
    shard_set *s = NULL;
    assert_int_equal(shard_set_open(dir, NULL, &s, &err), VS_OK);
    assert_int_equal(shard_set_count(s), N_VOL);
    int found = 0;
    for (int i = 0; i < shard_set_count(s); i++)
        if (strcmp(shard_set_entry(s, i)->key, "ct-series-1") == 0) {
            assert_int_equal(shard_set_entry(s, i)->shape[0], 12);
            found = 1;
        }
    assert_true(found);
    shard_set_close(s);
    /* Writer refusals: duplicate key in one shard, bad key, inconsistent affine. */
    shard_options o;
    shard_options_default(&o);
    shard_writer *sw = NULL;
    assert_int_equal(shard_writer_open(dir, 3, &o, &sw, &err), VS_OK);
    assert_int_equal(shard_writer_add(sw, &w, NULL, NULL, &err), VS_OK);
    assert_int_equal(shard_writer_add(sw, &w, NULL, NULL, &err), VS_ERR_FORMAT);
    snprintf(w.series_key, sizeof w.series_key, "../evil");
    assert_int_equal(shard_writer_add(sw, &w, NULL, NULL, &err), VS_ERR_FORMAT);
    shard_writer_abort(sw);
    char p3[400];
    path_of(p3, sizeof p3, "dedup", 3);
    assert_int_equal(access(p3, F_OK), -1);
    strcat(p3, ".tmp");
    assert_int_equal(access(p3, F_OK), -1);
    volume_free(&w);
    free_volumes(v);
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

/* Address of the middle chunk of a dataset, via HDF5 itself. */
static haddr_t chunk_address(const char *path, const char *dset, hsize_t *size) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t n = 0, off[3];
    unsigned mask;
    haddr_t addr = 0;
    assert_true(H5Dget_num_chunks(d, sp, &n) >= 0 && n > 2);
    assert_true(H5Dget_chunk_info(d, sp, n / 2, off, &mask, &addr, size) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return addr;
}

static char *read_log(FILE *f) {
    static char buf[8192];
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    return buf;
}

static void test_corrupt_shards(void **state) {
    (void)state;
    char src[400], dir[300], p[400];
    path_of(src, sizeof src, "rt", 1);
    snprintf(dir, sizeof dir, "%s/bad", g_root);
    mkdir(dir, 0700);
    /* shard 1: intact; shard 2: truncated; shard 3: a flipped byte inside CT data;
     * shard 4: a newer schema version. */
    for (int i = 1; i <= 4; i++) {
        path_of(p, sizeof p, "bad", (uint64_t)i);
        copy_file(src, p);
    }
    path_of(p, sizeof p, "bad", 2);
    assert_int_equal(truncate(p, file_size(p) / 2), 0);
    path_of(p, sizeof p, "bad", 3);
    hsize_t csize = 0;
    haddr_t at = chunk_address(p, "/volumes/ct-series-1", &csize);
    FILE *f = fopen(p, "r+b");
    fseek(f, (long)(at + csize / 2), SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)(at + csize / 2), SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    path_of(p, sizeof p, "bad", 4);
    hid_t h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(h, "schema_version", H5P_DEFAULT);
    int64_t newer = SHARD_SCHEMA_VERSION + 1;
    assert_true(H5Awrite(a, H5T_NATIVE_INT64, &newer) >= 0);
    H5Aclose(a);
    H5Fclose(h);

    FILE *logf = tmpfile();
    log_config cfg = {LOG_WARN, 0, logf, "test"};
    log_configure(&cfg);
    shard_set *s = NULL;
    vs_error err;
    assert_int_equal(shard_set_open(dir, NULL, &s, &err), VS_OK);
    assert_int_equal(shard_set_n_skipped(s), 2);
    char *log = read_log(logf);
    assert_non_null(strstr(log, "shard-000002.h5"));
    assert_non_null(strstr(log, "shard-000004.h5: shard schema version 2 is newer"));
    /* Shard 3 is the newest copy of every series: its CT fails to read and is dropped;
     * crops go on with the other volumes. */
    int size[3] = {40, 96, 80};
    float *buf = malloc(40 * 96 * 80 * sizeof *buf);
    rng r;
    rng_seed(&r, 3, 0);
    for (int i = 0; i < 12; i++) {
        shard_crop_info info;
        assert_int_equal(shard_set_crop(s, &r, size, 0.0f, buf, &info, &err), VS_OK);
        assert_string_not_equal(shard_set_entry(s, info.volume)->key, "ct-series-1");
    }
    log = read_log(logf);
    assert_non_null(strstr(log, "skipping volume ct-series-1"));
    assert_non_null(strstr(log, "shard-000003.h5"));
    free(buf);
    shard_set_close(s);

    shard_verify_result res;
    assert_int_equal(shard_verify_dir(dir, &res, &err), VS_OK);
    assert_int_equal(res.n_shards, 4);
    assert_int_equal(res.n_bad_shards, 2);
    assert_int_equal(res.n_volumes, 6);
    assert_int_equal(res.n_bad_volumes, 1);
    fclose(logf);
    log_config quiet = {LOG_WARN, 0, NULL, "test"};
    log_configure(&quiet);
}

static int count_fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* n crops of (8, 16, 16) from the set through a stream (threads 0: synchronous). */
static void crops_of(shard_set *s, int threads, int n, float *out, int max_open_seen) {
    int size[3] = {8, 16, 16};
    shard_stream *st = NULL;
    vs_error err;
    assert_int_equal(shard_stream_open(s, 21, size, 0.0f, NULL, threads ? 2 * threads : 0,
                                       threads ? threads : 1, &st, &err),
                     VS_OK);
    for (int i = 0; i < n; i++) {
        if (shard_stream_next(st, out + (size_t)i * 8 * 16 * 16, NULL, &err) != VS_OK)
            fail_msg("%s", err.msg);
        if (max_open_seen && shard_set_n_open(s) > max_open_seen)
            fail_msg("%d files open, limit %d", shard_set_n_open(s), max_open_seen);
    }
    shard_stream_close(st);
}

/* A set over more shards than it may keep open: the same crops as with every file open, never
 * more than the limit open (plus one per reading thread), and under a low RLIMIT_NOFILE. */
static void test_open_file_limit(void **state) {
    (void)state;
    enum { N_SHARDS = 14, N_CROPS = 60, CROP = 8 * 16 * 16 };
    char dir[300];
    snprintf(dir, sizeof dir, "%s/many", g_root);
    vs_error err;
    for (int k = 0; k < N_SHARDS; k++) {
        volume v;
        char key[32];
        snprintf(key, sizeof key, "many-%02d", k);
        assert_int_equal(synth_ct(&v, 10 + k % 3, 20, 24, (uint64_t)k, key, &err), VS_OK);
        write_shard(dir, (uint64_t)k + 1, &v, 1, 0);
        volume_free(&v);
    }
    float *want = malloc(N_CROPS * CROP * sizeof *want),
          *got = malloc(N_CROPS * CROP * sizeof *got);
    shard_set *all = NULL, *few = NULL;
    assert_int_equal(shard_set_open(dir, NULL, &all, &err), VS_OK);
    shard_set_max_open(all, 100);
    assert_int_equal(shard_set_n_open(all), N_SHARDS);
    crops_of(all, 0, N_CROPS, want, 0);
    shard_set_close(all);

    int fds0 = count_fds();
    assert_int_equal(shard_set_open(dir, NULL, &few, &err), VS_OK);
    shard_set_max_open(few, 3);
    assert_int_equal(shard_set_count(few), N_SHARDS);
    assert_true(shard_set_n_open(few) <= 3);
    crops_of(few, 0, N_CROPS, got, 3);
    assert_memory_equal(want, got, N_CROPS * CROP * sizeof *got);
    assert_true(count_fds() - fds0 <= 3);
    crops_of(few, 3, N_CROPS, got, 3 + 3); /* three prefetch threads may each pin one more */
    assert_memory_equal(want, got, N_CROPS * CROP * sizeof *got);
    volume r;
    assert_int_equal(shard_set_read(few, N_SHARDS - 1, &r, NULL, 0, &err), VS_OK);
    volume_free(&r);
    shard_set_close(few);

    /* In a child whose fd limit is far below the shard count, the default limit follows it. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)count_fds() + 8, (rlim_t)count_fds() + 8};
        shard_set *c = NULL;
        vs_error e2;
        int ok = setrlimit(RLIMIT_NOFILE, &rl) == 0 &&
                 shard_set_open(dir, NULL, &c, &e2) == VS_OK && shard_set_n_skipped(c) == 0 &&
                 shard_set_count(c) == N_SHARDS && shard_set_n_open(c) <= 8;
        int size[3] = {8, 16, 16};
        rng rr;
        for (int i = 0; ok && i < N_CROPS; i++) {
            rng_seed(&rr, 21, (uint64_t)i);
            ok = shard_set_crop(c, &rr, size, 0.0f, got, NULL, &e2) == VS_OK &&
                 memcmp(got, want + (size_t)i * CROP, CROP * sizeof *got) == 0;
        }
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(want);
    free(got);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/vs_test_shard_XXXXXX");
    if (!mkdtemp(g_root)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_identical_bytes),
        cmocka_unit_test(test_chunks_match_hdf5_filters),
        cmocka_unit_test(test_crops),
        cmocka_unit_test(test_raw_chunks_match_h5dread),
        cmocka_unit_test(test_cache_changes_nothing),
        cmocka_unit_test(test_stream_matches_sync),
        cmocka_unit_test(test_newer_series_wins),
        cmocka_unit_test(test_corrupt_shards),
        cmocka_unit_test(test_open_file_limit),
    };
    int rc = cmocka_run_group_tests(tests, render_volumes, free_protos);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) return 1;
    return rc;
}
