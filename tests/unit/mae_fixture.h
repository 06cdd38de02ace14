/* mae_fixture.h — build the model tests/fixtures/mae_fixture_*.bin (written by mae_fixture.py)
 * describes; fixture.h reads the records. Test-only helpers, shared by the MAE tests. */
#ifndef VS_MAE_FIXTURE_H
#define VS_MAE_FIXTURE_H

#include "fixture.h"
#include "mae.h"

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
