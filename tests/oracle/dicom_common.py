"""Shared helpers for the DICOM reader tests: run tests/tools/dicom_dump, load its volumes, and the
reference pixel rules (dicom.h) written independently with pydicom and numpy."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pydicom

BUILD = os.path.dirname(os.environ.get("VESALIUS", "build/vesalius"))
DUMP = os.path.join(BUILD, "tests", "dicom_dump")


def corpora():
    """Folders of DICOM files nobody in this project wrote."""
    import nibabel

    pyd = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
    nib = os.path.dirname(nibabel.__file__)
    return [pyd, os.path.join(nib, "nicom", "tests", "data"), os.path.join(nib, "tests", "data")]


def all_files(roots):
    out = []
    for r in roots:
        for dp, dn, fn in os.walk(r):
            dn.sort()
            for f in sorted(fn):
                p = os.path.join(dp, f)
                if os.path.isfile(p):
                    out.append(p)
    return out


def dump(paths, extra=()):
    """Run dicom_dump on paths; returns (summary dict, {index: ndarray (slices, rows, cols)})."""
    out = tempfile.mkdtemp(prefix="vs_dump_")
    r = subprocess.run([DUMP, *extra, out, *paths], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("dicom_dump failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    vols = {}
    for v in summary["volume_list"]:
        raw = os.path.join(out, "vol_%d.raw" % v["index"])
        vols[v["index"]] = np.fromfile(raw, dtype=np.dtype(v["dtype"])).reshape(v["shape"])
        os.remove(raw)
    os.remove(os.path.join(out, "summary.json"))
    os.rmdir(out)
    return summary, vols


def affine(v):
    """4x4 index (i=col, j=row, k=slice) -> LPS, from a summary volume entry."""
    d = np.array(v["direction"]).reshape(3, 3)
    a = np.eye(4)
    a[:3, :3] = d * np.array(v["spacing"])[None, :]
    a[:3, 3] = v["origin"]
    return a


def reference_frame(ds, arr, frame_slope=None, frame_intercept=None):
    """The documented pixel rules applied to one pydicom frame: BitsStored masking and sign,
    padding, MONOCHROME1 inversion on stored values, rescale in float64.
    Returns (values float64 with NaN at padding, int16-exact flag)."""
    ba, bs = int(ds.BitsAllocated), int(ds.BitsStored)
    hb = int(getattr(ds, "HighBit", bs - 1))
    rep = int(getattr(ds, "PixelRepresentation", 0))
    u = arr.astype(arr.dtype.newbyteorder("=")).view({8: np.uint8, 16: np.uint16, 32: np.uint32}[ba])
    u = (u.astype(np.uint64) >> (hb + 1 - bs)) & ((1 << bs) - 1)
    v = u.astype(np.int64)
    if rep:
        v = np.where(v >= (1 << (bs - 1)), v - (1 << bs), v)
    pad = None
    if "PixelPaddingValue" in ds:
        p = int(ds.PixelPaddingValue)
        if rep and p >= 32768 and bs == 16:
            p -= 65536
        pad = v == p
    if ds.PhotometricInterpretation == "MONOCHROME1":
        v = (-1 - v) if rep else ((1 << bs) - 1 - v)
    slope = float(frame_slope if frame_slope is not None else getattr(ds, "RescaleSlope", 1) or 1)
    inter = float(frame_intercept if frame_intercept is not None else getattr(ds, "RescaleIntercept", 0) or 0)
    y = v.astype(np.float64) * slope + inter
    if pad is not None:
        y = np.where(pad, np.nan, y)
    return y


def finish(stack):
    """Padding -> smallest real value; int16 when every value is an exact int16."""
    real = stack[~np.isnan(stack)]
    if np.isnan(stack).any():
        stack = np.where(np.isnan(stack), real.min() if real.size else 0.0, stack)
    if real.size == 0 or (np.all(real == np.floor(real)) and real.min() >= -32768 and real.max() <= 32767):
        return stack.astype(np.int16)
    return stack.astype(np.float32)


class Checks:
    def __init__(self, name):
        self.name, self.failed, self.passed = name, [], 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
            print("FAIL:", what)

    def done(self):
        print("%s: %d checks passed, %d failed" % (self.name, self.passed, len(self.failed)))
        sys.exit(1 if self.failed else 0)


def phantom(rows, cols, n, seed=1):
    """Realistic-ish CT content in HU: body ellipse, organs, bone ring, noise; (n, rows, cols) int16."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    cy, cx = rows / 2.0, cols / 2.0
    out = np.empty((n, rows, cols), np.int16)
    for k in range(n):
        r = ((x - cx) / (0.45 * cols)) ** 2 + ((y - cy) / (0.38 * rows)) ** 2
        img = np.full((rows, cols), -1000.0)
        img[r < 1] = 40.0
        img[(r < 1) & (r > 0.85)] = 700.0 + 50 * np.sin(k / 3.0)
        lung = ((x - cx * 0.65) / (0.12 * cols)) ** 2 + ((y - cy) / (0.2 * rows)) ** 2
        img[lung < 1] = -850.0
        lesion = ((x - cx * 1.3) ** 2 + (y - cy * 0.9) ** 2) < (0.05 * cols * (1 + 0.3 * np.cos(k / 2.0))) ** 2
        img[lesion] = 60.0
        img += rng.normal(0, 12, img.shape)
        out[k] = np.clip(np.round(img), -1024, 3071).astype(np.int16)
    return out


def write_series(folder, hu, iop, positions, spacing=(0.7, 0.8), modality="CT", slope=1.0,
                 intercept=-1024.0, instance_numbers=None, names=None, padding=None,
                 bits_stored=12, series_uid="1.2.826.0.1.3680043.9.7611.1.1", seed=7,
                 transfer_syntax=None, study_uid="1.2.826.0.1.3680043.9.7611.1.0"):
    """Write one slice per position with pydicom: stored = (hu - intercept) / slope, unsigned,
    BitsStored bits. Returns the list of paths."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    os.makedirs(folder, exist_ok=True)
    paths = []
    n = len(positions)
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k), str(seed)])
        meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = "Test^Phantom", "PHANTOM01"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = study_uid + ".9"
        ds.Modality = modality
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesNumber, ds.AcquisitionNumber = 3, 1
        ds.InstanceNumber = int(instance_numbers[k]) if instance_numbers is not None else k + 1
        ds.ImagePositionPatient = ["%.6f" % v for v in positions[k]]
        ds.ImageOrientationPatient = ["%.8f" % v for v in iop]
        ds.PixelSpacing = ["%.6f" % spacing[0], "%.6f" % spacing[1]]
        ds.SliceThickness = "1.0"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
        ds.RescaleSlope, ds.RescaleIntercept = "%g" % slope, "%g" % intercept
        stored = np.round((hu[k].astype(np.float64) - intercept) / slope).astype(np.uint16)
        if padding is not None:
            ds.PixelPaddingValue = padding
            stored[:2, :] = padding
        ds.PixelData = stored.tobytes()
        name = names[k] if names is not None else "IM%04d.dcm" % k
        p = os.path.join(folder, name)
        ds.save_as(p, write_like_original=False)
        paths.append(p)
    return paths


def positions_along(origin, step, n):
    return [np.asarray(origin, float) + k * np.asarray(step, float) for k in range(n)]


def oblique_iop(deg_a=20.0, deg_b=12.0):
    """Row and column cosines of an axial plane rotated about two axes."""
    a, b = np.radians(deg_a), np.radians(deg_b)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    m = rx @ rz
    return list(m[:, 0]) + list(m[:, 1])


def write_enhanced(path, hu, iop, positions, spacing=(0.7, 0.8), slope=1.0, intercept=-1024.0,
                   frame_order=None, series_uid="1.2.826.0.1.3680043.9.7611.20.1", temporal=None):
    """One Enhanced CT multi-frame file: per-frame PlanePositionSequence, shared orientation,
    pixel measures and rescale. frame_order permutes which slice each frame holds."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    n = len(positions)
    order = list(range(n)) if frame_order is None else list(frame_order)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series_uid, "mf"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "Test^Enhanced", "PHANTOM02"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = series_uid + ".0", series_uid
    ds.FrameOfReferenceUID = series_uid + ".9"
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesNumber, ds.InstanceNumber = 5, 1
    ds.Rows, ds.Columns, ds.NumberOfFrames = hu.shape[1], hu.shape[2], n
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    shared = Dataset()
    po = Dataset(); po.ImageOrientationPatient = ["%.8f" % v for v in iop]
    pm = Dataset(); pm.PixelSpacing = ["%.6f" % spacing[0], "%.6f" % spacing[1]]; pm.SliceThickness = "1.0"
    pv = Dataset(); pv.RescaleSlope, pv.RescaleIntercept, pv.RescaleType = "%g" % slope, "%g" % intercept, "HU"
    shared.PlaneOrientationSequence = Sequence([po])
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PixelValueTransformationSequence = Sequence([pv])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    frames = []
    for f in range(n):
        k = order[f]
        it = Dataset()
        pp = Dataset(); pp.ImagePositionPatient = ["%.6f" % v for v in positions[k]]
        it.PlanePositionSequence = Sequence([pp])
        fc = Dataset(); fc.InStackPositionNumber = k + 1
        if temporal is not None:
            fc.TemporalPositionIndex = int(temporal[k])
        it.FrameContentSequence = Sequence([fc])
        per.append(it)
        frames.append(np.round((hu[k].astype(np.float64) - intercept) / slope).astype(np.uint16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = np.stack(frames).tobytes()
    ds.save_as(path, write_like_original=False)
    return path
