#!/usr/bin/env bash
# test_cli — the `vesalius` command line: help, version, usage errors and their exit codes.
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
fails=0
check() { # check DESCRIPTION EXPECTED_RC ACTUAL_RC
  if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi
}
contains() { # contains DESCRIPTION FILE PATTERN
  if grep -q -- "$3" "$2"; then echo "ok: $1"; else echo "FAIL: $1 (no '$3')"; fails=$((fails + 1)); fi
}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT

"$V" --help >"$t/out" 2>&1; check "--help exits 0" 0 $?
for c in ingest anonymize verify-deid inspect pretrain finetune predict validate run; do
  contains "--help lists $c" "$t/out" "^  $c "
done
contains "--help documents exit codes" "$t/out" "Exit codes"

"$V" --version >"$t/out" 2>&1; check "--version exits 0" 0 $?
contains "--version names vesalius and its revision" "$t/out" "^vesalius [0-9]*\.[0-9]*\.[0-9]* (git "
for lib in DCMTK ITK HDF5 zlib OpenBLAS; do
  contains "--version names $lib with a version" "$t/out" "$lib .*[0-9]\.[0-9]"
done

"$V" ingest --help >"$t/out" 2>&1; check "ingest --help exits 0" 0 $?
contains "ingest --help shows usage" "$t/out" "Usage: vesalius ingest"
"$V" run -h >"$t/out" 2>&1; check "run -h exits 0" 0 $?

"$V" >"$t/out" 2>&1; check "no command is a usage error" 2 $?
"$V" frobnicate >"$t/out" 2>&1; check "unknown command is a usage error" 2 $?
contains "unknown command is named" "$t/out" "unknown command 'frobnicate'"
"$V" --bogus >"$t/out" 2>&1; check "unknown global option is a usage error" 2 $?
contains "unknown option is named" "$t/out" "bogus"
"$V" --log-level loud ingest >"$t/out" 2>&1; check "bad log level is a usage error" 2 $?
"$V" ingest --threads 0 >"$t/out" 2>&1; check "bad thread count is a usage error" 2 $?
"$V" ingest --threads >"$t/out" 2>&1; check "missing option value is a usage error" 2 $?

# a planned command that is not built yet says so and exits 1
"$V" --help >"$t/help" 2>&1
for c in $(sed -n 's/^  \([a-z-]*\) .*(not built yet)$/\1/p' "$t/help"); do
  "$V" "$c" >"$t/out" 2>&1; check "$c (not built) exits 1" 1 $?
  contains "$c says it is not built" "$t/out" "not built yet"
done

# output folders are created with their missing parents (as `make demo` needs on a fresh clone),
# and a path through a regular file fails naming that component
"$V" demo-cohort --out "$t/new/deeper/cohort" --unlabeled 1 --labeled 4 --radiographs 0 --matrix 16 \
  --slices 4:4 >"$t/out" 2>&1; check "demo-cohort creates missing parents" 0 $?
[ -s "$t/new/deeper/cohort/phi.txt" ] && echo "ok: cohort written below new folders" || { echo "FAIL: no cohort"; fails=$((fails + 1)); }
: >"$t/plainfile"
"$V" demo-cohort --out "$t/plainfile/cohort" --unlabeled 1 --labeled 4 >"$t/out" 2>&1; check "an output below a file is an environment error" 3 $?
contains "the error names the component" "$t/out" "plainfile"

echo "$fails failed"
[ "$fails" -eq 0 ]
