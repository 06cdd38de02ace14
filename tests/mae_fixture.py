#!/usr/bin/env python3
"""Write the MAE numerical fixtures the C tests compare against (tests/mae_fixture_*.bin).

Uses the model code of the shared PyTorch twin (../shared/reference/mae3d_ref.py, imported,
never copied) on tiny configurations:
  3d  32^3 crops, 8^3 patches, width 48 x 2 blocks x 3 heads, decoder 32 x 2 x 4, batch 2:
      the twin's own forward (its recipe: normalised targets, loss on masked tokens only);
      weights, input, kept-token indices, loss, every parameter gradient, and the losses of
      10 AdamW steps (lr 1e-3, betas 0.9/0.95, weight decay 0.05), each with its own mask.
  2d  1x32x32 crops, 1x8x8 patches (a radiograph), width 24 x 1 x 2, decoder 12 x 1 x 2,
      the recipe options: plain targets and loss weight 0.5 on visible tokens; loss and
      every gradient, and 10 AdamW steps.

Record format (little-endian), repeated to end of file:
  u32 name_len, name bytes, u32 dtype (0 float32, 1 int32), u32 count, count values.
Usage: mae_fixture.py [--twin PATH] [--out DIR]
"""
import argparse
import importlib.util
import os
import struct
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def load_twin(path):
    sys.argv = [path, "--threads", "1"]  # the twin parses its options at import
    spec = importlib.util.spec_from_file_location("mae3d_ref", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sincos_axes(twin, dim, grid):
    """The twin's sincos_3d for a (gz, gy, gx) grid (identical to it for a cube)."""
    import numpy as np
    import torch
    d3 = 2 * (dim // 6)
    z, y, x = np.meshgrid(*[np.arange(g) for g in grid], indexing="ij")
    emb = np.zeros((int(np.prod(grid)), dim), dtype=np.float64)
    emb[:, 0:d3] = twin.sincos_1d(d3, z.reshape(-1))
    emb[:, d3:2 * d3] = twin.sincos_1d(d3, y.reshape(-1))
    emb[:, 2 * d3:3 * d3] = twin.sincos_1d(d3, x.reshape(-1))
    return torch.from_numpy(emb).float().unsqueeze(0)


def make_model(twin, cfg):
    """The twin's MAE3D with fixed noise, per-axis sizes and the two recipe options."""
    import torch

    class Fixed(twin.MAE3D):
        def random_masking(self, x):
            b, n, d = x.shape
            ids_shuffle = torch.argsort(self.noise, dim=1)
            ids_restore = torch.argsort(ids_shuffle, dim=1)
            ids_keep = ids_shuffle[:, :self.keep]
            self.ids_keep = ids_keep
            x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
            mask = torch.ones(b, n)
            mask[:, :self.keep] = 0
            mask = torch.gather(mask, 1, ids_restore)
            self.mask = mask
            return x, mask, ids_restore

        def patchify(self, img):
            if self.cube:
                return super().patchify(img)
            b, (gz, gy, gx), (pz, py, px) = img.shape[0], self.grid3, self.patch3
            x = img.reshape(b, gz, pz, gy, py, gx, px).permute(0, 1, 3, 5, 2, 4, 6)
            return x.reshape(b, gz * gy * gx, pz * py * px)

        def forward(self, img):
            if self.cube and self.norm_pix and self.vis_weight == 0:
                return super().forward(img)  # the twin's forward, untouched
            # the twin's forward with the recipe options (as experiments/mae_helps_cpu.py)
            target = self.patchify(img)
            x = self.patch_embed(target) + self.pos
            x, mask, ids_restore = self.random_masking(x)
            for blk in self.blocks:
                x = blk(x)
            x = self.dec_embed(self.norm(x))
            b, k, d = x.shape
            x = torch.cat([x, self.mask_token.expand(b, self.n - k, d)], dim=1)
            x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, d)) + self.dec_pos
            for blk in self.dec_blocks:
                x = blk(x)
            pred = self.dec_pred(self.dec_norm(x))
            if self.norm_pix:
                mean = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, keepdim=True)
                target = (target - mean) / (var + 1e-6) ** 0.5
            loss = ((pred - target) ** 2).mean(dim=-1)
            w = mask + self.vis_weight * (1 - mask)
            return (loss * w).sum() / mask.sum()

    crop, patch = cfg["crop"], cfg["patch"]
    cube = crop[0] == crop[1] == crop[2] and patch[0] == patch[1] == patch[2]
    a = types.SimpleNamespace(size=crop[2], patch=patch[2], dim=cfg["dim"], depth=cfg["depth"],
                              heads=cfg["heads"], dec_dim=cfg["dec_dim"],
                              dec_depth=cfg["dec_depth"], dec_heads=cfg["dec_heads"],
                              mlp_ratio=cfg["mlp_ratio"], mask_ratio=cfg["mask_ratio"])
    if not cube:  # build with a cube of the x size, then give it its real grid
        a.size, a.patch = crop[2], patch[2]
    m = Fixed(a)
    m.cube, m.norm_pix, m.vis_weight = cube, cfg["norm_pix"], cfg["vis_weight"]
    m.grid3 = tuple(c // p for c, p in zip(crop, patch))
    m.patch3 = tuple(patch)
    if not cube:
        n = m.grid3[0] * m.grid3[1] * m.grid3[2]
        pv = patch[0] * patch[1] * patch[2]
        m.n, m.keep = n, int(n * (1 - cfg["mask_ratio"]))
        m.patch_embed = torch.nn.Linear(pv, cfg["dim"])
        m.dec_pred = torch.nn.Linear(cfg["dec_dim"], pv)
        for lin in (m.patch_embed, m.dec_pred):
            torch.nn.init.xavier_uniform_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        m.pos = sincos_axes(twin, cfg["dim"], m.grid3)
        m.dec_pos = sincos_axes(twin, cfg["dec_dim"], m.grid3)
    return m


class Writer:
    def __init__(self, path):
        self.f = open(path, "wb")

    def put(self, name, values, dtype):
        import numpy as np
        arr = np.ascontiguousarray(np.asarray(values).reshape(-1),
                                   dtype="<f4" if dtype == 0 else "<i4")
        nb = name.encode()
        self.f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<II", dtype, arr.size))
        self.f.write(arr.tobytes())

    def close(self):
        self.f.close()


def fixture(twin, cfg, path, steps=10, lr=1e-3, wd=0.05):
    import torch
    import torch.nn.functional as F
    torch.manual_seed(cfg["seed"])
    m = make_model(twin, cfg)
    b = cfg["batch"]
    img = torch.randn(b, 1, *cfg["crop"])
    if cfg["crop"][0] > 1:
        img = F.avg_pool3d(img, 3, stride=1, padding=1)
    w = Writer(path)
    ints = cfg["crop"] + cfg["patch"] + [cfg[k] for k in (
        "dim", "depth", "heads", "dec_dim", "dec_depth", "dec_heads", "mlp_ratio", "batch",
        "norm_pix")] + [steps]
    w.put("config", ints, 1)
    w.put("mask_ratio", [cfg["mask_ratio"]], 0)
    w.put("vis_weight", [cfg["vis_weight"]], 0)
    w.put("adamw", [lr, 0.9, 0.95, 1e-8, wd], 0)
    w.put("img", img.numpy(), 0)
    for name, p in m.named_parameters():
        w.put("param:" + name, p.detach().numpy(), 0)
    # one forward/backward: loss and every gradient
    m.noise = torch.rand(b, m.n)
    loss = m(img)
    loss.backward()
    w.put("ids_keep", m.ids_keep.numpy().astype("int32"), 1)
    w.put("loss", [loss.item()], 0)
    for name, p in m.named_parameters():
        w.put("grad:" + name, p.grad.numpy(), 0)
    # 10 AdamW steps from the same weights, a fresh mask each step
    opt = torch.optim.AdamW(m.parameters(), lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=wd)
    losses, ids = [], []
    for _ in range(steps):
        m.noise = torch.rand(b, m.n)
        opt.zero_grad(set_to_none=True)
        loss = m(img)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        ids.append(m.ids_keep.numpy().astype("int32"))
    w.put("step_ids_keep", ids, 1)
    w.put("step_losses", losses, 0)
    w.close()
    print("%s: loss %.6f, %d steps, final loss %.6f, %d bytes" %
          (path, losses[0], steps, losses[-1], os.path.getsize(path)))


CONFIGS = {
    "3d": dict(crop=[32, 32, 32], patch=[8, 8, 8], dim=48, depth=2, heads=3, dec_dim=32,
               dec_depth=2, dec_heads=4, mlp_ratio=4, mask_ratio=0.75, batch=2, norm_pix=1,
               vis_weight=0.0, seed=1),
    "2d": dict(crop=[1, 32, 32], patch=[1, 8, 8], dim=24, depth=1, heads=2, dec_dim=12,
               dec_depth=1, dec_heads=2, mlp_ratio=4, mask_ratio=0.75, batch=2, norm_pix=0,
               vis_weight=0.5, seed=2),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--twin", default=os.path.join(HERE, "..", "..", "shared", "reference",
                                                  "mae3d_ref.py"))
    p.add_argument("--out", default=HERE)
    a = p.parse_args()
    if not os.path.isfile(a.twin):
        sys.exit("mae_fixture.py: the PyTorch twin is not at %s (give --twin PATH)" % a.twin)
    out, twin_path = a.out, a.twin
    twin = load_twin(twin_path)
    import torch
    torch.set_num_threads(1)
    for name, cfg in CONFIGS.items():
        fixture(twin, cfg, os.path.join(out, "mae_fixture_%s.bin" % name))


if __name__ == "__main__":
    main()
