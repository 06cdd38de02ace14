#!/usr/bin/env bash
# test_mae_export — the safetensors export loads into the PyTorch twin (strict state_dict) and
# gives the C loss on the same batch and mask within 1e-4. Skipped (77) when the twin or
# python3-torch is absent.
set -u
src=${VESALIUS_SRC:?}
probe=$(dirname "${VESALIUS:?}")/tests/mae_export_probe
twin=""
for c in "${MAE_TWIN:-}" "$src/../shared/reference/mae3d_ref.py" "$src/../../shared/reference/mae3d_ref.py"; do
  [ -n "$c" ] && [ -f "$c" ] && { twin=$c; break; }
done
if [ -z "$twin" ]; then echo "SKIP: the PyTorch twin mae3d_ref.py is not found (set MAE_TWIN)"; exit 77; fi
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then echo "SKIP: python3-torch is missing"; exit 77; fi
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$probe" "$t" || { echo "FAIL: mae_export_probe"; exit 1; }
/usr/bin/python3 "$src/tests/oracle/mae_export_check.py" "$twin" "$t"
