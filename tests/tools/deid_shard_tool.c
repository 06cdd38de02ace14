/* deid_shard_tool — test helper for test_deid_shards: writes DIR/shard-<SEQ>.h5 through the
 * shard writer with two small synthetic CT volumes whose text fields are set from the command
 * line, so a test can plant an identifier in any attribute the writer stores.
 *
 *   deid_shard_tool DIR SEQ [NAME=VALUE...]
 *   NAME: series_key, patient_key, study_key, modality, body_part, preprocessing (the first
 *         volume), uid (its series_instance_uid), retain (0/1: the Retain UIDs option),
 *         params (the creation parameters JSON). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard.h"
#include "synth.h"

typedef struct fields {
    const char *series_key, *patient_key, *study_key, *modality, *body_part, *prep, *uid;
} fields;

static int set(volume *v, const fields *f) {
    struct {
        const char *value;
        char *dst;
        size_t cap;
    } rows[] = {
        {f->series_key, v->series_key, sizeof v->series_key},
        {f->patient_key, v->patient_key, sizeof v->patient_key},
        {f->study_key, v->study_key, sizeof v->study_key},
        {f->modality, v->modality, sizeof v->modality},
        {f->body_part, v->body_part, sizeof v->body_part},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].value &&
            snprintf(rows[i].dst, rows[i].cap, "%s", rows[i].value) >= (int)rows[i].cap)
            return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: deid_shard_tool DIR SEQ [NAME=VALUE...]\n");
        return 2;
    }
    fields f = {0};
    shard_options o;
    shard_options_default(&o);
    o.chunk[0] = o.chunk[1] = o.chunk[2] = 16;
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) goto usage;
        *eq = 0;
        const char *name = argv[i], *value = eq + 1;
        if (!strcmp(name, "series_key"))
            f.series_key = value;
        else if (!strcmp(name, "patient_key"))
            f.patient_key = value;
        else if (!strcmp(name, "study_key"))
            f.study_key = value;
        else if (!strcmp(name, "modality"))
            f.modality = value;
        else if (!strcmp(name, "body_part"))
            f.body_part = value;
        else if (!strcmp(name, "preprocessing"))
            f.prep = value;
        else if (!strcmp(name, "uid"))
            f.uid = value;
        else if (!strcmp(name, "retain"))
            o.retain_uids = atoi(value);
        else if (!strcmp(name, "params"))
            o.params = value;
        else
            goto usage;
    }
    vs_error err;
    shard_writer *w = NULL;
    if (shard_writer_open(argv[1], strtoull(argv[2], NULL, 10), &o, &w, &err) != VS_OK) goto fail;
    for (int k = 0; k < 2; k++) {
        volume v;
        char key[32];
        snprintf(key, sizeof key, "2.25.%d", 1000 + k);
        if (synth_ct(&v, 8, 24, 24, (uint64_t)k + 1, key, &err) != VS_OK) goto fail;
        if (k == 0 && set(&v, &f)) {
            fprintf(stderr, "deid_shard_tool: a value is too long\n");
            return 2;
        }
        shard_extra x = {k == 0 && f.prep ? f.prep : "none", k == 0 ? f.uid : "2.25.77"};
        vs_status st = shard_writer_add(w, &v, &x, NULL, &err);
        volume_free(&v);
        if (st != VS_OK) {
            shard_writer_abort(w);
            goto fail;
        }
    }
    if (shard_writer_seal(w, &err) != VS_OK) goto fail;
    return 0;
fail:
    fprintf(stderr, "deid_shard_tool: %s\n", err.msg);
    return 1;
usage:
    fprintf(stderr, "deid_shard_tool: unknown argument %s\n", argv[argc - 1]);
    return 2;
}
