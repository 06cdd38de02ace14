# candidate_recall.py OUT FTDIR [K] [LO,HI] — could a two-stage detector (LUNA16 style: label-free
# candidates, then a classifier) start from blob candidates? For every labeled volume of a finished
# run (OUT/ingest/shards, FTDIR/labels.csv), the K strongest local maxima (5^3 neighbourhood) of
# |difference of Gaussians| (sigma 1, 1.5, 2.5 voxels); with LO,HI (HU) the image is clipped to that
# window and candidates kept inside it (soft tissue), else inside the body (stored value > 0.3).
# Prints how many labeled lesions have a candidate within max(radius, 8 mm), and the volume AUC of
# the strongest candidate. Stored values are (HU + 1000) / 1400 (the wide window [-1000, 400]).
import h5py, numpy as np, csv, sys, glob
from scipy import ndimage as ndi
from sklearn.metrics import roc_auc_score
out, ft = sys.argv[1], sys.argv[2]
K = int(sys.argv[3]) if len(sys.argv) > 3 else 100
win = [float(x) for x in sys.argv[4].split(',')] if len(sys.argv) > 4 else None
lab, les = {}, {}
for r in csv.DictReader(open(f'{ft}/labels.csv')):
    if r['x'] == '': lab[r['series']] = int(r['label'])
    else: les.setdefault(r['series'], []).append([float(r[k]) for k in ('x', 'y', 'z', 'diameter')])
found = total = 0; top = {}
for fp in sorted(glob.glob(f'{out}/ingest/shards/*.h5')):
    f = h5py.File(fp)
    for k in f['volumes']:
        d = f['volumes'][k]; s = d.attrs['series_key']; s = s.decode() if isinstance(s, bytes) else s
        if s not in lab: continue
        a = d[...].astype(np.float32); A = np.array(d.attrs['affine']).reshape(4, 4)
        sp = np.array(d.attrs['spacing'])[::-1]
        if win:
            lo, hi = (win[0] + 1000) / 1400, (win[1] + 1000) / 1400
            img, mask = np.clip(a, lo, hi), ndi.binary_erosion((a > lo) & (a < hi), iterations=1)
        else:
            img, mask = a, ndi.binary_erosion(a > 0.3, iterations=2)
        dog = np.zeros_like(a)
        for sg in (1.0, 1.5, 2.5):
            dog = np.maximum(dog, np.abs(ndi.gaussian_filter(img, sg) - ndi.gaussian_filter(img, 2 * sg)))
        dog[~mask] = 0
        pk = np.argwhere((dog == ndi.maximum_filter(dog, size=5)) & (dog > 0))
        pk = pk[np.argsort(-dog[tuple(pk.T)])][:K]
        top[s] = dog[tuple(pk[0])] if len(pk) else 0.0
        for l in les.get(s, []):
            c = np.linalg.solve(A, np.array([l[0], l[1], l[2], 1.0]))[:3][::-1]
            total += 1
            found += bool(len(pk)) and bool((np.sqrt((((pk - c) * sp) ** 2).sum(1)) < max(l[3] / 2, 8)).any())
ks = sorted(top)
print(f'{len(ks)} volumes, top {K} candidates each: {found}/{total} lesions have one; '
      f'volume AUC of the strongest {roc_auc_score([lab[k] for k in ks], [top[k] for k in ks]):.3f}')
