#!/usr/bin/python3
"""ingest_check.py COHORT OUT — checks `vesalius ingest` output against the DICOM input with
pydicom and h5py (independent of vesalius): one volume per series, voxels equal to pydicom's
sorted, rescaled pixel arrays, affine equal to the geometry pydicom's headers give, no planted
identifier anywhere in the shard or catalog bytes, every input file in the catalog."""
import glob, os, sqlite3, sys
import h5py, numpy as np, pydicom

cohort, out = sys.argv[1], sys.argv[2]
fails = []
from dicom_load import load  # noqa: E402 (pydicom, JPEG-LS/JPEG/RLE through DCMTK)

def expected(files):
    dss = [load(f) for f in files]
    if len(dss) == 1:
        d = dss[0]; a = d.pixel_array.astype(np.float64)
        if d.PhotometricInterpretation == 'MONOCHROME1': a = (2 ** int(d.BitsStored) - 1) - a
        return a[None], None
    iop = np.array(dss[0].ImageOrientationPatient, float); n = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: np.dot(n, np.array(d.ImagePositionPatient, float)))
    vol = np.stack([d.pixel_array.astype(np.float64) * float(getattr(d, 'RescaleSlope', 1)) + float(getattr(d, 'RescaleIntercept', 0)) for d in dss])
    ps = [float(x) for x in dss[0].PixelSpacing]
    p0 = np.array(dss[0].ImagePositionPatient, float)
    step = (np.array(dss[-1].ImagePositionPatient, float) - p0) / (len(dss) - 1)
    aff = np.eye(4); aff[:3, 0] = iop[:3] * ps[1]; aff[:3, 1] = iop[3:] * ps[0]; aff[:3, 2] = step; aff[:3, 3] = p0
    return vol, aff

series = {}
for d in sorted(glob.glob(os.path.join(cohort, 'dicom', '*', 's*'))):
    files = sorted(glob.glob(d + '/*.dcm'))
    series[pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID] = files
shards = sorted(glob.glob(os.path.join(out, 'shards', '*.h5')))
vols = {}
for s in shards:
    with h5py.File(s, 'r') as h:
        for k in h['volumes']:
            ds = h['volumes'][k]
            vols[k] = (ds[()], np.array(ds.attrs['affine']).reshape(4, 4), ds.attrs['modality'])
print('series in the cohort: %d, volumes in shards: %d' % (len(series), len(vols)))
if len(vols) != len(series): fails.append('%d volumes for %d series' % (len(vols), len(series)))
# match volumes to series by content: shape + voxels
matched = 0
for uid, files in series.items():
    vol, aff = expected(files)
    hit = [k for k, (v, a, m) in vols.items() if v.shape == vol.shape and np.array_equal(v.astype(np.float64), vol)]
    if not hit: fails.append('no volume holds the voxels of series %d (%d files)' % (list(series).index(uid), len(files))); continue
    matched += 1
    if aff is not None and not np.allclose(vols[hit[0]][1], aff, atol=1e-3):
        fails.append('affine of volume %s differs from the DICOM geometry' % hit[0])
print('volumes matching their series voxel for voxel: %d' % matched)
phi = [l for l in open(os.path.join(cohort, 'phi.txt')).read().splitlines() if len(l) >= 6]
for path in shards + [os.path.join(out, 'catalog.sqlite'), os.path.join(out, 'ingest-summary.json')]:
    blob = open(path, 'rb').read()
    leaked = [v for v in phi if v.encode() in blob]
    if leaked: fails.append('%s holds %d planted identifiers' % (os.path.basename(path), len(leaked)))
con = sqlite3.connect(os.path.join(out, 'catalog.sqlite'))
tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
n_inputs = sum(len(f) for f in series.values())
rows = max(con.execute('select count(*) from %s' % t).fetchone()[0] for t in tables if 'source' in t or 'file' in t)
if rows < n_inputs: fails.append('catalog records %d files of %d' % (rows, n_inputs))
for f in fails: print('FAIL:', f)
print('%d passed, %d failed' % (0 if fails else 1, len(fails)))
sys.exit(1 if fails else 0)
