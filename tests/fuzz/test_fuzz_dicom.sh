#!/usr/bin/env bash
# test_fuzz_dicom — build the libFuzzer target with clang + ASan/UBSan in fuzz/ beside the
# vesalius binary (build/fuzz; once, later runs only rebuild what changed), replay every kept
# crash input, then fuzz reading and assembling one DICOM file for FUZZ_SECONDS (default 60)
# seeded with pydicom's and nibabel's files, under a memory limit. Any crash, leak, sanitizer
# report or out-of-memory fails the test. Nothing is written into the source tree: a failing
# input is kept in the fuzz build's crashes/ folder.
set -euo pipefail
src=${VESALIUS_SRC:?}
bdir=${VESALIUS_FUZZ_BUILD:-$(dirname "${VESALIUS:?}")/fuzz}
secs=${FUZZ_SECONDS:-60}
command -v clang >/dev/null || { echo "FAIL: clang is not installed (Debian: clang libclang-rt-14-dev)"; exit 1; }
t0=$(date +%s)
mkdir -p "$bdir"
log="$bdir/fuzz-build.log"
cmake -S "$src" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVESALIUS_FUZZ=ON -DVESALIUS_SANITIZE=ON >"$log" 2>&1 ||
  { tail -20 "$log"; exit 1; }
cmake --build "$bdir" --target fuzz_dicom -j "${JOBS:-2}" >>"$log" 2>&1 || { tail -30 "$log"; exit 1; }
t1=$(date +%s)
echo "fuzz build: $((t1 - t0)) s"
fuzz="$bdir/fuzz_dicom"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
seeds=$(/usr/bin/python3 -c 'import pydicom,nibabel,os;print(os.path.join(os.path.dirname(pydicom.__file__),"data","test_files"), os.path.join(os.path.dirname(nibabel.__file__),"nicom","tests","data"))')
n=0
for d in $seeds; do
  while IFS= read -r -d '' f; do
    [ "$(stat -c %s "$f")" -le 1048576 ] || continue
    cp "$f" "$work/corpus/seed$n"; n=$((n + 1))
  done < <(find "$d" -type f -print0)
done
echo "seeds: $n files"
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Every input that ever crashed the reader stays a regression test.
if ls "$src"/tests/fuzz/crashes/* >/dev/null 2>&1; then
  "$fuzz" -runs=0 "$src"/tests/fuzz/crashes/* || { echo "FAIL: a kept crash input fails again"; exit 1; }
fi
rc=0
"$fuzz" "$work/corpus" -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=512 \
  -max_len=1048576 -timeout=10 -print_final_stats=1 -artifact_prefix="$work/" >"$work/log" 2>&1 || rc=$?
grep -E "runtime error|ERROR|SUMMARY|^ +#[0-9]+ .* in (dcm|dicom|vs_|volume|LLVMFuzzer)" "$work/log" | head -40 || true
tail -8 "$work/log"
if ls "$work"/crash-* "$work"/leak-* "$work"/oom-* "$work"/timeout-* >/dev/null 2>&1; then
  mkdir -p "$bdir/crashes"
  cp "$work"/crash-* "$work"/leak-* "$work"/oom-* "$work"/timeout-* "$bdir/crashes/" 2>/dev/null || true
  echo "FAIL: the fuzzer found a failing input (kept in $bdir/crashes/; once fixed, add it to tests/fuzz/crashes/)"
  exit 1
fi
[ "$rc" -eq 0 ] || { echo "FAIL: fuzzer exited $rc"; exit 1; }
echo "fuzz: $secs s, nothing found"
