/* demo.h — the embedded demo cohort: a procedural generator of realistic DICOM studies.
 *
 * CT and MR volumes of procedural anatomy (studies/phantom.h) with acquisition-like noise and
 * MR bias fields, per-subject shape variation, varied spacing, orientation (some oblique, a
 * few with gantry tilt), slice order and transfer syntax, plus 2D radiographs; fake but
 * realistic identifying values in the headers (names, IDs, birth dates, institutions,
 * physicians, private tags, dates inside nested sequences, UIDs with dates) so that
 * de-identification has real work; and a labeled CT subset with synthetic tumours and
 * LUNA16-style labels in world coordinates. Written through dcmwrite.h (DCMTK).
 *
 * Output under out_dir:
 *   dicom/unlabeled/sNNNN/imNNNN.dcm pretraining pool (CT, MR, DX)
 *   dicom/labeled/sNNNN/imNNNN.dcm   labeled CT subset
 *   labels/annotations.csv         seriesuid,coordX,coordY,coordZ,diameter_mm (LPS mm, original
 * UIDs) labels/volumes.csv             seriesuid,label (1: at least one tumour)
 *   labels/lookalikes.csv          seriesuid,coordX,coordY,coordZ,diameter_mm,kind: the benign
 *                                  cysts of labeled volumes (no label marks them; for analysis)
 *   phi.txt                        every planted identifier, one per line (for verify-deid)
 *
 * Invariant: the same config (seed included) writes the same bytes, whatever the thread count.
 */
#ifndef VS_DEMO_H
#define VS_DEMO_H

#include <stdint.h>

#include "status.h"

enum { DEMO_CT = 0, DEMO_MR = 1 };

typedef struct demo_config {
    uint64_t seed;
    int n_unlabeled;       /* pretraining volumes (CT + MR) */
    int n_labeled;         /* labeled CT volumes */
    double positive_share; /* share of labeled volumes with tumours */
    int n_radiographs;     /* DX images in the unlabeled pool */
    int matrix;            /* rows = columns of each slice */
    int min_slices, max_slices;
    double mr_share;                   /* share of unlabeled volumes that are MR */
    double oblique_share;              /* share of series acquired obliquely */
    double subtle_share;               /* share of tumours with low contrast */
    double min_diameter, max_diameter; /* tumour diameters, mm */
    double contrast;                   /* multiplies solid-organ tumours' contrast (1: default) */
    double cyst_share;    /* share of CT/MR volumes with 1-2 benign cysts (unlabeled lookalikes) */
    int labeled_modality; /* 0: CT, 1: MR (DEMO_CT, DEMO_MR) */
    int threads;          /* 0: all cores */
} demo_config;

/* The defaults: 200 unlabeled + 40 labeled volumes, about half of the labeled with tumours. */
void demo_config_default(demo_config *c);

typedef struct demo_summary {
    int n_series, n_files, n_lesions, n_positive;
} demo_summary;

vs_status demo_generate(const demo_config *c, const char *out_dir, demo_summary *summary,
                        vs_error *err);

#endif
