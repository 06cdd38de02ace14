/* det.c — the detector of det.h: encoder + token head, its loss, targets and checkpoints. */
#include "det.h"

#include "mae_train.h"
#include "nn.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct det {
    det_config cfg;
    mae *enc;
    int N, M, D, H; /* tokens per crop, rows (B*N), encoder width, head width (0: linear) */
    size_t n_head;
    float *head, *ghead; /* (n_head) */
    float *w1, *b1, *w2, *b2, *gw1, *gb1, *gw2, *gb2;
    const float *feat; /* (M, D) from the encoder */
    float *h, *g;      /* (M, H) */
    float *out, *dout; /* (M, 5) */
    float *dg, *dfeat; /* (M, H), (M, D) */
    const float *tgt;
};

void det_config_default(det_config *c) {
    memset(c, 0, sizeof *c);
    mae_config_default(&c->enc);
    for (int a = 0; a < 3; a++)
        c->enc.crop[a] = 32, c->enc.patch[a] = 8;
    c->enc.dim = 96, c->enc.depth = 3, c->enc.heads = 3;
    c->enc.dec_dim = 64, c->enc.dec_depth = 1, c->enc.dec_heads = 2;
    c->enc.batch = 4;
    c->hidden = 64;
    c->gamma = 2.0f;
    c->pos_weight = 1.0f;
    c->reg_weight = 1.0f;
}

vs_status det_config_check(const det_config *c, vs_error *err) {
    vs_status st = mae_config_check(&c->enc, err);
    if (st != VS_OK) return st;
    if (c->hidden < 0 || c->hidden > 8192)
        return VS_FAIL(err, VS_ERR_CONFIG, "head width must be 0..8192, not %d", c->hidden);
    if (c->probe != 0 && c->probe != 1) return VS_FAIL(err, VS_ERR_CONFIG, "probe must be 0 or 1");
    if (!(c->gamma >= 0.0f && c->gamma <= 10.0f))
        return VS_FAIL(err, VS_ERR_CONFIG, "focal gamma must be in [0, 10]");
    if (!(c->pos_weight > 0.0f && c->pos_weight <= 1e4f))
        return VS_FAIL(err, VS_ERR_CONFIG, "positive weight must be in (0, 10000]");
    if (!(isfinite(c->window[0]) && isfinite(c->window[1]) && c->window[1] >= c->window[0]))
        return VS_FAIL(err, VS_ERR_CONFIG, "the intensity window must be LO <= HI");
    if (!(c->reg_weight >= 0.0f && c->reg_weight <= 1e3f))
        return VS_FAIL(err, VS_ERR_CONFIG, "regression weight must be in [0, 1000]");
    return VS_OK;
}

vs_status det_create(det **out, const det_config *cfg, vs_error *err) {
    *out = NULL;
    vs_status st = det_config_check(cfg, err);
    if (st != VS_OK) return st;
    det *d = calloc(1, sizeof *d);
    if (!d) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the detector");
    d->cfg = *cfg;
    st = mae_create_encoder(&d->enc, &cfg->enc, err);
    if (st != VS_OK) {
        free(d);
        return st;
    }
    d->N = mae_n_tokens(&cfg->enc), d->M = cfg->enc.batch * d->N;
    d->D = cfg->enc.dim, d->H = cfg->hidden;
    size_t in2 = d->H ? (size_t)d->H : (size_t)d->D;
    size_t n1 = d->H ? (size_t)d->H * d->D + d->H : 0;
    d->n_head = n1 + DET_OUT * in2 + DET_OUT;
    size_t M = (size_t)d->M;
    d->head = calloc(d->n_head, sizeof(float));
    d->ghead = calloc(d->n_head, sizeof(float));
    d->h = malloc((M * (d->H ? d->H : 1)) * sizeof(float));
    d->g = malloc((M * (d->H ? d->H : 1)) * sizeof(float));
    d->dg = malloc((M * (d->H ? d->H : 1)) * sizeof(float));
    d->out = malloc(M * DET_OUT * sizeof(float));
    d->dout = malloc(M * DET_OUT * sizeof(float));
    d->dfeat = malloc(M * d->D * sizeof(float));
    if (!d->head || !d->ghead || !d->h || !d->g || !d->dg || !d->out || !d->dout || !d->dfeat) {
        det_destroy(d);
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the detector head for batch %d",
                       cfg->enc.batch);
    }
    float *p = d->head, *g = d->ghead;
    if (d->H) {
        d->w1 = p, d->gw1 = g, p += (size_t)d->H * d->D, g += (size_t)d->H * d->D;
        d->b1 = p, d->gb1 = g, p += d->H, g += d->H;
    }
    d->w2 = p, d->gw2 = g, p += DET_OUT * in2, g += DET_OUT * in2;
    d->b2 = p, d->gb2 = g;
    *out = d;
    return VS_OK;
}

void det_destroy(det *d) {
    if (!d) return;
    mae_destroy(d->enc);
    free(d->head), free(d->ghead), free(d->h), free(d->g), free(d->dg);
    free(d->out), free(d->dout), free(d->dfeat);
    free(d);
}

const det_config *det_get_config(const det *d) { return &d->cfg; }
mae *det_encoder(det *d) { return d->enc; }
size_t det_head_n_params(const det *d) { return d->n_head; }
float *det_head_params(det *d) { return d->head; }
float *det_head_grads(det *d) { return d->ghead; }
const float *det_output(const det *d) { return d->out; }

static void xavier(float *w, int rows, int cols, rng *r) {
    double a = sqrt(6.0 / (double)(rows + cols));
    for (size_t j = 0; j < (size_t)rows * cols; j++)
        w[j] = (float)((2.0 * rng_double(r) - 1.0) * a);
}

void det_init_weights(det *d, rng *r) {
    mae_init_weights(d->enc, r);
    memset(d->head, 0, d->n_head * sizeof(float));
    if (d->H) xavier(d->w1, d->H, d->D, r);
    xavier(d->w2, DET_OUT, d->H ? d->H : d->D, r);
    d->b2[0] = (float)log(0.01 / 0.99);
}

/* ---------------------------------------------------------------------------- targets */
/* Row of token t (z, y, x) for lesion l at u (patch units); a larger lesion keeps its row. */
static void target_set(float *row, const double u[3], const int t[3], double diameter) {
    float size = (float)log(diameter / 10.0);
    if (row[0] > 0.0f && row[4] >= size) return;
    row[0] = 1.0f;
    for (int a = 0; a < 3; a++)
        row[1 + a] = (float)(u[a] - t[a]);
    row[4] = size;
}

void det_make_targets(const det_config *c, const det_lesion *les, int n_les, float *tgt) {
    const int *P = c->enc.patch;
    int grid[3];
    for (int a = 0; a < 3; a++)
        grid[a] = c->enc.crop[a] / P[a];
    size_t N = (size_t)grid[0] * grid[1] * grid[2];
    memset(tgt, 0, N * DET_OUT * sizeof *tgt);
    for (int l = 0; l < n_les; l++) {
        if (!(les[l].diameter > 0.0)) continue;
        double u[3];
        int lo[3], hi[3], ok = 1;
        for (int a = 0; a < 3; a++) { /* tokens t with u - t in [-margin, 1 + margin) */
            u[a] = (les[l].zyx[a] + 0.5) / P[a];
            lo[a] = (int)ceil(u[a] - 1.0 - DET_MARGIN + 1e-12),
            hi[a] = (int)floor(u[a] + DET_MARGIN);
            if (u[a] - hi[a] < -DET_MARGIN) hi[a]--;
            lo[a] = lo[a] < 0 ? 0 : lo[a], hi[a] = hi[a] >= grid[a] ? grid[a] - 1 : hi[a];
            if (u[a] < 0.0 || u[a] >= grid[a]) ok = 0; /* the centre itself must be in the crop */
        }
        if (!ok) continue;
        for (int z = lo[0]; z <= hi[0]; z++)
            for (int y = lo[1]; y <= hi[1]; y++)
                for (int x = lo[2]; x <= hi[2]; x++) {
                    int t[3] = {z, y, x};
                    target_set(tgt + (((size_t)z * grid[1] + y) * grid[2] + x) * DET_OUT, u, t,
                               les[l].diameter);
                }
    }
}

/* ------------------------------------------------------------------------ forward/loss */
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* Loss of the head outputs against tgt; fills d->dout with its gradient. */
static float head_loss(det *d) {
    const det_config *c = &d->cfg;
    size_t npos = 0;
    for (int r = 0; r < d->M; r++)
        npos += d->tgt[(size_t)r * DET_OUT] > 0.5f;
    double den = npos > 0 ? (double)npos : 1.0, gam = c->gamma, total = 0.0;
    for (int r = 0; r < d->M; r++) {
        const float *o = d->out + (size_t)r * DET_OUT, *t = d->tgt + (size_t)r * DET_OUT;
        float *g = d->dout + (size_t)r * DET_OUT;
        double x = o[0], p = 1.0 / (1.0 + exp(-x));
        double logp = -softplus(-x), log1mp = -softplus(x);
        memset(g, 0, DET_OUT * sizeof *g);
        if (t[0] > 0.5f) {
            double w = c->pos_weight, q = pow(1.0 - p, gam);
            total += -w * q * logp;
            g[0] = (float)(w * q * (gam * p * logp - (1.0 - p)) / den);
            for (int a = 1; a < DET_OUT; a++) {
                double e = (double)o[a] - t[a];
                total += c->reg_weight * e * e;
                g[a] = (float)(2.0 * c->reg_weight * e / den);
            }
        } else {
            double q = pow(p, gam);
            total += -q * log1mp;
            g[0] = (float)(q * (p - gam * (1.0 - p) * log1mp) / den);
        }
    }
    return (float)(total / den);
}

vs_status det_forward(det *d, const float *img, const float *tgt, float *loss, vs_error *err) {
    vs_status st = mae_encode_forward(d->enc, img, &d->feat, err);
    if (st != VS_OK) return st;
    if (d->H) {
        nn_linear_forward(d->h, d->feat, d->w1, d->b1, d->M, d->D, d->H);
        nn_gelu_forward(d->g, NULL, d->h, (size_t)d->M * d->H);
        nn_linear_forward(d->out, d->g, d->w2, d->b2, d->M, d->H, DET_OUT);
    } else {
        nn_linear_forward(d->out, d->feat, d->w2, d->b2, d->M, d->D, DET_OUT);
    }
    d->tgt = tgt;
    *loss = tgt ? head_loss(d) : 0.0f;
    return VS_OK;
}

void det_backward(det *d) {
    float *dfeat = d->cfg.probe ? NULL : d->dfeat;
    if (d->H) {
        nn_linear_backward(d->dg, d->gw2, d->gb2, d->dout, d->g, d->w2, d->M, d->H, DET_OUT);
        nn_gelu_backward(d->dg, d->dg, d->h, NULL, (size_t)d->M * d->H);
        nn_linear_backward(dfeat, d->gw1, d->gb1, d->dg, d->feat, d->w1, d->M, d->D, d->H);
    } else {
        nn_linear_backward(dfeat, d->gw2, d->gb2, d->dout, d->feat, d->w2, d->M, d->D, DET_OUT);
    }
    if (dfeat) mae_encode_backward(d->enc, dfeat);
}

void det_zero_grad(det *d) {
    mae_zero_grad(d->enc);
    memset(d->ghead, 0, d->n_head * sizeof(float));
}

/* ------------------------------------------------------------------------- checkpoints */
/* The architecture fields a pretraining checkpoint must share with the detector. */
typedef struct arch_field {
    const char *name;
    size_t off; /* into mae_config, an int */
} arch_field;
#define AF(name, member)                                                                           \
    { name, offsetof(mae_config, member) }
static const arch_field arch_fields[] = {
    AF("patch_z", patch[0]),    AF("patch_y", patch[1]),
    AF("patch_x", patch[2]),    AF("dim", dim),
    AF("depth", depth),         AF("heads", heads),
    AF("mlp_ratio", mlp_ratio), AF("dec_dim", dec_dim),
    AF("dec_depth", dec_depth), AF("dec_heads", dec_heads),
};
#define N_ARCH ((int)(sizeof arch_fields / sizeof arch_fields[0]))

static int arch_int(const mae_config *c, int i) {
    return *(const int *)((const char *)c + arch_fields[i].off);
}

vs_status det_load_mae(det *d, const char *mae_ckpt, vs_error *err) {
    mae_train_config pc;
    vs_status st = mae_checkpoint_read(mae_ckpt, &pc, NULL, 0, err);
    if (st != VS_OK) return st;
    for (int i = 0; i < N_ARCH; i++)
        if (arch_int(&pc.model, i) != arch_int(&d->cfg.enc, i))
            return VS_FAIL(err, VS_ERR_CONFIG,
                           "pretraining checkpoint %s has %s=%d but the detector has %s=%d: the "
                           "encoder architectures must match",
                           mae_ckpt, arch_fields[i].name, arch_int(&pc.model, i),
                           arch_fields[i].name, arch_int(&d->cfg.enc, i));
    return mae_checkpoint_read(mae_ckpt, &pc, mae_params(d->enc), mae_n_params(d->enc), err);
}

vs_status det_config_from_mae(det_config *c, const char *mae_ckpt, vs_error *err) {
    mae_train_config pc;
    vs_status st = mae_checkpoint_read(mae_ckpt, &pc, NULL, 0, err);
    if (st != VS_OK) return st;
    for (int i = 0; i < N_ARCH; i++)
        *(int *)((char *)&c->enc + arch_fields[i].off) = arch_int(&pc.model, i);
    memcpy(c->enc.crop, pc.model.crop, sizeof c->enc.crop); /* the window pretraining saw */
    c->enc.mask_ratio = pc.model.mask_ratio, c->enc.norm_pix = pc.model.norm_pix;
    c->enc.vis_weight = pc.model.vis_weight;
    return VS_OK;
}

/* The detector's own configuration, stored as doubles in this order. */
typedef struct cfg_row {
    const char *name;
    size_t off;
    int is_float; /* 0 int, 1 float, 2 double */
} cfg_row;
#define CI(name, member)                                                                           \
    { name, offsetof(det_config, member), 0 }
#define CF(name, member)                                                                           \
    { name, offsetof(det_config, member), 1 }
static const cfg_row cfg_rows[] = {
    CI("crop_z", enc.crop[0]),
    CI("crop_y", enc.crop[1]),
    CI("crop_x", enc.crop[2]),
    CI("patch_z", enc.patch[0]),
    CI("patch_y", enc.patch[1]),
    CI("patch_x", enc.patch[2]),
    CI("dim", enc.dim),
    CI("depth", enc.depth),
    CI("heads", enc.heads),
    CI("dec_dim", enc.dec_dim),
    CI("dec_depth", enc.dec_depth),
    CI("dec_heads", enc.dec_heads),
    CI("mlp_ratio", enc.mlp_ratio),
    {"mask_ratio", offsetof(det_config, enc.mask_ratio), 2},
    CI("norm_pix", enc.norm_pix),
    CF("vis_weight", enc.vis_weight),
    CI("hidden", hidden),
    CI("probe", probe),
    CF("gamma", gamma),
    CF("pos_weight", pos_weight),
    CF("reg_weight", reg_weight),
    CF("window_lo", window[0]),
    CF("window_hi", window[1]),
};
#define N_ROWS ((int)(sizeof cfg_rows / sizeof cfg_rows[0]))
#define DET_MAGIC "VSDETCKP"
#define DET_VERSION 1u

vs_status det_save(const det *d, const char *path, vs_error *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return VS_FAIL(err, VS_ERR_IO, "checkpoint path is too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    mae_hfile w = {f, 0xcbf29ce484222325ULL, 1};
    uint32_t version = DET_VERSION, nr = N_ROWS;
    mae_hfile_put(&w, DET_MAGIC, 8);
    mae_hfile_put(&w, &version, 4);
    mae_hfile_put(&w, &nr, 4);
    for (int i = 0; i < N_ROWS; i++) {
        const char *p = (const char *)&d->cfg + cfg_rows[i].off;
        double v = cfg_rows[i].is_float == 0   ? *(const int *)p
                   : cfg_rows[i].is_float == 1 ? *(const float *)p
                                               : *(const double *)p;
        mae_hfile_put(&w, &v, 8);
    }
    mae *enc = d->enc;
    uint64_t ne = mae_n_params(enc), nh = d->n_head;
    mae_hfile_put(&w, &ne, 8);
    mae_hfile_put(&w, &nh, 8);
    mae_hfile_put(&w, mae_params(enc), ne * sizeof(float));
    mae_hfile_put(&w, d->head, nh * sizeof(float));
    return mae_hfile_finish(&w, tmp, path, err);
}

vs_status det_load(det **out, const char *path, int batch, vs_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return VS_FAIL(err, VS_ERR_IO, "cannot open detector checkpoint %s: %s", path,
                       strerror(errno));
    mae_hfile r = {f, 0xcbf29ce484222325ULL, 1};
    char magic[8];
    uint32_t version = 0, nr = 0;
    uint64_t ne = 0, nh = 0, h_file = 0;
    det *d = NULL;
    vs_status st = VS_OK;
    mae_hfile_get(&r, magic, 8);
    mae_hfile_get(&r, &version, 4);
    mae_hfile_get(&r, &nr, 4);
    if (!r.ok || memcmp(magic, DET_MAGIC, 8) != 0 || version != DET_VERSION || nr != N_ROWS) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "%s is not a vesalius detector checkpoint of version %u",
                     path, DET_VERSION);
        goto fail;
    }
    det_config c;
    det_config_default(&c);
    for (int i = 0; i < N_ROWS; i++) {
        double v = 0.0;
        mae_hfile_get(&r, &v, 8);
        char *p = (char *)&c + cfg_rows[i].off;
        if (cfg_rows[i].is_float == 0)
            *(int *)p = (int)v;
        else if (cfg_rows[i].is_float == 1)
            *(float *)p = (float)v;
        else
            *(double *)p = v;
    }
    c.enc.batch = batch;
    if (r.ok) st = det_create(&d, &c, err);
    if (st != VS_OK) {
        vs_error_prefix(err, "%s", path);
        goto fail;
    }
    mae_hfile_get(&r, &ne, 8);
    mae_hfile_get(&r, &nh, 8);
    if (!r.ok || ne != mae_n_params(d->enc) || nh != d->n_head) {
        st = VS_FAIL(
            err, VS_ERR_FORMAT,
            "%s: truncated checkpoint or parameter counts that do not match its configuration",
            path);
        goto fail;
    }
    mae_hfile_get(&r, mae_params(d->enc), ne * sizeof(float));
    mae_hfile_get(&r, d->head, nh * sizeof(float));
    uint64_t h = r.h;
    if (r.ok && fread(&h_file, 8, 1, f) != 1) r.ok = 0;
    if (!r.ok || h != h_file) {
        st = VS_FAIL(err, VS_ERR_FORMAT,
                     "%s: truncated or corrupt detector checkpoint (checksum mismatch)", path);
        goto fail;
    }
    fclose(f);
    *out = d;
    return VS_OK;
fail:
    det_destroy(d);
    fclose(f);
    return st;
}
