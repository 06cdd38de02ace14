/* cmd_inspect.c — `vesalius inspect PATH...`: what vesalius sees in DICOM input or shards.
 *
 * Shard files and folders (and ingest output folders) go to inspect_shard.c.
 * For DICOM files, folders and DICOMDIRs: every volume (shape, voxel type, spacing, origin,
 * direction, modality, kind, file count) and the account of every file (used, skipped,
 * rejected with reasons). Nothing identifying is printed: no names, IDs, UIDs or dates.
 * Exit 4 when some input was rejected. */
#include "cli.h"
#include "dicom.h"
#include "inspect.h"
#include "log.h"
#include "parse.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_volume(FILE *out, const dcm_series *v) {
    const volume *vol = dcm_series_volume(v);
    const double *d = vol->direction;
    fprintf(out, "volume %d: %s %s, %lld x %lld x %lld (slices x rows x columns), %s%s\n",
            dcm_series_index(v), vol->modality[0] ? vol->modality : "?",
            dcm_kind_name(dcm_series_kind(v)), (long long)vol->n_slices, (long long)vol->n_rows,
            (long long)vol->n_cols, vol_dtype_name(vol->dtype),
            dcm_series_resampled(v) ? ", resampled to even slice spacing" : "");
    fprintf(out, "  spacing   %.6g %.6g %.6g mm (column, row, slice)\n", vol->spacing[0],
            vol->spacing[1], vol->spacing[2]);
    fprintf(out, "  origin    %.3f %.3f %.3f mm (LPS)\n", vol->origin[0], vol->origin[1],
            vol->origin[2]);
    fprintf(out, "  direction i (%.5f %.5f %.5f)  j (%.5f %.5f %.5f)  k (%.5f %.5f %.5f)\n", d[0],
            d[3], d[6], d[1], d[4], d[7], d[2], d[5], d[8]);
    fprintf(out, "  files     %d\n", dcm_series_n_files(v));
}

/* Skipped files by reason (counts), rejected files one per line. */
static void print_account(FILE *out, const dcm_scan *s) {
    dcm_counts c;
    dcm_scan_counts(s, &c);
    fprintf(out, "files: %lld (%lld used in %lld volumes, %lld skipped, %lld rejected)\n",
            (long long)c.files, (long long)c.used, (long long)c.volumes, (long long)c.skipped,
            (long long)c.rejected);
    int64_t n = dcm_scan_n_files(s);
    char *done = calloc((size_t)n + 1, 1);
    for (int64_t i = 0; done && i < n; i++) {
        if (done[i] || dcm_scan_file_state(s, i) != DCM_SKIPPED) continue;
        const char *why = dcm_scan_file_reason(s, i);
        int64_t count = 0;
        for (int64_t j = i; j < n; j++)
            if (!done[j] && dcm_scan_file_state(s, j) == DCM_SKIPPED &&
                strcmp(dcm_scan_file_reason(s, j), why) == 0) {
                done[j] = 1;
                count++;
            }
        fprintf(out, "  skipped %lld: %s\n", (long long)count, why);
    }
    free(done);
    for (int64_t i = 0; i < n; i++)
        if (dcm_scan_file_state(s, i) == DCM_REJECTED)
            fprintf(out, "  rejected %s: %s\n", dcm_scan_file_path(s, i),
                    dcm_scan_file_reason(s, i));
}

static vs_status write_summary(const dcm_scan *s, const char *path, vs_error *err) {
    FILE *f = fopen(path, "w");
    if (!f) return VS_FAIL(err, VS_ERR_IO, "%s: cannot write the summary", path);
    vs_status st = dcm_scan_write_summary(s, f, err);
    if (fclose(f) != 0 && !st) st = VS_FAIL(err, VS_ERR_IO, "%s: cannot write the summary", path);
    return st;
}

int cmd_inspect(int argc, char **argv) {
    static const struct option opts[] = {
        {"summary", required_argument, 0, 's'},
        {"resample", no_argument, 0, 'r'},
        {"max-voxels", required_argument, 0, 'm'},
        {0, 0, 0, 0},
    };
    const char *summary = NULL;
    dcm_options opt = {0};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': summary = optarg; break;
        case 'r': opt.resample_uneven = 1; break;
        case 'm': {
            uint64_t v;
            if (!vs_parse_u64(optarg, 1, UINT64_MAX, &v))
                return cli_usage_error("inspect", "--max-voxels wants a positive number, not '%s'",
                                       optarg);
            opt.limits.max_voxels = v;
            opt.max_volume_voxels = v;
            break;
        }
        default: return cli_usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return cli_usage_error("inspect", "no PATH given");
    opt.threads = g_cli.threads > 0 ? g_cli.threads : 1;

    vs_error err;
    int all_shards = 1;
    for (int i = optind; i < argc; i++)
        all_shards &= inspect_is_shard_path(argv[i]);
    if (all_shards) {
        int code = VS_EXIT_OK;
        for (int i = optind; i < argc; i++)
            if (inspect_shard_path(argv[i], &err) != VS_OK && code == VS_EXIT_OK)
                code = cli_fail("inspect", &err);
        return code;
    }
    dcm_scan *s = NULL;
    vs_status st = dcm_scan_open(&opt, &s, &err);
    for (int i = optind; !st && i < argc; i++)
        st = dcm_scan_add(s, argv[i], &err);
    if (!st) st = dcm_scan_group(s, &err);
    while (!st) {
        dcm_series *v = NULL;
        st = dcm_scan_next(s, &v, &err);
        if (st || !v) break;
        print_volume(stdout, v);
        dcm_series_free(v);
    }
    if (!st) print_account(stdout, s);
    if (!st && summary) st = write_summary(s, summary, &err);
    if (st) {
        dcm_scan_close(s);
        return cli_fail("inspect", &err);
    }
    dcm_counts counts;
    dcm_scan_counts(s, &counts);
    dcm_scan_close(s);
    return counts.rejected ? VS_EXIT_REJECTS : VS_EXIT_OK;
}
