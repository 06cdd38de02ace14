"""vesalius's DICOM reader against pydicom, on the test files Debian's pydicom and nibabel ship.

1. The whole corpus in one scan: every regular file is used, skipped or rejected exactly once,
   and every skip and reject has a reason.
2. Each file on its own: the reader never fails; for every image pydicom can decode, the voxels
   equal pydicom's pixel_array under the documented pixel rules (dicom_common.reference_frame).
3. Known answers: truncated, wrong-VR, missing-slice and colour files end as they must.
4. The same images re-encoded by DCMTK's own tools (JPEG lossless, JPEG-LS, RLE, deflated, big
   endian) decode to the same voxels as pydicom's decode of the original.
5. JPEG 2000: pydicom decodes it here (Pillow with OpenJPEG, Debian's python3-pil; without it
   this fails), and every JPEG 2000 file of pydicom's corpus is either used and equal to
   pydicom's decode under the header's Pixel Representation and Bits Stored, or one of the
   named exceptions below with the state and reason it must have.
"""
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pydicom

from dicom_common import Checks, all_files, corpora, dump, finish, reference_frame

c = Checks("dicom_vs_pydicom")
roots = corpora()
files = all_files(roots)

# 1. one scan over everything
summary, vols = dump(roots)
seen = {}
for state in ("used", "skipped", "rejected"):
    for rec in summary[state + "_files"]:
        rp = os.path.realpath(rec["path"])
        c.check(rp not in seen, "%s listed twice (%s and %s)" % (rec["path"], seen.get(rp), state))
        seen[rp] = state
        if state != "used":
            c.check(bool(rec["reason"]), "%s %s without a reason" % (rec["path"], state))
real = {os.path.realpath(p) for p in files}
missing = real - set(seen)
c.check(not missing, "files never accounted for: %s" % sorted(missing)[:5])
c.check(summary["pending"] == 0, "files left pending")
c.check(summary["files"] == len(real), "summary counts %d files, the corpus has %d" % (summary["files"], len(real)))
print("corpus: %d files: %d used in %d volumes, %d skipped, %d rejected" % (
    summary["files"], summary["used"], summary["volumes"], summary["skipped"], summary["rejected"]))


def decodable(ds):
    try:
        return ds.pixel_array
    except Exception:
        return None


def compare(path, vol, ref_ds_list, label):
    """vol (slices, rows, cols) against the pydicom datasets stacked in the same order."""
    frames = []
    for ds in ref_ds_list:
        arr = decodable(ds)
        if arr is None:
            return False
        frames.append(reference_frame(ds, arr))
    ref = finish(np.stack(frames))
    ok = vol.dtype == ref.dtype and vol.shape == ref.shape and np.array_equal(vol, ref)
    worst = float(np.max(np.abs(vol.astype(np.float64) - ref.astype(np.float64)))) if vol.shape == ref.shape else -1
    c.check(ok, "%s: voxels differ from pydicom (%s %s vs %s %s, worst %g)" % (
        label, vol.dtype, vol.shape, ref.dtype, ref.shape, worst))
    return True


# 2. each file alone
compared = 0
for p in files:
    try:
        s, v = dump([p])
    except Exception as e:  # the reader must never fail on a bad file
        c.check(False, "%s: %s" % (p, e))
        continue
    mine = [r for k in ("used", "skipped", "rejected") for r in s[k + "_files"] if r["path"] == p]
    c.check(len(mine) == 1 and s["pending"] == 0, "%s: not accounted once" % p)
    if s["used"] != 1 or s["files"] != 1:
        continue
    try:
        ds = pydicom.dcmread(p, force=True)
    except Exception:
        continue
    if decodable(ds) is None and os.path.basename(p).startswith("MR_small_"):
        ds = pydicom.dcmread(os.path.join(roots[0], "MR_small.dcm"))  # same image, other syntax
    if compare(p, v[0], [ds], os.path.basename(p)):
        compared += 1
print("compared %d single files with pydicom" % compared)
c.check(compared >= 10, "too few files compared with pydicom (%d)" % compared)

# multi-slice volumes of the corpus scan, stacked by pydicom in position order
for vinfo in summary["volume_list"]:
    if vinfo["shape"][0] < 2:
        continue
    paths = [r["path"] for r in summary["used_files"] if r["volume"] == vinfo["index"]]
    dss = [pydicom.dcmread(p) for p in paths]
    n = np.cross(np.array(dss[0].ImageOrientationPatient[:3], float), np.array(dss[0].ImageOrientationPatient[3:], float))
    dss.sort(key=lambda d: float(np.dot(n, np.array(d.ImagePositionPatient, float))))
    compare(paths[0], vols[vinfo["index"]], dss, "volume %d" % vinfo["index"])

# 3. known answers
def state_of(name):
    for state in ("used", "skipped", "rejected"):
        for rec in summary[state + "_files"]:
            if rec["path"].endswith(name):
                return state, rec.get("reason", "")
    return None, None

expect = [
    ("MR_truncated.dcm", "rejected", "past the end"),
    ("rtplan_truncated.dcm", "rejected", "past the end"),
    ("badVR.dcm", "rejected", "NumberOfFrames"),
    ("77654033/CT2/17106", "rejected", "missing slices"),
    ("SC_rgb_rle.dcm", "skipped", "colour"),
    ("rtdose.dcm", "skipped", "radiotherapy"),
    ("test-SR.dcm", "skipped", "structured report"),
    ("README.txt", "skipped", "not DICOM"),
    ("CT_small.dcm", "used", ""),
    ("77654033/CR1/6154", "used", ""),
]
for name, want, why in expect:
    st, reason = state_of(name)
    c.check(st == want and why in (reason or ""), "%s: %s (%s), expected %s (%s)" % (name, st, reason, want, why))

# the corpus's localizers are volumes of their own
kinds = {v["kind"] for v in summary["volume_list"]}
c.check({"original", "derived", "localizer"} <= kinds, "volume kinds: %s" % kinds)

# a DICOMDIR given alone brings exactly the files pydicom's own DICOMDIR reader lists
ddir = os.path.join(roots[0], "dicomdirtests", "DICOMDIR")
ref = pydicom.dcmread(ddir)
want = set()
for rec in ref.DirectoryRecordSequence:
    fid = rec.get("ReferencedFileID")
    if fid:
        parts = [fid] if isinstance(fid, str) else list(fid)
        want.add(os.path.realpath(os.path.join(os.path.dirname(ddir), *parts)))
s, v = dump([ddir])
got = {os.path.realpath(r["path"]) for k in ("used", "skipped", "rejected") for r in s[k + "_files"]}
got.discard(os.path.realpath(ddir))
c.check(got == want and len(want) > 0, "DICOMDIR: %d files read, pydicom lists %d" % (len(got), len(want)))

# 4. DCMTK re-encodings of grey images, against pydicom's decode of the original
pyd = roots[0]
tools = [
    ("dcmcjpeg", ["+el"], "jpeg-lossless"),
    ("dcmcjpeg", ["+e1"], "jpeg-lossless-sv1"),
    ("dcmcjpls", [], "jpeg-ls"),
    ("dcmcrle", [], "rle"),
    ("dcmconv", ["+td"], "deflated"),
    ("dcmconv", ["+tb"], "big-endian"),
    ("dcmconv", ["+ti"], "implicit"),
]
tmp = tempfile.mkdtemp(prefix="vs_enc_")
for src in ("CT_small.dcm", "MR_small.dcm", os.path.join("dicomdirtests", "77654033", "CR1", "6154")):
    orig = pydicom.dcmread(os.path.join(pyd, src))
    for tool, args, label in tools:
        if not shutil.which(tool):
            c.check(False, "%s is not installed (Debian package dcmtk)" % tool)
            continue
        out = os.path.join(tmp, "%s.%s.dcm" % (os.path.basename(src), label))
        r = subprocess.run([tool, *args, os.path.join(pyd, src), out], capture_output=True, text=True)
        if r.returncode != 0:
            c.check(False, "%s %s failed: %s" % (tool, label, r.stderr[-300:]))
            continue
        s, v = dump([out])
        c.check(s["used"] == 1, "%s as %s: not used (%s)" % (src, label, s["rejected_files"] + s["skipped_files"]))
        if s["used"] == 1:
            compare(out, v[0], [orig], "%s as %s" % (src, label))
shutil.rmtree(tmp)

# 5. JPEG 2000
J2K = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
try:
    from PIL import features
    from pydicom.pixel_data_handlers import pillow_handler
    have_j2k = pillow_handler.is_available() and features.check("jpg_2000")
except ImportError:
    have_j2k = False
c.check(have_j2k, "pydicom cannot decode JPEG 2000 here: Pillow with OpenJPEG (Debian's python3-pil, "
        "in the Makefile's PACKAGES) is missing, so the JPEG 2000 files would go unchecked")
# Files not compared voxel for voxel, each for a reason of its own: name -> (state, reason).
j2k_exceptions = {
    "GDCMJ2K_TextGBR.dcm": ("skipped", "colour"),  # and pydicom + Pillow cannot decode it
    "SC_rgb_gdcm_KY.dcm": ("skipped", "colour"),
    "JPEG2000.dcm": ("skipped", "no patient geometry"),
    # and Pillow refuses the image size its codestream claims
    "JPEG2000-embedded-sequence-delimiter.dcm": ("skipped", "no patient geometry"),
}
j2k_files = []
for p in all_files([pyd]):
    try:
        ts = pydicom.dcmread(p, force=True, stop_before_pixels=True).file_meta.TransferSyntaxUID
    except Exception:
        continue
    if ts in J2K:
        j2k_files.append(p)
compared_j2k = 0
for p in j2k_files:
    name = os.path.basename(p)
    s, v = dump([p])
    state = [(k, r.get("reason", "")) for k in ("used", "skipped", "rejected") for r in s[k + "_files"]]
    if name in j2k_exceptions:
        want, why = j2k_exceptions.pop(name)
        c.check(len(state) == 1 and state[0][0] == want and why in state[0][1],
                "%s: %s, expected %s (%s)" % (name, state, want, why))
        continue
    c.check(s["used"] == 1, "%s: a JPEG 2000 image neither used nor a named exception: %s" % (name, state))
    if s["used"] != 1 or not have_j2k:
        continue
    ds = pydicom.dcmread(p)
    arr = ds.pixel_array
    if compare(p, v[0], [ds], name + " (JPEG 2000)"):
        compared_j2k += 1
    if name == "693_J2KI.dcm":
        # By design, bounded: against pydicom's values WITHOUT the padding rule, this image differs
        # in exactly its 494 PixelPaddingValue voxels, which become the smallest real value.
        raw = reference_frame(ds, arr)
        pad = np.isnan(raw)
        nraw = np.where(pad, int(ds.PixelPaddingValue), raw)
        diff = v[0][0].astype(np.float64) != nraw
        c.check(int(pad.sum()) == 494 and np.array_equal(diff, pad) and np.all(v[0][0][pad] == v[0][0][~pad].min()),
                "693_J2KI.dcm: differs from pydicom's raw values in %d voxels, padding voxels %d" % (diff.sum(), pad.sum()))
    if name == "J2K_pixelrep_mismatch.dcm":
        # the header (signed, 13 bits) wins over the codestream (unsigned): CT values in HU
        c.check(int(v[0].min()) == -2000 and int(v[0].max()) == 1896,
                "J2K_pixelrep_mismatch.dcm: values %d..%d, pydicom's -2000..1896" % (v[0].min(), v[0].max()))
c.check(not j2k_exceptions, "named JPEG 2000 exceptions no longer in the corpus: %s" % sorted(j2k_exceptions))
c.check(compared_j2k >= 3, "too few JPEG 2000 images compared with pydicom (%d)" % compared_j2k)
print("JPEG 2000: %d files, %d compared voxel for voxel with pydicom" % (len(j2k_files), compared_j2k))
c.done()
