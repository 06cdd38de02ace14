# blob_baseline.py OUT FTDIR — a label-free blob filter as a calibration of how hard the cohort is: for
# every labeled volume of a finished run (OUT/ingest/shards, FTDIR/labels.csv), the maximum |difference of
# Gaussians| inside the body (stored values > 0.3, eroded 3 voxels) at sigma 1, 1.5 and 2.5 voxels, and
# its volume AUC. Needs Debian's python3-scipy.
import h5py, numpy as np, csv, sys, glob
from scipy import ndimage as ndi
from sklearn.metrics import roc_auc_score
out, ex = sys.argv[1], sys.argv[2]
lab = {}
for r in csv.DictReader(open(f'{ex}/labels.csv')):
    if r['x'] == '': lab[r['series']] = int(r['label'])
res = {}
for fpath in sorted(glob.glob(f'{out}/ingest/shards/*.h5')):
    f = h5py.File(fpath)
    for k in f['volumes']:
        d = f['volumes'][k]; s = d.attrs['series_key']; s = s.decode() if isinstance(s, bytes) else s
        if s not in lab: continue
        a = d[...].astype(np.float32)
        sc = []
        for sg in (1.0, 1.5, 2.5):
            dog = ndi.gaussian_filter(a, sg) - ndi.gaussian_filter(a, 2 * sg)
            body = ndi.binary_erosion(a > 0.3, iterations=3)  # inside the body, away from its edge
            sc.append(np.abs(dog)[body].max() if body.any() else 0)
        res[s] = sc
ks = sorted(res); y = [lab[k] for k in ks]
for i, sg in enumerate((1.0, 1.5, 2.5)):
    print('DoG sigma %.1f: volume AUC %.3f' % (sg, roc_auc_score(y, [res[k][i] for k in ks])))
