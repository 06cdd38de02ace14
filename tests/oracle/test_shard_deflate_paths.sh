#!/usr/bin/env bash
# test_shard_deflate_paths BINARY — a shard chunk's deflated bytes are a function of the chunk,
# the level and the compressor named in the shard (io/shard/shard_chunks.c), with two oracles
# over unit/test_shard_deflate (BINARY), which prints one digest line per level and compressor:
#  - valgrind's memcheck: no decision on memory the compressor never wrote (one made ISA-L's
#    bytes depend on what the heap held, when the writer used it);
#  - other CPUs: valgrind's (no AVX-512) and, on x86-64, qemu's Nehalem (SSE4.2, no AVX) and
#    qemu64 (no SSE4.2), where libdeflate takes other code paths.
# Every line naming the same level and compressor must carry the same digest.
set -u
T=${1:?test_shard_deflate binary}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
runs=()
run() { # NAME COMMAND... : the digest lines into $t/NAME, 1 when the run failed
  local name=$1; shift
  "$@" >"$t/$name.out" 2>"$t/$name.err"; local rc=$?
  grep '^deflate digest' "$t/$name.out" | sed "s/\$/ ($name)/" >"$t/$name"
  runs+=("$t/$name")
  if [ "$rc" != 0 ] || [ "$(wc -l <"$t/$name")" -lt 4 ]; then
    echo "FAIL: $name (exit $rc)"; tail -n 30 "$t/$name.err" "$t/$name.out"; fails=$((fails + 1)); return 1
  fi
  echo "ok: $name"
}
run native "$T"
if run valgrind valgrind -q --error-exitcode=99 --track-origins=yes "$T"; then
  echo "ok: memcheck saw no read of memory the compressors never wrote"
fi
if [ "$(uname -m)" = x86_64 ]; then
  run qemu-nehalem qemu-x86_64 -cpu Nehalem "$T"
  run qemu64 qemu-x86_64 -cpu qemu64 "$T"
fi
cat "${runs[@]}"
# "deflate digest level L COMPRESSOR VERSION: DIGEST (RUN)": one digest per level and compressor
if awk '{ key = $0; sub(/:.*/, "", key); d = $0; sub(/.*: /, "", d); sub(/ \(.*/, "", d)
          if (key in seen && seen[key] != d) bad = 1; seen[key] = d } END { exit bad }' \
     "${runs[@]}"; then
  echo "ok: the same bytes wherever the compressor's name is the same"
else
  echo "FAIL: a level and compressor gave other bytes on another CPU"; fails=$((fails + 1))
fi
echo "$fails failed"
[ "$fails" -eq 0 ]
