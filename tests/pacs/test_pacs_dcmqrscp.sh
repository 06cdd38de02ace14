#!/usr/bin/env bash
# test_pacs_dcmqrscp — DCMTK's dcmqrscp as a second peer: it returns no instance counts (the
# pull counts with an image-level C-FIND), pads UIDs with spaces and sends only in the transfer
# syntax of the first context it finds (so its archive holds uncompressed files here; Orthanc's
# tests cover the compressed ones). C-GET and C-MOVE equal a folder ingest; an unknown calling
# AE is refused with exit 8; a second run has nothing to do.
set -u
source "$VESALIUS_SRC/tests/pacs/pacs_env.sh"

cohort "$t/c" 22
# uncompressed copies (explicit VR little endian), the archive dcmqrscp can serve
mkdir -p "$t/qr/db" "$t/qr/files"
for f in $(find "$t/c/dicom" -type f | sort); do
    rel=${f#"$t/c/dicom/"}; out="$t/qr/files/${rel//\//_}"
    case $(dcmdump -M +P 0002,0010 "$f") in
    *RLELossless*) dcmdrle "$f" "$out" ;;
    *JPEGLS*) dcmdjpls "$f" "$out" ;;
    *JPEG*) dcmdjpeg "$f" "$out" ;;
    *) dcmconv +te "$f" "$out" ;;
    esac || { echo "FAIL: cannot decompress $f"; exit 1; }
done
dcmqridx "$t/qr/db" "$t/qr/files"/*.dcm || { echo "FAIL: dcmqridx"; exit 1; }
"$V" ingest "$t/qr/files" --out "$t/folder" --key "$t/k" --preprocess none 2>/dev/null; check "folder ingest" 0 $?
cat >"$t/qr/qr.cfg" <<EOF
NetworkTCPPort  = 11113
MaxPDUSize      = 16384
MaxAssociations = 16
HostTable BEGIN
vesalius = (VESALIUS, localhost, $MOVE_PORT)
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
DCMQRSCP   $t/qr/db   R   (200, 1024mb)   vesalius
AETable END
EOF
TCP_NODELAY=1 dcmqrscp -c "$t/qr/qr.cfg" >"$t/qr/log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 50); do echoscu -aet VESALIUS -aec DCMQRSCP 127.0.0.1 11113 2>/dev/null && break; sleep 0.1; done
QR="pacs://DCMQRSCP@127.0.0.1:11113"
fast="--pacs-retries 1 --pacs-backoff 0.1"

"$V" ingest "$QR" --out "$t/get" --key "$t/k" --preprocess none $fast 2>"$t/get.log"; check "C-GET from dcmqrscp" 0 $?
same_volumes "$t/folder" "$t/get" && ok "C-GET from dcmqrscp equals the folder ingest" || fail "C-GET volumes differ"
"$V" ingest "$QR" --out "$t/get" --key "$t/k" --preprocess none $fast 2>/dev/null; check "second run: nothing to do" 5 $?
"$V" ingest "$QR" --out "$t/move" --key "$t/k" --preprocess none $fast --pacs-retrieve move \
    --pacs-move-port $MOVE_PORT 2>"$t/move.log"
check "C-MOVE from dcmqrscp" 0 $?
same_volumes "$t/folder" "$t/move" && ok "C-MOVE from dcmqrscp equals the folder ingest" || fail "C-MOVE volumes differ"
"$V" ingest "$QR" --out "$t/intruder" --key "$t/k" --pacs-calling-aet INTRUDER $fast 2>"$t/intruder.log"
check "unknown calling AE" 8 $?
grep -q "127.0.0.1:11113: association rejected" "$t/intruder.log" && ok "the rejection is named" || fail "reason: $(cat "$t/intruder.log")"
clean_of_phi "$t/c" "$t/get" "$t/move" "$t/get.log" "$t/move.log" && ok "verify-deid finds nothing" || fail "identifying data found"
finish
