# heat_rank.py FOLDDIR R — where lesions rank in the detector's own objectness map: FOLDDIR is a
# fold_check.sh output (labels.csv, splits.csv) after `vesalius predict --heatmaps FOLDDIR/hm`
# over its labeled volumes; for every labeled lesion, the highest heat within R tokens of its
# token, as a percentile of all tokens of its volume, on training and held-out patients.
# (R 0: the lesion's own token; a random token's percentile is 0.5, the max of (2R+1)^3 random
# tokens' about 1 - 1/(2R+1)^3.)
import nibabel as nib, numpy as np, csv, sys, glob
d = sys.argv[1]; R = int(sys.argv[2])
les, lab = {}, {}
for r in csv.DictReader(open(d + "/labels.csv")):
    if r["x"] == "": lab[r["series"]] = (r["patient"], int(r["label"]))
    else: les.setdefault(r["series"], []).append(np.array([float(r["x"]), float(r["y"]), float(r["z"])]))
pf = {r['patient']: int(r['fold']) for r in csv.DictReader(l for l in open(d + '/splits.csv') if not l.startswith('#'))}
ranks = {0: [], 1: []}
for s, ls in les.items():
    f = glob.glob(d + "/hm/" + s + ".nii*")
    if not f: continue
    img = nib.load(f[0]); h = img.get_fdata(); A = img.affine  # NIfTI: RAS
    for p in ls:
        q = np.round(np.linalg.solve(A, np.array([-p[0], -p[1], p[2], 1.0]))[:3]).astype(int)
        if not ((q >= 0).all() and (q < h.shape).all()): continue
        lo = np.maximum(q - R, 0); hi = q + R + 1
        v = h[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].max()
        ranks[pf[lab[s][0]] == 0].append(float((h < v).mean()))
for k, n in ((0, "train"), (1, "held-out")):
    r = np.array(ranks[k])
    print("%s: lesion heat percentile in its volume, median %.2f, above the 95th %d of %d" % (n, np.median(r), (r > 0.95).sum(), len(r)))
