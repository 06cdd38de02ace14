#!/usr/bin/python3
"""dcm_save_copy_check.py TOOL WORK — dcm_file_save_copy (pixels copied by the kernel) writes
the same bytes as dcm_file_save (DCMTK) on files written by pydicom and compressed by DCMTK's own
encoders (JPEG baseline and lossless, JPEG-LS, RLE, several fragments per frame), and takes the
kernel path exactly where the layout allows it: little-endian pixel data, native or
encapsulated, that ends the de-identified dataset (elements after it in the source that the
profile removes, trailing padding and private elements, do not prevent it; one it keeps does)."""
import os, subprocess, sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, RLELossless)

tool, W = sys.argv[1:3]
FAILS = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        FAILS.append(what)


def make(path, ts=ExplicitVRLittleEndian, bits=16, rows=128, cols=96, trailing=False, group_len=False,
         encapsulated=False, ob=False, frames=1, after=(), codec=None, dup_pixels=False):
    m = FileMetaDataset()
    m.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    m.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.7.%d" % (abs(hash(path)) % 10**9)
    m.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = m
    ds.SOPClassUID, ds.SOPInstanceUID = m.MediaStorageSOPClassUID, m.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.7.2", "1.2.826.0.1.3680043.2.1125.7.3"
    ds.PatientName, ds.PatientID, ds.StudyDate = "Doe^Jane", "MRN1234", "20230105"
    ds.Modality, ds.BurnedInAnnotation = "CT", "NO"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.7.9"
    ds.ReferencedImageSequence = Sequence([item])
    ds.add_new(0x00291001, "LO", "private")
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation = bits - 1, 0
    rng = np.random.default_rng(rows * cols + bits)
    pix = rng.integers(0, 2 ** (bits - 4), (frames, rows, cols), dtype=np.uint16 if bits == 16 else np.uint8)
    if frames > 1:
        ds.NumberOfFrames = frames
    if encapsulated:
        ds.PixelData = encapsulate([pix.tobytes()])  # RLE transfer syntax declared, opaque fragment
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = pix.astype(">u2" if ts == ExplicitVRBigEndian and bits == 16 else pix.dtype).tobytes()
        ds["PixelData"].VR = "OB" if (bits == 8 or ob) else "OW"
    if group_len:
        ds.add_new(0x7FE00000, "UL", 8 + 4 + len(ds.PixelData))
    if trailing:
        ds.add_new(0xFFFCFFFC, "OB", b"\0" * 64)
    for tag, vr, value in after:  # elements that sort after PixelData
        ds.add_new(tag, vr, value)
    ds.is_little_endian = ts != ExplicitVRBigEndian
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.save_as(path + ".native" if codec else path, write_like_original=False)
    if dup_pixels:  # a second (7FE0,0010) of the same length, other values (a damaged file)
        value = bytes(255 - b for b in ds.PixelData)
        with open(path, "ab") as f:
            f.write(b"\xe0\x7f\x10\x00OW\0\0" + len(value).to_bytes(4, "little") + value)
    if codec:  # DCMTK's own encoder writes the encapsulated file
        r = subprocess.run(codec + [path + ".native", path], capture_output=True, text=True)
        check(r.returncode == 0, "%s: %s encodes the test file (%s)" % (path, codec[0], r.stderr.strip()))
    return ds.PixelData


key = os.path.join(W, "site.key")
cases = [  # name, make() arguments, the path dcm_file_save_copy must take
    ("explicit-ow", {}, "copied"),
    ("implicit", {"ts": ImplicitVRLittleEndian}, "copied"),
    ("explicit-8bit-ob", {"bits": 8}, "copied"),
    ("explicit-16bit-ob", {"ob": True}, "copied"),
    ("large", {"rows": 512, "cols": 512}, "copied"),
    ("trailing-padding", {"trailing": True}, "copied"),  # the profile removes the padding
    ("group-length-7fe0", {"group_len": True}, "copied"),  # de-identification drops group lengths
    ("big-endian", {"ts": ExplicitVRBigEndian}, "dcmtk"),
    ("encapsulated", {"ts": RLELossless, "encapsulated": True}, "copied"),
    ("small-in-memory", {"rows": 16, "cols": 16}, "dcmtk"),
    ("deflated", {"ts": DeflatedExplicitVRLittleEndian}, "dcmtk"),
    ("jpeg-baseline", {"bits": 8, "rows": 256, "cols": 256, "codec": ["dcmcjpeg", "+eb"]}, "copied"),
    ("jpeg-lossless-16bit", {"rows": 256, "cols": 256, "codec": ["dcmcjpeg", "+e1"]}, "copied"),
    ("jpeg-ls", {"rows": 256, "cols": 256, "codec": ["dcmcjpls"]}, "copied"),
    ("rle-multiframe", {"frames": 3, "codec": ["dcmcrle"]}, "copied"),
    ("jpeg-fragments", {"frames": 2, "rows": 256, "cols": 256, "codec": ["dcmcjpeg", "+e1", "+fs", "4"]},
     "copied"),
    ("jpeg-trailing-padding", {"trailing": True, "rows": 256, "cols": 256,
                               "codec": ["dcmcjpeg", "+e1"]}, "copied"),
    ("private-after-pixels", {"after": [(0x7FE10010, "LO", "ACME PIXELS"), (0x7FE11001, "OB", b"\1" * 32)]},
     "copied"),
    ("jpeg-private-after-pixels", {"rows": 256, "cols": 256, "codec": ["dcmcjpeg", "+e1"],
                                   "after": [(0x7FE10010, "LO", "ACME PIXELS"), (0x7FE11001, "OB", b"\1" * 32)]},
     "copied"),
    ("kept-after-pixels", {"after": [(0x7FE00020, "OW", b"\2" * 64)]}, "dcmtk"),
    ("pixels-twice", {"dup_pixels": True}, "dcmtk"),  # which one DCMTK keeps is its business
    ("jpeg-kept-after-pixels", {"rows": 256, "cols": 256, "codec": ["dcmcjpeg", "+e1"],
                                "after": [(0x7FE00020, "OW", b"\2" * 64)]}, "dcmtk"),
]
for name, args, want in cases:
    src = os.path.join(W, name + ".dcm")
    first = make(src, **args)
    held = pydicom.dcmread(src)
    for tag in [t for t, _, _ in args.get("after", ())] + ([0xFFFCFFFC] if args.get("trailing") else []):
        check(tag in held, "%s: the source holds (%04X,%04X) after its pixel data" % (name, tag >> 16, tag & 0xFFFF))
    slow, fast = os.path.join(W, name + ".slow"), os.path.join(W, name + ".fast")
    r = subprocess.run([tool, key, src, slow, fast], capture_output=True, text=True)
    if r.returncode != 0:
        check(False, "%s: both writers succeed (%s)" % (name, r.stderr.strip()))
        continue
    check(r.stdout.strip() == want, "%s: dcm_file_save_copy took the %s path (%s)" % (name, want, r.stdout.strip()))
    a, b = open(slow, "rb").read(), open(fast, "rb").read()
    check(a == b, "%s: byte-identical to DCMTK's output (%d vs %d bytes)" % (name, len(a), len(b)))
    o = pydicom.dcmread(fast)
    # with two pixel elements DCMTK keeps the first (pydicom would read the last)
    want_pixels = first if args.get("dup_pixels") else held.PixelData
    check(o.PatientIdentityRemoved == "YES" and o.PixelData == want_pixels,
          "%s: pydicom reads the copy, pixels unchanged" % name)

print("%d failed" % len(FAILS))
sys.exit(1 if FAILS else 0)
