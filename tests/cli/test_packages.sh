#!/usr/bin/env bash
# test_packages — what the build and the tests use from the system comes from the Makefile's
# PACKAGES (or a package those depend on, or an essential one), so `make test` works on a fresh
# Debian 12 machine and not only on one that has more installed by accident. Probed: the files
# clang links for an OpenMP program (the fuzz build's OpenMP), every library and program the
# CMake build found, the Python modules the tests import (with Pillow's JPEG 2000 plugin, which
# pydicom needs for JPEG 2000), and the programs the tests run. The whole-machine proof stays
# ../shared/tools/fresh-machine.sh.
set -u
SRC=${VESALIUS_SRC:?}
BUILD=$(dirname "${VESALIUS:?}")
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
packages=$(make -s --no-print-directory -C "$SRC" print-packages) || { echo "FAIL: make print-packages"; exit 1; }
# Everything PACKAGES pulls in (Depends and Pre-Depends only: the Makefile installs with
# --no-install-recommends), plus the essential packages every Debian system has.
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
  --no-enhances $packages 2>/dev/null | grep -v '^ ' | sed 's/:.*//' | sort -u >"$t/closure"
dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" {print $1}' >>"$t/closure"
[ "$(wc -l <"$t/closure")" -gt 100 ] || { echo "FAIL: apt-cache gave no dependency closure"; exit 1; }
sort -u -o "$t/closure" "$t/closure"

# file WHAT: the package owning file must be in the closure
owner() { dpkg -S "$1" 2>/dev/null | head -1 | sed 's/:.*//; s/, .*//' ; }
need() {
  local what=$1 f=$2 pkg
  pkg=$(owner "$f"); [ -n "$pkg" ] || pkg=$(owner "$(realpath "$f" 2>/dev/null)")
  if [ -z "$pkg" ]; then
    echo "FAIL: $what: $f belongs to no Debian package"; fails=$((fails + 1))
  elif ! grep -qx "$pkg" "$t/closure"; then
    echo "FAIL: $what: $f comes from $pkg, which the Makefile's PACKAGES do not install"; fails=$((fails + 1))
  fi
}

# clang's OpenMP, as the fuzz build's find_package(OpenMP) links it
printf '#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n' >"$t/omp.c"
if clang -fopenmp "$t/omp.c" -o "$t/omp" -Wl,-t >"$t/trace" 2>&1; then
  { grep -o '/[^ ()]*omp[^ ()]*' "$t/trace"; clang -fopenmp -M "$t/omp.c" 2>/dev/null | tr ' \\' '\n\n'; } |
    grep '^/usr/.*omp' | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done >"$t/omp-files"
  while read -r f; do need "clang OpenMP" "$f"; done <"$t/omp-files"
  echo "ok: clang links OpenMP ($(wc -l <"$t/omp-files") files checked)"
else
  echo "FAIL: clang cannot build an OpenMP program (Debian's libomp-14-dev): $(tail -2 "$t/trace")"; fails=$((fails + 1))
fi

# every library the build links (its link lines; the fuzz build's too once it was made)
n=0
while IFS= read -r f; do
  need "linked $f" "$f"; n=$((n + 1))
done < <(find "$BUILD" -name link.txt -exec cat {} + | tr ' ' '\n' | sort -u | while read -r tok; do
  case "$tok" in
    /usr/*.so*|/usr/*.a|/lib/*.so*) [ -f "$tok" ] && echo "$tok" ;;
    -l*) f=$(gcc -print-file-name="lib${tok#-l}.so"); [ -f "$f" ] && echo "$f" ;;
  esac
done | sort -u)
[ "$n" -gt 20 ] && echo "ok: $n libraries the build links checked" || { echo "FAIL: only $n libraries found in the link lines"; fails=$((fails + 1)); }

# the Python modules the tests import, and pydicom's JPEG 2000 decoder
for m in numpy pydicom nibabel h5py sklearn torch PIL PIL.Jpeg2KImagePlugin PIL._imaging; do
  f=$(/usr/bin/python3 -c "import $m, sys; sys.stdout.write($m.__file__)" 2>/dev/null)
  if [ -z "$f" ]; then echo "FAIL: python3 cannot import $m"; fails=$((fails + 1)); else need "python $m" "$f"; fi
done
/usr/bin/python3 -c "from PIL import features; import sys; sys.exit(not features.check('jpg_2000'))" \
  && echo "ok: Pillow reads JPEG 2000" || { echo "FAIL: Pillow cannot read JPEG 2000"; fails=$((fails + 1)); }

# the programs the tests run
progs="clang clang-format cmake python3 dcm2niix chromium dcmcjpeg dcmcjpls dcmcrle dcmconv dcmdump dcmdjpeg dcmdjpls dcmdrle flock timeout mpirun pgrep valgrind"
[ "$(dpkg --print-architecture)" = amd64 ] && progs="$progs qemu-x86_64" # test_shard_deflate_paths
for p in $progs; do
  f=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$p") || { echo "FAIL: $p is not installed"; fails=$((fails + 1)); continue; }
  need "program $p" "$f"
done
echo "$fails failed"
[ "$fails" -eq 0 ]
