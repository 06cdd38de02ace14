#!/usr/bin/env bash
# test_ingest — `vesalius ingest` end to end on a small demo cohort: voxels and geometry equal
# pydicom's, nothing identifying in shards or catalog, reruns incremental, a new series added,
# a damaged file rejected by name while the rest goes on, a second concurrent run refused,
# and kill -9 in the middle followed by a rerun gives the uninterrupted result.
set -u
V=${VESALIUS:?}; SRC=${VESALIUS_SRC:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
"$V" demo-cohort --out "$t/c" --unlabeled 6 --labeled 3 --radiographs 1 --matrix 40 --slices 12:18 --seed 11 >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
"$V" ingest "$t/c/dicom" --out "$t/o" --key "$t/k" --preprocess none -j 1 2>"$t/log"; check "first ingest" 0 $?
[ "$(stat -c %a "$t/k")" = 600 ] && echo "ok: key created 0600" || { echo "FAIL: key mode"; fails=$((fails + 1)); }
/usr/bin/python3 "$SRC/tests/cli/ingest_check.py" "$t/c" "$t/o" || fails=$((fails + 1))
if grep -F -f <(awk 'length >= 6' "$t/c/phi.txt") "$t/log" >/dev/null; then echo "FAIL: the log holds a planted identifier"; fails=$((fails + 1)); else echo "ok: log clean"; fi
sum1=$(sha256sum "$t"/o/shards/*.h5 | sha256sum)
# the same bytes with 3 threads (decode, compression and the series pipeline), preprocessed too
for run in 1:a 3:b 3:c; do
  "$V" ingest "$t/c/dicom" --out "$t/p${run#*:}" --key "$t/k" --preprocess standard --ct-window -200,300 -j "${run%:*}" 2>/dev/null
done
"$V" ingest "$t/c/dicom" --out "$t/o3" --key "$t/k" --preprocess none -j 3 2>/dev/null
if [ "$(cd "$t/o3/shards" && sha256sum *.h5)" = "$(cd "$t/o/shards" && sha256sum *.h5)" ] &&
   [ "$(cd "$t/pa/shards" && sha256sum *.h5)" = "$(cd "$t/pb/shards" && sha256sum *.h5)" ] &&
   [ "$(cd "$t/pb/shards" && sha256sum *.h5)" = "$(cd "$t/pc/shards" && sha256sum *.h5)" ] &&
   [ -n "$(ls "$t/pa/shards")" ]; then
  echo "ok: shards byte-identical with 1 and 3 threads, raw and preprocessed"
else echo "FAIL: shard bytes depend on the thread count or the run"; fails=$((fails + 1)); fi
"$V" ingest "$t/c/dicom" --out "$t/o" --key "$t/k" --preprocess none 2>/dev/null; check "rerun with nothing new" 5 $?
[ "$(sha256sum "$t"/o/shards/*.h5 | sha256sum)" = "$sum1" ] && echo "ok: shards untouched" || { echo "FAIL: rerun changed shards"; fails=$((fails + 1)); }
# a new series arrives (from another cohort), and a damaged file
"$V" demo-cohort --out "$t/c2" --unlabeled 1 --labeled 0 --radiographs 0 --matrix 40 --slices 12:12 --seed 12 >/dev/null 2>&1
cp -r "$t/c2/dicom/unlabeled/s0000" "$t/c/dicom/unlabeled/new"
f=$(ls "$t"/c/dicom/unlabeled/s0001/*.dcm | head -1); head -c 700 "$f" > "$t/c/dicom/unlabeled/truncated.dcm"
"$V" ingest "$t/c/dicom" --out "$t/o" --key "$t/k" --preprocess none 2>"$t/log2"; check "new series plus a damaged file" 4 $?
/usr/bin/python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))
bad = [r for r in s['skipped_or_rejected_this_run'] if r['state'] == 'rejected']
sys.exit(not (len(bad) == 1 and bad[0]['source'].startswith('SP') and 'past the end' in bad[0]['reason']))" "$t/o/ingest-summary.json" \
  && echo "ok: the damaged file is in the summary, by its keyed path, with its reason" || { echo "FAIL: summary lacks the damaged file"; fails=$((fails + 1)); }
"$V" inspect "$t/c/dicom/unlabeled" >"$t/insp" 2>&1
grep -q "truncated.dcm.*rejected\|rejected.*truncated.dcm" "$t/insp" && echo "ok: vesalius inspect names it" || { echo "FAIL: inspect does not name the damaged file"; fails=$((fails + 1)); }
n=$(/usr/bin/python3 -c "import h5py,glob,sys; print(sum(len(h5py.File(s,'r')['volumes']) for s in glob.glob(sys.argv[1]+'/shards/*.h5')))" "$t/o")
[ "$n" = 11 ] && echo "ok: 11 volumes after the new series" || { echo "FAIL: $n volumes, wanted 11"; fails=$((fails + 1)); }
# a second run while one holds the lock
flock "$t/o/.lock" sleep 4 & holder=$!
for _ in $(seq 100); do flock -n "$t/o/.lock" true 2>/dev/null || break; sleep 0.05; done # held by now
"$V" ingest "$t/c/dicom" --out "$t/o" --key "$t/k" --preprocess none 2>/dev/null; check "concurrent run refused" 6 $?
wait
# kill -9 mid-run, rerun: same volumes as an uninterrupted run
"$V" ingest "$t/c/dicom" --out "$t/full" --key "$t/k" --preprocess none --shard-mb 1 2>/dev/null
"$V" ingest "$t/c/dicom" --out "$t/killed" --key "$t/k" --preprocess none --shard-mb 1 2>/dev/null & pid=$!
sleep 0.4; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
"$V" ingest "$t/c/dicom" --out "$t/killed" --key "$t/k" --preprocess none --shard-mb 1 2>/dev/null
rc=$?; [ "$rc" = 4 ] || [ "$rc" = 0 ] || [ "$rc" = 5 ] && echo "ok: rerun after kill -9 (exit $rc)" || { echo "FAIL: rerun after kill exit $rc"; fails=$((fails + 1)); }
list() { /usr/bin/python3 -c "
import h5py,glob,sys
rows=[]
for s in sorted(glob.glob(sys.argv[1]+'/shards/*.h5')):
    h=h5py.File(s,'r'); rows += [(k, h['volumes'][k].attrs['checksum']) for k in h['volumes']]
print('\n'.join('%s %s' % r for r in sorted(rows)))" "$1"; }
if [ "$(list "$t/full")" = "$(list "$t/killed")" ]; then echo "ok: killed and resumed equals uninterrupted"; else echo "FAIL: killed run differs"; fails=$((fails + 1)); fi
# Retain UIDs: the shards keep each volume's original SeriesInstanceUID
"$V" ingest "$t/c/dicom" --out "$t/ru" --key "$t/k" --preprocess none --retain-uids 2>/dev/null
/usr/bin/python3 - "$t/c" "$t/ru" <<'PY' && echo "ok: --retain-uids keeps the original series UIDs" || fails=$((fails + 1))
import glob, sys, h5py, pydicom
uids = {pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID for f in glob.glob(sys.argv[1] + '/dicom/*/*/*.dcm')}
kept = [h5py.File(s, 'r')['volumes'][k].attrs.get('series_instance_uid') for s in glob.glob(sys.argv[2] + '/shards/*.h5') for k in h5py.File(s, 'r')['volumes']]
kept = [k.decode() if isinstance(k, bytes) else k for k in kept]
bad = [k for k in kept if k not in uids]
print('FAIL: %d volumes without their original UID' % len(bad) if bad or not kept else '', end='')
sys.exit(1 if bad or not kept else 0)
PY
"$V" ingest "$t/c/dicom" --out "$t/o2" 2>/dev/null; check "missing --key is a usage error" 2 $?
# An archive that names folders and files after patients and UIDs, as hospital archives do:
# the catalog keeps keyed hashes of the paths, the linkage table the paths, and verify-deid
# passes over the whole output folder (a catalog of paths fails it: they name the patient).
mkdir -p "$t/archive"
/usr/bin/python3 - "$t/c/dicom/labeled" "$t/archive" "$t/names" <<'PY' || fails=$((fails + 1))
import glob, os, shutil, sys, pydicom
src, dst, names = sys.argv[1:4]
first = sorted(glob.glob(src + '/*'))[0]
ds = pydicom.dcmread(sorted(glob.glob(first + '/*.dcm'))[0], stop_before_pixels=True)
folder = os.path.join(dst, '%s_%s' % (ds.PatientID, str(ds.PatientName).replace('^', '_')))
os.makedirs(folder)
for f in sorted(glob.glob(first + '/*.dcm')):
    shutil.copy(f, os.path.join(folder, pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID + '.dcm'))
open(names, 'w').write('%s\n%s\n%s\n' % (ds.PatientID, str(ds.PatientName).replace('^', '_'), ds.SOPInstanceUID))
PY
"$V" ingest "$t/archive" --out "$t/named" --key "$t/k" --linkage "$t/link.sqlite" 2>/dev/null; check "ingest of the named archive" 0 $?
"$V" verify-deid --phi-list "$t/names" "$t/named" >"$t/vd" 2>&1; check "verify-deid passes over the whole output folder" 0 $?
[ "$(/usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from linkage where kind='source-path' and original like '%.dcm'\").fetchone()[0])" "$t/link.sqlite")" \
  = "$(ls "$t"/archive/*/*.dcm | wc -l)" ] && echo "ok: the linkage table maps every source path to its key" \
  || { echo "FAIL: linkage table lacks the source paths"; fails=$((fails + 1)); }
"$V" ingest "$t/archive" --out "$t/named" --key "$t/k" --linkage "$t/link.sqlite" 2>/dev/null; check "rerun finds every file by its key: nothing new" 5 $?
echo "$fails failed"
[ "$fails" -eq 0 ]
