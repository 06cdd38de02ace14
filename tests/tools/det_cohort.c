/* det_cohort — test helper: `det_cohort DIR N` writes N small labeled volumes (oblique,
 * anisotropic; noise, a smooth background and, in every other one, 1-2 bright blobs) into
 * DIR/shards. `det_cohort DIR N CONTRAST [SEED]` instead writes 40^3 phantom CT volumes of the
 * kind `vesalius pretrain --synthetic` trains on (studies/phantom.h, windowed -1000..1000 HU
 * to [0, 1]: soft tissue ~0.52, noise sigma 0.005) with, in every other one, 1-2 Gaussian
 * lesions of amplitude CONTRAST in soft tissue or fat (not lung or air), for measuring whether
 * pretraining helps. Either way
 * DIR/shards through the shard writer under the keyed pseudonyms of DIR/site.key, and the
 * labels as researchers hold them, under ORIGINAL UIDs "1.2.826.0.1.3680043.99.<i>":
 * DIR/annotations.csv (LUNA16 points, LPS mm) and DIR/volumes.csv. Two series per patient.
 * DIR/keys.csv maps each original UID to its series and patient pseudonyms (for tests that
 * edit the labels of chosen patients). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deid.h"
#include "mae_data.h"
#include "synth.h"
#include "rng.h"
#include "shard.h"

enum { NZ = 20, NY = 32, NX = 32 };

static int make_volume(volume *v, int i, rng *r, FILE *ann, const char *uid) {
    vs_error err;
    memset(v, 0, sizeof *v);
    if (volume_alloc(v, NZ, NY, NX, VOL_FLOAT32, 0, &err) != VS_OK) return 1;
    double a = (i % 3) * 15.0 * M_PI / 180.0;
    double dir[9] = {cos(a), -sin(a), 0.0, sin(a), cos(a), 0.0, 0.0, 0.0, 1.0};
    memcpy(v->direction, dir, sizeof dir);
    v->spacing[0] = 0.8, v->spacing[1] = 0.8, v->spacing[2] = 1.5 + 0.25 * (i % 2);
    v->origin[0] = -20.0 + i, v->origin[1] = 10.0, v->origin[2] = -100.0 - 2 * i;
    volume_update_affine(v);
    snprintf(v->modality, sizeof v->modality, "CT");
    double c[2][3];
    int nl = i % 2 ? 0 : 1 + (i / 2) % 2;
    for (int l = 0; l < nl; l++) {
        c[l][0] = 3 + rng_double(r) * 13, c[l][1] = 3 + 15 * l + rng_double(r) * 10;
        c[l][2] = 3 + rng_double(r) * 25;
        double ijk[3] = {c[l][2], c[l][1], c[l][0]}, lps[3];
        volume_index_to_lps(v, ijk, lps);
        fprintf(ann, "%s,%.4f,%.4f,%.4f,%.1f\n", uid, lps[0], lps[1], lps[2], 5.0);
    }
    float *vx = v->voxels;
    for (int z = 0; z < NZ; z++)
        for (int y = 0; y < NY; y++)
            for (int x = 0; x < NX; x++) {
                double val = 0.3 * rng_normal(r) + 0.3 * sin(0.3 * x + 0.2 * y + i);
                for (int l = 0; l < nl; l++) {
                    double dz = z - c[l][0], dy = y - c[l][1], dx = x - c[l][2];
                    val += 2.0 * exp(-(dz * dz + dy * dy + dx * dx) / (2.0 * 1.5 * 1.5));
                }
                vx[((size_t)z * NY + y) * NX + x] = (float)val;
            }
    return 0;
}

/* A pretraining-like phantom with nl lesions of amplitude `contrast` where the body is (above
 * 0.2: -600 HU). */
static int make_phantom(volume *v, int nl, double contrast, rng *r, FILE *ann, const char *uid) {
    vs_error err;
    if (synth_normalized_ct(v, 40, 40, 40, r, &err) != VS_OK) return 1;
    float *vx = v->voxels;
    double c[2][3];
    for (int l = 0; l < nl; l++) {
        do { /* a centre inside the body, away from the edges */
            for (int a = 0; a < 3; a++)
                c[l][a] = 6 + rng_double(r) * 28;
        } while (vx[((size_t)lround(c[l][0]) * 40 + (size_t)lround(c[l][1])) * 40 +
                    (size_t)lround(c[l][2])] < 0.2f);
        double ijk[3] = {c[l][2], c[l][1], c[l][0]}, lps[3];
        volume_index_to_lps(v, ijk, lps);
        fprintf(ann, "%s,%.4f,%.4f,%.4f,%.1f\n", uid, lps[0], lps[1], lps[2], 6.0);
    }
    for (int z = 0; z < 40; z++)
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 40; x++)
                for (int l = 0; l < nl; l++) {
                    double dz = z - c[l][0], dy = y - c[l][1], dx = x - c[l][2];
                    vx[((size_t)z * 40 + y) * 40 + x] +=
                        (float)(contrast * exp(-(dz * dz + dy * dy + dx * dx) / (2.0 * 2.0 * 2.0)));
                }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: det_cohort DIR N [CONTRAST [SEED]]\n");
        return 2;
    }
    const char *dir = argv[1];
    int n = atoi(argv[2]);
    char p[4096];
    vs_error err;
    deid_options o;
    memset(&o, 0, sizeof o);
    deid_ctx *key = NULL;
    snprintf(p, sizeof p, "%s/site.key", dir);
    if (deid_open(&o, p, &key, &err) != VS_OK) return fprintf(stderr, "%s\n", err.msg), 1;
    snprintf(p, sizeof p, "%s/shards", dir);
    mkdir(p, 0755);
    shard_options so;
    shard_options_default(&so);
    shard_writer *w = NULL;
    if (shard_writer_open(p, 0, &so, &w, &err) != VS_OK) return fprintf(stderr, "%s\n", err.msg), 1;
    snprintf(p, sizeof p, "%s/annotations.csv", dir);
    FILE *ann = fopen(p, "w");
    snprintf(p, sizeof p, "%s/volumes.csv", dir);
    FILE *vol = fopen(p, "w");
    snprintf(p, sizeof p, "%s/keys.csv", dir);
    FILE *keys = fopen(p, "w");
    if (!ann || !vol || !keys) return 1;
    fputs("seriesuid,series,patient\n", keys);
    fputs("seriesuid,coordX,coordY,coordZ,diameter_mm\n", ann);
    fputs("seriesuid,label\n", vol);
    rng r;
    double contrast = argc >= 4 ? atof(argv[3]) : 0.0;
    rng_seed(&r, argc == 5 ? strtoull(argv[4], NULL, 10) : 42, 0);
    for (int i = 0; i < n; i++) {
        char uid[64], pid[32];
        snprintf(uid, sizeof uid, "1.2.826.0.1.3680043.99.%d", i);
        snprintf(pid, sizeof pid, "PATIENT-%d", i / 2);
        volume v;
        if (argc >= 4 ? make_phantom(&v, i % 2 ? 0 : 1 + (i / 2) % 2, contrast, &r, ann, uid)
                      : make_volume(&v, i, &r, ann, uid))
            return 1;
        deid_uid_key(key, uid, v.series_key);
        deid_patient_key(key, pid, NULL, v.patient_key);
        fprintf(vol, "%s,%d\n", uid, i % 2 ? 0 : 1);
        fprintf(keys, "%s,%s,%s\n", uid, v.series_key, v.patient_key);
        if (shard_writer_add(w, &v, NULL, NULL, &err) != VS_OK)
            return fprintf(stderr, "%s\n", err.msg), 1;
        volume_free(&v);
    }
    fclose(ann), fclose(vol), fclose(keys);
    deid_close(key);
    if (shard_writer_seal(w, &err) != VS_OK) return fprintf(stderr, "%s\n", err.msg), 1;
    return 0;
}
