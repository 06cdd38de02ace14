#!/usr/bin/env bash
# test_shard_h5py — C writes shards (tests/tools/shard_tool), h5py reads them back (test_shard_h5py.py).
set -u
tool=${1:?usage: test_shard_h5py.sh SHARD_TOOL}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$tool" write "$t" || { echo "FAIL: shard_tool write"; exit 1; }
/usr/bin/python3 "$(dirname "$0")/test_shard_h5py.py" "$t"
