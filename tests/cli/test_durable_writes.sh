#!/usr/bin/env bash
# test_durable_writes — every file the product writes to a temporary name and renames into place
# goes through the one helper of io/base fsdir.h (vs_atomic / vs_commit_file: sync the file,
# rename, sync the folder): no other rename(2) in the product's sources. (io/dicom/dcmdict_gen.cc
# is a build-time generator writing into the build folder, not an output.)
set -u
SRC=${VESALIUS_SRC:?}
others=$(grep -rln --include='*.c' --include='*.cc' -E '\brename\s*\(' "$SRC/io" "$SRC/pipeline" "$SRC/studies" \
  "$SRC/models" "$SRC/validation" | grep -v -e '/io/base/fsdir.c$' -e '/io/dicom/dcmdict_gen.cc$')
if [ -n "$others" ]; then
  echo "FAIL: rename(2) outside the durable-write helper (use vs_atomic or vs_commit_file):"
  echo "$others"
  exit 1
fi
echo "ok: every rename into place is the helper's"
