#!/usr/bin/env bash
# anonymize a 300-file CT series (PS3.15 basic profile) vs dcmodify removing the profile's X attributes
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
V="$VESALIUS_BUILD/vesalius"
n=${N:-300}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT

# The series: 512x512 int16 CT slices with identifiers at the top level and in sequences.
/usr/bin/python3 - "$t/src" "$n" <<'PY'
import os, sys, numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian
out, n = sys.argv[1], int(sys.argv[2]); os.makedirs(out)
rng = np.random.default_rng(1)
pix = rng.integers(-1000, 1500, (512, 512), dtype=np.int16)
root = "1.2.826.0.1.3680043.2.1125.20230105"
for i in range(n):
    m = FileMetaDataset(); m.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    m.MediaStorageSOPInstanceUID = "%s.1.%d" % (root, i); m.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset(); ds.file_meta = m
    ds.SOPClassUID, ds.SOPInstanceUID = m.MediaStorageSOPClassUID, m.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = root + ".2", root + ".3"
    ds.FrameOfReferenceUID = root + ".4"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^John", "MRN4711", "19600215"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20230105"
    ds.StudyTime = ds.ContentTime = "134501"
    ds.AccessionNumber, ds.InstitutionName, ds.StationName = "ACC556677", "St Elsewhere", "CTSCAN01"
    ds.ReferringPhysicianName, ds.OperatorsName = "House^Gregory", "Cuddy^Lisa"
    ds.StudyDescription, ds.SeriesDescription = "CT chest for Gregory House", "Axial 1mm"
    ds.Modality, ds.BurnedInAnnotation, ds.InstanceNumber = "CT", "NO", i + 1
    item = Dataset(); item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = "%s.1.%d" % (root, max(i - 1, 0))
    ds.ReferencedImageSequence = Sequence([item])
    ds.add_new(0x00290010, "LO", "ACME PRIVATE"); ds.add_new(0x00291001, "LO", "secret")
    ds.ImagePositionPatient = [0, 0, i]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]; ds.SliceThickness = 1
    ds.Rows = ds.Columns = 512; ds.BitsAllocated = ds.BitsStored = 16; ds.HighBit = 15
    ds.PixelRepresentation, ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 1, "MONOCHROME2"
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = pix.tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(os.path.join(out, "IM%04d.dcm" % i), write_like_original=False)
PY
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$t/site.key" && chmod 600 "$t/site.key"

# dcmodify's arguments: every exact-tag X attribute of our table (top level only, no UIDs, no
# markers: strictly less work than the profile) and the private tags, in place, no backups.
args=()
while read -r tag; do args+=(-ea "(${tag:0:4},${tag:4:4})"); done < <(
  sed -n 's/^    {0x\([0-9A-F]\{8\}\), 0xFFFFFFFF, "[^"]*", [0-9], DEID_X,.*/\1/p' "$root/io/deid/deid_profile.c" |
  grep -v '^000[02]')
args+=(-ea "(0029,0010)" -ea "(0029,1001)")

# Every timed run starts alike: the source files in the page cache (read just before), the
# previous run's written pages flushed (sync), so no run pays for another's writeback. Wall time
# by the shell's microsecond clock; user and sys from /usr/bin/time (10 ms resolution).
timed() { # timed NAME CMD... -> appends "wall user sys" to "$t/NAME.runs"
  local name=$1; shift
  cat "$t"/src/*.dcm >/dev/null
  sync
  local t0=$EPOCHREALTIME
  /usr/bin/time -f "%U %S" -o "$t/$name.cpu" "$@"
  local t1=$EPOCHREALTIME
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b - a}') $(cat "$t/$name.cpu")" >>"$t/$name.runs"
}
median() { # median FIELD FILE
  awk -v f="$1" '{print $f}' "$2" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# ROUNDS rounds (default 5), the four runs interleaved in each, so drift in the machine's state
# (page cache, file-system allocation) falls on all of them alike; every figure is a median.
rounds=${ROUNDS:-5}
nthreads=$(nproc)
for r in $(seq "$rounds"); do
  rm -rf "$t/peer" "$t/out1" "$t/outN" "$t/copy"
  cp -r "$t/src" "$t/peer" # dcmodify edits in place: a fresh copy each round (not timed)
  timed peer dcmodify -q -nb -imt "${args[@]}" "$t/peer"/*.dcm
  timed one "$V" --threads 1 anonymize "$t/src" --out "$t/out1" --key "$t/site.key" --log-level warn
  timed all "$V" --threads "$nthreads" anonymize "$t/src" --out "$t/outN" --key "$t/site.key" --log-level warn
  # the floor for writing new files: copying the folder (cp uses copy_file_range too)
  timed copy cp -r "$t/src" "$t/copy"
done

for d in out1 outN; do
  nout=$(find "$t/$d" -name '*.dcm' | wc -l)
  [ "$nout" -eq "$n" ] || { echo "deid: only $nout of $n files written ($d)" >&2; exit 1; }
done
diff -r "$t/out1" "$t/outN" >/dev/null || { echo "deid: 1-thread and $nthreads-thread outputs differ" >&2; exit 1; }

if [ -n "${LOOP:-}" ]; then # the way site scripts often call it: one dcmodify per file (information)
  cp -r "$t/src" "$t/loop"
  t0=$(date +%s.%N)
  for f in "$t/loop"/*.dcm; do dcmodify -q -nb -imt "${args[@]}" "$f"; done
  echo "dcmodify once per file (site-script style): $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}') s wall"
fi

printf '%-22s %8s %10s %10s %10s %16s\n' run files wall_s user_s sys_s "wall min..max"
for r in peer:dcmodify one:"vesalius 1 thread" all:"vesalius $nthreads threads" copy:"cp -r (copy floor)"; do
  f="$t/${r%%:*}.runs"
  printf '%-22s %8s %10s %10s %10s %16s\n' "${r#*:}" "$n" "$(median 1 "$f")" "$(median 2 "$f")" "$(median 3 "$f")" \
    "$(sort -g "$f" | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo ".." hi}')"
done
fs=$(stat -f -c %T "$t")
echo "medians of $rounds interleaved rounds; dcmodify: one invocation, $((${#args[@]} / 2)) -ea tags; files on $fs ($t); load $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores; outputs of 1 and $nthreads threads identical"
pw=$(median 1 "$t/peer.runs"); pc=$(awk '{print $2 + $3}' "$t/peer.runs" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
ow=$(median 1 "$t/one.runs"); oc=$(awk '{print $2 + $3}' "$t/one.runs" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
aw=$(median 1 "$t/all.runs"); cw=$(median 1 "$t/copy.runs")
echo "copying the same files with cp -r: $cw s wall; vesalius with $nthreads threads takes $(awk -v a="$aw" -v c="$cw" 'BEGIN{printf "%.2f", a/c}')x that time"
awk -v pw="$pw" -v pc="$pc" -v ow="$ow" -v oc="$oc" -v aw="$aw" -v n="$n" -v k="$nthreads" '
  BEGIN {
    printf "CPU time (user+sys): vesalius 1 thread %.2f s, dcmodify %.2f s: %.1fx\n", oc, pc, pc / oc
    printf "deid: %d CT files, vesalius %.3f s with 1 thread (%.1fx dcmodify), %.3f s with %d threads (%.1fx); dcmodify %.3f s (medians)\n",
      n, ow, pw / ow, aw, k, pw / aw, pw
  }'
