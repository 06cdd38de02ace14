#!/usr/bin/env bash
# test_inspect_dicom — `vesalius inspect` on DICOM: exit codes, the JSON summary, and no header
# values (names, IDs, UIDs, dates) in anything it prints or writes.
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
P=$(/usr/bin/python3 -c 'import pydicom,os;print(os.path.join(os.path.dirname(pydicom.__file__),"data","test_files"))')
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT

"$V" inspect "$P/dicomdirtests/98892001" >"$t/clean.txt" 2>&1; check "clean series exits 0" 0 $?
grep -q "5 x 16 x 16 (slices x rows x columns), int16" "$t/clean.txt"; check "CT5N is one 5-slice int16 volume" 0 $?
"$V" inspect "$P" --summary "$t/all.json" >"$t/all.txt" 2>"$t/all.err"; check "corpus with rejects exits 4" 4 $?
"$V" inspect "$t/nothing-here" >"$t/o" 2>&1; check "missing path exits 3" 3 $?
"$V" inspect >"$t/o" 2>&1; check "no path is a usage error" 2 $?
"$V" inspect --bogus "$P" >"$t/o" 2>&1; check "unknown option is a usage error" 2 $?
"$V" inspect --max-voxels 100 "$P/CT_small.dcm" >"$t/o" 2>&1; check "image over --max-voxels is rejected" 4 $?
grep -q "exceeds the limit" "$t/o"; check "the voxel limit is named" 0 $?

# a file name that is not UTF-8 still gives a readable JSON summary
mkdir -p "$t/odd"; cp "$P/CT_small.dcm" "$t/odd/$(printf 'ct\377.dcm')"
"$V" inspect "$t/odd" --summary "$t/odd.json" >/dev/null 2>&1; check "non-UTF-8 file name" 0 $?
/usr/bin/python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["used"] == 1' "$t/odd.json"
check "summary with a non-UTF-8 path is valid JSON" 0 $?

/usr/bin/python3 -W ignore - "$P" "$t" <<'PY'
import json, os, sys, pydicom
P, t = sys.argv[1], sys.argv[2]
s = json.load(open(os.path.join(t, "all.json")))
assert s["schema"] == "vesalius.dicom-summary/1"
assert s["files"] == s["used"] + s["skipped"] + s["rejected"], "counts do not add up"
assert s["rejected"] == len(s["rejected_files"]) and s["rejected"] > 0
# every identifying value of every file must be absent from what inspect printed and wrote,
# once the (operator-owned) paths are removed.
texts = []
for name in ("all.txt", "all.err", "all.json"):
    txt = open(os.path.join(t, name)).read()
    for dp, dn, fn in os.walk(P):
        for f in fn:
            txt = txt.replace(os.path.join(dp, f), "")
    texts.append(txt)
blob = "\n".join(texts)
keys = ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "SeriesInstanceUID",
        "SOPInstanceUID", "FrameOfReferenceUID", "StudyDate", "AccessionNumber", "InstitutionName",
        "ReferringPhysicianName", "StudyID")
leaks, n = [], 0
for dp, dn, fn in os.walk(P):
    for f in fn:
        try:
            ds = pydicom.dcmread(os.path.join(dp, f), stop_before_pixels=True)
        except Exception:
            continue
        for k in keys:
            v = str(getattr(ds, k, "") or "").strip()
            if len(v) >= 6 and v in blob:
                leaks.append((f, k))
            n += 1
print("checked %d identifying values, %d leaked" % (n, len(leaks)))
sys.exit(1 if leaks else 0)
PY
check "no identifying value is printed or written" 0 $?
echo "$fails failed"
[ "$fails" -eq 0 ]
