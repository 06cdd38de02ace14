#!/usr/bin/python3
"""deid_safe_private.py — the Retain Safe Private option keeps exactly the private elements that
PS3.15 Table E.3.10-1 lists, matched by private creator and element byte within the block the
creator reserves (not by absolute tag), and verify-deid accepts them only when the file records
the option (code 113111). pydicom writes the inputs and reads the outputs.

usage: deid_safe_private.py VESALIUS WORK_DIR
"""
import os
import subprocess
import sys

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

V, W = sys.argv[1:3]
FAILS = []
ROOT = "1.2.826.0.1.3680043.2.1125.4711"


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        FAILS.append(what)


def run(args):
    p = subprocess.run([V] + args, capture_output=True, text=True, errors="replace")
    return p.returncode, p.stdout + p.stderr


def tag(t):
    return "(%04X,%04X)" % (t >> 16, t & 0xFFFF)


# (tag, VR, value, safe): safe rows cite Table E.3.10-1 (creator, (gggg,xxee), VR).
# Creators sit at different block numbers, so an element's absolute tag differs from the table's.
PRIVATE = [
    (0x00190010, "LO", "GEMS_ACQU_01", True),        # block 10
    (0x00190011, "LO", "SIEMENS MR HEADER", True),   # block 11
    (0x00190012, "LO", "ACME IMAGING", False),       # block 12: a creator not in the table
    (0x00191023, "DS", "12.5", True),                # GEMS_ACQU_01 (0019,xx23) DS Table Speed
    (0x00191024, "LO", "Doe^Jane", False),           # (0019,xx24) is DS in the table: wrong VR
    (0x00191030, "DS", "7", False),                  # GEMS_ACQU_01 (0019,xx30): not listed
    (0x0019110C, "IS", "1000", True),                # SIEMENS MR HEADER (0019,xx0C) IS B Value
    (0x0019110E, "FD", [0.0, 0.6, 0.8], True),       # (0019,xx0E) FD Diffusion Gradient Direction
    (0x00191108, "LO", "Doe^John", False),           # SIEMENS MR HEADER (0019,xx08): not listed
    (0x00191223, "DS", "12.5", False),               # xx23 under ACME: same byte, unsafe creator
    (0x00430013, "LO", "GEMS_PARM_01", True),        # block 13
    (0x00431327, "SH", "1.375:1", True),             # (0043,xx27) SH Scan Pitch Ratio
    (0x00450010, "LO", "GEMS_HELIOS_01", False),     # block kept no element: creator removed
    (0x00451003, "LO", "MRN123456", False),          # GEMS_HELIOS_01 (0045,xx03): not listed
    (0x00090010, "LO", "ACME", False),
    (0x00091001, "LO", "MRN123456", False),
    (0x00990010, "LO", "NQHeader", True),
    (0x00991002, "UI", ROOT + ".77", True),          # (0099,xx02) UI Analyzed Series UID
    (0x20010010, "LO", "Philips Imaging DD 002", True),  # block 10
    (0x20010011, "LO", "Philips Imaging DD 001", True),  # block 11
    (0x20011003, "CS", "GAMMA", True),               # DD 002 (2001,xx03) CS Um Rank Type
    (0x20011103, "FL", 1000.0, True),                # DD 001 (2001,xx03) FL Diffusion B-Factor
    (0x2001110A, "IS", "3", True),                   # DD 001 (2001,xx0a) IS Image Plane Number
    (0x20011152, "LO", "Doe^John", False),           # DD 001 (2001,xx52): not listed
]
SAFE = {t for t, _, _, s in PRIVATE if s}
STACK = 0x2001115F  # DD 001 (2001,xx5f) SQ Stack Sequence, kept and cleaned inside


def make(path, implicit):
    m = FileMetaDataset()
    m.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    m.MediaStorageSOPInstanceUID = ROOT + ".1." + ("2" if implicit else "1")
    m.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = m
    ds.SOPClassUID, ds.SOPInstanceUID = m.MediaStorageSOPClassUID, m.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = ROOT + ".2", ROOT + ".3"
    ds.PatientName, ds.PatientID, ds.Modality, ds.BurnedInAnnotation = "Doe^John", "MRN123456", "MR", "NO"
    for t, vr, value, _ in PRIVATE:
        ds.add_new(t, vr, value)
    item = Dataset()  # inside the kept sequence: a private element of its own, and a name
    item.add_new(0x00290010, "LO", "ACME")
    item.add_new(0x00291001, "LO", "MRN123456")
    item.PatientName = "Doe^John"
    item.add_new(0x20010011, "LO", "Philips Imaging DD 001")
    item.add_new(0x2001112D, "SS", 12)  # DD 001 (2001,xx2d) SS Stack Number Of Slices
    ds.add_new(STACK, "SQ", Sequence([item]))
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation, ds.SamplesPerPixel, ds.PhotometricInterpretation = 0, 1, "MONOCHROME2"
    ds.PixelData = bytes(8)
    ds.is_little_endian, ds.is_implicit_VR = True, implicit
    ds.save_as(path, write_like_original=False)


def private_tags(ds):
    return {int(e.tag) for e in ds if e.tag.group & 1}


def one(path_in, label, implicit):
    key = os.path.join(W, "site.key")
    res = {}
    for opt in (False, True):
        out = os.path.join(W, "out-%s-%d" % (label, opt))
        rc, log = run(["anonymize", path_in, "--out", out, "--key", key] + (["--retain-safe-private"] if opt else []))
        check(rc == 0, "%s: anonymize %s the option exits 0 (%d: %s)" % (label, "with" if opt else "without", rc, log[-300:]))
        (f,) = [os.path.join(d, n) for d, _, ns in os.walk(out) for n in ns]
        res[opt] = f
    o = pydicom.dcmread(res[False])
    check(private_tags(o) == set(), "%s: without the option no private element is left (%s)" %
          (label, sorted(tag(t) for t in private_tags(o))))
    o = pydicom.dcmread(res[True])
    want = SAFE | {STACK}
    got = private_tags(o)
    check(got == want, "%s: with the option exactly the safe elements and their creators are kept "
          "(extra %s, missing %s)" % (label, sorted(tag(t) for t in got - want), sorted(tag(t) for t in want - got)))
    if 0x00191023 in o:
        check(str(o[0x00191023].value).strip() == "12.5", "%s: a kept value is unchanged" % label)
    if 0x00991002 in o:
        v = o[0x00991002].value  # bytes in implicit VR (pydicom does not know the creator)
        v = (v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)).rstrip("\0 ")
        check(v.startswith("2.25.") and ROOT not in v, "%s: a kept private UID becomes its pseudonym" % label)
    if STACK in o and len(o[STACK].value) == 1:
        inner = o[STACK].value[0]
        check(private_tags(inner) == {0x20010011, 0x2001112D},
              "%s: inside the kept sequence only the safe element and its creator remain (%s)" %
              (label, sorted(tag(t) for t in private_tags(inner))))
        check("Doe" not in str(inner.get("PatientName", "")), "%s: the kept sequence is cleaned inside" % label)
    codes = [i.CodeValue for i in o.get("DeidentificationMethodCodeSequence", [])]
    check("113111" in codes, "%s: the output records the Retain Safe Private option (113111)" % label)

    # verify-deid: accepts the kept elements because the file records the option
    rc, log = run(["verify-deid", res[True]])
    check(rc == 0, "%s: verify-deid accepts the safe private elements the option kept (%d: %s)" % (label, rc, log[-300:]))
    rc, log = run(["verify-deid", res[False]])
    check(rc == 0, "%s: verify-deid passes the output without the option (%d)" % (label, rc))
    # the same file with the option's code removed: every kept private element is a hit
    o.DeidentificationMethodCodeSequence = Sequence(
        [i for i in o.DeidentificationMethodCodeSequence if i.CodeValue != "113111"])
    stripped = os.path.join(W, label + "-stripped.dcm")
    o.save_as(stripped)
    rc, log = run(["verify-deid", stripped])
    check(rc == 7, "%s: verify-deid rejects kept private elements when the option is not recorded (%d)" % (label, rc))
    check("(0019,1023): private attribute" in log and "(0019,0010): private creator of no safe element" in log,
          "%s: verify-deid names the private tags" % label)
    # an unsafe element, and a creator whose block keeps nothing, slipped into a file that records it
    o = pydicom.dcmread(res[True])
    o.add_new(0x00191030, "DS", "7")
    o.add_new(0x00450010, "LO", "GEMS_HELIOS_01")
    bad = os.path.join(W, label + "-unsafe.dcm")
    o.save_as(bad)
    rc, log = run(["verify-deid", bad])
    check(rc == 7 and "(0019,1030): private attribute" in log and "(0045,0010): private creator of no safe element" in log,
          "%s: verify-deid flags an unlisted element and a creator of no safe element under the option (%d: %s)" %
          (label, rc, log[-300:]))
    check("(0019,1023)" not in log and "(0019,0010)" not in log, "%s: ... and only those" % label)


for implicit in (False, True):
    label = "implicit" if implicit else "explicit"
    src = os.path.join(W, label + ".dcm")
    make(src, implicit)
    one(src, label, implicit)

print("%d failed" % len(FAILS))
sys.exit(1 if FAILS else 0)
