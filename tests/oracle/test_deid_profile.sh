#!/usr/bin/env bash
# test_deid_profile — every attribute of PS3.15 Table E.1-1, top level and nested, under the
# basic profile and each option, checked against the standard's JSON table (skips, exit 77,
# when ../shared/reference/dicom is absent: the product never needs it).
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
SRC=${VESALIUS_SRC:?}
# ../shared next to the checkout (or next to the folder of worktrees)
REF=${VESALIUS_DICOM_REFERENCE:-$SRC/../shared/reference/dicom}
[ -d "$REF" ] || [ -n "${VESALIUS_DICOM_REFERENCE:-}" ] || REF=$SRC/../../shared/reference/dicom
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
/usr/bin/python3 "$SRC/tests/oracle/deid_profile_check.py" "$V" "$REF" "$t"
