# mpi_env.sh — sourced by the MPI tests: Open MPI's mpirun as root (the variables Open MPI asks
# for before it runs as root, set here rather than on the machine), more ranks than cores
# (--oversubscribe) and no pinning (--bind-to none: ranks of a 2-core machine share its cores),
# and the helpers every test uses.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
V=${VESALIUS:?}
MPIRUN=${MPIEXEC:-mpirun}
M="$MPIRUN --oversubscribe --bind-to none"
fails=0
check() { if [ "$2" != "$3" ]; then echo "FAIL: $1 (exit $3, wanted $2)"; fails=$((fails + 1)); else echo "ok: $1"; fi; }
same() { if cmp -s "$2" "$3"; then echo "ok: $1"; else echo "FAIL: $1 ($2 and $3 differ)"; fails=$((fails + 1)); fi; }
contains() { if grep -q -- "$3" "$2"; then echo "ok: $1"; else echo "FAIL: $1 (no '$3' in:)"; sed 's/^/    /' "$2" | head -20; fails=$((fails + 1)); fi; }
# the step, thread and rank counts a checkpoint records (models/mae_train.h)
ckpt_field() {
  /usr/bin/python3 -c 'import struct, sys
b = open(sys.argv[1], "rb").read(); o = 16 + 8 * struct.unpack_from("<I", b, 12)[0]
print({"step": struct.unpack_from("<q", b, o)[0], "threads": struct.unpack_from("<i", b, o + 8)[0],
       "ranks": struct.unpack_from("<i", b, o + 12)[0]}[sys.argv[2]])' "$1" "$2"
}
# fail when a vesalius process of this test (its folder in the command line) is still running
none_left() {
  sleep 0.5
  local left
  left=$(pgrep -f -- "$2")
  if [ -n "$left" ]; then
    echo "FAIL: $1 (processes left:)"; pgrep -af -- "$2"; fails=$((fails + 1))
    kill -9 $left 2>/dev/null
  else echo "ok: $1"; fi
}
