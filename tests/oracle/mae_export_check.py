#!/usr/bin/env python3
"""Load vesalius's safetensors export into the project's PyTorch twin (tests/fixtures/mae_twin.py,
strict state_dict) and compare the twin's loss on the same batch and mask with the C loss.
Usage: mae_export_check.py DIR
Reads safetensors with a few lines (Debian has no python3-safetensors): u64 header length,
JSON header, raw little-endian tensors."""
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, h in header.items():
        assert h["dtype"] == "F32", name
        s, e = h["data_offsets"]
        out[name] = np.frombuffer(data[base + s:base + e], dtype="<f4").reshape(h["shape"])
    return out, meta


def main():
    d = sys.argv[1]
    sys.path.insert(0, os.path.join(os.environ["VESALIUS_SRC"], "tests", "fixtures"))
    import mae_twin
    import torch

    torch.set_num_threads(1)
    tensors, meta = read_safetensors(d + "/model.safetensors")
    crop = [int(v) for v in meta["crop"].split(",")]
    patch = [int(v) for v in meta["patch"].split(",")]
    model = mae_twin.MAE3D(crop, patch, int(meta["dim"]), int(meta["depth"]), int(meta["heads"]),
                           int(meta["dec_dim"]), int(meta["dec_depth"]), int(meta["dec_heads"]),
                           int(meta["mlp_ratio"]), float(meta["mask_ratio"]))
    state = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)  # every name and shape must match

    with open(d + "/batch.bin", "rb") as f:
        raw = f.read()
    b, k = struct.unpack("<ii", raw[:8])
    (c_loss,) = struct.unpack("<f", raw[8:12])
    cz, cy, cx = struct.unpack("<iii", raw[12:24])
    nv = b * cz * cy * cx
    img = np.frombuffer(raw[24:24 + 4 * nv], dtype="<f4").reshape(b, 1, cz, cy, cx)
    ids = np.frombuffer(raw[24 + 4 * nv:], dtype="<i4").reshape(b, k)
    with torch.no_grad():
        t_loss = float(model(torch.from_numpy(img.copy()), torch.from_numpy(ids.astype(np.int64))))
    rel = abs(t_loss - c_loss) / abs(t_loss)
    print("twin loss %.7f  C loss %.7f  relative difference %.2e" % (t_loss, c_loss, rel))
    if not rel <= 1e-4:
        print("FAIL: the exported model does not reproduce the C loss in the twin")
        sys.exit(1)
    print("ok: %d tensors loaded strictly into the twin" % len(state))


if __name__ == "__main__":
    main()
