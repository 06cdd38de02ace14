/* mae.c — the MAE model of mae.h: parameter table, activations, forward and backward. */
#include "mae.h"

#include "arena.h"
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One transformer block's tensors, in table order (the twin's Block). */
enum {
    BK_LN1W,
    BK_LN1B,
    BK_QKVW,
    BK_QKVB,
    BK_PROJW,
    BK_PROJB,
    BK_LN2W,
    BK_LN2B,
    BK_FC1W,
    BK_FC1B,
    BK_FC2W,
    BK_FC2B,
    BK_COUNT
};

typedef struct mae_block_w { /* pointers into params or grads */
    float *t[BK_COUNT];
} mae_block_w;

typedef struct mae_block_act {
    float *ln1, *ln1_mean, *ln1_rstd; /* (T, C), (T), (T) */
    float *qkv;                       /* (T, 3C) */
    float *att;                       /* (B, NH, Tb, Tb) */
    float *atty;                      /* (T, C) attention output before proj */
    float *x_mid;                     /* (T, C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* (T, C) */
    float *h, *g, *cdf;               /* (T, hidden) fc1 out, gelu out, Phi(h) */
} mae_block_act;

struct mae {
    mae_config cfg;
    int N, K, PV, R; /* tokens, kept, patch voxels, loss rows (B * rows per sample) */
    int enc_only;    /* mae_create_encoder: K == N, no decoder activations */
    int rows_per_sample;
    int grid[3];

    mae_tensor *tensors;
    int n_tensors;
    size_t n_params;
    float *params, *grads;
    /* tensor indices */
    int t_pe_w, t_pe_b, t_blocks, t_norm_w, t_norm_b, t_de_w, t_de_b, t_mask, t_dblocks;
    int t_dnorm_w, t_dnorm_b, t_pred_w, t_pred_b;

    float *pos, *dec_pos; /* (N, D), (N, Dd) */

    arena act;
    /* encoder */
    float *xv;                          /* (B*K, PV) visible patches */
    float **resid;                      /* depth+1 of (B*K, D) */
    mae_block_act *eb;                  /* depth */
    float *enc_n, *enc_mean, *enc_rstd; /* (B*K, D) */
    float *dec_in;                      /* (B*K, Dd) */
    /* decoder */
    float **dresid; /* dec_depth+1 of (B*N, Dd) */
    mae_block_act *db;
    float *dn, *dn_mean, *dn_rstd; /* (B*N, Dd) */
    float *lrows;                  /* (R, Dd) dec_norm rows that carry loss */
    float *pred;                   /* (R, PV) */
    float *dpred;                  /* (R, PV) gradient of the loss, computed with it */
    float *patch_tmp;              /* (threads, PV) one target patch per thread */
    int n_threads;                 /* the thread count the scratch buffers were sized for */
    double *row_loss;              /* (R) */
    /* gradient scratch */
    float *g_res, *g_big, *g_qkv, *g_att, *g_ln, *g_lrows, *g_scratch;
    /* indices */
    int32_t *ids_keep; /* (B, K) */
    int32_t *slot;     /* (B, N): position k among the kept tokens, or -1 when masked */
    int32_t *loss_tok; /* (R) token index per loss row */
    float *loss_w;     /* (R) weight per loss row */
    const float *img;  /* the last forward's input */
    float loss_den;    /* number of masked tokens in the batch */
};

/* ---------------------------------------------------------------------------- config */
void mae_config_default(mae_config *c) {
    memset(c, 0, sizeof *c);
    for (int a = 0; a < 3; a++) {
        c->crop[a] = 96;
        c->patch[a] = 16;
    }
    c->dim = 192, c->depth = 6, c->heads = 3;
    c->dec_dim = 128, c->dec_depth = 2, c->dec_heads = 4;
    c->mlp_ratio = 4;
    c->mask_ratio = 0.75;
    c->norm_pix = 1;
    c->vis_weight = 0.0f;
    c->batch = 8;
}

int mae_n_tokens(const mae_config *c) {
    return (c->crop[0] / c->patch[0]) * (c->crop[1] / c->patch[1]) * (c->crop[2] / c->patch[2]);
}
int mae_n_keep(const mae_config *c) { return (int)(mae_n_tokens(c) * (1.0 - c->mask_ratio)); }
int mae_patch_voxels(const mae_config *c) { return c->patch[0] * c->patch[1] * c->patch[2]; }
size_t mae_crop_voxels(const mae_config *c) {
    return (size_t)c->crop[0] * (size_t)c->crop[1] * (size_t)c->crop[2];
}

vs_status mae_config_check(const mae_config *c, vs_error *err) {
    static const char *axis[3] = {"z", "y", "x"};
    for (int a = 0; a < 3; a++) {
        if (c->crop[a] < 1 || c->crop[a] > 4096 || c->patch[a] < 1 || c->patch[a] > c->crop[a])
            return VS_FAIL(err, VS_ERR_CONFIG,
                           "crop %s=%d and patch %s=%d must satisfy 1 <= patch <= crop <= 4096",
                           axis[a], c->crop[a], axis[a], c->patch[a]);
        if (c->crop[a] % c->patch[a])
            return VS_FAIL(err, VS_ERR_CONFIG, "crop %s=%d is not a multiple of patch %s=%d",
                           axis[a], c->crop[a], axis[a], c->patch[a]);
    }
    if (c->dim < 6 || c->dec_dim < 6 || c->dim > 8192 || c->dec_dim > 8192)
        return VS_FAIL(err, VS_ERR_CONFIG, "widths must be 6..8192 (dim %d, decoder dim %d)",
                       c->dim, c->dec_dim);
    if (c->heads < 1 || c->dim % c->heads || c->dec_heads < 1 || c->dec_dim % c->dec_heads)
        return VS_FAIL(
            err, VS_ERR_CONFIG,
            "widths must be divisible by head counts (dim %d / %d heads, decoder %d / %d)", c->dim,
            c->heads, c->dec_dim, c->dec_heads);
    if (c->depth < 1 || c->depth > 64 || c->dec_depth < 1 || c->dec_depth > 64)
        return VS_FAIL(err, VS_ERR_CONFIG, "depths must be 1..64 (encoder %d, decoder %d)",
                       c->depth, c->dec_depth);
    if (c->mlp_ratio < 1 || c->mlp_ratio > 16)
        return VS_FAIL(err, VS_ERR_CONFIG, "mlp ratio must be 1..16, not %d", c->mlp_ratio);
    if (!(c->mask_ratio > 0.0 && c->mask_ratio < 1.0))
        return VS_FAIL(err, VS_ERR_CONFIG, "mask ratio must be in (0, 1), not %g", c->mask_ratio);
    if (c->batch < 1 || c->batch > 4096)
        return VS_FAIL(err, VS_ERR_CONFIG, "batch must be 1..4096, not %d", c->batch);
    if (c->norm_pix != 0 && c->norm_pix != 1)
        return VS_FAIL(err, VS_ERR_CONFIG, "norm_pix must be 0 or 1");
    if (!(c->vis_weight >= 0.0f && c->vis_weight <= 100.0f))
        return VS_FAIL(err, VS_ERR_CONFIG, "visible-token loss weight must be 0..100");
    long long n = mae_n_tokens(c);
    int k = mae_n_keep(c);
    if (n > 65536 || k < 1 || k >= n)
        return VS_FAIL(err, VS_ERR_CONFIG,
                       "%lld tokens keeping %d: need 1 <= kept < tokens <= 65536", n, k);
    if (c->norm_pix && mae_patch_voxels(c) < 2)
        return VS_FAIL(err, VS_ERR_CONFIG, "normalised targets need patches of at least 2 voxels");
    return VS_OK;
}

static double block_flops(double t, double d, double hidden, double tb) {
    /* linears 2 t d (3d + d + 2 hidden) + attention 2 (QK^T, AV) of 2 tb^2 d per sample */
    return 2.0 * t * d * (4.0 * d + 2.0 * hidden) + 4.0 * tb * t * d;
}

double mae_train_flops_per_sample(const mae_config *c) {
    double n = mae_n_tokens(c), k = mae_n_keep(c), pv = mae_patch_voxels(c);
    double rows = c->vis_weight > 0.0f ? n : n - k;
    double embed = 2.0 * k * pv * c->dim;
    double fwd = embed + c->depth * block_flops(k, c->dim, c->mlp_ratio * c->dim, k) +
                 2.0 * k * c->dim * c->dec_dim +
                 c->dec_depth * block_flops(n, c->dec_dim, c->mlp_ratio * c->dec_dim, n) +
                 2.0 * rows * c->dec_dim * pv;
    return 3.0 * fwd - embed; /* backward is 2x forward; the embedding has no input gradient */
}

/* ---------------------------------------------------------------------- tensor table */
static int table_add(mae *m, int cap, const char *name, int ndim, int s0, int s1, int s2,
                     int no_decay) {
    if (m->n_tensors >= cap) return -1;
    mae_tensor *t = &m->tensors[m->n_tensors];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = s0, t->shape[1] = s1, t->shape[2] = s2;
    t->size = (size_t)s0 * (size_t)(ndim > 1 ? s1 : 1) * (size_t)(ndim > 2 ? s2 : 1);
    t->offset = m->n_params;
    t->no_decay = no_decay;
    m->n_params += t->size;
    return m->n_tensors++;
}

static int table_block(mae *m, int cap, const char *prefix, int i, int d, int hidden) {
    static const char *names[BK_COUNT] = {"norm1.weight",  "norm1.bias",       "attn.qkv.weight",
                                          "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                                          "norm2.weight",  "norm2.bias",       "fc1.weight",
                                          "fc1.bias",      "fc2.weight",       "fc2.bias"};
    /* (rows, cols) of each; cols 0 means a vector */
    int rows[BK_COUNT] = {d, d, 3 * d, 3 * d, d, d, d, d, hidden, hidden, d, d};
    int cols[BK_COUNT] = {0, 0, d, 0, d, 0, 0, 0, d, 0, hidden, 0};
    int first = -1;
    for (int j = 0; j < BK_COUNT; j++) {
        char name[48];
        snprintf(name, sizeof name, "%s.%d.%s", prefix, i, names[j]);
        int ix = table_add(m, cap, name, cols[j] ? 2 : 1, rows[j], cols[j], 0, cols[j] == 0);
        if (j == 0) first = ix;
    }
    return first;
}

static void block_w(const mae *m, float *base, int first, mae_block_w *w) {
    for (int j = 0; j < BK_COUNT; j++)
        w->t[j] = base + m->tensors[first + j].offset;
}

static void build_table(mae *m, int cap) {
    const mae_config *c = &m->cfg;
    int D = c->dim, Dd = c->dec_dim, PV = m->PV;
    m->t_pe_w = table_add(m, cap, "patch_embed.weight", 2, D, PV, 0, 0);
    m->t_pe_b = table_add(m, cap, "patch_embed.bias", 1, D, 0, 0, 1);
    for (int i = 0; i < c->depth; i++) {
        int f = table_block(m, cap, "blocks", i, D, c->mlp_ratio * D);
        if (i == 0) m->t_blocks = f;
    }
    m->t_norm_w = table_add(m, cap, "norm.weight", 1, D, 0, 0, 1);
    m->t_norm_b = table_add(m, cap, "norm.bias", 1, D, 0, 0, 1);
    m->t_de_w = table_add(m, cap, "dec_embed.weight", 2, Dd, D, 0, 0);
    m->t_de_b = table_add(m, cap, "dec_embed.bias", 1, Dd, 0, 0, 1);
    m->t_mask = table_add(m, cap, "mask_token", 3, 1, 1, Dd, 1);
    for (int i = 0; i < c->dec_depth; i++) {
        int f = table_block(m, cap, "dec_blocks", i, Dd, c->mlp_ratio * Dd);
        if (i == 0) m->t_dblocks = f;
    }
    m->t_dnorm_w = table_add(m, cap, "dec_norm.weight", 1, Dd, 0, 0, 1);
    m->t_dnorm_b = table_add(m, cap, "dec_norm.bias", 1, Dd, 0, 0, 1);
    m->t_pred_w = table_add(m, cap, "dec_pred.weight", 2, PV, Dd, 0, 0);
    m->t_pred_b = table_add(m, cap, "dec_pred.bias", 1, PV, 0, 0, 1);
}

static float *param_of(const mae *m, int ix) { return m->params + m->tensors[ix].offset; }
static float *grad_of(const mae *m, int ix) { return m->grads + m->tensors[ix].offset; }

/* ------------------------------------------------------------------ position embedding */
/* The twin's sincos_3d generalised to a (gz, gy, gx) grid: d3 = 2 (dim / 6) channels per
 * axis, [sin(p w) | cos(p w)] with w_i = 1 / 10000^(2i / d3); layout [z | y | x | zeros]. */
static void sincos_3d(float *out, int dim, const int grid[3]) {
    int d3 = 2 * (dim / 6), half = d3 / 2;
    int n = grid[0] * grid[1] * grid[2];
    for (int t = 0; t < n; t++) {
        int p[3] = {t / (grid[1] * grid[2]), (t / grid[2]) % grid[1], t % grid[2]};
        float *row = out + (size_t)t * dim;
        memset(row, 0, (size_t)dim * sizeof *row);
        for (int a = 0; a < 3; a++)
            for (int i = 0; i < half; i++) {
                double omega = 1.0 / pow(10000.0, (double)i * 2.0 / (double)d3);
                row[a * d3 + i] = (float)sin((double)p[a] * omega);
                row[a * d3 + half + i] = (float)cos((double)p[a] * omega);
            }
    }
}

const float *mae_pos_embed(const mae *m, int decoder) { return decoder ? m->dec_pos : m->pos; }

/* ----------------------------------------------------------------------- activations */
/* Carve every buffer from the arena, or only count bytes when a->base is NULL. */
static void *take(arena *a, size_t *count, size_t n, size_t elem) {
    size_t bytes = ((n * elem) + 63) & ~(size_t)63;
    if (!a->base) {
        *count += bytes + 64;
        return NULL;
    }
    return arena_alloc(a, bytes, 64);
}

#define TAKEF(n) ((float *)take(a, count, (size_t)(n), sizeof(float)))

static void layout_block(mae_block_act *ba, arena *a, size_t *count, size_t T, size_t C,
                         size_t hidden, size_t att) {
    ba->ln1 = TAKEF(T * C), ba->ln1_mean = TAKEF(T), ba->ln1_rstd = TAKEF(T);
    ba->qkv = TAKEF(T * 3 * C), ba->att = TAKEF(att), ba->atty = TAKEF(T * C);
    ba->x_mid = TAKEF(T * C);
    ba->ln2 = TAKEF(T * C), ba->ln2_mean = TAKEF(T), ba->ln2_rstd = TAKEF(T);
    ba->h = TAKEF(T * hidden), ba->g = TAKEF(T * hidden), ba->cdf = TAKEF(T * hidden);
}

static size_t max3(size_t a, size_t b, size_t c) {
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

static void layout(mae *m, arena *a, size_t *count) {
    const mae_config *c = &m->cfg;
    size_t B = (size_t)c->batch, N = (size_t)m->N, K = (size_t)m->K, PV = (size_t)m->PV;
    size_t D = (size_t)c->dim, Dd = (size_t)c->dec_dim, R = (size_t)m->R;
    size_t He = (size_t)c->mlp_ratio * D, Hd = (size_t)c->mlp_ratio * Dd;
    size_t Te = B * K, Td = m->enc_only ? 0 : B * N;
    m->xv = TAKEF(Te * PV);
    for (int l = 0; l <= c->depth; l++)
        m->resid[l] = TAKEF(Te * D);
    for (int l = 0; l < c->depth; l++)
        layout_block(&m->eb[l], a, count, Te, D, He, B * (size_t)c->heads * K * K);
    m->enc_n = TAKEF(Te * D), m->enc_mean = TAKEF(Te), m->enc_rstd = TAKEF(Te);
    m->dec_in = TAKEF(Te * Dd);
    for (int l = 0; l <= c->dec_depth; l++)
        m->dresid[l] = TAKEF(Td * Dd);
    for (int l = 0; l < c->dec_depth; l++)
        layout_block(&m->db[l], a, count, Td, Dd, Hd, Td ? B * (size_t)c->dec_heads * N * N : 0);
    m->dn = TAKEF(Td * Dd), m->dn_mean = TAKEF(Td), m->dn_rstd = TAKEF(Td);
    m->lrows = TAKEF(R * Dd), m->pred = TAKEF(R * PV), m->dpred = TAKEF(R * PV);
    m->row_loss = (double *)take(a, count, R, sizeof(double));
    m->patch_tmp = TAKEF((size_t)m->n_threads * PV);
    size_t wide = max3(Te * D, Td * Dd, 1);
    m->g_res = TAKEF(wide), m->g_att = TAKEF(wide), m->g_ln = TAKEF(wide);
    m->g_qkv = TAKEF(3 * wide);
    m->g_big = TAKEF(max3(Te * He, Td * Hd, 1));
    m->g_lrows = TAKEF(R * Dd);
    m->g_scratch = TAKEF((size_t)m->n_threads * nn_attention_scratch((int)(N > K ? N : K)));
    m->ids_keep = (int32_t *)take(a, count, B * K, sizeof(int32_t));
    m->slot = (int32_t *)take(a, count, B * N, sizeof(int32_t));
    m->loss_tok = (int32_t *)take(a, count, R, sizeof(int32_t));
    m->loss_w = TAKEF(R);
}

static vs_status create(mae **out, const mae_config *cfg, int enc_only, vs_error *err) {
    *out = NULL;
    vs_status st = mae_config_check(cfg, err);
    if (st != VS_OK) return st;
    mae *m = calloc(1, sizeof *m);
    if (!m) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the model");
    m->cfg = *cfg;
    for (int a = 0; a < 3; a++)
        m->grid[a] = cfg->crop[a] / cfg->patch[a];
    m->N = mae_n_tokens(cfg), m->K = mae_n_keep(cfg), m->PV = mae_patch_voxels(cfg);
    m->rows_per_sample = cfg->vis_weight > 0.0f ? m->N : m->N - m->K;
    m->enc_only = enc_only;
    if (enc_only) m->K = m->N, m->rows_per_sample = 0;
    m->R = cfg->batch * m->rows_per_sample;
    m->n_threads = nn_threads();
    int cap = 16 + BK_COUNT * (cfg->depth + cfg->dec_depth);
    m->tensors = calloc((size_t)cap, sizeof *m->tensors);
    m->resid = calloc((size_t)cfg->depth + 1, sizeof *m->resid);
    m->dresid = calloc((size_t)cfg->dec_depth + 1, sizeof *m->dresid);
    m->eb = calloc((size_t)cfg->depth, sizeof *m->eb);
    m->db = calloc((size_t)cfg->dec_depth, sizeof *m->db);
    if (!m->tensors || !m->resid || !m->dresid || !m->eb || !m->db) goto nomem;
    build_table(m, cap);
    m->params = calloc(m->n_params, sizeof(float));
    m->grads = calloc(m->n_params, sizeof(float));
    m->pos = malloc((size_t)m->N * cfg->dim * sizeof(float));
    m->dec_pos = malloc((size_t)m->N * cfg->dec_dim * sizeof(float));
    if (!m->params || !m->grads || !m->pos || !m->dec_pos) goto nomem;
    sincos_3d(m->pos, cfg->dim, m->grid);
    sincos_3d(m->dec_pos, cfg->dec_dim, m->grid);
    size_t count = 0;
    layout(m, &m->act, &count); /* count */
    st = arena_init(&m->act, count, err);
    if (st != VS_OK) {
        mae_destroy(m);
        return vs_error_prefix(err, "activations for batch %d", cfg->batch);
    }
    layout(m, &m->act, &count); /* carve */
    *out = m;
    return VS_OK;
nomem:
    mae_destroy(m);
    return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the model's parameters");
}

vs_status mae_create(mae **out, const mae_config *cfg, vs_error *err) {
    return create(out, cfg, 0, err);
}

vs_status mae_create_encoder(mae **out, const mae_config *cfg, vs_error *err) {
    return create(out, cfg, 1, err);
}

void mae_destroy(mae *m) {
    if (!m) return;
    arena_free(&m->act);
    free(m->tensors), free(m->resid), free(m->dresid), free(m->eb), free(m->db);
    free(m->params), free(m->grads), free(m->pos), free(m->dec_pos);
    free(m);
}

const mae_config *mae_get_config(const mae *m) { return &m->cfg; }
size_t mae_n_params(const mae *m) { return m->n_params; }
float *mae_params(mae *m) { return m->params; }
float *mae_grads(mae *m) { return m->grads; }
int mae_n_tensors(const mae *m) { return m->n_tensors; }
const mae_tensor *mae_tensor_at(const mae *m, int i) { return &m->tensors[i]; }
size_t mae_activation_bytes(const mae *m) { return m->act.cap; }

const mae_tensor *mae_tensor_find(const mae *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

void mae_zero_grad(mae *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

/* --------------------------------------------------------------------------- init */
void mae_init_weights(mae *m, rng *r) {
    for (int i = 0; i < m->n_tensors; i++) {
        const mae_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        int is_norm_w = strstr(t->name, "norm") && strstr(t->name, ".weight");
        if (i == m->t_mask) {
            for (size_t j = 0; j < t->size; j++)
                p[j] = (float)(0.02 * rng_normal(r));
        } else if (is_norm_w) {
            for (size_t j = 0; j < t->size; j++)
                p[j] = 1.0f;
        } else if (t->ndim == 2) { /* xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) */
            double a = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
            for (size_t j = 0; j < t->size; j++)
                p[j] = (float)((2.0 * rng_double(r) - 1.0) * a);
        } else {
            memset(p, 0, t->size * sizeof *p);
        }
    }
}

/* -------------------------------------------------------------------------- masking */
typedef struct noise_ix {
    float noise;
    int32_t ix;
} noise_ix;

static int noise_cmp(const void *a, const void *b) {
    const noise_ix *x = a, *y = b;
    if (x->noise != y->noise) return x->noise < y->noise ? -1 : 1;
    return (x->ix > y->ix) - (x->ix < y->ix); /* ties by index: a total order */
}

vs_status mae_sample_mask_row(const mae *m, rng *r, int32_t *ids_keep, vs_error *err) {
    noise_ix *tmp = malloc((size_t)m->N * sizeof *tmp);
    if (!tmp) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate the masking noise");
    for (int n = 0; n < m->N; n++)
        tmp[n] = (noise_ix){rng_float(r), n};
    qsort(tmp, (size_t)m->N, sizeof *tmp, noise_cmp);
    for (int k = 0; k < m->K; k++)
        ids_keep[k] = tmp[k].ix;
    free(tmp);
    return VS_OK;
}

vs_status mae_sample_mask(const mae *m, rng *r, int32_t *ids_keep, vs_error *err) {
    for (int b = 0; b < m->cfg.batch; b++) {
        vs_status st = mae_sample_mask_row(m, r, ids_keep + (size_t)b * m->K, err);
        if (st != VS_OK) return st;
    }
    return VS_OK;
}

/* --------------------------------------------------------------------------- patches */
/* Copy token n of crop img (Sz, Sy, Sx) to buf (PV) in z, y, x voxel order, or back into
 * img when to_img is set. */
static void patch_copy(const mae *m, float *img, int n, float *buf, int to_img) {
    const int *S = m->cfg.crop, *Pp = m->cfg.patch;
    int iz = n / (m->grid[1] * m->grid[2]), iy = (n / m->grid[2]) % m->grid[1], ix = n % m->grid[2];
    size_t row = (size_t)Pp[2] * sizeof *buf;
    for (int z = 0; z < Pp[0]; z++)
        for (int y = 0; y < Pp[1]; y++) {
            float *v = img + ((size_t)(iz * Pp[0] + z) * S[1] + (size_t)(iy * Pp[1] + y)) * S[2] +
                       (size_t)ix * Pp[2];
            float *p = buf + ((size_t)z * Pp[1] + y) * Pp[2];
            if (to_img)
                memcpy(v, p, row);
            else
                memcpy(p, v, row);
        }
}

static void patch_get(const mae *m, const float *img, int n, float *out) {
    patch_copy(m, (float *)img, n, out, 0); /* read only: to_img is 0 */
}

/* Mean and 1/sqrt(unbiased var + 1e-6) of a patch, in double (the twin's target normaliser). */
static void patch_stats(const float *t, int n, double *mean, double *inv_std) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++)
        s += t[j];
    double mu = s / n, v = 0.0;
#pragma omp simd reduction(+ : v)
    for (int j = 0; j < n; j++)
        v += ((double)t[j] - mu) * ((double)t[j] - mu);
    *mean = mu;
    *inv_std = 1.0 / sqrt(v / (n - 1) + 1e-6);
}

/* ---------------------------------------------------------------------------- blocks */
static void block_forward(mae_block_act *a, const mae_block_w *w, const float *x_in, float *x_out,
                          int B, int Tb, int C, int NH, int hidden) {
    int T = B * Tb;
    nn_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x_in, w->t[BK_LN1W], w->t[BK_LN1B], T,
                         C);
    nn_linear_forward(a->qkv, a->ln1, w->t[BK_QKVW], w->t[BK_QKVB], T, C, 3 * C);
    nn_attention_forward(a->atty, a->att, a->qkv, B, Tb, C, NH);
    nn_linear_forward(a->x_mid, a->atty, w->t[BK_PROJW], w->t[BK_PROJB], T, C, C);
    nn_residual_forward(a->x_mid, a->x_mid, x_in, (size_t)T * C);
    nn_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->x_mid, w->t[BK_LN2W], w->t[BK_LN2B],
                         T, C);
    nn_linear_forward(a->h, a->ln2, w->t[BK_FC1W], w->t[BK_FC1B], T, C, hidden);
    nn_gelu_forward(a->g, a->cdf, a->h, (size_t)T * hidden);
    nn_linear_forward(x_out, a->g, w->t[BK_FC2W], w->t[BK_FC2B], T, hidden, C);
    nn_residual_forward(x_out, x_out, a->x_mid, (size_t)T * C);
}

/* dres (T, C): in, the gradient at the block's output; out, at its input. */
static void block_backward(mae *m, const mae_block_act *a, const mae_block_w *w,
                           const mae_block_w *gw, const float *x_in, float *dres, int B, int Tb,
                           int C, int NH, int hidden) {
    int T = B * Tb;
    /* x_out = x_mid + fc2(gelu(fc1(ln2(x_mid)))) */
    nn_linear_backward(m->g_big, gw->t[BK_FC2W], gw->t[BK_FC2B], dres, a->g, w->t[BK_FC2W], T,
                       hidden, C);
    nn_gelu_backward(m->g_big, m->g_big, a->h, a->cdf, (size_t)T * hidden);
    nn_linear_backward(m->g_ln, gw->t[BK_FC1W], gw->t[BK_FC1B], m->g_big, a->ln2, w->t[BK_FC1W], T,
                       C, hidden);
    nn_layernorm_backward(dres, gw->t[BK_LN2W], gw->t[BK_LN2B], m->g_ln, a->x_mid, w->t[BK_LN2W],
                          a->ln2_mean, a->ln2_rstd, T, C);
    /* x_mid = x_in + proj(attn(qkv(ln1(x_in)))) */
    nn_linear_backward(m->g_att, gw->t[BK_PROJW], gw->t[BK_PROJB], dres, a->atty, w->t[BK_PROJW], T,
                       C, C);
    nn_attention_backward(m->g_qkv, m->g_scratch, m->g_att, a->qkv, a->att, B, Tb, C, NH);
    nn_linear_backward(m->g_ln, gw->t[BK_QKVW], gw->t[BK_QKVB], m->g_qkv, a->ln1, w->t[BK_QKVW], T,
                       C, 3 * C);
    nn_layernorm_backward(dres, gw->t[BK_LN1W], gw->t[BK_LN1B], m->g_ln, x_in, w->t[BK_LN1W],
                          a->ln1_mean, a->ln1_rstd, T, C);
}

/* --------------------------------------------------------------------------- forward */
static vs_status set_indices(mae *m, const int32_t *ids_keep, vs_error *err) {
    int B = m->cfg.batch, N = m->N, K = m->K;
    for (size_t i = 0; i < (size_t)B * N; i++)
        m->slot[i] = -1;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) {
            int32_t t = ids_keep[(size_t)b * K + k];
            if (t < 0 || t >= N || m->slot[(size_t)b * N + t] >= 0)
                return VS_FAIL(err, VS_ERR_INTERNAL,
                               "kept-token index %d of sample %d is out of range or repeated",
                               (int)t, b);
            m->slot[(size_t)b * N + t] = k;
        }
    memcpy(m->ids_keep, ids_keep, (size_t)B * K * sizeof *ids_keep);
    /* loss rows: masked tokens (weight 1), then visible ones when they carry weight */
    int r = 0;
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            int kept = m->slot[(size_t)b * N + n] >= 0;
            if (kept && m->cfg.vis_weight <= 0.0f) continue;
            m->loss_tok[r] = b * N + n;
            m->loss_w[r] = kept ? m->cfg.vis_weight : 1.0f;
            r++;
        }
    m->loss_den = (float)((size_t)B * (N - K));
    return VS_OK;
}

/* Loss and its gradient for each row: w mean_j (pred - t)^2 / den. */
static float loss_forward(mae *m) {
    int PV = m->PV, R = m->R;
    const size_t crop = mae_crop_voxels(&m->cfg);
    double scale = 2.0 / ((double)PV * m->loss_den);
#pragma omp parallel
    {
        float *t = m->patch_tmp + (size_t)nn_thread_id() * PV;
#pragma omp for schedule(static)
        for (int r = 0; r < R; r++) {
            int b = m->loss_tok[r] / m->N, n = m->loss_tok[r] % m->N;
            patch_get(m, m->img + (size_t)b * crop, n, t);
            double mu = 0.0, inv = 1.0;
            if (m->cfg.norm_pix) patch_stats(t, PV, &mu, &inv);
            const float *restrict p = m->pred + (size_t)r * PV;
            float *restrict dp = m->dpred + (size_t)r * PV;
            const float *restrict tt = t;
            float muf = (float)mu, invf = (float)inv, k = (float)(scale * m->loss_w[r]);
            double w = m->loss_w[r], s = 0.0; /* plain targets: mu 0, inv 1, target = t exactly */
#pragma omp simd reduction(+ : s)
            for (int j = 0; j < PV; j++) {
                float d = p[j] - (tt[j] - muf) * invf;
                s += (double)d * d;
                dp[j] = k * d;
            }
            m->row_loss[r] = w * s / PV;
        }
    }
    double total = 0.0;
    for (int r = 0; r < R; r++)
        total += m->row_loss[r];
    return (float)(total / m->loss_den);
}

/* The encoder over the K tokens of m->ids_keep: m->enc_n (B*K, D) after the final norm. */
static void encoder_forward(mae *m, const float *img) {
    const mae_config *c = &m->cfg;
    int B = c->batch, K = m->K, PV = m->PV, D = c->dim;
    m->img = img;
    const size_t crop = mae_crop_voxels(c);
    /* embed the visible patches only: x (B*K, D) = patch @ W^T + b + pos[token] */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B * K; i++)
        patch_get(m, img + (size_t)(i / K) * crop, m->ids_keep[i], m->xv + (size_t)i * PV);
    nn_linear_forward(m->resid[0], m->xv, param_of(m, m->t_pe_w), param_of(m, m->t_pe_b), B * K, PV,
                      D);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B * K; i++) {
        const float *pe = m->pos + (size_t)m->ids_keep[i] * D;
        float *x = m->resid[0] + (size_t)i * D;
        for (int d = 0; d < D; d++)
            x[d] += pe[d];
    }
    for (int l = 0; l < c->depth; l++) {
        mae_block_w w;
        block_w(m, m->params, m->t_blocks + l * BK_COUNT, &w);
        block_forward(&m->eb[l], &w, m->resid[l], m->resid[l + 1], B, K, D, c->heads,
                      c->mlp_ratio * D);
    }
    nn_layernorm_forward(m->enc_n, m->enc_mean, m->enc_rstd, m->resid[c->depth],
                         param_of(m, m->t_norm_w), param_of(m, m->t_norm_b), B * K, D);
}

vs_status mae_forward(mae *m, const float *img, const int32_t *ids_keep, float *loss,
                      vs_error *err) {
    const mae_config *c = &m->cfg;
    int B = c->batch, N = m->N, K = m->K, PV = m->PV, D = c->dim, Dd = c->dec_dim;
    if (m->enc_only) return VS_FAIL(err, VS_ERR_INTERNAL, "mae_forward on an encoder-only model");
    if (nn_threads() > m->n_threads) /* scratch buffers are per thread */
        return VS_FAIL(err, VS_ERR_INTERNAL, "thread count rose from %d to %d after mae_create",
                       m->n_threads, nn_threads());
    vs_status st = set_indices(m, ids_keep, err);
    if (st != VS_OK) return st;
    encoder_forward(m, img);
    nn_linear_forward(m->dec_in, m->enc_n, param_of(m, m->t_de_w), param_of(m, m->t_de_b), B * K, D,
                      Dd);
    /* unshuffle: kept tokens at their places, the mask token elsewhere, + dec_pos */
    const float *mt = param_of(m, m->t_mask);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B * N; i++) {
        int s = m->slot[i];
        const float *src = s >= 0 ? m->dec_in + ((size_t)(i / N) * K + s) * Dd : mt;
        const float *pe = m->dec_pos + (size_t)(i % N) * Dd;
        float *x = m->dresid[0] + (size_t)i * Dd;
        for (int d = 0; d < Dd; d++)
            x[d] = src[d] + pe[d];
    }
    for (int l = 0; l < c->dec_depth; l++) {
        mae_block_w w;
        block_w(m, m->params, m->t_dblocks + l * BK_COUNT, &w);
        block_forward(&m->db[l], &w, m->dresid[l], m->dresid[l + 1], B, N, Dd, c->dec_heads,
                      c->mlp_ratio * Dd);
    }
    nn_layernorm_forward(m->dn, m->dn_mean, m->dn_rstd, m->dresid[c->dec_depth],
                         param_of(m, m->t_dnorm_w), param_of(m, m->t_dnorm_b), B * N, Dd);
    /* predict only the rows that carry loss */
#pragma omp parallel for schedule(static)
    for (int r = 0; r < m->R; r++)
        memcpy(m->lrows + (size_t)r * Dd, m->dn + (size_t)m->loss_tok[r] * Dd,
               (size_t)Dd * sizeof(float));
    nn_linear_forward(m->pred, m->lrows, param_of(m, m->t_pred_w), param_of(m, m->t_pred_b), m->R,
                      Dd, PV);
    *loss = loss_forward(m);
    return VS_OK;
}

/* Gradients of the encoder's weights from d_enc (B*K, D), the gradient at m->enc_n
 * (consumed before m->g_ln is reused, so it may be m->g_ln). */
static void encoder_backward(mae *m, const float *d_enc) {
    const mae_config *c = &m->cfg;
    int B = c->batch, K = m->K, PV = m->PV, D = c->dim;
    size_t Te = (size_t)B * K;
    memset(m->g_res, 0, Te * D * sizeof(float));
    nn_layernorm_backward(m->g_res, grad_of(m, m->t_norm_w), grad_of(m, m->t_norm_b), d_enc,
                          m->resid[c->depth], param_of(m, m->t_norm_w), m->enc_mean, m->enc_rstd,
                          (int)Te, D);
    for (int l = c->depth - 1; l >= 0; l--) {
        mae_block_w w, gw;
        block_w(m, m->params, m->t_blocks + l * BK_COUNT, &w);
        block_w(m, m->grads, m->t_blocks + l * BK_COUNT, &gw);
        block_backward(m, &m->eb[l], &w, &gw, m->resid[l], m->g_res, B, K, D, c->heads,
                       c->mlp_ratio * D);
    }
    /* the position embedding is fixed; the patches are data: only weight gradients */
    nn_linear_backward(NULL, grad_of(m, m->t_pe_w), grad_of(m, m->t_pe_b), m->g_res, m->xv,
                       param_of(m, m->t_pe_w), (int)Te, PV, D);
}

/* -------------------------------------------------------------------------- backward */
void mae_backward(mae *m) {
    const mae_config *c = &m->cfg;
    int B = c->batch, N = m->N, K = m->K, PV = m->PV, D = c->dim, Dd = c->dec_dim;
    size_t Td = (size_t)B * N, Te = (size_t)B * K;
    nn_linear_backward(m->g_lrows, grad_of(m, m->t_pred_w), grad_of(m, m->t_pred_b), m->dpred,
                       m->lrows, param_of(m, m->t_pred_w), m->R, Dd, PV);
    /* scatter loss rows back; rows without loss have zero gradient */
    memset(m->g_ln, 0, Td * Dd * sizeof(float));
    for (int r = 0; r < m->R; r++)
        memcpy(m->g_ln + (size_t)m->loss_tok[r] * Dd, m->g_lrows + (size_t)r * Dd,
               (size_t)Dd * sizeof(float));
    memset(m->g_res, 0, Td * Dd * sizeof(float));
    nn_layernorm_backward(m->g_res, grad_of(m, m->t_dnorm_w), grad_of(m, m->t_dnorm_b), m->g_ln,
                          m->dresid[c->dec_depth], param_of(m, m->t_dnorm_w), m->dn_mean,
                          m->dn_rstd, (int)Td, Dd);
    for (int l = c->dec_depth - 1; l >= 0; l--) {
        mae_block_w w, gw;
        block_w(m, m->params, m->t_dblocks + l * BK_COUNT, &w);
        block_w(m, m->grads, m->t_dblocks + l * BK_COUNT, &gw);
        block_backward(m, &m->db[l], &w, &gw, m->dresid[l], m->g_res, B, N, Dd, c->dec_heads,
                       c->mlp_ratio * Dd);
    }
    /* un-unshuffle: kept rows go to dec_embed, masked rows to the mask token (in token order) */
    float *gmt = grad_of(m, m->t_mask);
    for (size_t i = 0; i < Td; i++) {
        int s = m->slot[i];
        const float *g = m->g_res + i * Dd;
        if (s >= 0)
            memcpy(m->g_att + ((i / N) * K + s) * Dd, g, (size_t)Dd * sizeof(float));
        else
            for (int d = 0; d < Dd; d++)
                gmt[d] += g[d];
    }
    nn_linear_backward(m->g_ln, grad_of(m, m->t_de_w), grad_of(m, m->t_de_b), m->g_att, m->enc_n,
                       param_of(m, m->t_de_w), (int)Te, D, Dd);
    encoder_backward(m, m->g_ln);
}

/* ---------------------------------------------------------------------- encoder only */
vs_status mae_encode_forward(mae *m, const float *img, const float **feat, vs_error *err) {
    if (!m->enc_only)
        return VS_FAIL(err, VS_ERR_INTERNAL, "mae_encode_forward needs mae_create_encoder");
    if (nn_threads() > m->n_threads)
        return VS_FAIL(err, VS_ERR_INTERNAL, "thread count rose from %d to %d after mae_create",
                       m->n_threads, nn_threads());
    for (int b = 0; b < m->cfg.batch; b++)
        for (int n = 0; n < m->N; n++)
            m->ids_keep[(size_t)b * m->N + n] = n;
    encoder_forward(m, img);
    *feat = m->enc_n;
    return VS_OK;
}

void mae_encode_backward(mae *m, const float *dfeat) { encoder_backward(m, dfeat); }

/* ---------------------------------------------------------------------- reconstruction */
void mae_reconstruct(const mae *m, const float *img, float *recon, float *masked, float fill) {
    const size_t crop = mae_crop_voxels(&m->cfg);
    size_t total = crop * (size_t)m->cfg.batch;
    if (recon) memcpy(recon, img, total * sizeof(float));
    if (masked) memcpy(masked, img, total * sizeof(float));
    float *t = malloc((size_t)m->PV * sizeof *t), *fills = malloc((size_t)m->PV * sizeof *fills);
    if (!t || !fills) goto done;
    for (int j = 0; j < m->PV; j++)
        fills[j] = fill;
    for (int r = 0; r < m->R; r++) {
        int b = m->loss_tok[r] / m->N, n = m->loss_tok[r] % m->N;
        if (m->slot[m->loss_tok[r]] >= 0) continue; /* visible: keep the input */
        const float *p = m->pred + (size_t)r * m->PV;
        double mu = 0.0, inv = 1.0;
        if (m->cfg.norm_pix) {
            patch_get(m, img + (size_t)b * crop, n, t);
            patch_stats(t, m->PV, &mu, &inv);
        }
        for (int j = 0; j < m->PV; j++)
            t[j] = (float)(p[j] / inv + mu);
        if (recon) patch_copy(m, recon + (size_t)b * crop, n, t, 1);
        if (masked) patch_copy(m, masked + (size_t)b * crop, n, fills, 1);
    }
done:
    free(t);
    free(fills);
}
