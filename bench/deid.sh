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
cp -r "$t/src" "$t/peer"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$t/site.key" && chmod 600 "$t/site.key"
sync

# vesalius: the whole profile (every depth, UIDs, markers), new files in a new folder.
/usr/bin/time -f "%e %U %S" -o "$t/ours.time" \
  "$V" anonymize "$t/src" --out "$t/out" --key "$t/site.key" --log-level warn
read -r ours ours_u ours_s <"$t/ours.time"

# dcmodify: the same files, one invocation, deleting every exact-tag X attribute of our table
# (top level only, no UIDs, no markers: strictly less work), in place without backups.
args=()
while read -r tag; do args+=(-ea "(${tag:0:4},${tag:4:4})"); done < <(
  sed -n 's/^    {0x\([0-9A-F]\{8\}\), 0xFFFFFFFF, "[^"]*", [0-9], DEID_X,.*/\1/p' "$root/io/deid_profile.c" |
  grep -v '^000[02]')
/usr/bin/time -f "%e %U %S" -o "$t/peer.time" \
  dcmodify -q -nb -imt "${args[@]}" -ea "(0029,0010)" -ea "(0029,1001)" "$t/peer"/*.dcm
read -r peer peer_u peer_s <"$t/peer.time"
# the way site scripts usually call it: one dcmodify per file (for information only)
cp -r "$t/src" "$t/loop"
t0=$(date +%s.%N)
for f in "$t/loop"/*.dcm; do dcmodify -q -nb -imt "${args[@]}" -ea "(0029,0010)" -ea "(0029,1001)" "$f"; done
loop=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')

nout=$(find "$t/out" -name '*.dcm' | wc -l)
[ "$nout" -eq "$n" ] || { echo "deid: only $nout of $n files written" >&2; exit 1; }
printf '%-10s %8s %10s %10s %10s\n' tool files wall_s user_s sys_s
printf '%-10s %8s %10s %10s %10s\n' vesalius "$n" "$ours" "$ours_u" "$ours_s" \
  dcmodify "$n" "$peer" "$peer_u" "$peer_s"
echo "dcmodify: one invocation, $((${#args[@]} / 2 + 2)) -ea tags; vesalius: all cores ($(nproc)), load $(cut -d' ' -f1 /proc/loadavg)"
echo "dcmodify once per file (site-script style): $loop s wall"
awk -v a="$ours_u" -v b="$ours_s" -v c="$peer_u" -v d="$peer_s" \
  'BEGIN{printf "CPU time (user+sys): vesalius %.2f s, dcmodify %.2f s, ratio %.1fx\n", a+b, c+d, (c+d)/(a+b)}'
awk -v a="$ours" -v b="$peer" -v n="$n" \
  'BEGIN{printf "deid: %d CT files in %.2f s (%.0f files/s), %.1fx faster than dcmodify (%.2f s)\n", n, a, n/a, b/a, b}'
