/* phantom.h — procedural anatomy for the demo cohort: a body with fat, muscle, lungs, heart,
 * liver, spleen, kidneys, spine, aorta and vena cava, organ texture, per-subject shape
 * variation, and tumours of varied size, contrast, shape and texture inside organs.
 *
 * The phantom is a function of world position (LPS mm), so any series geometry (oblique,
 * tilted, anisotropic) samples the same anatomy, and a lesion centre in world coordinates is
 * exactly where the volume's affine puts it.
 */
#ifndef VS_PHANTOM_H
#define VS_PHANTOM_H

#include <stdint.h>

#include "rng.h"
#include "volume.h"

enum { PHANTOM_MAX_ORGANS = 12, PHANTOM_MAX_LESIONS = 8 };

typedef enum phantom_tissue {
    TISSUE_AIR = 0, TISSUE_FAT, TISSUE_MUSCLE, TISSUE_LUNG, TISSUE_HEART, TISSUE_LIVER,
    TISSUE_SPLEEN, TISSUE_KIDNEY, TISSUE_BOWEL_GAS, TISSUE_COUNT
} phantom_tissue;

typedef struct phantom_organ {
    phantom_tissue tissue;
    double center[3]; /* LPS mm */
    double axes[3];   /* semi-axes, mm */
    double angle;     /* rotation about the S-I axis, radians */
} phantom_organ;

typedef struct phantom_lesion {
    double center[3];   /* LPS mm */
    double radius;      /* mm (diameter / 2) */
    double contrast;    /* CT: HU added to the host tissue; MR: relative change */
    double lobes[3];    /* shape: amplitudes of three low-order surface harmonics */
    double phase[3];
    uint32_t texture_seed;
    phantom_tissue host;
} phantom_lesion;

typedef struct phantom {
    double center[3];      /* body centre at the diaphragm (LPS mm) */
    double body_a, body_b; /* body semi-axes: left-right, anterior-posterior (mm) */
    double fat;            /* subcutaneous fat thickness (mm) */
    double spine_radius, vertebra_period;
    double aorta_radius;
    int n_organs;
    phantom_organ organs[PHANTOM_MAX_ORGANS];
    int n_lesions;
    phantom_lesion lesions[PHANTOM_MAX_LESIONS];
    uint32_t texture_seed;
    double bias[6];        /* MR bias field coefficients */
} phantom;

/* A new subject: anatomy varied by r. */
void phantom_make(phantom *p, rng *r);
/* Add a lesion of the given diameter and contrast scale inside a random organ that can hold
 * it (liver, kidney, spleen, lung); returns 0 when none fits. contrast_scale 1 is typical,
 * below 0.5 is subtle. */
int phantom_add_lesion(phantom *p, rng *r, double diameter_mm, double contrast_scale);

/* Noise-free CT value in HU at a world point. */
double phantom_ct(const phantom *p, const double lps[3]);
/* Noise-free T1-like MR signal (arbitrary units, ~0-1000) at a world point, bias included. */
double phantom_mr(const phantom *p, const double lps[3]);

/* Fill a volume whose geometry (shape, affine) is already set: modality "CT" gives HU with
 * Gaussian noise sigma (HU); "MR" gives Rician noise of that sigma. Float32 voxels, blurred
 * by a small Gaussian (the scanner's point spread). */
vs_status phantom_render(const phantom *p, volume *v, int is_mr, double noise_sigma, rng *r,
                         vs_error *err);

/* A projection radiograph (chest/abdomen DX): attenuation integrated along A-P over a
 * detector of rows x cols pixels of `pixel_mm`, centred on the body; values 0..4095 with
 * bone and soft tissue bright. */
void phantom_radiograph(const phantom *p, int rows, int cols, double pixel_mm, double z_center,
                        uint16_t *out);

#endif
