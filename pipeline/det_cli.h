/* det_cli.h — what `vesalius finetune` and `vesalius predict` share (pipeline/cmd_predict.c):
 * prediction rows in the form of validation/FORMATS.md and heatmaps. */
#ifndef VS_DET_CLI_H
#define VS_DET_CLI_H

#include <stdio.h>

#include "det.h"
#include "status.h"
#include "volume.h"

/* A number in [lo, hi] from an option value (vs_parse_double's rule, io/base/include/parse.h);
 * 0, or -1 when it is not one. Kept for the finetune options until that path is rewritten. */
int detcli_number(const char *s, double lo, double hi, double *out);
/* What a prediction row says about the fit that made it (validation/FORMATS.md): the arm,
 * the label budget (training patients), the run seed and the split role of the series. */
typedef struct detcli_tag {
    const char *arm;
    int budget, seed;
    const char *set; /* "test" or "dev" */
} detcli_tag;

/* The CSV header line of prediction rows. */
void detcli_csv_header(FILE *csv);
/* One volume's rows: its volume row (empty x, y, z; probability = the volume score), then one
 * row per candidate, to csv and (when not NULL) json as JSON lines. */
void detcli_write_rows(FILE *csv, FILE *json, const char *series, const detcli_tag *tag,
                       const det_result *r);
/* The merged objectness of r as an image on the token grid of v (NIfTI when path ends in
 * .nii or .nii.gz): voxel c sits at the centre of token c's patch. */
vs_status detcli_write_heatmap(const volume *v, const det_config *c, const det_result *r,
                               const char *path, vs_error *err);

#endif
