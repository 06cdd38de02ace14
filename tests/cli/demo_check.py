#!/usr/bin/python3
"""demo_check.py COHORT_DIR [CONTRASTS_OUT] — checks a generated demo cohort with pydicom (independent of
vesalius): every file reads; the mix of modalities and transfer syntaxes is there; every
labeled tumour's world position lies inside its series as pydicom's geometry says, and the
larger tumours differ from their surroundings there; planted identifiers are in the headers.
Prints what failed and exits 1 on any failure. With CONTRASTS_OUT, writes one line per checked
tumour: its position and its mean inside minus the mean of a ring around it (HU)."""
import glob, os, sys
import numpy as np, pydicom

root = sys.argv[1]
fails = []
from dicom_load import load  # noqa: E402 (pydicom, JPEG-LS/JPEG/RLE through DCMTK)

series = {}
syntaxes, modalities = set(), {}
for path in sorted(glob.glob(os.path.join(root, 'dicom', '*', 's*', '*.dcm'))):
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    syntaxes.add(str(ds.file_meta.TransferSyntaxUID))
    modalities[ds.Modality] = modalities.get(ds.Modality, 0) + 1
    series.setdefault(ds.SeriesInstanceUID, []).append(path)
print('files: %d, series: %d, modalities: %s, transfer syntaxes: %d' % (
    sum(len(v) for v in series.values()), len(series), modalities, len(syntaxes)))
if len(syntaxes) < 4: fails.append('only %d transfer syntaxes' % len(syntaxes))
for m in ('CT', 'MR', 'DX'):
    if m not in modalities: fails.append('no %s images' % m)

def volume(uid):
    dss = [load(p) for p in series[uid]]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    r, c = iop[:3], iop[3:]; n = np.cross(r, c)
    dss.sort(key=lambda d: np.dot(n, np.array(d.ImagePositionPatient, float)))
    vol = np.stack([d.pixel_array.astype(float) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])
    ps = [float(x) for x in dss[0].PixelSpacing]  # row spacing, column spacing
    p0 = np.array(dss[0].ImagePositionPatient, float); p1 = np.array(dss[-1].ImagePositionPatient, float)
    step = (p1 - p0) / (len(dss) - 1)
    # LPS = p0 + i*colsp*r + j*rowsp*c + k*step  (i column, j row, k slice)
    m = np.column_stack([r * ps[1], c * ps[0], step])
    return vol, m, p0

labels = [l.strip().split(',') for l in open(os.path.join(root, 'labels', 'annotations.csv')).read().splitlines()[1:]]
vols = [l.strip().split(',') for l in open(os.path.join(root, 'labels', 'volumes.csv')).read().splitlines()[1:]]
positive = {u for u, lab in vols if lab == '1'}
if not labels: fails.append('no tumours in annotations.csv')
for u, lab in vols:
    if u not in series: fails.append('labeled series %s has no files' % u)
checked, contrasts = 0, []
for uid, x, y, z, d in labels:
    if uid not in positive: fails.append('annotated series %s is not labeled positive' % uid)
    vol, m, p0 = volume(uid)
    ijk = np.linalg.solve(m, np.array([float(x), float(y), float(z)]) - p0)
    shape = (vol.shape[2], vol.shape[1], vol.shape[0])
    if not all(0 <= ijk[a] <= shape[a] - 1 for a in range(3)):
        fails.append('tumour at %s,%s,%s lies outside its series (index %s)' % (x, y, z, ijk)); continue
    if float(d) >= 14:
        kk, jj, ii = np.meshgrid(np.arange(vol.shape[0]), np.arange(vol.shape[1]), np.arange(vol.shape[2]), indexing='ij')
        pts = np.stack([ii, jj, kk], -1).reshape(-1, 3) @ m.T + p0
        dist = np.linalg.norm(pts - np.array([float(x), float(y), float(z)]), axis=1).reshape(vol.shape)
        r = float(d) / 2
        inside_, around = vol[dist < 0.5 * r], vol[(dist > 1.4 * r) & (dist < 2.0 * r)]
        if inside_.size < 4 or around.size < 4: continue  # too close to the volume's edge to judge
        inner, ring = inside_.mean(), around.mean()
        checked += 1
        contrasts.append('%s,%s,%s %.1f' % (x, y, z, inner - ring))
        if abs(inner - ring) < 5: fails.append('tumour of %s mm at %s,%s,%s is invisible (%.1f vs %.1f HU)' % (d, x, y, z, inner, ring))
print('tumours: %d, contrast checked on %d' % (len(labels), checked))
if len(sys.argv) > 2: open(sys.argv[2], 'w').write(''.join(c + '\n' for c in contrasts))

phi = [l for l in open(os.path.join(root, 'phi.txt')).read().splitlines() if l]
blob = b''.join(open(p, 'rb').read() for v in list(series.values())[:3] for p in v[:2])
present = sum(1 for v in phi if v.encode() in blob)
if present < 10: fails.append('only %d planted identifiers found in the first series' % present)

for f in fails: print('FAIL:', f)
print('%d passed, %d failed' % (1 if not fails else 0, len(fails)))
sys.exit(1 if fails else 0)
