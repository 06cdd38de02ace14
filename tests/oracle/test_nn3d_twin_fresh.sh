#!/usr/bin/env bash
# test_nn3d_twin_fresh — the PyTorch twin in the tree (tests/fixtures/nn3d_twin.py) writes a
# fresh fixture now; the C layers must match it (test_nn3d_twin reading it through
# VESALIUS_FIXTURES, as test_mae_twin_torch does for the MAE), and the committed
# nn3d_fixture.bin must be what the twin writes today (every tensor within 1e-6 of its scale),
# else it is stale: regenerate it with `python3 tests/fixtures/nn3d_twin.py`.
# python3-torch is in the Makefile's PACKAGES: its absence fails the test, it does not skip it.
# Usage: test_nn3d_twin_fresh.sh TEST_NN3D_TWIN_BINARY
set -u
src=${VESALIUS_SRC:?}
bin=${1:?usage: test_nn3d_twin_fresh.sh TEST_NN3D_TWIN_BINARY}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
/usr/bin/python3 "$src/tests/fixtures/nn3d_twin.py" --out "$t" ||
  { echo "FAIL: the twin could not write a fixture (is python3-torch installed?)"; exit 1; }
VESALIUS_FIXTURES=$t "$bin" || { echo "FAIL: the C layers against the fresh fixture"; exit 1; }
/usr/bin/python3 - "$src/tests/fixtures/nn3d_fixture.bin" "$t/nn3d_fixture.bin" <<'PY' || exit 1
import os, sys
import numpy as np
sys.path.insert(0, os.path.join(os.environ["VESALIUS_SRC"], "tests", "fixtures"))
from fixture_io import read_records as records

committed, fresh = records(sys.argv[1]), records(sys.argv[2])
bad = sorted(set(committed) ^ set(fresh))
worst = 0.0
for name in sorted(set(committed) & set(fresh)):
    a, b = committed[name].astype(np.float64), fresh[name].astype(np.float64)
    if a.shape != b.shape:
        bad.append(name)
        continue
    # a floor of 1e-6 under the scale: the gradients of the biases of convolutions that an
    # InstanceNorm follows are zero in exact arithmetic, ~1e-14 of rounding that differs
    # between machines (the committed fixture and a fresh one differed by 1.4x of it)
    rel = np.abs(a - b).max(initial=0.0) / max(np.abs(b).max(initial=0.0), 1e-6)
    worst = max(worst, rel)
    if rel > 1e-6:
        bad.append(name)
print("committed fixture vs the twin today: %d records, worst relative difference %.2e"
      % (len(fresh), worst))
if bad:
    print("FAIL: stale nn3d_fixture.bin (%s); regenerate: python3 tests/fixtures/nn3d_twin.py"
          % ", ".join(bad[:8]))
    sys.exit(1)
PY
echo "ok: the C layers match a fresh fixture of the twin, and the committed one is current"
