/* mae_export_probe OUTDIR — trains a tiny MAE (the twin's recipe, 32^3 crops) for 3 steps on
 * synthetic volumes, exports OUTDIR/model.safetensors, and writes OUTDIR/batch.bin with one
 * batch, its kept-token indices and the C loss on them, for test_mae_export.sh to replay in
 * the PyTorch twin. batch.bin: i32 B, i32 K, f32 loss, i32 crop[3], f32 img[B*crop], i32 ids[B*K].
 */
#include "mae_train.h"
#include "nn.h"
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: mae_export_probe OUTDIR\n");
        return 2;
    }
    nn_set_threads(2);
    mae_train_config cfg;
    mae_train_config_default(&cfg);
    mae_config *mc = &cfg.model;
    for (int a = 0; a < 3; a++)
        mc->crop[a] = 32, mc->patch[a] = 8;
    mc->dim = 48, mc->depth = 2, mc->heads = 3, mc->dec_dim = 32, mc->dec_depth = 2,
    mc->dec_heads = 4;
    mc->batch = 2;
    cfg.steps = 3, cfg.opt.lr = 1e-3, cfg.log_every = 0, cfg.ckpt_every = 0;
    vs_error err;
    volume vols[2];
    rng r;
    rng_seed(&r, 4, 0);
    mae_source src;
    mae_trainer *t = NULL;
    if (synth_normalized_ct(&vols[0], 40, 40, 40, &r, &err) != VS_OK ||
        synth_normalized_ct(&vols[1], 36, 44, 40, &r, &err) != VS_OK ||
        mae_source_volumes(&src, vols, 2, &cfg.aug, &err) != VS_OK ||
        mae_trainer_create(&t, &cfg, &src, &err) != VS_OK ||
        mae_trainer_run(t, cfg.steps, NULL, NULL, NULL, &err) != VS_OK) {
        fprintf(stderr, "mae_export_probe: %s\n", err.msg);
        return 1;
    }
    mae *m = mae_trainer_model(t);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", argv[1]);
    if (mae_export_safetensors(m, path, &err) != VS_OK) {
        fprintf(stderr, "mae_export_probe: %s\n", err.msg);
        return 1;
    }
    int B = mc->batch, K = mae_n_keep(mc);
    size_t nv = mae_crop_voxels(mc) * (size_t)B;
    float *img = malloc(nv * sizeof *img);
    int32_t *ids = malloc((size_t)B * K * sizeof *ids);
    float loss = 0.0f;
    if (!img || !ids || mae_source_batch(&src, 0, &r, B, mc->crop, img, &err) != VS_OK ||
        mae_sample_mask(m, &r, ids, &err) != VS_OK ||
        mae_forward(m, img, ids, &loss, &err) != VS_OK) {
        fprintf(stderr, "mae_export_probe: batch failed\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/batch.bin", argv[1]);
    FILE *f = fopen(path, "wb");
    int32_t head[5] = {B, K, 0, 0, 0};
    int ok = f && fwrite(head, 4, 2, f) == 2 && fwrite(&loss, 4, 1, f) == 1 &&
             fwrite(mc->crop, 4, 3, f) == 3 && fwrite(img, 4, nv, f) == nv &&
             fwrite(ids, 4, (size_t)B * K, f) == (size_t)B * K;
    if (!f || fclose(f) != 0 || !ok) {
        fprintf(stderr, "mae_export_probe: cannot write %s\n", path);
        return 1;
    }
    printf("C loss %.7f\n", loss);
    free(img), free(ids);
    mae_trainer_destroy(t);
    mae_source_close(&src);
    volume_free(&vols[0]), volume_free(&vols[1]);
    return 0;
}
