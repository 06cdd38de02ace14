#!/usr/bin/env bash
# test_deid_scan — verify-deid on shards (written by the C shard writer, extended with h5py)
# and on validation reports and run logs: planted identifiers, original UIDs and names the
# shard schema does not define are caught by place (exit 7); clean shards and reports pass.
set -u
V=${VESALIUS:?VESALIUS must name the built binary}
tool=${1:?usage: test_deid_scan.sh DEID_SHARD_TOOL}
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
/usr/bin/python3 "$here/deid_scan_check.py" "$V" "$tool" "$here/../fixtures/validation_data.py" "$t"
