/* report_gallery.h — the detection gallery of `vesalius validate` (report.html): for each arm,
 * on the test series of the headline budget's first seed, the per_kind strongest detections
 * (true positives in green, false positives in red: LUNA16's hit criterion) and the per_kind
 * largest missed lesions (no candidate hit them; yellow), each as the axial slice of the
 * de-identified volume (read from the shard folder) through its centre, windowed to the
 * slice's 1st..99th percentile, upscaled to at most 256 pixels a side, the box the size of the
 * lesion (or 10 mm for a false positive). Captions hold the arm, the kind and the probability
 * or diameter: no key, no identifier. Series missing from the shard folder get no picture. */
#ifndef VS_REPORT_GALLERY_H
#define VS_REPORT_GALLERY_H

#include "report.h"
#include "status.h"

/* Append the pictures to in->gallery (PNG bytes in memory). */
vs_status report_gallery_build(const char *shards, const report_results *res, int per_kind,
                               report_input *in, vs_error *err);

#endif
