/* mae_fixture.h — read the records of tests/fixtures/mae_fixture_*.bin (written by mae_fixture.py) and
 * build the model they describe. Test-only helpers, shared by the MAE tests. */
#ifndef VS_MAE_FIXTURE_H
#define VS_MAE_FIXTURE_H

#include "mae.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx_record {
    char name[96];
    int dtype; /* 0 float32, 1 int32 */
    uint32_t count;
    void *data;
} fx_record;

typedef struct fixture {
    fx_record rec[256];
    int n;
    unsigned char *buf;
} fixture;

static int fx_load(fixture *f, const char *name) {
    char path[1024];
    const char *src = getenv("VESALIUS_SRC"), *dir = getenv("VESALIUS_FIXTURES"); /* dir: others */
    if (dir)
        snprintf(path, sizeof path, "%s/%s", dir, name);
    else
        snprintf(path, sizeof path, "%s/tests/fixtures/%s", src ? src : ".", name);
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        return -1;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->buf = malloc((size_t)size);
    if (!f->buf || fread(f->buf, 1, (size_t)size, fp) != (size_t)size) {
        fclose(fp);
        return -1;
    }
    fclose(fp);
    long off = 0;
    while (off + 12 <= size && f->n < 256) {
        uint32_t len, dtype, count;
        memcpy(&len, f->buf + off, 4);
        if (len >= 96 || off + 4 + len + 8 > size) return -1;
        fx_record *r = &f->rec[f->n++];
        memcpy(r->name, f->buf + off + 4, len);
        r->name[len] = 0;
        memcpy(&dtype, f->buf + off + 4 + len, 4);
        memcpy(&count, f->buf + off + 8 + len, 4);
        r->dtype = (int)dtype, r->count = count;
        if (off + 12 + len + 4L * count > size) return -1;
        r->data = malloc(4 * (size_t)count + 4); /* its own allocation: aligned for its type */
        if (!r->data) return -1;
        memcpy(r->data, f->buf + off + 12 + len, 4 * (size_t)count);
        off += 12 + len + 4L * count;
    }
    return 0;
}

static const fx_record *fx_get(const fixture *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->rec[i].name, name) == 0) return &f->rec[i];
    return NULL;
}

static void fx_free(fixture *f) {
    for (int i = 0; i < f->n; i++)
        free(f->rec[i].data);
    free(f->buf);
}

/* Fill cfg from the "config" record; returns the number of AdamW steps recorded. */
static int fx_config(const fixture *f, mae_config *c) {
    const fx_record *r = fx_get(f, "config");
    int32_t v[16];
    memcpy(v, r->data, sizeof v);
    mae_config_default(c);
    for (int a = 0; a < 3; a++)
        c->crop[a] = v[a], c->patch[a] = v[3 + a];
    c->dim = v[6], c->depth = v[7], c->heads = v[8];
    c->dec_dim = v[9], c->dec_depth = v[10], c->dec_heads = v[11];
    c->mlp_ratio = v[12], c->batch = v[13], c->norm_pix = v[14];
    float mr, vw;
    memcpy(&mr, fx_get(f, "mask_ratio")->data, 4);
    memcpy(&vw, fx_get(f, "vis_weight")->data, 4);
    c->mask_ratio = mr; /* 0.75 and the like are exact in float */
    c->vis_weight = vw;
    return v[15];
}

/* Copy every "param:NAME" record into the model; -1 when a name or size does not match. */
static int fx_set_params(const fixture *f, mae *m) {
    int matched = 0;
    for (int i = 0; i < mae_n_tensors(m); i++) {
        const mae_tensor *t = mae_tensor_at(m, i);
        char key[96];
        snprintf(key, sizeof key, "param:%s", t->name);
        const fx_record *r = fx_get(f, key);
        if (!r || r->count != t->size) {
            fprintf(stderr, "fixture has no %s of %zu floats\n", key, t->size);
            return -1;
        }
        memcpy(mae_params(m) + t->offset, r->data, t->size * sizeof(float));
        matched++;
    }
    int in_fixture = 0;
    for (int i = 0; i < f->n; i++)
        in_fixture += strncmp(f->rec[i].name, "param:", 6) == 0;
    if (in_fixture != matched) {
        fprintf(stderr, "fixture has %d parameter tensors, the model %d\n", in_fixture, matched);
        return -1;
    }
    return 0;
}

#endif
