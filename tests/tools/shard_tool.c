/* shard_tool — test helper: `shard_tool write DIR` writes synthetic CT, MR and radiograph
 * volumes into DIR/shards through the shard writer and dumps what it wrote (raw voxels and a
 * JSON of every attribute) under DIR/ref, for test_shard_h5py.py to compare with h5py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shard.h"
#include "synth.h"

static void put_doubles(FILE *f, const char *name, const double *x, int n) {
    fprintf(f, "\"%s\":[", name);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.17g", i ? "," : "", x[i]);
    fprintf(f, "],");
}

static int dump(const char *dir, const volume *v, const shard_entry *e, const char *prep,
                const char *uid) {
    char p[4200];
    snprintf(p, sizeof p, "%s/ref/%s.bin", dir, v->series_key);
    FILE *f = fopen(p, "wb");
    if (!f) return 1;
    size_t n = volume_n_voxels(v);
    if (fwrite(v->voxels, vol_dtype_size(v->dtype), n, f) != n) return 1;
    fclose(f);
    snprintf(p, sizeof p, "%s/ref/%s.json", dir, v->series_key);
    if (!(f = fopen(p, "w"))) return 1;
    fprintf(f, "{\"dtype\":\"%s\",\"shape\":[%lld,%lld,%lld],", vol_dtype_name(v->dtype),
            (long long)v->n_slices, (long long)v->n_rows, (long long)v->n_cols);
    put_doubles(f, "spacing", v->spacing, 3);
    put_doubles(f, "origin", v->origin, 3);
    put_doubles(f, "direction", v->direction, 9);
    put_doubles(f, "affine", v->affine, 16);
    fprintf(f,
            "\"modality\":\"%s\",\"body_part\":\"%s\",\"units\":\"%s\",\"preprocessing\":\"%s\","
            "\"patient_key\":\"%s\",\"study_key\":\"%s\",\"series_key\":\"%s\","
            "\"checksum\":\"%s\",\"first_voxel\":%lld,\"series_instance_uid\":\"%s\"}\n",
            v->modality, v->body_part, v->units, prep, v->patient_key, v->study_key, v->series_key,
            e->checksum, (long long)e->first_voxel, uid ? uid : "");
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "write") != 0) {
        fprintf(stderr, "usage: shard_tool write DIR\n");
        return 2;
    }
    const char *dir = argv[2];
    char p[4200];
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/shards", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/ref", dir);
    mkdir(p, 0700);
    vs_error err;
    shard_options o;
    shard_options_default(&o);
    o.chunk[0] = 32, o.chunk[1] = 48, o.chunk[2] = 48;
    o.deflate_level = 6;
    o.threads = 2;
    o.retain_uids = 1;
    o.params = "{\"study\":\"h5py-test\"}";
    snprintf(p, sizeof p, "%s/shards", dir);
    /* Two shards: CT + radiograph with UIDs retained, MR without. */
    for (int s = 0; s < 2; s++) {
        shard_writer *w = NULL;
        o.retain_uids = s == 0;
        if (shard_writer_open(p, (uint64_t)s + 1, &o, &w, &err) != VS_OK) goto fail;
        for (int i = 0; i < 2 - s; i++) {
            volume v;
            vs_status st =
                s == 1 ? synth_mr(&v, 36, 64, 72, 5, "2.25.329800735698586629295641978511506172918",
                                  &err) /* a de-identified series key (io/deid) */
                : i == 0 ? synth_ct(&v, 70, 100, 90, 4, "ct-0004", &err)
                         : synth_xray(&v, 320, 256, 6, "dx-0006", &err);
            if (st != VS_OK) goto fail;
            const char *uid = "2.25.123456789";
            shard_extra x = {s == 1 ? "mr:n4,percentile(0.5,99.5)" : "none", uid};
            shard_entry e;
            if (shard_writer_add(w, &v, &x, &e, &err) != VS_OK) goto fail;
            if (dump(dir, &v, &e, x.preprocessing, o.retain_uids ? uid : NULL)) {
                fprintf(stderr, "shard_tool: cannot write the reference files\n");
                return 1;
            }
            volume_free(&v);
        }
        if (shard_writer_seal(w, &err) != VS_OK) goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "shard_tool: %s\n", err.msg);
    return 1;
}
