#!/usr/bin/env bash
# test_format — every C, C++ and header file of the tree is as .clang-format lays it out
# (STYLE.md habit 13), with Debian 12's clang-format (14, in the Makefile's PACKAGES: other
# versions lay out some constructs differently). Fix with:
#   clang-format -i $(git ls-files '*.c' '*.h' '*.cc')
set -u
SRC=${VESALIUS_SRC:?}
cd "$SRC" || exit 1
command -v clang-format >/dev/null || { echo "FAIL: clang-format is not installed"; exit 1; }
files=$(find io models pipeline studies validation tests bench -type f \( -name '*.c' -o -name '*.h' -o -name '*.cc' \) | sort)
n=$(echo "$files" | wc -l)
[ "$n" -gt 150 ] || { echo "FAIL: only $n source files found under $SRC"; exit 1; }
bad=0
for f in $files; do
  if ! clang-format --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "FAIL: $f is not formatted (clang-format --style=file $f | diff $f -)"; bad=$((bad + 1))
  fi
done
echo "$n files checked, $bad not formatted"
[ "$bad" -eq 0 ]
