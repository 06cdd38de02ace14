"""Volume assembly rules on series written here with pydicom, each checked against values computed
directly from the files' own attributes (not from vesalius):

- missing slice and uneven spacing are rejected with their reason; --resample fills the gap by
  linear interpolation and keeps the real slices exactly;
- gantry tilt: the affine maps (0, 0, k) to each file's ImagePositionPatient;
- two slices at one position are rejected;
- BitsStored masking (garbage in the high bits), PixelPaddingValue and MONOCHROME1 follow the
  documented rules (dicom_common.reference_frame);
- damaged copies of real files (truncations, flipped bytes, a lying length field, an absurd
  image size) are rejected one by one, nothing crashes, and memory stays small.
"""
import os
import resource
import shutil
import subprocess
import tempfile

import numpy as np
import pydicom

from dicom_common import (Checks, affine, corpora, dump, finish, oblique_iop, phantom,
                          positions_along, reference_frame, write_enhanced, write_series)

c = Checks("dicom_assembly")
tmp = tempfile.mkdtemp(prefix="vs_asm_")
AX = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
hu = phantom(32, 28, 12, seed=5)


def reasons(s):
    return " | ".join(r["reason"] for r in s["rejected_files"])


# missing slice: rejected, then resampled
pos = positions_along([-50.0, -60.0, 10.0], [0, 0, 2.0], 12)
keep = [k for k in range(12) if k != 5]
d = os.path.join(tmp, "missing")
write_series(d, hu[keep], AX, [pos[k] for k in keep], series_uid="1.2.826.0.1.3680043.9.7611.4.1")
s, v = dump([d])
c.check(s["volumes"] == 0 and "missing slices" in reasons(s), "missing slice not rejected: %s" % reasons(s))
s, v = dump([d], extra=["--resample"])
c.check(s["volumes"] == 1 and s["volume_list"][0]["resampled"], "resample did not give one volume")
if s["volumes"] == 1:
    vol = v[0]
    c.check(vol.shape == (12, 32, 28) and vol.dtype == np.float32, "resampled shape %s %s" % (vol.shape, vol.dtype))
    c.check(np.array_equal(vol[keep], hu[keep].astype(np.float32)), "resampling changed real slices")
    mid = (hu[4].astype(np.float64) + hu[6]) / 2
    c.check(np.max(np.abs(vol[5] - mid)) < 1e-3, "gap slice is not the mean of its neighbours")
    c.check(abs(s["volume_list"][0]["spacing"][2] - 2.0) < 1e-9, "resampled spacing")

# a gap of many slices is not resampled
d = os.path.join(tmp, "biggap")
keep2 = [0, 1, 2, 9, 10, 11]
write_series(d, hu[keep2], AX, [pos[k] for k in keep2], series_uid="1.2.826.0.1.3680043.9.7611.4.2")
s, v = dump([d], extra=["--resample"])
c.check(s["volumes"] == 0 and "too large to resample" in reasons(s), "big gap: %s" % reasons(s))

# uneven spacing
pos_u = [p.copy() for p in pos]
for k in range(7, 12):
    pos_u[k][2] += 0.6
d = os.path.join(tmp, "uneven")
write_series(d, hu, AX, pos_u, series_uid="1.2.826.0.1.3680043.9.7611.5.1")
s, v = dump([d])
c.check(s["volumes"] == 0 and "uneven slice spacing" in reasons(s), "uneven spacing not rejected: %s" % reasons(s))

# duplicate position
pos_d = [p.copy() for p in pos]
pos_d[3] = pos_d[4].copy()
d = os.path.join(tmp, "dup")
write_series(d, hu, AX, pos_d, series_uid="1.2.826.0.1.3680043.9.7611.6.1")
s, v = dump([d])
c.check(s["volumes"] == 0 and "share a position" in reasons(s), "duplicate position not rejected: %s" % reasons(s))

# gantry tilt of 15 degrees: slices step along z and slide along y
tilt = np.radians(15.0)
pos_t = positions_along([-40.0, -55.0, 0.0], [0, 2.0 * np.tan(tilt), 2.0], 12)
d = os.path.join(tmp, "tilt")
paths = write_series(d, hu, AX, pos_t, spacing=(0.75, 0.6), series_uid="1.2.826.0.1.3680043.9.7611.7.1")
s, v = dump([d])
c.check(s["volumes"] == 1, "tilted series not assembled: %s" % reasons(s))
if s["volumes"] == 1:
    A = affine(s["volume_list"][0])
    worst = 0.0
    for p in paths:
        ds = pydicom.dcmread(p)
        ipp = np.array(ds.ImagePositionPatient, float)
        k = int(round((ipp[2] - pos_t[0][2]) / 2.0))
        for (i, j) in ((0, 0), (27, 0), (0, 31), (27, 31)):
            want = ipp + i * float(ds.PixelSpacing[1]) * np.array(AX[:3]) + j * float(ds.PixelSpacing[0]) * np.array(AX[3:])
            worst = max(worst, float(np.linalg.norm(A[:3] @ np.array([i, j, k, 1.0]) - want)))
    c.check(worst < 1e-6, "tilted affine is off by %.3g mm" % worst)
    c.check(np.array_equal(v[0], hu), "tilted voxels")

# BitsStored masking, padding, MONOCHROME1
for mono in ("MONOCHROME2", "MONOCHROME1"):
    d = os.path.join(tmp, "bits_" + mono)
    paths = write_series(d, hu[:4], AX, pos[:4], padding=4095, series_uid="1.2.826.0.1.3680043.9.7611.8." + mono[-1])
    rng = np.random.default_rng(2)
    for p in paths:
        ds = pydicom.dcmread(p)
        a = ds.pixel_array.copy()
        a |= (rng.integers(0, 16, a.shape).astype(np.uint16) << 12)  # garbage above BitsStored
        ds.PixelData = a.tobytes()
        ds.PhotometricInterpretation = mono
        ds.save_as(p)
    s, v = dump([d])
    c.check(s["volumes"] == 1, "%s series not assembled: %s" % (mono, reasons(s)))
    if s["volumes"] == 1:
        dss = [pydicom.dcmread(p) for p in paths]
        ref = finish(np.stack([reference_frame(ds, ds.pixel_array) for ds in dss]))
        c.check(v[0].dtype == ref.dtype and np.array_equal(v[0], ref), "%s: masking/padding rules differ" % mono)

# Enhanced CT: one multi-frame file, frames stored out of order, equals the same slices written
# as a classic single-frame series
iop_o = oblique_iop(25, 8)
n_o = np.cross(iop_o[:3], iop_o[3:])
pos_o = positions_along([-30.0, -70.0, 5.0], 1.5 * n_o, 12)
frame_order = np.random.default_rng(4).permutation(12)
mf = write_enhanced(os.path.join(tmp, "enhanced.dcm"), hu, iop_o, pos_o, frame_order=frame_order)
d = os.path.join(tmp, "classic")
write_series(d, hu, iop_o, pos_o, series_uid="1.2.826.0.1.3680043.9.7611.21.1")
s1, v1 = dump([mf])
s2, v2 = dump([d])
c.check(s1["volumes"] == 1 and s2["volumes"] == 1, "enhanced: %s" % reasons(s1))
if s1["volumes"] == 1 and s2["volumes"] == 1:
    c.check(np.array_equal(v1[0], v2[0]) and np.array_equal(v1[0], hu), "enhanced voxels differ from the classic series")
    g1, g2 = s1["volume_list"][0], s2["volume_list"][0]
    c.check(all(np.allclose(g1[k], g2[k], atol=1e-9) for k in ("spacing", "origin", "direction")),
            "enhanced geometry differs from the classic series")
    c.check(g1["files"] == 1, "enhanced volume should come from one file")

# a series mixing two echoes (and one localizer) becomes one volume per echo, localizer apart
d = os.path.join(tmp, "echoes")
paths = write_series(d, hu[:6], AX, pos[:6], modality="MR", slope=1, intercept=0,
                     series_uid="1.2.826.0.1.3680043.9.7611.9.1")
paths2 = write_series(d, hu[6:12], AX, pos[:6], modality="MR", slope=1, intercept=0,
                      series_uid="1.2.826.0.1.3680043.9.7611.9.1", names=["E2_%d.dcm" % k for k in range(6)], seed=8)
for m, p in enumerate(paths + paths2):
    ds = pydicom.dcmread(p)
    ds.EchoNumbers = 1 if p in paths else 2
    if m == 0:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.save_as(p)
s, v = dump([d])
kinds = sorted((x["kind"], x["shape"][0]) for x in s["volume_list"])
c.check(kinds == [("localizer", 1), ("original", 5), ("original", 6)], "echo/localizer split: %s" % kinds)

# files without SeriesInstanceUID are never merged into one volume
d = os.path.join(tmp, "noseries")
paths = write_series(d, hu[:3], AX, pos[:3], series_uid="1.2.826.0.1.3680043.9.7611.10.1")
for p in paths:
    ds = pydicom.dcmread(p)
    del ds.SeriesInstanceUID
    ds.save_as(p)
s, v = dump([d])
c.check(s["volumes"] == 3 and all(x["shape"][0] == 1 for x in s["volume_list"]), "series-less files merged")

# projection radiographs: DX with ImagerPixelSpacing only, single-frame XA; multi-frame XA skipped
cr = os.path.join(corpora()[0], "dicomdirtests", "77654033", "CR1", "6154")
d = os.path.join(tmp, "proj")
os.makedirs(d)
for m, (mod, frames) in enumerate((("DX", 1), ("XA", 1), ("XA", 2))):
    ds = pydicom.dcmread(cr)
    ds.Modality = mod
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".%d" % (m + 1)
    if frames > 1:
        ds.NumberOfFrames = frames
        ds.PixelData = ds.PixelData * frames
    ds.save_as(os.path.join(d, "%s_%d.dcm" % (mod, frames)))
s, v = dump([d])
mods = sorted(x["modality"] for x in s["volume_list"])
c.check(mods == ["DX", "XA"] and all(x["spacing"][:2] == [0.1, 0.1] for x in s["volume_list"]),
        "radiographs: %s" % s["volume_list"])
sk = [r["reason"] for r in s["skipped_files"] if r["path"].endswith("XA_2.dcm")]
c.check(len(sk) == 1 and "multi-frame" in sk[0], "multi-frame XA: %s" % sk)

# Enhanced with two temporal positions over the same 6 slice positions: two volumes
pos6 = pos_o[:6] + pos_o[:6]
mf2 = write_enhanced(os.path.join(tmp, "enhanced4d.dcm"), hu, iop_o, pos6, temporal=[1] * 6 + [2] * 6,
                     series_uid="1.2.826.0.1.3680043.9.7611.22.1")
s4, v4 = dump([mf2])
c.check(s4["volumes"] == 2 and all(x["shape"][0] == 6 for x in s4["volume_list"]),
        "enhanced 4D: %s %s" % ([x["shape"] for x in s4["volume_list"]], reasons(s4)))
if s4["volumes"] == 2:
    c.check(np.array_equal(v4[0], hu[:6]) and np.array_equal(v4[1], hu[6:]), "enhanced 4D voxels")

# damaged copies of real files
src_dir = corpora()[0]
bad = os.path.join(tmp, "bad")
os.makedirs(bad)
rng = np.random.default_rng(99)
sources = ["CT_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPGExtended.dcm",
           "image_dfl.dcm", "MR_small_bigendian.dcm", "rtplan.dcm"]
n_made = 0
for name in sources:
    blob = open(os.path.join(src_dir, name), "rb").read()
    for cut in sorted(set(rng.integers(1, len(blob), 12).tolist())):
        open(os.path.join(bad, "%s.cut%d" % (name, cut)), "wb").write(blob[:cut])
        n_made += 1
    for m in range(25):
        b = bytearray(blob)
        for _ in range(int(rng.integers(1, 6))):
            b[int(rng.integers(128, len(b)))] = int(rng.integers(0, 256))
        open(os.path.join(bad, "%s.flip%d" % (name, m)), "wb").write(bytes(b))
        n_made += 1
# a length field that points far past the end, and an image claiming 65535 x 65535 x 9999
ds = pydicom.dcmread(os.path.join(src_dir, "CT_small.dcm"))
ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 9999
ds.save_as(os.path.join(bad, "huge_image.dcm"))
blob = bytearray(open(os.path.join(src_dir, "CT_small.dcm"), "rb").read())
at = blob.find(b"\xe0\x7f\x10\x00")
blob[at + 8:at + 12] = (0xFFFFFFF0).to_bytes(4, "little")
open(os.path.join(bad, "lying_length.dcm"), "wb").write(bytes(blob))
n_made += 2

# every input the fuzzer ever broke the reader with is kept and read again here
crash_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "crashes")
for f in sorted(os.listdir(crash_dir)) if os.path.isdir(crash_dir) else []:
    shutil.copy(os.path.join(crash_dir, f), os.path.join(bad, "crash_" + f))
    n_made += 1

before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
s, v = dump([bad])
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
c.check(s["files"] == n_made and s["pending"] == 0, "damaged files: %d made, %d accounted" % (n_made, s["files"]))
c.check(all(r["reason"] for r in s["rejected_files"] + s["skipped_files"]), "a reject without reason")
rej = {os.path.basename(r["path"]): r["reason"] for r in s["rejected_files"]}
c.check("exceeds the limit" in rej.get("huge_image.dcm", ""), "huge image: %s" % rej.get("huge_image.dcm"))
c.check("past the end" in rej.get("lying_length.dcm", ""), "lying length: %s" % rej.get("lying_length.dcm"))
c.check(peak_mb < 300, "peak memory %.0f MB while reading damaged files" % peak_mb)
print("damaged files: %d (%d used, %d skipped, %d rejected), peak RSS %.0f MB" % (
    s["files"], s["used"], s["skipped"], s["rejected"], peak_mb))
shutil.rmtree(tmp)
c.done()
