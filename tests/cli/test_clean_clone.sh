#!/usr/bin/env bash
# test_clean_clone — the tests that once needed files outside the repository (the PyTorch twin
# and the DICOM standard's tables in ../shared) pass in a copy of the repository with nothing
# beside it, and CI counts a skipped test as a failure (.ci/no-skips).
set -u
SRC=${VESALIUS_SRC:?}
V=${VESALIUS:?}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
mkdir -p "$t/clone"
cp -r "$SRC/tests" "$SRC/io" "$SRC/.ci" "$t/clone/" # nothing beside the copy: no ../shared
export VESALIUS_SRC=$t/clone
bash "$t/clone/tests/oracle/test_mae_export.sh" >"$t/out" 2>&1; check "test_mae_export in a bare copy" 0 $?
bash "$t/clone/tests/oracle/test_deid_profile.sh" >"$t/out" 2>&1; check "test_deid_profile in a bare copy" 0 $?
(cd "$(dirname "$V")/tests" && /usr/bin/python3 -W ignore "$t/clone/tests/oracle/mae_twin_check.py") >"$t/out" 2>&1
check "the PyTorch twin against the fixtures, and fixtures made again, in a bare copy" 0 $?
# .ci/no-skips on ctest's own words
printf '1/2 Test #1: a ....   Passed    0.1 sec\n2/2 Test #2: b ....***Skipped   0.0 sec\n\n50%% tests passed, 0 tests failed out of 2\n\nThe following tests did not run:\n\t  2 - b (Skipped)\n' >"$t/skip.log"
"$t/clone/.ci/no-skips" "$t/skip.log" 2>/dev/null; check "a skipped test fails CI" 1 $?
printf '1/2 Test #1: a ....   Passed    0.1 sec\n2/2 Test #2: b ....   Passed    0.2 sec\n\n100%% tests passed, 0 tests failed out of 2\n' >"$t/ok.log"
"$t/clone/.ci/no-skips" "$t/ok.log"; check "no skipped test passes" 0 $?
echo "$fails failed"
[ "$fails" -eq 0 ]
