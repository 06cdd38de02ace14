#!/usr/bin/python3
"""deid_planted.py — planted PHI, consistency and key-safety checks of `vesalius anonymize`
and `vesalius verify-deid`, with pydicom and dcmdump as the independent readers.

usage: deid_planted.py VESALIUS WORK_DIR
"""
import base64
import datetime
import hashlib
import hmac
import os
import re
import sqlite3
import stat
import subprocess
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

V = sys.argv[1]
W = sys.argv[2]
FAILS = []
KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

# Every planted identifier; none may appear in any output byte.
PHI = ["Doe^John", "MRN4711", "19600215", "20230105", "20221231", "134501", "St Elsewhere",
       "House^Gregory", "Gregory House", "CTSCAN01", "SN998877", "ACC556677", "12 Baker Street",
       "555-0199", "Roe^Jane", "MRN0815", "19751102", "Cuddy^Lisa", "secret-vendor-note",
       "1.2.826.0.1.3680043.2.1125.20230105"]


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        FAILS.append(what)


def uid(n, patient):
    # UIDs with the study date inside, as some scanners make them
    return "1.2.826.0.1.3680043.2.1125.20230105134501.%d.%d" % (patient, n)


def make(path, patient, n, modality="CT", ts=ExplicitVRLittleEndian, burned=True, refs=None):
    name, pid, birth = [("Doe^John", "MRN4711", "19600215"), ("Roe^Jane", "MRN0815", "19751102")][patient]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = uid(n, patient)
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid(1000, patient), uid(2000, patient)
    ds.FrameOfReferenceUID = uid(3000, patient)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, pid, birth
    ds.PatientAddress, ds.PatientTelephoneNumbers = "12 Baker Street", "555-0199"
    ds.SoftwareVersions = "1.0.0.20170515"  # kept by the profile; looks like a UID to a byte scan
    ds.StudyDate, ds.SeriesDate, ds.AcquisitionDate, ds.ContentDate = "20230105", "20230105", "20230105", "20230105"
    ds.StudyTime, ds.ContentTime = "134501", "134501"
    ds.AcquisitionDateTime = "20230105134501"
    ds.AccessionNumber, ds.InstitutionName = "ACC556677", "St Elsewhere"
    ds.ReferringPhysicianName, ds.StationName, ds.DeviceSerialNumber = "House^Gregory", "CTSCAN01", "SN998877"
    ds.StudyDescription = "CT chest for Gregory House, pt %s" % name
    ds.SeriesDescription = "Axial 1mm"
    ds.ImageComments = "seen 20221231 by Cuddy^Lisa"
    ds.Modality = modality
    ds.InstanceNumber = n
    if burned:
        ds.BurnedInAnnotation = "NO"
    # three levels of sequences, identifiers at the bottom
    lvl3 = Dataset()
    lvl3.PersonName = "Cuddy^Lisa"
    lvl3.ObservationDateTime = "20221231090000"
    lvl3.UID = uid(4000, patient)
    lvl2 = Dataset()
    lvl2.PrimaryAnatomicStructureSequence = Sequence([lvl3])
    lvl2.VerifyingObserverName = "House^Gregory"
    lvl1 = Dataset()
    lvl1.AnatomicRegionModifierSequence = Sequence([lvl2])
    lvl1.CodeValue, lvl1.CodingSchemeDesignator, lvl1.CodeMeaning = "T-D3000", "SRT", "Chest"
    ds.AnatomicRegionSequence = Sequence([lvl1])
    # structured content with free text: a dummy under the basic profile, cleaned on request
    text = Dataset()
    text.ValueType, text.TextValue = "TEXT", "Findings for %s %s (%s), see 2022-12-31" % (
        name.split("^")[1], name.split("^")[0], pid)
    text.PersonName = name
    ds.ContentSequence = Sequence([text])
    if refs:  # reference another file: must stay resolvable after de-identification
        inst = Dataset()
        inst.ReferencedSOPClassUID, inst.ReferencedSOPInstanceUID = refs
        series = Dataset()
        series.SeriesInstanceUID = uid(2000, patient)
        series.ReferencedInstanceSequence = Sequence([inst])
        ds.ReferencedSeriesSequence = Sequence([series])
    ds.add_new(0x00290010, "LO", "ACME PRIVATE")
    ds.add_new(0x00291001, "LO", "secret-vendor-note")
    ds.add_new(0x00291002, "PN", name)
    ds.Rows = ds.Columns = 64  # 8 KiB: above DCMTK's lazy-load limit, so copied from the source
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = (np.arange(64 * 64, dtype=np.int16) * (n + 3)).tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, ts == ImplicitVRLittleEndian
    ds.save_as(path, write_like_original=False)
    return ds


def run(args, want=None):
    p = subprocess.run([V] + args, capture_output=True, text=True, errors="replace")
    return p.returncode, p.stdout + p.stderr


def outputs(d):
    return sorted(os.path.join(a, f) for a, _, fs in os.walk(d) for f in fs)


def main():
    src = os.path.join(W, "src")
    os.makedirs(src, exist_ok=True)
    a = make(os.path.join(src, "a.dcm"), 0, 1)
    make(os.path.join(src, "b.dcm"), 0, 2, ts=ImplicitVRLittleEndian,
         refs=(a.SOPClassUID, a.SOPInstanceUID))
    make(os.path.join(src, "c.dcm"), 1, 3)
    us = os.path.join(W, "us")
    os.makedirs(us, exist_ok=True)
    make(os.path.join(us, "u.dcm"), 1, 4, modality="US", burned=False)
    key = os.path.join(W, "site.key")
    with open(key, "w") as f:
        f.write(KEY_HEX + "\n")
    os.chmod(key, 0o600)
    phi = os.path.join(W, "phi.txt")
    with open(phi, "w") as f:
        f.write("\n".join(PHI) + "\n")

    # 1. basic profile and with clean descriptors: no planted byte survives
    for label, flags in (("basic", []), ("clean-descriptors", ["--clean-descriptors"]),
                         ("clean-structured-content", ["--clean-structured-content"])):
        out = os.path.join(W, "out-" + label)
        rc, log = run(["anonymize", src, "--out", out, "--key", key] + flags)
        check(rc == 0, "%s: anonymize exits 0 (%d: %s)" % (label, rc, log.strip()[-200:]))
        files = outputs(out)
        check(len(files) == 3, "%s: three files written" % label)
        for f in files:
            check(re.fullmatch(r"2\.25\.\d+/2\.25\.\d+\.dcm", os.path.relpath(f, out)) is not None,
                  "%s: output name %s holds pseudonyms only" % (label, os.path.relpath(f, out)))
            raw = open(f, "rb").read()
            left = [p for p in PHI if p.encode() in raw or p.upper().encode() in raw]
            check(not left, "%s: no planted value in the bytes of %s (found %d)" % (label, os.path.basename(f), len(left)))
            o = pydicom.dcmread(f)
            check(o.PatientIdentityRemoved == "YES", "%s: pydicom reads %s" % (label, os.path.basename(f)))
            p = subprocess.run(["dcmdump", "-q", f], capture_output=True)
            check(p.returncode == 0, "%s: dcmdump reads %s" % (label, os.path.basename(f)))
            check(not any(t.group & 1 for t in o.keys()), "%s: no private element" % label)
        rc, log = run(["verify-deid", out, "--phi-list", phi])
        check(rc == 0, "%s: verify-deid passes on the output (exit %d: %s)" % (label, rc, log.strip()[-300:]))
        if label == "clean-descriptors":
            byn = {int(pydicom.dcmread(f).InstanceNumber): pydicom.dcmread(f) for f in files}
            desc = str(byn[1].StudyDescription)
            check(desc.startswith("CT chest for * *"), "clean-descriptors: description kept, names scrubbed (%s)" % desc)
        if label == "basic":
            sr = pydicom.dcmread(files[0]).ContentSequence
            check(len(sr) == 1 and len(sr[0]) == 0, "basic: Content Sequence (D) is a dummy of one empty item")
        if label == "clean-structured-content":
            tv = str(pydicom.dcmread(files[0]).ContentSequence[0].TextValue)
            check(tv == "Findings for * * (*), see *", "clean-structured-content: free text scrubbed (%s)" % tv)

    rc, log = run(["verify-deid", src, "--phi-list", phi])
    check(rc == 7, "verify-deid fails with exit 7 on the input (%d)" % rc)
    check("Doe" not in log and "MRN4711" not in log, "verify-deid names tags, never values")
    check("(0029,1001): private attribute" in log, "verify-deid names the private tag")
    rc, log = run(["verify-deid", src])
    check(rc == 7, "verify-deid without a list still finds UIDs, private tags (%d)" % rc)

    # 2. pixel data and transfer syntax untouched; references stay resolvable
    out = os.path.join(W, "out-basic")
    byn = {int(pydicom.dcmread(f).InstanceNumber): (f, pydicom.dcmread(f)) for f in outputs(out)}
    for n, name in ((1, "a.dcm"), (2, "b.dcm"), (3, "c.dcm")):
        i = pydicom.dcmread(os.path.join(src, name))
        o = byn[n][1]
        check(o.PixelData == i.PixelData, "%s: pixel data identical" % name)
        check(o.file_meta.TransferSyntaxUID == i.file_meta.TransferSyntaxUID, "%s: same transfer syntax" % name)
        check(o.file_meta.MediaStorageSOPInstanceUID == o.SOPInstanceUID, "%s: meta follows the new SOP Instance UID" % name)
        check(open(byn[n][0], "rb").read(128) == bytes(128), "%s: preamble zeroed" % name)
    oa, ob, oc = byn[1][1], byn[2][1], byn[3][1]
    ref = ob.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    check(ref == oa.SOPInstanceUID, "ReferencedSOPInstanceUID in b resolves to a's new SOP Instance UID")
    check(oa.FrameOfReferenceUID == ob.FrameOfReferenceUID != oc.FrameOfReferenceUID, "FrameOfReferenceUID shared by a and b only")
    check(oa.StudyInstanceUID == ob.StudyInstanceUID and oa.SeriesInstanceUID == ob.SeriesInstanceUID, "a and b keep one study and series")
    check(oa.PatientID == ob.PatientID != oc.PatientID, "same patient -> same pseudonym, two patients -> two")
    # the pseudonyms are HMAC-SHA256 under the key, recomputed here with Python's hmac
    key_bytes = bytes.fromhex(KEY_HEX)
    mac = lambda dom, msg: hmac.new(key_bytes, dom + b"\0" + msg, hashlib.sha256).digest()
    want_uid = "2.25.%d" % int.from_bytes(mac(b"uid", a.SOPInstanceUID.encode())[:16], "big")
    check(oa.SOPInstanceUID == want_uid, "SOP Instance UID = 2.25 + 128 bits of HMAC-SHA256")
    want_pid = "VS" + base64.b32encode(mac(b"patient", b"MRN4711\x01")[:10]).decode()
    check(oa.PatientID == want_pid, "patient pseudonym = VS + base32 of HMAC-SHA256 (%s)" % want_pid)

    # 3. the same patients in another run: same pseudonyms and date shifts (modified dates)
    shifts = {}
    for run_no in (1, 2):
        out = os.path.join(W, "out-dates-%d" % run_no)
        rc, log = run(["anonymize", src, "--out", out, "--key", key, "--retain-long-modified-dates"])
        check(rc == 0, "dates run %d exits 0" % run_no)
        for f in outputs(out):
            o = pydicom.dcmread(f)
            d = datetime.date(int(o.StudyDate[:4]), int(o.StudyDate[4:6]), int(o.StudyDate[6:8]))
            shift = (d - datetime.date(2023, 1, 5)).days
            b = o.AnatomicRegionSequence[0].AnatomicRegionModifierSequence[0].PrimaryAnatomicStructureSequence[0].ObservationDateTime
            age = (datetime.date(int(b[:4]), int(b[4:6]), int(b[6:8])) - d).days  # 3 levels down
            shifts.setdefault((run_no, o.PatientID), set()).add((shift, age, o.SOPInstanceUID))
    p1 = oa.PatientID
    check(shifts.get((1, p1)) == shifts.get((2, p1)), "same patient in two runs: same pseudonym, shift and UIDs")
    s_a = {s for s, _, _ in shifts[(1, p1)]}
    s_c = {s for s, _, _ in shifts[(1, oc.PatientID)]}
    check(len(s_a) == 1 and all(-3652 <= s <= -1 for s in s_a), "one shift per patient, into the past (%s)" % s_a)
    check(s_a != s_c, "two patients get different shifts (%s, %s)" % (s_a, s_c))
    ages = {age for _, age, _ in shifts[(1, p1)]}
    check(ages == {-5}, "intervals kept: a date three sequences deep shifted with the study date (%s)" % ages)

    # 4. burned-in text: rejected by default, accepted and flagged on request
    out = os.path.join(W, "out-us")
    rc, log = run(["anonymize", us, "--out", out, "--key", key])
    check(rc == 4 and not outputs(out), "US without BurnedInAnnotation rejected, exit 4 (%d)" % rc)
    check("burned-in" in log and "u.dcm" in log, "the rejection names the file and the reason")
    rc, log = run(["anonymize", us, "--out", out, "--key", key, "--accept-burned-in"])
    check(rc == 0 and len(outputs(out)) == 1 and "flagged" in log, "--accept-burned-in writes it, flagged")

    # 5. key safety: created 0600 on first use, refused when others can read it
    k2 = os.path.join(W, "new.key")
    rc, _ = run(["anonymize", src, "--out", os.path.join(W, "out-k2"), "--key", k2])
    check(rc == 0 and stat.S_IMODE(os.stat(k2).st_mode) == 0o600, "a new key file is created with mode 0600")
    os.chmod(k2, 0o640)
    rc, log = run(["anonymize", src, "--out", os.path.join(W, "out-k3"), "--key", k2])
    check(rc == 3 and "chmod 600" in log, "a group-readable key is refused with exit 3 (%d)" % rc)
    check(not os.path.exists(os.path.join(W, "out-k3")) or not outputs(os.path.join(W, "out-k3")), "nothing written with a refused key")
    rc, _ = run(["anonymize", src, "--out", os.path.join(W, "out-k4"), "--key", key,
                 "--retain-long-full-dates", "--retain-long-modified-dates"])
    check(rc == 2, "full and modified dates together are a usage error (%d)" % rc)

    # 6. linkage table: off by default, 0600, maps originals to pseudonyms
    link = os.path.join(W, "link.sqlite")
    rc, _ = run(["anonymize", src, "--out", os.path.join(W, "out-link"), "--key", key, "--linkage", link])
    check(rc == 0 and stat.S_IMODE(os.stat(link).st_mode) == 0o600, "linkage table created with mode 0600")
    rows = dict(sqlite3.connect(link).execute("SELECT original, pseudonym FROM linkage WHERE kind='patient'").fetchall())
    check(rows.get("MRN4711") == p1 and len(rows) == 2, "linkage maps each patient ID to its pseudonym")

    # 7. hostile inputs: never a crash, every bad file rejected with its name, the rest written
    bad = os.path.join(W, "bad")
    os.makedirs(bad, exist_ok=True)
    good = open(os.path.join(src, "a.dcm"), "rb").read()
    with open(os.path.join(bad, "notes.txt"), "w") as f:
        f.write("not DICOM\n")
    open(os.path.join(bad, "truncated.dcm"), "wb").write(good[:700])
    rng = np.random.default_rng(7)
    for k in range(24):  # bytes flipped in the header (after the preamble, before the pixels)
        b = bytearray(good)
        for pos in rng.integers(132, len(good) - 40, 6):
            b[pos] = int(rng.integers(0, 256))
        open(os.path.join(bad, "flip%02d.dcm" % k), "wb").write(bytes(b))
    out = os.path.join(W, "out-bad")
    rc, log = run(["anonymize", bad, "--out", out, "--key", key])
    check(rc in (0, 4), "corrupted inputs: exit 0 or 4, no crash (%d)" % rc)
    check("notes.txt: rejected" in log and "truncated.dcm: rejected" in log, "non-DICOM and truncated files rejected by name")
    n_rej = log.count(": rejected:")
    m = re.search(r"(\d+) of 26 files de-identified", log)
    n_ok = int(m.group(1)) if m else -1  # corrupted copies of one instance share one output name
    check(n_ok + n_rej == 26 and len(outputs(out)) <= n_ok, "every input written or rejected (%d + %d)" % (n_ok, n_rej))
    for f in outputs(out):
        raw = open(f, "rb").read()
        if any(p.encode() in raw for p in PHI if p != "134501"):
            check(False, "no planted value in the output of a corrupted input %s" % os.path.basename(f))
    rc, log = run(["verify-deid", os.path.join(bad, "truncated.dcm")])
    check(rc == 1 and "truncated.dcm" in log, "verify-deid names a DICOM file it cannot read, exit 1 (%d)" % rc)
    rc, log = run(["verify-deid", os.path.join(bad, "notes.txt")])
    check(rc == 0, "verify-deid scans a text file as text, nothing found (%d: %s)" % (rc, log.strip()[-200:]))
    rc, _ = run(["anonymize", src, "--out", os.path.join(W, "out-x")])
    check(rc == 2, "anonymize without --key is a usage error (%d)" % rc)

    # 8. a file with more identifiers than the scrubber takes: cleaned text is emptied instead
    many = os.path.join(W, "many")
    os.makedirs(many, exist_ok=True)
    m = make(os.path.join(many, "m.dcm"), 0, 9)
    m.OtherPatientNames = ["Alias%04d^Person%04d" % (k, k) for k in range(2000)]
    m.save_as(os.path.join(many, "m.dcm"), write_like_original=False)
    out = os.path.join(W, "out-many")
    rc, _ = run(["anonymize", many, "--out", out, "--key", key, "--clean-descriptors"])
    o = pydicom.dcmread(outputs(out)[0]) if rc == 0 and outputs(out) else None
    check(o is not None and "StudyDescription" in o and not o.StudyDescription and not o.SeriesDescription,
          "too many identifiers: cleaned descriptions are emptied, not half-scrubbed")

    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
