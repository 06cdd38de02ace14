#!/usr/bin/env bash
# test_pacs_errors — a PACS that cannot be reached or refuses us ends `vesalius ingest` with
# exit 8 and one line naming host:port and the reason, within the timeouts and retries asked
# for: wrong calling AE, wrong called AE, closed port, a silent peer; a bad URL or setting is
# a usage error (exit 2); nothing is written for a peer that never answered.
set -u
source "$VESALIUS_SRC/tests/pacs/pacs_env.sh"

# usage errors: before anything is opened
for bad in 'pacs://ORTHANC@127.0.0.1' 'pacs:/ORTHANC@127.0.0.1:4242' 'pacs://@127.0.0.1:4242' \
    'pacs://ORTHANC@127.0.0.1:99999' 'pacs://ORTHANC@127.0.0.1:4242?colour=red' \
    'pacs://ORTHANC@127.0.0.1:4242?since=2018' 'pacs://A\B@127.0.0.1:4242' \
    'pacs://SEVENTEEN_CHARS_AE@127.0.0.1:4242' 'PACS:ORTHANC'; do
    "$V" ingest "$bad" --out "$t/bad" --key "$t/k" 2>"$t/bad.log"; check "bad URL $bad" 2 $?
done
grep -q "pacs" "$t/bad.log" && ok "the usage error names the URL" || fail "usage message: $(cat "$t/bad.log")"
"$V" ingest "$URL" --out "$t/bad" --key "$t/k" --pacs-retries -1 2>/dev/null; check "bad setting value" 2 $?
"$V" ingest "$URL" --out "$t/bad" --key "$t/k" --pacs-colour red 2>/dev/null; check "unknown setting" 2 $?
"$V" ingest "$URL" --out "$t/bad" --key "$t/k" --pacs-window 25:00-01:00 2>/dev/null; check "bad window" 2 $?
[ -e "$t/bad" ] && fail "a usage error wrote $t/bad" || ok "nothing written on a usage error"

cohort "$t/c" 22
orthanc_start "$t/orthanc"
orthanc_load $(find "$t/c/dicom" -type f | sort)
fast="--pacs-retries 1 --pacs-backoff 0.2 --pacs-connect-timeout 2 --pacs-acse-timeout 2 --pacs-dimse-timeout 2"

# peer_error NAME PATTERN MAX_SECONDS URL [ARGS] — exit 8, the reason matching, in time
n_err=0
peer_error() {
    local name=$1 pattern=$2 max=$3 url=$4; shift 4
    local start=$(date +%s%N)
    n_err=$((n_err + 1)) # a folder per peer: another source is another ingest's folder
    "$V" ingest "$url" --out "$t/err$n_err" --key "$t/k" $fast "$@" 2>"$t/err.log"
    local rc=$? ms=$((($(date +%s%N) - start) / 1000000))
    check "$name" 8 $rc
    grep -E -q "$pattern" "$t/err.log" && ok "$name: the reason is named" || fail "$name: reason: $(tail -1 "$t/err.log")"
    [ $ms -lt $((max * 1000)) ] && ok "$name: within ${max} s ($ms ms)" || fail "$name: took $ms ms"
}
peer_error "wrong calling AE" "127\.0\.0\.1:$ORTHANC_DICOM: association rejected: calling AE title not recognized" 5 \
    "$URL" --pacs-calling-aet INTRUDER
grep -q "retry" "$t/err.log" && fail "a permanent rejection was retried" || ok "a permanent rejection is not retried"
peer_error "wrong called AE" "127\.0\.0\.1:$ORTHANC_DICOM: association rejected: called AE title not recognized" 5 \
    "pacs://NOTORTHANC@127.0.0.1:$ORTHANC_DICOM"
peer_error "closed port" "127\.0\.0\.1:4299: cannot associate: .*(refused|Refused)" 5 "pacs://ORTHANC@127.0.0.1:4299"
grep -q "retry 1 of 1 in 0.2 s" "$t/err.log" && ok "closed port: retried once after 0.2 s" || fail "no retry logged: $(cat "$t/err.log")"

# `vesalius run` of a study whose source is that closed port: the run exits 8 as well (cron)
printf 'name: closed\nthreads: 1\noutput: %s/run\ndeid:\n  key_file: %s/k\ningest:\n  sources: ["pacs://ORTHANC@127.0.0.1:4299"]\npacs:\n  retries: 0\n' "$t" "$t" >"$t/closed.yaml"
"$V" run "$t/closed.yaml" 2>/dev/null; check "vesalius run with an unreachable PACS" 8 $?

# a silent peer: accepts the connection, never answers the association request
/usr/bin/python3 - 4300 <<'PY' &
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(8); held = []
while True:
    c, _ = s.accept(); held.append(c)
PY
PIDS="$PIDS $!"
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4300) 2>/dev/null && break; sleep 0.1; done
# two attempts of 2 s each and a 0.2 s back-off: 4.2 s, and well under 8 s on a busy machine
peer_error "silent peer" "127\.0\.0\.1:4300: cannot associate: no answer within 2 s \(timed out\)" 8 "pacs://SILENT@127.0.0.1:4300"
[ -z "$(find "$t"/err*/shards -type f)" ] && ok "nothing ingested from peers that never answered" || fail "shards written"
clean_of_phi "$t/c" "$t/err.log" && ok "no identifier in the error logs" || fail "identifier in a log"
finish
