"""Shared helpers for the DICOM reader tests: run tests/dicom_dump, load its volumes, and the
reference pixel rules (io/dicom.h) written independently with pydicom and numpy."""
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
