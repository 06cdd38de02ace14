#!/usr/bin/env bash
# test_deid_profile — every attribute of PS3.15 Table E.1-1, top level and nested, under the
# basic profile and each option, checked against the standard's table (tests/fixtures/dicom/,
# the standard's JSON rendering kept in the repository); and the committed profile table
# io/deid/deid_profile.c is what io/deid/gen_deid_profile.py makes of that table.
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
SRC=${VESALIUS_SRC:?}
REF=$SRC/tests/fixtures/dicom
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
/usr/bin/python3 "$SRC/io/deid/gen_deid_profile.py" "$REF/ps3.15_table_e.1-1.json" "$REF/ps3.6_profile_attributes.json" >"$t/deid_profile.c" \
  && cmp -s "$t/deid_profile.c" "$SRC/io/deid/deid_profile.c" \
  && echo "ok: io/deid/deid_profile.c is the generator's output from the standard's table" \
  || { echo "FAIL: io/deid/deid_profile.c differs from gen_deid_profile.py's output on tests/fixtures/dicom"; fails=1; }
/usr/bin/python3 "$SRC/tests/oracle/deid_profile_check.py" "$V" "$REF" "$t" || fails=1
exit $fails
