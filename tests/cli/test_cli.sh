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
for n in 1025 -1 2x; do # 0 is all cores, the default (test_run_threads)
  "$V" ingest --threads "$n" >"$t/out" 2>&1; check "thread count $n is a usage error" 2 $?
  contains "thread count $n is named" "$t/out" "not '$n'"
done
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

# The lean front: `vesalius` itself loads none of HDF5, ITK, OpenBLAS or GDCM (anonymize runs
# without them); every other command loads libvesalius_core.so from the executable's folder,
# and without it says so (exit 3) while anonymize still works.
core="$(dirname "$V")/libvesalius_core.so"
ldd "$V" >"$t/ldd" 2>&1
for lib in hdf5 ITK openblas gdcm curl; do
  if grep -qi "$lib" "$t/ldd"; then echo "FAIL: the front loads $lib"; fails=$((fails + 1)); else echo "ok: the front does not load $lib"; fi
done
ldd "$core" >"$t/ldd" 2>&1
contains "the core library loads HDF5" "$t/ldd" "hdf5"
mkdir "$t/alone" && cp "$V" "$t/alone/vesalius"
"$t/alone/vesalius" anonymize "$t/new/deeper/cohort/dicom" --out "$t/anon" --key "$t/site.key" \
  --log-level error >"$t/out" 2>&1; check "anonymize runs without the core library" 0 $?
[ "$(find "$t/anon" -name '*.dcm' | wc -l)" -gt 0 ] && echo "ok: files anonymized without the core" || { echo "FAIL: nothing written"; fails=$((fails + 1)); }
"$t/alone/vesalius" inspect "$t/anon" >"$t/out" 2>&1; check "a core command without the core is an environment error" 3 $?
contains "the error names the core library" "$t/out" "cannot load .*libvesalius_core.so"
"$t/alone/vesalius" --version >"$t/out" 2>&1; check "--version without the core is an environment error" 3 $?
"$t/alone/vesalius" inspect --help >"$t/out" 2>&1; check "help needs no core" 0 $?
cp "$(ldd "$V" | sed -n 's/.*libsodium[^ ]* => \([^ ]*\).*/\1/p')" "$t/alone/libvesalius_core.so"
"$t/alone/vesalius" verify "$t/anon" >"$t/out" 2>&1; check "another library in the core's place is an environment error" 3 $?
contains "the error says it is not the core" "$t/out" "not a vesalius core library"

echo "$fails failed"
[ "$fails" -eq 0 ]
