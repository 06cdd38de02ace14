#!/usr/bin/env bash
# test_mae_export — the safetensors export loads into the project's PyTorch twin
# (tests/fixtures/mae_twin.py, strict state_dict) and gives the C loss on the same batch and
# mask within 1e-4. Needs python3-torch (the Makefile's PACKAGES); fails without it.
set -u
src=${VESALIUS_SRC:?}
probe=$(dirname "${VESALIUS:?}")/tests/mae_export_probe
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$probe" "$t" || { echo "FAIL: mae_export_probe"; exit 1; }
/usr/bin/python3 "$src/tests/oracle/mae_export_check.py" "$t"
