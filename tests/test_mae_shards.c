/* test_mae_shards — the shard reader as the MAE trainer's batch source: batches equal the
 * stream's crops (no augmentation), save/load resumes the same batches whatever the prefetch
 * depth and thread count, augmentation draws from the trainer's rng, a foreign state is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mae_shards.h"
#include "synth.h"

static char g_dir[64];
#define B 3
#define CV (16 * 24 * 24)

static void write_shards(void) {
    vs_error err;
    shard_options o;
    shard_options_default(&o);
    o.chunk[0] = 8, o.chunk[1] = o.chunk[2] = 16;
    shard_writer *w = NULL;
    assert_int_equal(shard_writer_open(g_dir, 1, &o, &w, &err), VS_OK);
    volume v;
    assert_int_equal(synth_ct(&v, 20, 40, 36, 1, "ct-1", &err), VS_OK);
    assert_int_equal(shard_writer_add(w, &v, NULL, NULL, &err), VS_OK);
    volume_free(&v);
    assert_int_equal(synth_mr(&v, 12, 30, 50, 2, "mr-2", &err), VS_OK); /* padded in z */
    assert_int_equal(shard_writer_add(w, &v, NULL, NULL, &err), VS_OK);
    volume_free(&v);
    assert_int_equal(shard_writer_seal(w, &err), VS_OK);
}

static mae_shards_config config(int prefetch, int threads) {
    mae_shards_config c;
    memset(&c, 0, sizeof c);
    c.dir = g_dir;
    c.crop[0] = 16, c.crop[1] = 24, c.crop[2] = 24;
    c.pad_value = -1.0f;
    c.seed = 77;
    c.prefetch = prefetch;
    c.threads = threads;
    c.cache_bytes = threads > 1 ? (size_t)8 << 20 : 0; /* with or without a chunk cache */
    return c;
}

static void test_no_aug_equals_stream_crops(void **state) {
    (void)state;
    vs_error err;
    mae_aug none = {{0, 0, 0}, 0, 0};
    mae_shards_config c = config(4, 2);
    mae_source src;
    assert_int_equal(mae_source_shards(&src, &c, &none, &err), VS_OK);
    static float batch[B * CV], want[CV];
    rng r;
    rng_seed(&r, 1, 1);
    assert_int_equal(src.fill(src.ctx, &r, B, c.crop, batch, &err), VS_OK);
    shard_set *set = NULL;
    assert_int_equal(shard_set_open(g_dir, NULL, &set, &err), VS_OK);
    for (int b = 0; b < B; b++) {
        rng cr;
        rng_seed(&cr, c.seed, (uint64_t)b);
        assert_int_equal(shard_set_crop(set, &cr, c.crop, -1.0f, want, NULL, &err), VS_OK);
        assert_memory_equal(batch + (size_t)b * CV, want, sizeof want);
    }
    shard_set_close(set);
    mae_source_close(&src);
}

static void test_resume_same_batches(void **state) {
    (void)state;
    vs_error err;
    mae_aug aug = {{0.5f, 0.5f, 0.5f}, 0.1f, 0.2f};
    mae_shards_config c1 = config(6, 3), c2 = config(0, 1);
    mae_source a, b;
    assert_int_equal(mae_source_shards(&a, &c1, &aug, &err), VS_OK);
    assert_int_equal(mae_source_shards(&b, &c2, &aug, &err), VS_OK);
    static float x[B * CV], y[B * CV];
    rng r;
    rng_seed(&r, 5, 5);
    for (int step = 0; step < 2; step++)
        assert_int_equal(a.fill(a.ctx, &r, B, c1.crop, x, &err), VS_OK);
    uint8_t buf[MAE_SOURCE_STATE_MAX];
    size_t len = 0;
    assert_int_equal(a.save(a.ctx, buf, &len, &err), VS_OK);
    rng saved = r;
    assert_int_equal(a.fill(a.ctx, &r, B, c1.crop, x, &err), VS_OK);
    /* a fresh source without prefetch, resumed from the saved state and rng */
    assert_int_equal(b.load(b.ctx, buf, len, &err), VS_OK);
    assert_int_equal(b.fill(b.ctx, &saved, B, c2.crop, y, &err), VS_OK);
    assert_memory_equal(x, y, sizeof x);
    assert_memory_equal(&r, &saved, sizeof r); /* 5 draws per crop from the trainer's rng */
    /* a state from another seed is refused */
    mae_shards_config c3 = config(0, 1);
    c3.seed = 78;
    mae_source d;
    assert_int_equal(mae_source_shards(&d, &c3, &aug, &err), VS_OK);
    assert_int_equal(d.load(d.ctx, buf, len, &err), VS_ERR_CONFIG);
    uint8_t junk[4] = {1, 2, 3, 4};
    assert_int_equal(d.load(d.ctx, junk, 4, &err), VS_ERR_FORMAT);
    mae_source_close(&d);
    mae_source_close(&a);
    mae_source_close(&b);
}

static void test_preview_and_filter(void **state) {
    (void)state;
    vs_error err;
    mae_shards_config c = config(0, 1);
    volume p1, p2;
    assert_int_equal(mae_shards_preview_crop(&c, &p1, &err), VS_OK);
    assert_int_equal(mae_shards_preview_crop(&c, &p2, &err), VS_OK);
    assert_int_equal(p1.n_slices, 16);
    assert_memory_equal(p1.voxels, p2.voxels, CV * sizeof(float));
    volume_free(&p1);
    volume_free(&p2);
    c.filter.modality = "PT";
    mae_source s;
    mae_aug none = {{0, 0, 0}, 0, 0};
    assert_int_equal(mae_source_shards(&s, &c, &none, &err), VS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "no volume"));
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/vs_test_mae_shards_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_aug_equals_stream_crops),
        cmocka_unit_test(test_resume_same_batches),
        cmocka_unit_test(test_preview_and_filter),
    };
    write_shards();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) return 1;
    return rc;
}
