#!/usr/bin/env bash
# test_dcm_save_copy — dcm_file_save_copy (anonymize's writer: pixels copied by the kernel)
# gives DCMTK's bytes exactly, and falls back to DCMTK wherever the layout does not allow it.
set -u
tool=${1:?usage: test_dcm_save_copy.sh DCM_SAVE_TOOL}
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
/usr/bin/python3 "$here/dcm_save_copy_check.py" "$tool" "$t"
