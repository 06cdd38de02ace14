/* test_mae_train — the pretraining loop: stop/resume is bit-identical to an uninterrupted run,
 * mismatched or corrupt checkpoints are refused, crops and augmentation read the right voxels,
 * accumulation and clipping do what they say, the lr schedule, and the preview PNG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "mae_train.h"
#include "nn.h"
#include "synth.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_VOLS 3
#define STEPS 8

typedef struct fixture_t {
    volume vols[N_VOLS];
    mae_source src;
    mae_train_config cfg;
    char dir[64];
} fixture_t;

static void tiny_config(mae_train_config *c) {
    mae_train_config_default(c);
    mae_config *m = &c->model;
    for (int a = 0; a < 3; a++)
        m->crop[a] = 16, m->patch[a] = 4;
    m->crop[0] = 12;
    m->dim = 24, m->depth = 2, m->heads = 2, m->dec_dim = 12, m->dec_depth = 1, m->dec_heads = 2;
    m->batch = 2;
    c->opt.lr = 2e-3, c->opt.min_lr = 1e-4, c->opt.warmup_steps = 2, c->opt.total_steps = STEPS;
    c->opt.clip = 0.5, c->opt.decay_all = 0;
    c->accum = 2, c->steps = STEPS, c->seed = 7;
    c->ckpt_every = 2, c->log_every = 0;
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    rng r;
    rng_seed(&r, 11, 0);
    vs_error err;
    for (int i = 0; i < N_VOLS; i++)
        if (synth_normalized_ct(&f->vols[i], 20 + i, 24, 22 + 2 * i, &r, &err) != VS_OK) return -1;
    tiny_config(&f->cfg);
    if (mae_source_volumes(&f->src, f->vols, N_VOLS, &f->cfg.aug, &err) != VS_OK) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/vs_mae_train_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    nn_set_threads(2);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    mae_source_close(&f->src);
    for (int i = 0; i < N_VOLS; i++)
        volume_free(&f->vols[i]);
    free(f);
    return 0;
}

static void test_resume_bit_identical(void **state) {
    fixture_t *f = *state;
    vs_error err;
    char ckpt[128];
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", f->dir);
    float la[STEPS], lb[STEPS];
    memset(lb, 0, sizeof lb);
    /* A: uninterrupted */
    mae_trainer *a = NULL;
    assert_int_equal(mae_trainer_create(&a, &f->cfg, &f->src, &err), VS_OK);
    assert_int_equal(mae_trainer_run(a, STEPS, la, NULL, NULL, &err), VS_OK);
    /* B: stop after 3 steps (a signal arrives), then a new process-like trainer resumes */
    mae_trainer *b = NULL;
    assert_int_equal(mae_trainer_create(&b, &f->cfg, &f->src, &err), VS_OK);
    assert_int_equal(mae_trainer_run(b, 2, lb, ckpt, NULL, &err), VS_OK);
    volatile sig_atomic_t stop = 1;
    assert_int_equal(mae_trainer_run(b, STEPS, lb, ckpt, &stop, &err), VS_ERR_INTERRUPTED);
    assert_int_equal(mae_trainer_step(b), 3);
    mae_trainer_destroy(b);
    b = NULL;
    assert_int_equal(mae_trainer_create(&b, &f->cfg, &f->src, &err), VS_OK);
    assert_int_equal(mae_trainer_load(b, ckpt, &err), VS_OK);
    assert_int_equal(mae_trainer_step(b), 3);
    assert_int_equal(mae_trainer_run(b, STEPS, lb, ckpt, NULL, &err), VS_OK);
    for (int s = 0; s < STEPS; s++)
        printf("step %d loss %.7f resumed %.7f\n", s, la[s], lb[s]);
    assert_memory_equal(la, lb, sizeof la);
    mae *ma = mae_trainer_model(a), *mb = mae_trainer_model(b);
    assert_memory_equal(mae_params(ma), mae_params(mb), mae_n_params(ma) * sizeof(float));
    assert_true(la[STEPS - 1] < la[0]); /* it learns */
    /* the final checkpoint holds step 8 and no temp file is left behind */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", ckpt);
    assert_int_equal(access(tmp, F_OK), -1);
    mae_trainer *c = NULL;
    assert_int_equal(mae_trainer_create(&c, &f->cfg, &f->src, &err), VS_OK);
    assert_int_equal(mae_trainer_load(c, ckpt, &err), VS_OK);
    assert_int_equal(mae_trainer_step(c), STEPS);
    assert_memory_equal(mae_params(ma), mae_params(mae_trainer_model(c)),
                        mae_n_params(ma) * sizeof(float));
    mae_trainer_destroy(a), mae_trainer_destroy(b), mae_trainer_destroy(c);
}

static void test_refuses_bad_checkpoints(void **state) {
    fixture_t *f = *state;
    vs_error err;
    char ckpt[128];
    snprintf(ckpt, sizeof ckpt, "%s/ref.ckpt", f->dir);
    mae_trainer *a = NULL, *b = NULL;
    assert_int_equal(mae_trainer_create(&a, &f->cfg, &f->src, &err), VS_OK);
    assert_int_equal(mae_trainer_run(a, 1, NULL, ckpt, NULL, &err), VS_OK);
    mae_train_config other = f->cfg;
    other.model.vis_weight = 0.5f;
    assert_int_equal(mae_trainer_create(&b, &other, &f->src, &err), VS_OK);
    assert_int_equal(mae_trainer_load(b, ckpt, &err), VS_ERR_CONFIG);
    printf("mismatch: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "vis_weight=0"));
    assert_non_null(strstr(err.msg, "vis_weight=0.5"));
    mae_trainer_destroy(b);
    /* truncated: refused, and the trainer it was loading into is untouched */
    FILE *fp = fopen(ckpt, "r+b");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(ckpt, size - 100), 0);
    assert_int_equal(mae_trainer_create(&b, &f->cfg, &f->src, &err), VS_OK);
    float before = mae_params(mae_trainer_model(b))[5];
    assert_int_equal(mae_trainer_load(b, ckpt, &err), VS_ERR_FORMAT);
    printf("truncated: %s\n", err.msg);
    assert_true(mae_params(mae_trainer_model(b))[5] == before);
    assert_int_equal(mae_trainer_step(b), 0);
    /* flipped byte in the parameters: the checksum catches it */
    assert_int_equal(mae_trainer_save(a, ckpt, &err), VS_OK);
    fp = fopen(ckpt, "r+b");
    fseek(fp, -1000, SEEK_END);
    int ch = fgetc(fp);
    fseek(fp, -1000, SEEK_END);
    fputc(ch ^ 0x40, fp);
    fclose(fp);
    assert_int_equal(mae_trainer_load(b, ckpt, &err), VS_ERR_FORMAT);
    assert_int_equal(mae_trainer_load(b, "/nonexistent/x.ckpt", &err), VS_ERR_IO);
    mae_trainer_destroy(a), mae_trainer_destroy(b);
}

/* Crops against a naive read of a volume whose voxel value is its linear index. */
static void test_crops_and_augmentation(void **state) {
    (void)state;
    volume v;
    vs_error err;
    assert_int_equal(volume_alloc(&v, 7, 9, 11, VOL_INT16, 0, &err), VS_OK);
    int16_t *vox = v.voxels;
    for (int i = 0; i < 7 * 9 * 11; i++)
        vox[i] = (int16_t)i;
    int crop[3] = {3, 4, 5};
    for (int mode = 0; mode < 2; mode++) {
        mae_aug aug = {{0, 0, 0}, 0, 0};
        if (mode) aug = (mae_aug){{1, 1, 1}, 0.2f, 3.0f}; /* always flip every axis; scale, shift */
        mae_source s;
        assert_int_equal(mae_source_volumes(&s, &v, 1, &aug, &err), VS_OK);
        rng r;
        rng_seed(&r, 3, 0);
        float out[2 * 60];
        for (int rep = 0; rep < 20; rep++) {
            assert_int_equal(mae_source_batch(&s, 0, &r, 2, crop, out, &err), VS_OK);
            for (int b = 0; b < 2; b++) {
                const float *c = out + b * 60;
                /* source index offset of crop voxel (z, y, x) from crop voxel (0, 0, 0) */
                float scale = (mode ? c[0] - c[5] : c[5] - c[0]) / 11.0f; /* a y step: 11 voxels */
                float tol = mode ? 1e-4f * fabsf(c[59]) + 1e-3f : 0.0f;
                if (!mode) assert_true(scale == 1.0f);
                assert_true(scale >= 0.8f - 1e-4f && scale <= 1.2f + 1e-4f);
                for (int z = 0; z < 3; z++)
                    for (int y = 0; y < 4; y++)
                        for (int x = 0; x < 5; x++) {
                            int d = (mode ? -1 : 1) * (z * 99 + y * 11 + x);
                            float got = c[(z * 4 + y) * 5 + x];
                            assert_true(fabsf(got - c[0] - scale * (float)d) <= tol);
                        }
                if (!mode) { /* the corner is a voxel index whose crop fits in the volume */
                    int i0 = (int)c[0], z0 = i0 / 99, y0 = (i0 / 11) % 9, x0 = i0 % 11;
                    assert_true(z0 + 3 <= 7 && y0 + 4 <= 9 && x0 + 5 <= 11);
                }
            }
        }
        mae_source_close(&s);
    }
    /* a volume smaller than the crop is refused with a message, not read out of bounds */
    mae_source s;
    mae_aug aug = {{0, 0, 0}, 0, 0};
    assert_int_equal(mae_source_volumes(&s, &v, 1, &aug, &err), VS_OK);
    rng r;
    rng_seed(&r, 3, 0);
    int big[3] = {8, 4, 4};
    float out[128];
    assert_int_equal(mae_source_batch(&s, 0, &r, 1, big, out, &err), VS_ERR_FORMAT);
    mae_source_close(&s);
    volume_free(&v);
}

/* Two micro-batches with the same data accumulate 2g, and accum=2 with clipping steps like the
 * pre-scaled gradient with accum=1. */
static void test_accumulation_and_clipping(void **state) {
    fixture_t *f = *state;
    vs_error err;
    mae_trainer *t = NULL;
    assert_int_equal(mae_trainer_create(&t, &f->cfg, &f->src, &err), VS_OK);
    mae *m = mae_trainer_model(t);
    const mae_config *c = mae_get_config(m);
    size_t n = mae_n_params(m), nv = mae_crop_voxels(c) * c->batch;
    float *img = malloc(nv * sizeof *img), *g1 = malloc(n * sizeof *g1),
          *p0 = malloc(n * sizeof *p0);
    int32_t ids[512];
    rng r;
    rng_seed(&r, 5, 0);
    assert_int_equal(mae_source_batch(&f->src, 0, &r, c->batch, c->crop, img, &err), VS_OK);
    assert_int_equal(mae_sample_mask(m, &r, ids, &err), VS_OK);
    float loss;
    memcpy(p0, mae_params(m), n * sizeof *p0);
    mae_zero_grad(m);
    mae_forward(m, img, ids, &loss, &err);
    mae_backward(m);
    memcpy(g1, mae_grads(m), n * sizeof *g1);
    mae_forward(m, img, ids, &loss, &err);
    mae_backward(m);
    double gmax = 0.0, gdiff = 0.0; /* BLAS adds into the sum blockwise: equal to rounding */
    for (size_t i = 0; i < n; i++) {
        gmax = fmax(gmax, fabs(g1[i]));
        gdiff = fmax(gdiff, fabs((double)mae_grads(m)[i] - 2.0 * g1[i]));
    }
    assert_true(gdiff <= 1e-6 * gmax);
    /* the global norm against a naive double sum */
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)g1[i] * g1[i];
    assert_true(fabs(adamw_grad_norm(g1, n) - sqrt(s)) <= 1e-12 * sqrt(s));
    /* clipping at c scales the gradient to norm c: the same update as the pre-scaled gradient */
    adamw_config oc;
    adamw_config_default(&oc);
    oc.clip = 0.25 * sqrt(s);
    adamw_segment seg = {0, n, 0};
    adamw o1, o2;
    assert_int_equal(adamw_init(&o1, &oc, n, &seg, 1, &err), VS_OK);
    oc.clip = 0.0;
    assert_int_equal(adamw_init(&o2, &oc, n, &seg, 1, &err), VS_OK);
    float *pa = malloc(n * sizeof *pa), *pb = malloc(n * sizeof *pb), *gs = malloc(n * sizeof *gs);
    memcpy(pa, p0, n * sizeof *pa), memcpy(pb, p0, n * sizeof *pb);
    double norm = adamw_update(&o1, pa, mae_grads(m), 2, 1, NULL); /* accum 2 of 2g, clipped */
    assert_true(fabs(norm - sqrt(s)) <= 1e-6 * sqrt(s));
    double k = 0.25 * sqrt(s) / (sqrt(s) + 1e-6);
    for (size_t i = 0; i < n; i++)
        gs[i] = (float)(g1[i] * k);
    adamw_update(&o2, pb, gs, 1, 0, NULL);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)pa[i] - pb[i]));
    printf("clip: worst parameter difference %.3e\n", worst);
    assert_true(worst < 1e-6);
    adamw_free(&o1), adamw_free(&o2);
    free(img), free(g1), free(p0), free(pa), free(pb), free(gs);
    mae_trainer_destroy(t);
}

/* Weight decay on every tensor by default (the twin); --no-decay-norms skips no_decay ones. */
static void test_weight_decay_exclusion(void **state) {
    (void)state;
    adamw_segment segs[2] = {{0, 4, 0}, {4, 4, 1}}; /* a weight, then a norm/bias */
    float g[8] = {0}, p[8];
    vs_error err;
    for (int all = 0; all < 2; all++) {
        adamw_config c;
        adamw_config_default(&c);
        c.lr = 0.1, c.weight_decay = 0.5, c.decay_all = all;
        adamw o;
        assert_int_equal(adamw_init(&o, &c, 8, segs, 2, &err), VS_OK);
        for (int i = 0; i < 8; i++)
            p[i] = 1.0f;
        /* zero gradient: only the decay moves p; no clipping, no norm asked: none computed */
        assert_true(adamw_update(&o, p, g, 1, 0, NULL) == -1.0);
        for (int i = 0; i < 4; i++)
            assert_true(p[i] == 0.95f);
        for (int i = 4; i < 8; i++)
            assert_true(p[i] == (all ? 0.95f : 1.0f));
        adamw_free(&o);
    }
}

static void test_lr_schedule(void **state) {
    (void)state;
    adamw_config c;
    adamw_config_default(&c);
    c.lr = 1e-3, c.min_lr = 1e-5, c.warmup_steps = 10, c.total_steps = 110;
    assert_float_equal(adamw_lr(&c, 0), 1e-4, 1e-12);
    assert_float_equal(adamw_lr(&c, 9), 1e-3, 1e-12);
    assert_float_equal(adamw_lr(&c, 10), 1e-3, 1e-12);
    assert_float_equal(adamw_lr(&c, 60), 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-12);
    assert_float_equal(adamw_lr(&c, 110), 1e-5, 1e-12);
    assert_float_equal(adamw_lr(&c, 500), 1e-5, 1e-12);
    for (long s = 11; s < 110; s++)
        assert_true(adamw_lr(&c, s) <= adamw_lr(&c, s - 1));
}

/* The preview: 3 panels of the mid slice; the first is the input, windowed to its range. */
static void test_preview_png(void **state) {
    fixture_t *f = *state;
    vs_error err;
    mae_trainer *t = NULL;
    assert_int_equal(mae_trainer_create(&t, &f->cfg, &f->src, &err), VS_OK);
    mae *m = mae_trainer_model(t);
    const mae_config *c = mae_get_config(m);
    size_t nv = mae_crop_voxels(c) * c->batch;
    float *img = malloc(nv * sizeof *img);
    int32_t ids[512];
    rng r;
    rng_seed(&r, 9, 0);
    assert_int_equal(mae_source_batch(&f->src, 0, &r, c->batch, c->crop, img, &err), VS_OK);
    assert_int_equal(mae_sample_mask(m, &r, ids, &err), VS_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/preview.png", f->dir);
    assert_int_equal(mae_preview_png(m, img, ids, path, &err), VS_OK);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, fp);
    png_read_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    assert_int_equal(w, 3 * c->crop[2]);
    assert_int_equal(h, c->crop[1]);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_GRAY);
    uint8_t *row = malloc((size_t)w);
    const float *mid = img + (size_t)(c->crop[0] / 2) * c->crop[1] * c->crop[2];
    float lo = mid[0], hi = mid[0];
    for (int i = 0; i < c->crop[1] * c->crop[2]; i++)
        lo = fminf(lo, mid[i]), hi = fmaxf(hi, mid[i]);
    int masked_dark = 0;
    for (int y = 0; y < h; y++) {
        png_read_row(png, row, NULL);
        for (int x = 0; x < c->crop[2]; x++) {
            int want = (int)((mid[y * c->crop[2] + x] - lo) * (255.0f / (hi - lo)) + 0.5f);
            assert_true(abs(row[x] - want) <= 1);
            masked_dark += row[c->crop[2] + x] == 0;
        }
    }
    assert_true(masked_dark >= c->crop[1] * c->crop[2] / 2); /* 75% of patches are blanked */
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    free(row), free(img);
    mae_trainer_destroy(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_bit_identical),
        cmocka_unit_test(test_refuses_bad_checkpoints),
        cmocka_unit_test(test_crops_and_augmentation),
        cmocka_unit_test(test_accumulation_and_clipping),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_weight_decay_exclusion),
        cmocka_unit_test(test_preview_png),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
