#!/usr/bin/env bash
# test_pacs_tls — DICOM over TLS (DCMTK's dcmtls) with a real Orthanc that requires TLS and a
# client certificate: a C-GET pull equals a folder ingest; a peer certificate from an
# untrusted CA, plain TCP to the TLS port and a missing key file end with exit 8 or 2, naming
# host:port and the reason.
set -u
source "$VESALIUS_SRC/tests/pacs/pacs_env.sh"

pki="$t/pki"; mkdir -p "$pki"
mkcert() { # mkcert NAME CA: a key and a certificate signed by CA
    openssl req -newkey rsa:2048 -nodes -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "/CN=$1" 2>/dev/null &&
        openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.crt" -CAkey "$pki/$2.key" -CAcreateserial \
            -out "$pki/$1.crt" -days 2 2>/dev/null
}
for ca in ca other-ca; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/$ca.key" -out "$pki/$ca.crt" -days 2 \
        -subj "/CN=$ca" 2>/dev/null || { echo "FAIL: openssl"; exit 1; }
done
mkcert orthanc ca && mkcert vesalius ca || { echo "FAIL: openssl"; exit 1; }

cohort "$t/c" 21
orthanc_start "$t/orthanc" '"DicomTlsEnabled": true' "\"DicomTlsCertificate\": \"$pki/orthanc.crt\"" \
    "\"DicomTlsPrivateKey\": \"$pki/orthanc.key\"" "\"DicomTlsTrustedCertificates\": \"$pki/ca.crt\"" \
    '"DicomTlsRemoteCertificateRequired": true'
orthanc_load $(find "$t/c/dicom" -type f | sort)
"$V" ingest "$t/c/dicom" --out "$t/folder" --key "$t/k" --preprocess none 2>/dev/null; check "folder ingest" 0 $?

tls="--pacs-tls-ca $pki/ca.crt --pacs-tls-cert $pki/vesalius.crt --pacs-tls-key $pki/vesalius.key"
fast="--pacs-retries 0 --pacs-acse-timeout 3 --pacs-dimse-timeout 3"
"$V" ingest "$URL" --out "$t/tls" --key "$t/k" --preprocess none $tls 2>"$t/tls.log"; check "C-GET over TLS" 0 $?
same_volumes "$t/folder" "$t/tls" && ok "TLS C-GET equals the folder ingest" || fail "TLS volumes differ"

"$V" ingest "$URL" --out "$t/x" --key "$t/k" $fast --pacs-tls-ca $pki/other-ca.crt \
    --pacs-tls-cert $pki/vesalius.crt --pacs-tls-key $pki/vesalius.key 2>"$t/x.log"
check "a peer certificate from an untrusted CA" 8 $?
grep -q "127.0.0.1:$ORTHANC_DICOM: cannot associate" "$t/x.log" && ok "the TLS failure names host:port" || fail "reason: $(cat "$t/x.log")"
"$V" ingest "$URL" --out "$t/x" --key "$t/k" $fast 2>"$t/plain.log"; check "plain TCP to a TLS port" 8 $?
grep -q "127.0.0.1:$ORTHANC_DICOM" "$t/plain.log" && ok "the failure names host:port" || fail "reason: $(cat "$t/plain.log")"
"$V" ingest "$URL" --out "$t/x" --key "$t/k" $fast --pacs-tls-ca $pki/ca.crt --pacs-tls-cert $pki/vesalius.crt \
    --pacs-tls-key $pki/missing.key 2>"$t/nokey.log"
check "a missing key file is a configuration error" 2 $?
grep -q "tls_key: $pki/missing.key cannot be read" "$t/nokey.log" && ok "the reason names the setting and the file" || fail "reason: $(cat "$t/nokey.log")"
clean_of_phi "$t/c" "$t/tls" "$t/tls.log" && ok "verify-deid finds nothing" || fail "identifying data found"
finish
