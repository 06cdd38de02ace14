/* study.c — the study file: libcyaml schema, defaults and ranges table, key line lookup. */
#include "study.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- the libcyaml schema ------------------------------------------------------------- */
#define OPT CYAML_FLAG_OPTIONAL
#define OPTP (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER)

static const cyaml_schema_value_t str_entry = {CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, CYAML_UNLIMITED)};
static const cyaml_schema_value_t int_entry = {CYAML_VALUE_INT(CYAML_FLAG_DEFAULT, int)};
static const cyaml_schema_value_t dbl_entry = {CYAML_VALUE_FLOAT(CYAML_FLAG_DEFAULT, double)};

static const cyaml_strval_t missing_names[] = {{"reject", STUDY_MISSING_REJECT}, {"resample", STUDY_MISSING_RESAMPLE}};
static const cyaml_strval_t prep_names[] = {{"none", STUDY_PREP_NONE}, {"standard", STUDY_PREP_STANDARD}};
static const cyaml_strval_t target_names[] = {{"normalized", STUDY_TARGET_NORMALIZED}, {"plain", STUDY_TARGET_PLAIN}};
static const cyaml_strval_t label_names[] = {
    {"points", STUDY_LABELS_POINTS}, {"masks", STUDY_LABELS_MASKS}, {"volume", STUDY_LABELS_VOLUME}};
static const cyaml_strval_t tune_names[] = {{"finetune", STUDY_TUNE_FINETUNE}, {"probe", STUDY_TUNE_PROBE}};
static const cyaml_strval_t loss_names[] = {{"focal", STUDY_LOSS_FOCAL}, {"bce", STUDY_LOSS_BCE}};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const cyaml_schema_field_t deid_fields[] = {
    CYAML_FIELD_STRING_PTR("key_file", OPTP, study_deid, key_file, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("linkage", OPTP, study_deid, linkage, 1, CYAML_UNLIMITED),
    CYAML_FIELD_BOOL("retain_safe_private", OPT, study_deid, retain_safe_private),
    CYAML_FIELD_BOOL("retain_uids", OPT, study_deid, retain_uids),
    CYAML_FIELD_BOOL("retain_device_identity", OPT, study_deid, retain_device_identity),
    CYAML_FIELD_BOOL("retain_institution_identity", OPT, study_deid, retain_institution_identity),
    CYAML_FIELD_BOOL("retain_patient_characteristics", OPT, study_deid, retain_patient_characteristics),
    CYAML_FIELD_BOOL("retain_long_full_dates", OPT, study_deid, retain_long_full_dates),
    CYAML_FIELD_BOOL("retain_long_modified_dates", OPT, study_deid, retain_long_modified_dates),
    CYAML_FIELD_BOOL("clean_descriptors", OPT, study_deid, clean_descriptors),
    CYAML_FIELD_BOOL("clean_structured_content", OPT, study_deid, clean_structured_content),
    CYAML_FIELD_BOOL("clean_graphics", OPT, study_deid, clean_graphics),
    CYAML_FIELD_BOOL("accept_burned_in", OPT, study_deid, accept_burned_in),
    CYAML_FIELD_END};

static const cyaml_schema_field_t ingest_fields[] = {
    CYAML_FIELD_SEQUENCE("sources", OPTP, study_ingest, sources, &str_entry, 1, CYAML_UNLIMITED),
    CYAML_FIELD_INT("max_voxels", OPT, study_ingest, max_voxels),
    CYAML_FIELD_ENUM("missing_slices", OPT, study_ingest, missing_slices, missing_names, N_OF(missing_names)),
    CYAML_FIELD_END};

static const cyaml_schema_field_t prep_fields[] = {
    CYAML_FIELD_ENUM("mode", OPT, study_preprocess, mode, prep_names, N_OF(prep_names)),
    CYAML_FIELD_BOOL("reorient", OPT, study_preprocess, reorient),
    CYAML_FIELD_SEQUENCE_FIXED("spacing", OPT, study_preprocess, spacing, &dbl_entry, 3),
    CYAML_FIELD_SEQUENCE_FIXED("ct_window", OPT, study_preprocess, ct_window, &dbl_entry, 2),
    CYAML_FIELD_BOOL("n4", OPT, study_preprocess, n4),
    CYAML_FIELD_SEQUENCE_FIXED("mr_percentiles", OPT, study_preprocess, mr_percentiles, &dbl_entry, 2),
    CYAML_FIELD_BOOL("foreground_crop", OPT, study_preprocess, foreground_crop),
    CYAML_FIELD_END};

static const cyaml_schema_field_t shard_fields[] = {
    CYAML_FIELD_INT("max_mb", OPT, study_shards, max_mb),
    CYAML_FIELD_SEQUENCE_FIXED("chunk", OPT, study_shards, chunk, &int_entry, 3),
    CYAML_FIELD_INT("deflate", OPT, study_shards, deflate),
    CYAML_FIELD_END};

static const cyaml_schema_field_t pretrain_fields[] = {
    CYAML_FIELD_SEQUENCE("modalities", OPTP, study_pretrain, modalities, &str_entry, 1, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE_FIXED("crop", OPT, study_pretrain, crop, &int_entry, 3),
    CYAML_FIELD_SEQUENCE_FIXED("patch", OPT, study_pretrain, patch, &int_entry, 3),
    CYAML_FIELD_INT("dim", OPT, study_pretrain, dim),
    CYAML_FIELD_INT("depth", OPT, study_pretrain, depth),
    CYAML_FIELD_INT("heads", OPT, study_pretrain, heads),
    CYAML_FIELD_INT("dec_dim", OPT, study_pretrain, dec_dim),
    CYAML_FIELD_INT("dec_depth", OPT, study_pretrain, dec_depth),
    CYAML_FIELD_INT("dec_heads", OPT, study_pretrain, dec_heads),
    CYAML_FIELD_INT("mlp_ratio", OPT, study_pretrain, mlp_ratio),
    CYAML_FIELD_FLOAT("mask_ratio", OPT, study_pretrain, mask_ratio),
    CYAML_FIELD_INT("batch", OPT, study_pretrain, batch),
    CYAML_FIELD_INT("steps", OPT, study_pretrain, steps),
    CYAML_FIELD_INT("warmup_steps", OPT, study_pretrain, warmup_steps),
    CYAML_FIELD_INT("accumulate", OPT, study_pretrain, accumulate),
    CYAML_FIELD_INT("checkpoint_every", OPT, study_pretrain, checkpoint_every),
    CYAML_FIELD_FLOAT("lr", OPT, study_pretrain, lr),
    CYAML_FIELD_FLOAT("min_lr", OPT, study_pretrain, min_lr),
    CYAML_FIELD_FLOAT("weight_decay", OPT, study_pretrain, weight_decay),
    CYAML_FIELD_FLOAT("clip", OPT, study_pretrain, clip),
    CYAML_FIELD_BOOL("decay_norms_and_biases", OPT, study_pretrain, decay_norms_and_biases),
    CYAML_FIELD_ENUM("target", OPT, study_pretrain, target, target_names, N_OF(target_names)),
    CYAML_FIELD_FLOAT("visible_loss_weight", OPT, study_pretrain, visible_loss_weight),
    CYAML_FIELD_BOOL("flips", OPT, study_pretrain, flips),
    CYAML_FIELD_FLOAT("intensity_scale", OPT, study_pretrain, intensity_scale),
    CYAML_FIELD_FLOAT("intensity_shift", OPT, study_pretrain, intensity_shift),
    CYAML_FIELD_INT("working_set", OPT, study_pretrain, working_set),
    CYAML_FIELD_INT("swap_every", OPT, study_pretrain, swap_every),
    CYAML_FIELD_INT("chunk_cache_mb", OPT, study_pretrain, chunk_cache_mb),
    CYAML_FIELD_END};

static const cyaml_schema_field_t label_fields[] = {
    CYAML_FIELD_ENUM("format", OPT, study_labels, format, label_names, N_OF(label_names)),
    CYAML_FIELD_STRING_PTR("file", OPTP, study_labels, file, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("volumes", OPTP, study_labels, volumes, 1, CYAML_UNLIMITED),
    CYAML_FIELD_END};

static const cyaml_schema_field_t finetune_fields[] = {
    CYAML_FIELD_ENUM("mode", OPT, study_finetune, mode, tune_names, N_OF(tune_names)),
    CYAML_FIELD_INT("folds", OPT, study_finetune, folds),
    CYAML_FIELD_INT("steps", OPT, study_finetune, steps),
    CYAML_FIELD_INT("batch", OPT, study_finetune, batch),
    CYAML_FIELD_FLOAT("lr", OPT, study_finetune, lr),
    CYAML_FIELD_FLOAT("layer_decay", OPT, study_finetune, layer_decay),
    CYAML_FIELD_FLOAT("lesion_share", OPT, study_finetune, lesion_share),
    CYAML_FIELD_FLOAT("val_fraction", OPT, study_finetune, val_fraction),
    CYAML_FIELD_INT("patience", OPT, study_finetune, patience),
    CYAML_FIELD_ENUM("loss", OPT, study_finetune, loss, loss_names, N_OF(loss_names)),
    CYAML_FIELD_FLOAT("focal_gamma", OPT, study_finetune, focal_gamma),
    CYAML_FIELD_FLOAT("pos_weight", OPT, study_finetune, pos_weight),
    CYAML_FIELD_BOOL("scratch_baseline", OPT, study_finetune, scratch_baseline),
    CYAML_FIELD_INT("eval_every", OPT, study_finetune, eval_every),
    CYAML_FIELD_END};

static const cyaml_schema_field_t validate_fields[] = {
    CYAML_FIELD_INT("bootstrap", OPT, study_validate, bootstrap),
    CYAML_FIELD_SEQUENCE("operating_points", OPTP, study_validate, operating_points, &dbl_entry, 1, 64),
    CYAML_FIELD_END};

static const cyaml_schema_field_t study_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, study, name, 1, 64),
    CYAML_FIELD_STRING_PTR("output", CYAML_FLAG_POINTER, study, output, 1, CYAML_UNLIMITED),
    CYAML_FIELD_INT("seed", OPT, study, seed),
    CYAML_FIELD_INT("threads", OPT, study, threads),
    CYAML_FIELD_MAPPING("deid", OPT, study, deid, deid_fields),
    CYAML_FIELD_MAPPING("ingest", OPT, study, ingest, ingest_fields),
    CYAML_FIELD_MAPPING("preprocess", OPT, study, preprocess, prep_fields),
    CYAML_FIELD_MAPPING("shards", OPT, study, shards, shard_fields),
    CYAML_FIELD_MAPPING("pretrain", OPT, study, pretrain, pretrain_fields),
    CYAML_FIELD_MAPPING("labels", OPT, study, labels, label_fields),
    CYAML_FIELD_MAPPING("finetune", OPT, study, finetune, finetune_fields),
    CYAML_FIELD_MAPPING("validate", OPT, study, validate, validate_fields),
    CYAML_FIELD_END};

static const cyaml_schema_value_t study_schema = {CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, study, study_fields)};

/* ---- defaults and ranges: one row per scalar key ---------------------------------------- */
typedef enum { F_BOOL, F_INT, F_I64, F_DBL, F_ENUM, F_INT3, F_DBL2, F_DBL3 } field_kind;

typedef struct field_rule {
    const char *path;
    field_kind kind;
    size_t offset;
    double def[3];
    double min, max;
} field_rule;

#define R(path, kind, member, d0, d1, d2, lo, hi) {path, kind, offsetof(study, member), {d0, d1, d2}, lo, hi}
static const field_rule rules[] = {
    R("seed", F_I64, seed, 1, 0, 0, 0, 9007199254740991.0),
    R("threads", F_INT, threads, 0, 0, 0, 0, 1024),
    R("deid.retain_safe_private", F_BOOL, deid.retain_safe_private, 0, 0, 0, 0, 1),
    R("deid.retain_uids", F_BOOL, deid.retain_uids, 0, 0, 0, 0, 1),
    R("deid.retain_device_identity", F_BOOL, deid.retain_device_identity, 0, 0, 0, 0, 1),
    R("deid.retain_institution_identity", F_BOOL, deid.retain_institution_identity, 0, 0, 0, 0, 1),
    R("deid.retain_patient_characteristics", F_BOOL, deid.retain_patient_characteristics, 0, 0, 0, 0, 1),
    R("deid.retain_long_full_dates", F_BOOL, deid.retain_long_full_dates, 0, 0, 0, 0, 1),
    R("deid.retain_long_modified_dates", F_BOOL, deid.retain_long_modified_dates, 0, 0, 0, 0, 1),
    R("deid.clean_descriptors", F_BOOL, deid.clean_descriptors, 0, 0, 0, 0, 1),
    R("deid.clean_structured_content", F_BOOL, deid.clean_structured_content, 0, 0, 0, 0, 1),
    R("deid.clean_graphics", F_BOOL, deid.clean_graphics, 0, 0, 0, 0, 1),
    R("deid.accept_burned_in", F_BOOL, deid.accept_burned_in, 0, 0, 0, 0, 1),
    R("ingest.max_voxels", F_I64, ingest.max_voxels, 2147483648.0, 0, 0, 1, 1099511627776.0),
    R("ingest.missing_slices", F_ENUM, ingest.missing_slices, STUDY_MISSING_REJECT, 0, 0, 0, 1),
    R("preprocess.mode", F_ENUM, preprocess.mode, STUDY_PREP_STANDARD, 0, 0, 0, 1),
    R("preprocess.reorient", F_BOOL, preprocess.reorient, 1, 0, 0, 0, 1),
    R("preprocess.spacing", F_DBL3, preprocess.spacing, 0, 0, 0, 0, 100),
    R("preprocess.ct_window", F_DBL2, preprocess.ct_window, -1000, 1000, 0, -32768, 32767),
    R("preprocess.n4", F_BOOL, preprocess.n4, 0, 0, 0, 0, 1),
    R("preprocess.mr_percentiles", F_DBL2, preprocess.mr_percentiles, 1, 99, 0, 0, 100),
    R("preprocess.foreground_crop", F_BOOL, preprocess.foreground_crop, 0, 0, 0, 0, 1),
    R("shards.max_mb", F_I64, shards.max_mb, 1024, 0, 0, 1, 1048576),
    R("shards.chunk", F_INT3, shards.chunk, 32, 32, 32, 1, 4096),
    R("shards.deflate", F_INT, shards.deflate, 4, 0, 0, 0, 9),
    R("pretrain.crop", F_INT3, pretrain.crop, 96, 96, 96, 1, 4096),
    R("pretrain.patch", F_INT3, pretrain.patch, 16, 16, 16, 1, 4096),
    R("pretrain.dim", F_INT, pretrain.dim, 192, 0, 0, 6, 8192),
    R("pretrain.depth", F_INT, pretrain.depth, 6, 0, 0, 1, 128),
    R("pretrain.heads", F_INT, pretrain.heads, 3, 0, 0, 1, 256),
    R("pretrain.dec_dim", F_INT, pretrain.dec_dim, 128, 0, 0, 6, 8192),
    R("pretrain.dec_depth", F_INT, pretrain.dec_depth, 2, 0, 0, 1, 128),
    R("pretrain.dec_heads", F_INT, pretrain.dec_heads, 4, 0, 0, 1, 256),
    R("pretrain.mlp_ratio", F_INT, pretrain.mlp_ratio, 4, 0, 0, 1, 16),
    R("pretrain.mask_ratio", F_DBL, pretrain.mask_ratio, 0.75, 0, 0, 0.01, 0.99),
    R("pretrain.batch", F_INT, pretrain.batch, 8, 0, 0, 1, 4096),
    R("pretrain.steps", F_INT, pretrain.steps, 1000, 0, 0, 0, 1000000000),
    R("pretrain.warmup_steps", F_INT, pretrain.warmup_steps, 100, 0, 0, 0, 1000000000),
    R("pretrain.accumulate", F_INT, pretrain.accumulate, 1, 0, 0, 1, 1024),
    R("pretrain.checkpoint_every", F_INT, pretrain.checkpoint_every, 100, 0, 0, 1, 1000000000),
    R("pretrain.lr", F_DBL, pretrain.lr, 1.5e-4, 0, 0, 0, 1),
    R("pretrain.min_lr", F_DBL, pretrain.min_lr, 0, 0, 0, 0, 1),
    R("pretrain.weight_decay", F_DBL, pretrain.weight_decay, 0.05, 0, 0, 0, 10),
    R("pretrain.clip", F_DBL, pretrain.clip, 0, 0, 0, 0, 1e6),
    R("pretrain.decay_norms_and_biases", F_BOOL, pretrain.decay_norms_and_biases, 1, 0, 0, 0, 1),
    R("pretrain.target", F_ENUM, pretrain.target, STUDY_TARGET_NORMALIZED, 0, 0, 0, 1),
    R("pretrain.visible_loss_weight", F_DBL, pretrain.visible_loss_weight, 0, 0, 0, 0, 100),
    R("pretrain.flips", F_BOOL, pretrain.flips, 1, 0, 0, 0, 1),
    R("pretrain.intensity_scale", F_DBL, pretrain.intensity_scale, 0.1, 0, 0, 0, 1),
    R("pretrain.intensity_shift", F_DBL, pretrain.intensity_shift, 0.1, 0, 0, 0, 1),
    R("pretrain.working_set", F_INT, pretrain.working_set, 8, 0, 0, 0, 4096),
    R("pretrain.swap_every", F_INT, pretrain.swap_every, 256, 0, 0, 1, 1073741824),
    R("pretrain.chunk_cache_mb", F_INT, pretrain.chunk_cache_mb, 0, 0, 0, 0, 1048576),
    R("labels.format", F_ENUM, labels.format, STUDY_LABELS_POINTS, 0, 0, 0, 2),
    R("finetune.mode", F_ENUM, finetune.mode, STUDY_TUNE_FINETUNE, 0, 0, 0, 1),
    R("finetune.folds", F_INT, finetune.folds, 5, 0, 0, 2, 20),
    R("finetune.steps", F_INT, finetune.steps, 500, 0, 0, 1, 1000000000),
    R("finetune.batch", F_INT, finetune.batch, 8, 0, 0, 1, 4096),
    R("finetune.lr", F_DBL, finetune.lr, 1e-4, 0, 0, 0, 1),
    R("finetune.layer_decay", F_DBL, finetune.layer_decay, 0.75, 0, 0, 0.01, 1),
    R("finetune.lesion_share", F_DBL, finetune.lesion_share, 0.5, 0, 0, 0, 1),
    R("finetune.val_fraction", F_DBL, finetune.val_fraction, 0.2, 0, 0, 0, 0.5),
    R("finetune.patience", F_INT, finetune.patience, 5, 0, 0, 0, 1000),
    R("finetune.loss", F_ENUM, finetune.loss, STUDY_LOSS_FOCAL, 0, 0, 0, 1),
    R("finetune.focal_gamma", F_DBL, finetune.focal_gamma, 2, 0, 0, 0, 10),
    R("finetune.pos_weight", F_DBL, finetune.pos_weight, 1, 0, 0, 0, 10000),
    R("finetune.scratch_baseline", F_BOOL, finetune.scratch_baseline, 1, 0, 0, 0, 1),
    R("finetune.eval_every", F_INT, finetune.eval_every, 25, 0, 0, 0, 1000000),
    R("validate.bootstrap", F_INT, validate.bootstrap, 1000, 0, 0, 0, 1000000),
};
#undef R

static int kind_width(field_kind k) {
    return k == F_INT3 || k == F_DBL3 ? 3 : k == F_DBL2 ? 2 : 1;
}

static double rule_get(const study *s, const field_rule *r, int i) {
    const char *p = (const char *)s + r->offset;
    switch (r->kind) {
    case F_I64: return (double)*(const int64_t *)p;
    case F_DBL: case F_DBL2: case F_DBL3: return ((const double *)p)[i];
    default: return (double)((const int *)p)[i];
    }
}

static void rule_set(study *s, const field_rule *r, int i, double v) {
    char *p = (char *)s + r->offset;
    switch (r->kind) {
    case F_I64: *(int64_t *)p = (int64_t)v; break;
    case F_DBL: case F_DBL2: case F_DBL3: ((double *)p)[i] = v; break;
    default: ((int *)p)[i] = (int)v;
    }
}

/* ---- key lines, from a libyaml event pass ---------------------------------------------- */
typedef struct key_frame {
    int is_map, expect_key;
    size_t path_len; /* length of the path prefix of this frame */
} key_frame;

int study_key_line(const char *path, const char *key_path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return 0;
    }
    yaml_parser_set_input_file(&parser, f);
    key_frame stack[64];
    int depth = 0, line = 0, done = 0;
    char cur[512] = "", last_key[512] = "";
    while (!done && !line) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) break;
        key_frame *top = depth ? &stack[depth - 1] : NULL;
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            if (top && top->is_map && top->expect_key) {
                snprintf(last_key, sizeof last_key, "%.*s%s%s", (int)top->path_len, cur,
                         top->path_len ? "." : "", (const char *)ev.data.scalar.value);
                if (strcmp(last_key, key_path) == 0) line = (int)ev.start_mark.line + 1;
                top->expect_key = 0;
            } else if (top && top->is_map) {
                top->expect_key = 1;
            }
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (depth == 64) {
                done = 1;
                break;
            }
            /* a mapping value opens a deeper path; sequence entries keep their parent's */
            if (top && top->is_map) {
                snprintf(cur, sizeof cur, "%s", last_key);
            }
            stack[depth].is_map = ev.type == YAML_MAPPING_START_EVENT;
            stack[depth].expect_key = 1;
            stack[depth].path_len = strlen(cur);
            depth++;
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            if (depth > 0) {
                stack[depth - 1].expect_key = 1;
                cur[stack[depth - 1].path_len] = 0;
            }
            break;
        case YAML_STREAM_END_EVENT: done = 1; break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return line;
}

/* ---- loading ----------------------------------------------------------------------------- */
typedef struct cy_log {
    char text[2048];
    size_t len;
} cy_log;

static void cy_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args) {
    (void)level;
    cy_log *l = ctx;
    if (l->len + 1 >= sizeof l->text) return;
    int n = vsnprintf(l->text + l->len, sizeof l->text - l->len, fmt, args);
    if (n > 0) l->len += (size_t)n < sizeof l->text - l->len ? (size_t)n : sizeof l->text - l->len - 1;
}

static const cyaml_config_t *cy_config(cy_log *log) {
    static cyaml_config_t cfg;
    cfg.log_fn = cy_log_fn;
    cfg.log_ctx = log;
    cfg.mem_fn = cyaml_mem;
    cfg.log_level = CYAML_LOG_ERROR;
    cfg.flags = CYAML_CFG_DEFAULT;
    return &cfg;
}

/* Turn libcyaml's log ("Load: reason\nLoad: Backtrace:\n  in mapping field 'x' (line: N, ...")
 * into "FILE:LINE: key 'a.b': reason". */
static vs_status cyaml_failure(const char *path, cyaml_err_t e, const cy_log *log, vs_error *err) {
    char reason[256] = "", fields[8][64];
    int n_fields = 0, line = 0;
    const char *p = log->text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char row[512];
        snprintf(row, sizeof row, "%.*s", (int)(len < sizeof row ? len : sizeof row - 1), p);
        const char *q;
        if (!reason[0] && strncmp(row, "Load: ", 6) == 0 && strncmp(row, "Load: Backtrace", 15) != 0)
            snprintf(reason, sizeof reason, "%s", row + 6);
        if ((q = strstr(row, "in mapping field '")) && n_fields < 8) {
            q += 18;
            const char *end = strchr(q, '\'');
            if (end) snprintf(fields[n_fields++], 64, "%.*s", (int)(end - q), q);
        }
        if (!line && (q = strstr(row, "(line: "))) line = atoi(q + 7);
        p = eol ? eol + 1 : p + len;
    }
    /* For a missing key, libcyaml's innermost frame is the last key it saw at that level. */
    const char *missing = strstr(reason, "Missing required mapping field: ");
    int first = missing && n_fields > 0 ? 1 : 0;
    char key[256] = "";
    for (int i = n_fields - 1; i >= first; i--) /* backtrace lists the innermost field first */
        snprintf(key + strlen(key), sizeof key - strlen(key), "%s%s", key[0] ? "." : "", fields[i]);
    const char *unexpected = strstr(reason, "Unexpected key: ");
    if (unexpected) {
        char full[320];
        snprintf(full, sizeof full, "%s%s%s", key, key[0] ? "." : "", unexpected + 16);
        snprintf(key, sizeof key, "%s", full);
        int l = study_key_line(path, key);
        if (l) line = l;
        snprintf(reason, sizeof reason, "unknown key");
    }
    if (missing) {
        char full[320];
        snprintf(full, sizeof full, "%s%s%s", key, key[0] ? "." : "", missing + 32);
        snprintf(key, sizeof key, "%s", full);
        snprintf(reason, sizeof reason, "required key is missing");
    }
    if (e == CYAML_ERR_FILE_OPEN)
        return VS_FAIL(err, VS_ERR_CONFIG, "%s: cannot open the study file (%s)", path, strerror(errno));
    if (!reason[0]) snprintf(reason, sizeof reason, "%s", cyaml_strerror(e));
    if (key[0])
        return VS_FAIL(err, VS_ERR_CONFIG, "%s:%d: key '%s': %s", path, line, key, reason);
    return VS_FAIL(err, VS_ERR_CONFIG, "%s:%d: %s", path, line, reason);
}

static vs_status key_error(const char *path, const char *key, vs_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static vs_status key_error(const char *path, const char *key, vs_error *err, const char *fmt, ...) {
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return VS_FAIL(err, VS_ERR_CONFIG, "%s:%d: key '%s': %s", path, study_key_line(path, key), key, why);
}

static vs_status apply_rules(study *s, const char *path, vs_error *err) {
    for (size_t r = 0; r < N_OF(rules); r++) {
        const field_rule *rule = &rules[r];
        int w = kind_width(rule->kind);
        if (!study_key_line(path, rule->path))
            for (int i = 0; i < w; i++) rule_set(s, rule, i, rule->def[i]);
        for (int i = 0; i < w; i++) {
            double v = rule_get(s, rule, i);
            if (!(v >= rule->min && v <= rule->max))
                return key_error(path, rule->path, err, "value %g is outside [%g, %g]", v, rule->min,
                                 rule->max);
        }
    }
    return VS_OK;
}

static vs_status check_consistency(const study *s, const char *path, vs_error *err) {
    const study_pretrain *p = &s->pretrain;
    for (int a = 0; a < 3; a++)
        if (p->crop[a] % p->patch[a])
            return key_error(path, "pretrain.patch", err, "patch %d does not divide crop %d (axis %d)",
                             p->patch[a], p->crop[a], a);
    if (p->dim % p->heads) return key_error(path, "pretrain.heads", err, "dim %d is not a multiple of heads %d", p->dim, p->heads);
    if (p->dec_dim % p->dec_heads)
        return key_error(path, "pretrain.dec_heads", err, "dec_dim %d is not a multiple of dec_heads %d", p->dec_dim, p->dec_heads);
    if (p->min_lr > p->lr) return key_error(path, "pretrain.min_lr", err, "min_lr is above lr");
    if (s->preprocess.ct_window[0] >= s->preprocess.ct_window[1])
        return key_error(path, "preprocess.ct_window", err, "the window's low end must be below its high end");
    if (s->preprocess.mr_percentiles[0] >= s->preprocess.mr_percentiles[1])
        return key_error(path, "preprocess.mr_percentiles", err, "the low percentile must be below the high one");
    if (s->deid.retain_long_full_dates && s->deid.retain_long_modified_dates)
        return key_error(path, "deid.retain_long_modified_dates", err,
                         "cannot retain full dates and modified dates at once");
    for (unsigned i = 0; i < s->validate.operating_points_count; i++)
        if (!(s->validate.operating_points[i] >= 0 && s->validate.operating_points[i] <= 1))
            return key_error(path, "validate.operating_points", err, "operating points are probabilities in [0, 1]");
    for (unsigned i = 0; i < s->ingest.sources_count; i++)
        if (!s->ingest.sources[i][0]) return key_error(path, "ingest.sources", err, "empty source path");
    return VS_OK;
}

/* Replace *p by dir/ *p when relative; returns 0 on allocation failure. */
static int resolve(char **p, const char *dir) {
    if (!*p || (*p)[0] == '/' || !dir[0]) return 1;
    size_t n = strlen(dir) + strlen(*p) + 2;
    char *full = malloc(n);
    if (!full) return 0;
    snprintf(full, n, "%s/%s", dir, *p);
    free(*p);
    *p = full;
    return 1;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

vs_status study_load(const char *path, study **out, vs_error *err) {
    *out = NULL;
    cy_log log = {{0}, 0};
    study *s = NULL;
    cyaml_err_t e = cyaml_load_file(path, cy_config(&log), &study_schema, (cyaml_data_t **)&s, NULL);
    if (e != CYAML_OK) return cyaml_failure(path, e, &log, err);
    vs_status st = apply_rules(s, path, err);
    if (st == VS_OK) st = check_consistency(s, path, err);
    if (st == VS_OK && !s->validate.operating_points) {
        s->validate.operating_points = malloc(sizeof(double));
        if (!s->validate.operating_points) st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        else {
            s->validate.operating_points[0] = 0.5;
            s->validate.operating_points_count = 1;
        }
    }
    char dir[PATH_MAX] = "";
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (slash && slash == path) snprintf(dir, sizeof dir, "/");
    int ok = st == VS_OK && resolve(&s->output, dir) && resolve(&s->deid.key_file, dir) &&
             resolve(&s->deid.linkage, dir) && resolve(&s->labels.file, dir) &&
             resolve(&s->labels.volumes, dir);
    for (unsigned i = 0; ok && i < s->ingest.sources_count; i++) ok = resolve(&s->ingest.sources[i], dir);
    if (st == VS_OK && !ok) st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (st == VS_OK && !(s->path = dup_str(path))) st = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    if (st != VS_OK) {
        study_free(s);
        return st;
    }
    *out = s;
    return VS_OK;
}

void study_free(study *s) {
    if (!s) return;
    free(s->path);
    s->path = NULL;
    cy_log log = {{0}, 0};
    cyaml_free(cy_config(&log), &study_schema, s, 0);
}
