# pacs_env.sh — sourced by the PACS tests: a private network namespace, a real Orthanc (Debian's
# orthanc) and DCMTK's dcmqrscp as peers, loaded with a small demo cohort.
#
# Orthanc binds every interface and has no bind-address option, so each test re-runs itself in
# its own network namespace (unshare -rn, loopback up): nothing is reachable from outside and
# the fixed ports below never clash between tests running in parallel. As root the namespace
# needs no user namespace (unshare -n); a chroot refuses one (EPERM), and fresh-machine.sh runs
# the suite in a chroot. Any other user maps itself to root in a new user namespace (-r).
V=${VESALIUS:?}; SRC=${VESALIUS_SRC:?}
if [ -z "${VS_IN_NETNS:-}" ]; then
    if [ "$(id -u)" = 0 ]; then ns=-n; else ns=-rn; fi
    exec env VS_IN_NETNS=1 unshare $ns bash "$0" "$@"
fi
ip link set lo up || { echo "FAIL: cannot bring up the loopback in the test's namespace"; exit 1; }
for tool in Orthanc curl dcmqrscp; do
    command -v $tool >/dev/null || { echo "FAIL: $tool is missing (make deps installs it)"; exit 1; }
done

t=$(mktemp -d); PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$t"' EXIT
fails=0
ok() { echo "ok: $1"; }
fail() { echo "FAIL: $1"; fails=$((fails + 1)); }
check() { if [ "$2" != "$3" ]; then fail "$1 (exit $3, wanted $2)"; else ok "$1"; fi; }
finish() { echo "$fails failed"; [ "$fails" -eq 0 ]; exit; }

ORTHANC_DICOM=4242 ORTHANC_HTTP=8042 MOVE_PORT=11112
URL="pacs://ORTHANC@127.0.0.1:$ORTHANC_DICOM"

# orthanc_start DIR [JSON FIELDS...] — a fresh Orthanc storing under DIR; extra fields (e.g.
# '"LimitFindResults": 2') override the defaults. Our AE is known to it, with our receiver's port.
orthanc_start() {
    local dir=$1; shift
    mkdir -p "$dir/db"
    local extra=""; for f in "$@"; do extra="$extra, $f"; done
    cat >"$dir/orthanc.json" <<EOF
{ "Name": "vesalius-test", "StorageDirectory": "$dir/db", "IndexDirectory": "$dir/db",
  "HttpPort": $ORTHANC_HTTP, "DicomPort": $ORTHANC_DICOM, "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "Plugins": [],
  "DicomModalities": {"vesalius": ["VESALIUS", "127.0.0.1", $MOVE_PORT]},
  "DicomAlwaysAllowEcho": false, "DicomAlwaysAllowStore": false, "DicomAlwaysAllowFind": false,
  "DicomAlwaysAllowGet": false, "DicomAlwaysAllowMove": false, "DicomCheckCalledAet": true,
  "DicomAssociationCloseDelay": 0, "StorageCompression": false $extra }
EOF
    # TCP_NODELAY: DCMTK inside Orthanc would otherwise wait on delayed ACKs (~40 ms a message;
    # ORTHANC_NODELAY=0 keeps that wait, for a test that needs a slow peer)
    TCP_NODELAY=${ORTHANC_NODELAY:-1} Orthanc --verbose "$dir/orthanc.json" >"$dir/orthanc.log" 2>&1 &
    ORTHANC_PID=$!; PIDS="$PIDS $ORTHANC_PID"
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$ORTHANC_HTTP/system" >/dev/null && return 0
        sleep 0.1
    done
    echo "FAIL: Orthanc did not start"; cat "$dir/orthanc.log"; exit 1
}
orthanc_stop() { kill "$ORTHANC_PID" 2>/dev/null; wait "$ORTHANC_PID" 2>/dev/null; }

# orthanc_load FILE... — store files through the REST API; any refusal fails the test.
orthanc_load() {
    local f code
    for f in "$@"; do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$ORTHANC_HTTP/instances" --data-binary @"$f")
        [ "$code" = 200 ] || { echo "FAIL: Orthanc refused $f (HTTP $code)"; exit 1; }
    done
}

# cohort DIR SEED [ARGS] — a small demo cohort (several transfer syntaxes, planted identifiers).
cohort() {
    "$V" demo-cohort --out "$1" --unlabeled 5 --labeled 2 --radiographs 1 --matrix 32 --slices 6:9 --seed "$2" >/dev/null 2>&1 ||
        { echo "FAIL: demo-cohort"; exit 1; }
}

# same_volumes A B — the two outputs hold the same volumes: keys, checksums, geometry.
same_volumes() { /usr/bin/python3 "$SRC/tests/pacs/pacs_compare.py" "$1" "$2"; }

# clean_of_phi COHORT PATH... — verify-deid over outputs and logs with the planted identifiers.
clean_of_phi() {
    local c=$1; shift
    "$V" verify-deid "$@" --phi-list "$c/phi.txt" >"$t/verify.out" 2>&1
    local rc=$?
    [ $rc = 0 ] || { head -5 "$t/verify.out"; }
    return $rc
}
