"""Geometry and voxels against dcm2niix (an independent converter) for every multi-slice, evenly
spaced series we have: CT5N from pydicom's dicomdirtests, and two series written here with
pydicom (oblique axial; near-sagittal with slices stored against the normal, slope 2).

For each volume, the LPS positions of the 8 corner voxels (our affine) must equal the positions
dcm2niix's NIfTI gives (nibabel; RAS -> LPS by negating x and y; NIfTI's own axis order and
flips handled by inverting its affine) to 1e-3 mm, and the voxel values there must be equal.
Then: the same files shuffled on disk, with shuffled InstanceNumbers, give the identical volume.
"""
import glob
import os
import shutil
import subprocess
import tempfile

import nibabel
import numpy as np
import pydicom

from dicom_common import (Checks, affine, corpora, dump, oblique_iop, phantom, positions_along,
                          write_enhanced, write_series)

c = Checks("dicom_vs_dcm2niix")
tmp = tempfile.mkdtemp(prefix="vs_d2n_")
series = {}

ct5n = os.path.join(corpora()[0], "dicomdirtests", "98892001", "CT5N")
d = os.path.join(tmp, "ct5n")
shutil.copytree(ct5n, d)
series["ct5n"] = d

hu = phantom(48, 40, 12, seed=3)
iop = oblique_iop(20, 12)
n = np.cross(iop[:3], iop[3:])
write_series(os.path.join(tmp, "oblique"), hu, iop, positions_along([-90.5, -110.25, 30.0], 2.5 * n, 12),
             spacing=(0.8, 0.7), series_uid="1.2.826.0.1.3680043.9.7611.2.1")
series["oblique"] = os.path.join(tmp, "oblique")

hu2 = phantom(36, 44, 9, seed=4)
# near-sagittal: rows run along y (tilted), columns along z (tilted)
rows = np.array([0.0, 0.9950, -0.0998]); cols = np.array([0.0998, 0.0, 0.9950])
cols = cols - rows * np.dot(rows, cols); cols /= np.linalg.norm(cols); rows /= np.linalg.norm(rows)
iop2 = list(rows) + list(cols)
n2 = np.cross(rows, cols)
pos2 = positions_along([12.0, -80.0, -60.0], 3.0 * n2, 9)[::-1]  # files written against the normal
write_series(os.path.join(tmp, "sag"), hu2, iop2, pos2, spacing=(1.1, 0.9), modality="MR", slope=2.0,
             intercept=-1000.0, series_uid="1.2.826.0.1.3680043.9.7611.3.1")
series["sag"] = os.path.join(tmp, "sag")

os.makedirs(os.path.join(tmp, "enhanced"))
iop3 = oblique_iop(-15, 20)
write_enhanced(os.path.join(tmp, "enhanced", "mf.dcm"), phantom(30, 34, 10, seed=6), iop3,
               positions_along([5.0, -20.0, 40.0], 2.0 * np.cross(iop3[:3], iop3[3:]), 10),
               frame_order=np.random.default_rng(8).permutation(10))
series["enhanced"] = os.path.join(tmp, "enhanced")


def nifti_of(folder):
    out = os.path.join(tmp, "nii_" + os.path.basename(folder))
    os.makedirs(out)
    r = subprocess.run(["dcm2niix", "-z", "n", "-b", "n", "-f", "vol", "-o", out, folder],
                       capture_output=True, text=True, timeout=120)
    niis = sorted(glob.glob(os.path.join(out, "*.nii")))
    if r.returncode != 0 or len(niis) != 1:
        raise RuntimeError("dcm2niix: rc %d, %d NIfTI files: %s" % (r.returncode, len(niis), r.stdout[-500:]))
    return nibabel.load(niis[0])


results = {}
for name, folder in series.items():
    s, vols = dump([folder])
    c.check(s["volumes"] == 1 and s["rejected"] == 0, "%s: expected one volume (%s)" % (name, s["rejected_files"]))
    if s["volumes"] != 1:
        continue
    v = s["volume_list"][0]
    vol = vols[0]
    results[name] = (v, vol)
    img = nifti_of(folder)
    data = img.get_fdata()
    while data.ndim > 3:
        data = data[..., 0]
    N = img.affine
    Ninv = np.linalg.inv(N)
    A = affine(v)
    ns, nr, nc = vol.shape
    worst = 0.0
    for k in (0, ns - 1):
        for j in (0, nr - 1):
            for i in (0, nc - 1):
                lps = A @ np.array([i, j, k, 1.0])
                ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
                idx = Ninv @ ras
                ridx = np.round(idx[:3]).astype(int)
                pos = N @ np.array([*ridx, 1.0])
                err = float(np.linalg.norm(pos[:3] - ras[:3]))
                worst = max(worst, err)
                inside = all(0 <= ridx[a] < data.shape[a] for a in range(3))
                c.check(inside and err < 1e-3, "%s corner (%d,%d,%d): %.2e mm from dcm2niix's voxel %s" % (name, i, j, k, err, ridx))
                if inside:
                    c.check(float(vol[k, j, i]) == float(data[tuple(ridx)]),
                            "%s corner (%d,%d,%d): %r vs dcm2niix %r" % (name, i, j, k, vol[k, j, i], data[tuple(ridx)]))
    print("%s: %s %s, corners within %.2e mm of dcm2niix" % (name, vol.dtype, vol.shape, worst))

# JPEG 2000 (OpenJPEG on the fragments) and other grey single images: every voxel against dcm2niix
singles = [os.path.join(corpora()[0], f) for f in ("693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm",
                                                    "MR_small_jp2klossless.dcm", "CT_small.dcm")]
for p in singles:
    name = os.path.basename(p)
    folder = os.path.join(tmp, "single_" + name)
    os.makedirs(folder)
    shutil.copy(p, folder)
    s, vols = dump([folder])
    c.check(s["volumes"] == 1, "%s: not one volume (%s)" % (name, s["rejected_files"] + s["skipped_files"]))
    if s["volumes"] != 1:
        continue
    v, vol = s["volume_list"][0], vols[0]
    img = nifti_of(folder)
    data = img.get_fdata()
    while data.ndim > 3:
        data = data[..., 0]
    # dcm2niix stores a single slice with its rows flipped (NIfTI is bottom-up); its affine is
    # not used here because it tilt-corrects some of these files.
    theirs = data[:, ::-1, 0].T
    ours = vol[0].astype(np.float64)
    ds = pydicom.dcmread(p)
    pad = np.zeros(ours.shape, bool)
    if "PixelPaddingValue" in ds:  # our rule: padding becomes the smallest real value
        pad_hu = int(ds.PixelPaddingValue) * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
        pad = theirs == pad_hu
        c.check(np.all(ours[pad] == ours[~pad].min()), "%s: padding voxels are not the smallest value" % name)
    if name == "J2K_pixelrep_mismatch.dcm":
        # A named, bounded exception: the header says signed 13 bits, the codestream unsigned.
        # dcm2niix takes the codestream's word (0..8191); we take the header's, as pydicom does
        # (-2000..1896: CT in HU), so ours and theirs differ by exactly 2^13 where ours < 0.
        ours = np.where(ours < 0, ours + (1 << int(ds.BitsStored)), ours)
        c.check(int(ds.PixelRepresentation) == 1 and int(ds.BitsStored) == 13 and (vol[0] < 0).any(),
                "%s: not the signed 13-bit image with negative values it should be" % name)
    diff = np.abs(theirs - ours)[~pad]
    c.check(theirs.shape == ours.shape and np.all(diff == 0),
            "%s: %d voxels differ from dcm2niix (worst %g)" % (name, int(np.sum(diff > 0)), float(diff.max())))
    print("%s: %s %s, all voxels equal dcm2niix's: %s" % (name, vol.dtype, vol.shape, bool(np.all(diff == 0))))

# shuffled names and shuffled InstanceNumbers give the identical volume
rng = np.random.default_rng(11)
for name, folder in series.items():
    if name not in results:
        continue
    files = sorted(glob.glob(os.path.join(folder, "*")))
    perm = rng.permutation(len(files))
    numbers = rng.permutation(len(files)) + 1
    shuf = os.path.join(tmp, "shuf_" + name)
    os.makedirs(shuf)
    for m, src in enumerate(files):
        ds = pydicom.dcmread(src)
        ds.InstanceNumber = int(numbers[m])
        ds.save_as(os.path.join(shuf, "z%03d_%d" % (perm[m], rng.integers(1 << 30))))
    args = [os.path.join(shuf, f) for f in os.listdir(shuf)]
    args = [args[i] for i in rng.permutation(len(args))]
    s2, v2 = dump(args)
    v0, vol0 = results[name]
    ok = s2["volumes"] == 1 and v2[0].dtype == vol0.dtype and np.array_equal(v2[0], vol0)
    g = s2["volume_list"][0] if s2["volumes"] == 1 else {}
    same_geo = all(np.allclose(g.get(k, []), v0[k], atol=0, rtol=0) for k in ("spacing", "origin", "direction"))
    c.check(ok and same_geo, "%s: shuffled files/InstanceNumbers changed the volume" % name)
shutil.rmtree(tmp)
c.done()
