/* phantom.h — procedural anatomy for the demo cohort: a body with fat, muscle, lungs, heart,
 * liver (with its vessels), spleen, kidneys, spine, aorta and vena cava, bowel gas, mesenteric
 * fat, organ texture, per-subject shape variation; tumours of varied size, density, shape,
 * margin and texture inside organs, and benign cysts as lookalikes.
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

enum { PHANTOM_MAX_ORGANS = 12, PHANTOM_MAX_LESIONS = 12 };

typedef enum phantom_tissue {
    TISSUE_AIR = 0,
    TISSUE_FAT,
    TISSUE_MUSCLE,
    TISSUE_LUNG,
    TISSUE_HEART,
    TISSUE_LIVER,
    TISSUE_SPLEEN,
    TISSUE_KIDNEY,
    TISSUE_BOWEL_GAS,
    /* not organs: the spine, the great vessels, fat between the bowel loops */
    TISSUE_CORTEX,
    TISSUE_MARROW,
    TISSUE_DISC,
    TISSUE_AORTA,
    TISSUE_IVC,
    TISSUE_VISCERAL_FAT,
    TISSUE_COUNT
} phantom_tissue;

typedef struct phantom_organ {
    phantom_tissue tissue;
    double center[3]; /* LPS mm */
    double axes[3];   /* semi-axes, mm */
    double angle;     /* rotation about the S-I axis, radians */
} phantom_organ;

/* A focal lesion. Tumours are what the labels mark; cysts are benign lookalikes that no label
 * marks: water-dense, round, sharp-edged and homogeneous, where tumours are soft-tissue dense,
 * lobulated, ill-defined and heterogeneous (some with an enhancing rim or a necrotic core). */
typedef enum phantom_lesion_kind { LESION_TUMOUR = 0, LESION_CYST } phantom_lesion_kind;

typedef struct phantom_lesion {
    phantom_lesion_kind kind;
    double center[3];     /* LPS mm */
    double radius;        /* mm (diameter / 2) */
    double ct_delta;      /* CT: HU added to the host tissue */
    double mr_rel;        /* MR: relative change of the host's signal */
    double edge;          /* mm: width of the partial-volume margin (ill-defined when large) */
    double rim;           /* CT HU of an enhancing rim (MR: rim / 100 of the host); 0: none */
    double necrosis;      /* share of the core's delta removed (0: solid) */
    double heterogeneity; /* relative amplitude of the internal texture */
    double lobes[3];      /* shape: amplitudes of three low-order surface harmonics */
    double phase[3];
    double roughness; /* amplitude of a noise displacement of the surface (relative) */
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
    double bias[6]; /* MR bias field coefficients */
} phantom;

/* A new subject: anatomy varied by r. */
void phantom_make(phantom *p, rng *r);
/* Add a tumour of the given diameter and contrast scale inside a random organ that can hold
 * it (liver, kidney, spleen, lung); returns 0 when none fits. Densities follow the host
 * (studies/README): liver metastases mostly hypodense (15-45 HU against liver's 60), some
 * hyperdense (still below contrast-filled vessels), spleen and kidney lesions hypodense, lung
 * nodules soft tissue in aerated lung. contrast_scale 1 is typical, below 0.5 is subtle; at 1
 * no tumour is darker than fat or brighter than the aorta. */
int phantom_add_lesion(phantom *p, rng *r, double diameter_mm, double contrast_scale);
/* Add a simple cyst (water density, sharp, round) of the given diameter in the liver, a
 * kidney or the spleen: a lookalike no label marks. Returns 0 when none fits. */
int phantom_add_cyst(phantom *p, rng *r, double diameter_mm);

/* The tissue at a world point, lesions aside (what phantom_ct and phantom_mr add texture,
 * vessels and lesions to). */
phantom_tissue phantom_tissue_at(const phantom *p, const double lps[3]);
/* Noise-free CT value in HU at a world point. */
double phantom_ct(const phantom *p, const double lps[3]);
/* Noise-free T1-like MR signal (arbitrary units, ~0-1000) at a world point, bias included. */
double phantom_mr(const phantom *p, const double lps[3]);

/* Fill a volume whose geometry (shape, affine) is already set: modality "CT" gives HU with
 * Gaussian noise sigma (HU); "MR" gives Rician noise of that sigma. Float32 voxels, blurred
 * by a small Gaussian (the scanner's point spread). */
vs_status phantom_render(const phantom *p, volume *v, int is_mr, double noise_sigma, rng *r,
                         vs_error *err);

/* Set v's shape and geometry (not its voxels) to an axial box of (nz, ny, nx) voxels around
 * the body, its middle slice at height z (LPS mm): square pixels sized so that rows and
 * columns span the body's cross-section and 30% more (air on every side), slices slice_mm
 * apart (0: as far apart as the pixels), identity direction. */
void phantom_frame(const phantom *p, volume *v, int64_t nz, int64_t ny, int64_t nx, double z,
                   double slice_mm);

/* A projection radiograph (chest/abdomen DX): attenuation integrated along A-P in steps of
 * step_mm (the demo takes 1.5) over a detector of rows x cols pixels of `pixel_mm`, centred on
 * the body; values 0..4095 with bone and soft tissue bright. */
void phantom_radiograph(const phantom *p, int rows, int cols, double pixel_mm, double z_center,
                        double step_mm, uint16_t *out);

/* A pretraining volume (`vesalius pretrain --synthetic`, the model tests): a new subject drawn
 * from r, framed (phantom_frame, isotropic) at a height drawn between the liver and the lung
 * bases, CT rendered with 10 HU of noise, then clipped to window (HU) and scaled to [0, 1] as
 * preprocessing's ct window does (io/prep). Float32 (nz, ny, nx), modality CT, units
 * "normalized". */
vs_status phantom_windowed_ct(volume *v, int64_t nz, int64_t ny, int64_t nx, const double window[2],
                              rng *r, vs_error *err);

#endif
