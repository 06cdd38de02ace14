#!/usr/bin/env python3
"""The project's PyTorch twin of the MAE (tests/fixtures/mae_twin.py), checked two ways, with
nothing from outside the repository:

1. Against the reference twin (../shared/reference/mae3d_ref.py), through the fixtures it wrote
   (tests/fixtures/mae_fixture_{3d,2d}.bin): with their weights, input and masks, the twin's
   loss, every parameter gradient and the losses of 10 AdamW steps equal the recorded ones
   (float32, per-tensor tolerance, worst difference printed).
2. Fixtures written by tests/fixtures/mae_fixture.py with this twin pass the C model's own
   test (test_mae_twin reading them through VESALIUS_FIXTURES): the fixtures, hence the C
   tests, can be made again from the repository alone.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

SRC = os.environ["VESALIUS_SRC"]
sys.path.insert(0, os.path.join(SRC, "tests", "fixtures"))
import mae_twin  # noqa: E402
from fixture_io import read_records  # noqa: E402

failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def close(a, b, rtol, atol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    worst = float(np.max(np.abs(a - b))) if a.size else 0.0
    return bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b))), worst


def against_fixture(name):
    r = read_records(os.path.join(SRC, "tests", "fixtures", "mae_fixture_%s.bin" % name))
    c = [int(v) for v in r["config"]]
    crop, patch = c[0:3], c[3:6]
    dim, depth, heads, dec_dim, dec_depth, dec_heads, mlp, batch, norm_pix, steps = c[6:16]
    m = mae_twin.MAE3D(crop, patch, dim, depth, heads, dec_dim, dec_depth, dec_heads, mlp,
                       float(r["mask_ratio"][0]), norm_pix, float(r["vis_weight"][0]))
    params = dict(m.named_parameters())
    with torch.no_grad():
        for pname, p in params.items():
            p.copy_(torch.from_numpy(r["param:" + pname].copy()).reshape(p.shape))
    img = torch.from_numpy(r["img"].copy()).reshape(batch, 1, *crop)
    ids = torch.from_numpy(r["ids_keep"].astype(np.int64)).reshape(batch, m.keep)
    loss = m(img, ids)
    loss.backward()
    ok, worst = close([loss.item()], r["loss"], 1e-6, 0)
    check(ok, "%s: loss %.7f, the reference's %.7f" % (name, loss.item(), r["loss"][0]))
    worst_grad, bad = 0.0, []
    for pname, p in params.items():
        ok, w = close(p.grad.numpy().reshape(-1), r["grad:" + pname], 1e-4, 1e-6)
        worst_grad = max(worst_grad, w)
        if not ok:
            bad.append(pname)
    check(not bad, "%s: %d gradients equal the reference's (worst %.2e)%s" % (
        name, len(params), worst_grad, "; differ: " + ", ".join(bad) if bad else ""))
    lr, b1, b2, eps, wd = (float(v) for v in r["adamw"])
    opt = torch.optim.AdamW(m.parameters(), lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    with torch.no_grad():  # back to the recorded weights (the step losses start from them)
        for pname, p in params.items():
            p.copy_(torch.from_numpy(r["param:" + pname].copy()).reshape(p.shape))
    step_ids = torch.from_numpy(r["step_ids_keep"].astype(np.int64)).reshape(steps, batch, m.keep)
    losses = []
    for s in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = m(img, step_ids[s])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    ok, worst = close(losses, r["step_losses"], 1e-4, 0)
    check(ok, "%s: %d AdamW step losses equal the reference's (worst %.2e)" % (name, steps, worst))


torch.set_num_threads(1)
for name in ("3d", "2d"):
    against_fixture(name)

# 2. fixtures from this twin, and the C model's test on them
out = tempfile.mkdtemp(prefix="vs_mae_fx_")
r = subprocess.run([sys.executable, os.path.join(SRC, "tests", "fixtures", "mae_fixture.py"), "--out", out],
                   capture_output=True, text=True)
check(r.returncode == 0, "mae_fixture.py writes fixtures with the twin (%s)" % r.stderr.strip()[-300:])
c_test = os.path.join(os.path.dirname(os.environ["VESALIUS"]), "tests", "test_mae_twin")
env = dict(os.environ, VESALIUS_FIXTURES=out)
r = subprocess.run([c_test], capture_output=True, text=True, env=env)
check(r.returncode == 0 and "PASSED" in r.stdout + r.stderr,
      "the C model passes test_mae_twin on fixtures written now (%s)" % (r.stdout + r.stderr).strip()[-300:])
for f in os.listdir(out):
    os.remove(os.path.join(out, f))
os.rmdir(out)
print("mae_twin_check: %d failed" % len(failures))
sys.exit(1 if failures else 0)
