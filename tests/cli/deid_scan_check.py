#!/usr/bin/python3
"""deid_scan_check.py VESALIUS SHARD_TOOL VALIDATION_DATA WORK — verify-deid beyond DICOM.

Shards: written by the C shard writer (deid_shard_tool) clean, with the Retain UIDs option
holding an original UID, and with identifiers planted in each attribute the writer stores;
then extended with h5py (independent writer) by an attribute, an index field and a dataset the
schema does not define. Reports: `vesalius validate` on a validation_data.py study whose keys
are pseudonyms, its report.json/.md/.html and its JSON-lines run log pass; copies with a planted
name or an original UID are caught by file and line. Every hit names the place, never the
value; every planted case exits 7, every clean one 0.
"""
import os, re, shutil, subprocess, sys

import h5py
import numpy as np

V, TOOL, VDATA, W = sys.argv[1:5]
PHI = ["DOE^JOHN", "19650412", "MRN-4471923", "Lindqvist"]
ORG_UID = "1.2.826.0.1.3680043.10.1.5000"
FAILS = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        FAILS.append(what)


phi_file = os.path.join(W, "phi.txt")
with open(phi_file, "w") as f:
    f.write("\n".join(PHI + [ORG_UID]) + "\n\n")


def verify(*paths):
    p = subprocess.run([V, "verify-deid", "--phi-list", phi_file] + list(paths), capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def no_value(log, label):
    leaked = [v for v in PHI + [ORG_UID, "1.2.826.0.1.3680043"] if v.lower() in log.lower()]
    check(not leaked, "%s: the output names places, never values %s" % (label, leaked))


def shard(name, *fields):
    d = os.path.join(W, name)
    os.makedirs(d, exist_ok=True)
    r = subprocess.run([TOOL, d, "1"] + list(fields), capture_output=True, text=True)
    if r.returncode != 0:
        check(False, "%s: the shard writer wrote the shard (%s)" % (name, r.stderr.strip()))
    return os.path.join(d, "shard-000001.h5")


def expect_hit(path, label, where, what):
    rc, log = verify(path)
    check(rc == 7, "%s: exit 7 (%d)" % (label, rc))
    lines = [l for l in log.splitlines() if l.startswith(path + ": ")]
    check(any(where in l and what in l for l in lines),
          "%s: a hit names '%s' (%s): %s" % (label, where, what, "; ".join(lines)[:400]))
    no_value(log, label)


# ---- shards written by the C shard writer -----------------------------------------------
clean = shard("clean")
rc, log = verify(clean)
check(rc == 0, "clean shard passes (%d: %s)" % (rc, log.strip()[-300:]))
retained = shard("retain", "retain=1", "uid=" + ORG_UID.replace("5000", "6001"))
rc, log = verify(retained)
check(rc == 0, "original UID in series_instance_uid under Retain UIDs passes (%d: %s)" % (rc, log.strip()[-300:]))

planted = [  # (label, writer fields, where, what)
    ("name in body_part", ["body_part=CHEST DOE^JOHN"], "/volumes/2.25.1000 @body_part", "listed identifier"),
    ("name in modality", ["modality=Lindqvist"], "@modality", "listed identifier"),
    ("MRN in patient_key", ["patient_key=MRN-4471923"], "@patient_key", "listed identifier"),
    ("birth date in preprocessing", ["preprocessing=none;dob=19650412"], "@preprocessing", "listed identifier"),
    ("name in creation parameters", ['params={"operator":"doe^john"}'], "/ @creation_parameters", "listed identifier"),
    ("original UID as study key", ["study_key=1.2.826.0.1.3680043.10.1.777"], "@study_key",
     "UID of an organisation root"),
    ("original UID as series key", ["series_key=1.2.826.0.1.3680043.10.1.778"], "(its name)",
     "UID of an organisation root"),
    ("original UID in the index", ["series_key=1.2.826.0.1.3680043.10.1.779"], "/index[0].key",
     "UID of an organisation root"),
    ("original UID without Retain UIDs", ["retain=0", "study_key=x", 'params={"uid":"1.2.840.113619.2.55.3.1"}'],
     "/ @creation_parameters", "UID of an organisation root"),
]
for i, (label, fields, where, what) in enumerate(planted):
    expect_hit(shard("planted%d" % i, *fields), label, where, what)

# ---- names the schema does not define, added with h5py ----------------------------------
def extended(name, edit):
    p = os.path.join(W, name + ".h5")
    shutil.copy(clean, p)
    with h5py.File(p, "r+") as f:
        edit(f)
    return p

p = extended("attr", lambda f: f["volumes/2.25.1000"].attrs.create("patient_age", np.int64(47)))
expect_hit(p, "new numeric volume attribute", "/volumes/2.25.1000 attribute #", "attribute the shard schema does not define")
p = extended("attr2", lambda f: f.attrs.create("operator", "DOE^JOHN"))
expect_hit(p, "new root attribute", "/ attribute #", "attribute the shard schema does not define")
expect_hit(p, "its value", "/ attribute #", "listed identifier")
p = extended("uid", lambda f: f["volumes/2.25.1000"].attrs.create("series_instance_uid", ORG_UID))
expect_hit(p, "series_instance_uid without Retain UIDs", "/volumes/2.25.1000 attribute #",
           "attribute the shard schema does not define")
p = extended("dset", lambda f: f.create_dataset("notes", data=np.array([b"ok", b"seen by Lindqvist"])))
expect_hit(p, "new dataset of strings", "object #", "object the shard schema does not define")
expect_hit(p, "its strings", "object #", "listed identifier")
p = extended("named", lambda f: f.create_group("DOE^JOHN"))
expect_hit(p, "object named by a patient", "object #", "listed identifier")

def new_index(f):
    old = f["index"][()]
    dt = np.dtype([(n, old.dtype.fields[n][0]) for n in old.dtype.names] + [("birth_date", "S9")])
    new = np.zeros(old.shape, dt)
    for n in old.dtype.names:
        new[n] = old[n]
    new["birth_date"] = b"19650412"
    del f["index"]
    f.create_dataset("index", data=new)
p = extended("index", new_index)
expect_hit(p, "new index field", "/index field #", "index field the shard schema does not define")
expect_hit(p, "its value", "/index[0].birth_date", "listed identifier")

# ---- reports and run logs from `vesalius validate` --------------------------------------
study = os.path.join(W, "study")
subprocess.run(["/usr/bin/python3", VDATA, study], check=True)
for name in ("labels.csv", "predictions_mae.csv", "predictions_scratch.jsonl"):  # pseudonymous keys
    p = os.path.join(study, name)
    text = open(p).read().replace("1.2.826.0.1.3680043.10.1.", "2.25.31415926535897932384626433832795")
    open(p, "w").write(text)
rep = os.path.join(W, "report")
r = subprocess.run([V, "--log-json", "validate", "--labels", study + "/labels.csv",
                    "--predictions", study + "/predictions_mae.csv",
                    "--predictions", study + "/predictions_scratch.jsonl", "--out", rep,
                    "--train-log", study + "/pretrain.log", "--preview", "mae-recon=" + study + "/preview.png",
                    "--study", study + "/study.yaml", "--shards", study + "/shards", "--seed", "3",
                    "--bootstrap", "50"], capture_output=True, text=True)
check(r.returncode == 0, "validate exits 0 (%d: %s)" % (r.returncode, r.stderr.strip()[-300:]))
runlog = os.path.join(W, "validate.log")
open(runlog, "w").write(r.stderr)
check(r.stderr.count("\n") > 0 and r.stderr.lstrip().startswith("{"), "the run log is JSON lines")
reports = [os.path.join(rep, n) for n in ("report.json", "report.md", "report.html")]
rc, log = verify(rep, runlog)
check(rc == 0, "clean reports and run log pass (%d: %s)" % (rc, log.strip()[-400:]))
check("5 files scanned" in log, "every report file, its settings.json and the log were scanned (%s)" % log.strip()[-100:])

for src in reports + [runlog]:
    base = os.path.basename(src)
    lines = open(src).read().split("\n")
    k = len(lines) // 2
    for label, value, what in (("name", "Doe^John", "listed identifier"),
                               ("original UID", "1.2.840.113619.2.55.3.604688119", "UID of an organisation root")):
        bad = os.path.join(W, "planted-" + label.replace(" ", "-") + "-" + base)
        ls = list(lines)
        ls[k] = ls[k] + " " + value
        open(bad, "w").write("\n".join(ls))
        expect_hit(bad, "%s planted in %s" % (label, base), "line %d column" % (k + 1), what)

# ---- what `vesalius ingest` writes (issue 5): shards, catalog, run summary, run log --------
cohort, ing = os.path.join(W, "cohort"), os.path.join(W, "ingest")
r = subprocess.run([V, "demo-cohort", "--out", cohort, "--unlabeled", "2", "--labeled", "1", "--radiographs", "0",
                    "--matrix", "32", "--slices", "8:10", "--seed", "5"], capture_output=True, text=True)
check(r.returncode == 0, "demo cohort written (%s)" % r.stderr.strip()[-200:])
r = subprocess.run([V, "--log-json", "ingest", cohort + "/dicom", "--out", ing, "--key", os.path.join(W, "ingest.key"),
                    "--preprocess", "none", "-j", "1"], capture_output=True, text=True)
check(r.returncode == 0, "ingest exits 0 (%s)" % r.stderr.strip()[-200:])
ing_log = os.path.join(W, "ingest.log")
open(ing_log, "w").write(r.stderr)
cohort_phi = os.path.join(cohort, "phi.txt")
outputs = [os.path.join(ing, "shards"), os.path.join(ing, "catalog.sqlite"), os.path.join(ing, "ingest-summary.json"), ing_log]
p = subprocess.run([V, "verify-deid", "--phi-list", cohort_phi] + outputs, capture_output=True, text=True)
n_shards = len([f for f in os.listdir(os.path.join(ing, "shards")) if f.endswith(".h5")])
check(p.returncode == 0 and n_shards > 0,
      "ingest output (%d shards, catalog, summary, log) passes with the cohort's identifier list (%d: %s)"
      % (n_shards, p.returncode, (p.stdout + p.stderr).strip()[-300:]))
p = subprocess.run([V, "verify-deid", "--phi-list", cohort_phi, cohort + "/dicom"], capture_output=True, text=True)
check(p.returncode == 7 and "listed identifier" in p.stdout, "the same cohort's DICOM input is caught (%d)" % p.returncode)

# a binary file that is neither DICOM nor HDF5: raw bytes only
raw = os.path.join(W, "blob.bin")
open(raw, "wb").write(b"\x00\x01\x02" * 100 + b"MRN-4471923" + b"\x00" * 50)
expect_hit(raw, "identifier in the raw bytes of a binary file", "raw bytes at offset 300", "listed identifier")

# a pseudonym behind bytes of the field before it that read as "1." (an integer in a SQLite
# record did, in a catalog): not an organisation's UID; a real root with a 2.25 arc inside
# still is
glued = os.path.join(W, "glued.bin")
open(glued, "wb").write(b"\x88\n\x18\xee\xaf\xcc\x1cy1.2.25.131200306395949860910370527349296796791used"
                        b"2.25.227782467802051816951687945556793503759\x00" * 3)
rc, log = verify(glued)
check(rc == 0, "a pseudonym glued to binary bytes that read '1.' is no organisation UID (%d: %s)"
      % (rc, log.strip()[-200:]))
ge = os.path.join(W, "ge.bin")
open(ge, "wb").write(b"\x00\x01" * 20 + b"1.2.840.113619.2.25.4.2147483647.1700000000.123" + b"\x00" * 20)
expect_hit(ge, "an organisation UID with a 2.25 arc inside", "raw bytes at offset 40", "UID of an organisation root")

print("%d failed" % len(FAILS))
sys.exit(1 if FAILS else 0)
