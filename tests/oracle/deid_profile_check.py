#!/usr/bin/python3
"""deid_profile_check.py — cross-check `vesalius anonymize` against PS3.15 Table E.1-1.

Builds one CT dataset holding every attribute of the standard's table (values of the right VR
from the PS3.6 dictionary), once at the top level and once nested two sequences deep, plus
curve/overlay repeating groups and private elements; de-identifies it under the basic profile
and under each option alone; then checks every attribute's fate in the output (read with
pydicom) against the table's column for that option. The tables are tests/fixtures/dicom/ (see SOURCE.md there).
Exit 1 on any mismatch.

usage: deid_profile_check.py VESALIUS TABLES_DIR WORK_DIR
"""
import datetime
import json
import os
import re
import subprocess
import sys

REF_PROFILE = "ps3.15_table_e.1-1.json"
REF_DICT = "ps3.6_profile_attributes.json"
OPTIONS = [  # JSON column -> command-line flag
    ("rtnSafePrivOpt", "--retain-safe-private"), ("rtnUIDsOpt", "--retain-uids"),
    ("rtnDevIdOpt", "--retain-device-id"), ("rtnInstIdOpt", "--retain-institution-id"),
    ("rtnPatCharsOpt", "--retain-patient-chars"), ("rtnLongFullDatesOpt", "--retain-long-full-dates"),
    ("rtnLongModifDatesOpt", "--retain-long-modified-dates"), ("cleanDescOpt", "--clean-descriptors"),
    ("cleanStructContOpt", "--clean-structured-content"), ("cleanGraphOpt", "--clean-graphics"),
]
PLANTED = ["doe", "john", "20230105", "mrn123456"]  # must not survive a C (clean) on text
TEXT = {"LO": "Seen by John Doe 20230105", "SH": "John Doe", "ST": "Seen by John Doe 20230105",
        "LT": "Seen by John Doe 20230105", "UT": "Seen by John Doe 20230105",
        "UC": "Seen by John Doe 20230105", "PN": "Doe^John", "CS": "DOE", "AE": "DOESTATION",
        "AS": "045Y", "DS": "1.5", "IS": "7", "DA": "20230105", "DT": "20230105101010",
        "TM": "101010", "UR": "http://doe.example/john"}
NESTED = [(0x0008, 0x2218), (0x0008, 0x2220)]  # AnatomicRegion(Modifier)Sequence: not in the table


def main():
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    vesalius, ref, work = sys.argv[1:4]
    table = json.load(open(os.path.join(ref, REF_PROFILE)))
    vrs = {a["id"].lower(): a["valueRepresentation"] for a in json.load(open(os.path.join(ref, REF_DICT)))}

    rows = []  # (tag int, vr, row) for every placeable attribute
    for r in table:
        m = re.match(r"\(([0-9A-FX]{4}),([0-9A-FX]{4})\)$", r["tag"])
        if not m:
            continue  # private attributes: checked separately
        tag = int((m.group(1) + m.group(2)).replace("X", "0"), 16)
        vr = vrs.get(r["id"].lower(), "")
        if r["tag"].startswith("(50XX"):
            tag, vr = 0x50002000, "OB"  # one element of a curve group
        vr = vr.split(" or ")[0] or "OB"
        if tag >> 16 in (0x0000, 0x0002):
            continue  # command and meta groups cannot live in a stored data set; meta checked below
        rows.append((tag, vr, r))

    def value(tag, vr):
        if vr == "UI":
            return "1.2.826.0.1.3680043.2.1125.20230105.%d" % tag
        if vr in ("US", "SS", "UL", "SL"):
            return 7
        if vr in ("FL", "FD"):
            return 1.5
        if vr in ("OB", "OW", "UN", "OF", "OD", "OL", "OV"):
            return bytes(range(1, 17))
        return TEXT[vr]

    def fill(ds, depth):
        for tag, vr, r in rows:
            if vr == "SQ":
                item = Dataset()
                item.CodeValue = "T-D0050"
                item.ReferringPhysicianName = "Doe^John"
                ds.add_new(tag, vr, Sequence([item]))
            else:
                ds.add_new(tag, vr, value(tag, vr))

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = value(0x00080018, "UI")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    fill(ds, 0)
    inner = Dataset()
    fill(inner, 2)
    mid = Dataset()
    mid.add_new(NESTED[1][0] << 16 | NESTED[1][1], "SQ", Sequence([inner]))
    ds.add_new(NESTED[0][0] << 16 | NESTED[0][1], "SQ", Sequence([mid]))
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "Doe^John", "MRN123456"
    ds.Modality, ds.BurnedInAnnotation = "CT", "NO"
    # private: a safe-listed element, an unsafe one in the same block, an unknown creator
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000")
    ds.add_new(0x00191008, "LO", "Doe^John")
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", "MRN123456")
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 15, 1, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(8)
    ds.file_meta = meta
    ds.is_little_endian, ds.is_implicit_VR = True, False
    os.makedirs(os.path.join(work, "in"), exist_ok=True)
    src = os.path.join(work, "in", "all.dcm")
    ds.save_as(src, write_like_original=False)
    key = os.path.join(work, "site.key")

    fails = []
    n_checked = 0
    for col, flag in [(None, None)] + OPTIONS:
        out = os.path.join(work, "out-" + (flag or "--basic")[2:])
        cmd = [vesalius, "anonymize", src, "--out", out, "--key", key] + ([flag] if flag else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            fails.append("%s: exit %d: %s" % (flag or "basic", p.returncode, p.stderr.strip()))
            continue
        (path,) = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
        o = pydicom.dcmread(path)
        label = flag or "basic"
        oi = o[NESTED[0]].value[0][NESTED[1]].value[0] if NESTED[0] in o else None
        shifts = set()
        for tag, vr, r in rows:
            code = r.get(col, r["basicProfile"]) if col else r["basicProfile"]
            for where, d, orig_ds in (("top", o, ds), ("nested", oi, inner)):
                if d is None:
                    fails.append("%s: nested sequences removed" % label)
                    break
                why = fate(d, orig_ds, tag, vr, code, r, col, shifts)
                n_checked += 1
                if why:
                    fails.append("%s: %s %s (%s, %s) at %s: %s" % (label, r["tag"], r["name"], vr, code, where, why))
        if len(shifts) > 1:
            fails.append("%s: dates shifted by different amounts %s" % (label, sorted(shifts)))
        if col == "rtnLongModifDatesOpt" and (not shifts or 0 in shifts):
            fails.append("%s: no date was shifted" % label)
        p = subprocess.run([vesalius, "verify-deid", out], capture_output=True, text=True)
        if p.returncode != 0:
            fails.append("%s: verify-deid exit %d on the output: %s" % (label, p.returncode, p.stdout.strip()[:500]))
        fails += check_private(o, label, col == "rtnSafePrivOpt")
        fails += check_markers(o, label, flag)
    for f in fails:
        print("FAIL:", f)
    print("%d attribute fates checked over %d configurations, %d failures" % (n_checked, len(OPTIONS) + 1, len(fails)))
    return 1 if fails else 0


def text_of(el):
    v = el.value
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return "" if v is None else str(v)


def fate(d, orig_ds, tag, vr, code, row, col, shifts):
    """'' when the attribute's fate in d matches code, else a reason."""
    present = tag in d
    el = d[tag] if present else None
    orig = orig_ds[tag]
    empty = present and (el.value is None or el.value == "" or el.value == b"" or
                         (vr == "SQ" and len(el.value) == 0))
    same = present and not empty and el.value == orig.value

    def is_z():
        return present and (empty or not same)

    def is_d():
        return present and not empty and (vr == "SQ" or not same)

    def is_u():
        return present and vr == "UI" and re.match(r"^2\.25\.(0|[1-9][0-9]{0,38})$", text_of(el)) is not None

    if code == "X":
        return "" if not present else "present, wanted removed"
    if code == "K":
        if not present:
            return "removed, wanted kept"
        return "" if vr == "SQ" or same else "changed, wanted kept"
    if code == "Z":
        return "" if is_z() else "wanted empty or dummy"
    if code == "D":
        return "" if is_d() else "wanted a dummy value"
    if code == "U":
        return "" if is_u() else "wanted a 2.25 UID"
    if code == "C":
        if not present:
            return "removed, wanted cleaned"
        return clean_fate(el, orig, vr, col, shifts)
    alts = code.replace("*", "").split("/")
    ok = (("X" in alts and not present) or ("Z" in alts and is_z()) or ("D" in alts and is_d()) or
          ("U" in alts and vr == "SQ" and present))
    return "" if ok else "fate matches none of " + code


def clean_fate(el, orig, vr, col, shifts):
    if vr == "SQ":
        return ""
    if vr in ("DA", "DT"):
        a, b = text_of(orig)[:8], text_of(el)[:8]
        try:
            da = datetime.date(int(a[:4]), int(a[4:6]), int(a[6:8]))
            db = datetime.date(int(b[:4]), int(b[4:6]), int(b[6:8]))
        except ValueError:
            return "not a date after cleaning"
        shifts.add((db - da).days)
        return "" if text_of(orig)[8:] == text_of(el)[8:] else "time part changed"
    if vr == "TM":
        return "" if text_of(el) == text_of(orig) else "time changed by a whole-day shift"
    if vr == "AE":
        return "" if text_of(el) and text_of(el) != text_of(orig) else "AE title not replaced"
    if vr in ("OB", "OW", "UN"):
        if col == "cleanGraphOpt":
            return "" if el.value == orig.value else "graphics changed"
        return "" if el.value != orig.value else "binary value not cleaned"
    low = text_of(el).lower()
    left = [p for p in PLANTED if p in low]
    return "identifier left in cleaned text" if left else ""


def check_private(o, label, safe_opt):
    fails = []
    if safe_opt:
        if 0x0019100C not in o or 0x00190010 not in o:
            fails.append("%s: safe private element removed" % label)
    elif any(t.group & 1 for t in o.keys()):
        fails.append("%s: private element kept" % label)
    for t in (0x00191008, 0x00091001, 0x00090010):
        if t in o:
            fails.append("%s: unsafe private (%04X,%04X) kept" % (label, t >> 16, t & 0xFFFF))
    return fails


def check_markers(o, label, flag):
    fails = []
    if o.get("PatientIdentityRemoved") != "YES":
        fails.append("%s: PatientIdentityRemoved is not YES" % label)
    codes = [it.CodeValue for it in o.get("DeidentificationMethodCodeSequence", [])]
    want = {None: [], "--retain-safe-private": ["113111"], "--retain-uids": ["113110"],
            "--retain-device-id": ["113109"], "--retain-institution-id": ["113112"],
            "--retain-patient-chars": ["113108"], "--retain-long-full-dates": ["113106"],
            "--retain-long-modified-dates": ["113107"], "--clean-descriptors": ["113105"],
            "--clean-structured-content": ["113104"], "--clean-graphics": ["113103"]}[flag]
    if codes != ["113100"] + want:
        fails.append("%s: DeidentificationMethodCodeSequence codes %s" % (label, codes))
    if o.file_meta.MediaStorageSOPInstanceUID != o.SOPInstanceUID:
        fails.append("%s: meta SOP Instance UID differs from the data set's" % label)
    if flag != "--retain-uids" and not str(o.SOPInstanceUID).startswith("2.25."):
        fails.append("%s: SOP Instance UID not replaced" % label)
    if o.preamble != bytes(128):
        fails.append("%s: preamble not zeroed" % label)
    return fails


if __name__ == "__main__":
    sys.exit(main())
