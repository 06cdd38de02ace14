#!/usr/bin/env python3
"""det_table — does pretraining help at 10, 20 and 40 labels? The full table behind #15.

For every label budget (nested subsets: the first B keys of TRAIN), seed and arm it trains a
detector on the budget's volumes and predicts every TEST volume, then reports per cell the
volume AUC and CPM (LUNA16 FROC at 1/8..8 false positives per scan) with mean and sd over seeds,
and the paired MAE-minus-scratch (and MAE-minus-CNN) difference with a 95% bootstrap interval
over test patients and seeds. Arms:

  mae      the product's detector (tests/tools/det_fit, models/det.h) from the MAE checkpoint
  scratch  the same detector from a random initialisation, no layer decay
  cnn      a plain 3D U-Net-like CNN with the same CenterNet head, in PyTorch, from scratch, with
           the same crops, batch, steps and hard-negative mining (the bar a user would compare to)

Nothing here is tuned on TEST: choices come from a development split (docs/experiments/README.md).
Runs are cached in OUT (a finished run's predictions are reused), so the table can be grown.

  det_table.py --det-fit build/tests/det_fit --shards OUT/ingest/shards --labels labels.csv \
      --train train.txt --test test.txt --mae pretrain/checkpoint.ckpt --out table \
      [--budgets 10,20,40] [--seeds 0,1,2] [--arms mae,scratch,cnn] [--steps 3000] [--jobs 2]

labels.csv is validation/FORMATS.md's labels form (series, patient, label, x, y, z, diameter;
pseudonymous keys, LPS mm); TRAIN and TEST list series keys, one a line.
"""
import argparse, csv, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

FPS = [0.125, 0.25, 0.5, 1, 2, 4, 8]


def read_labels(path):
    lab, pat, les = {}, {}, {}
    for r in csv.DictReader(open(path)):
        lab[r["series"]] = int(r["label"])
        pat[r["series"]] = r["patient"]
        if r["x"]:
            les.setdefault(r["series"], []).append(([float(r[k]) for k in "xyz"], float(r["diameter"])))
    return lab, pat, les


def read_pred(path):
    score, cand = {}, {}
    for r in csv.DictReader(open(path)):
        if not r["x"]:
            score[r["series"]] = float(r["probability"])
        else:
            cand.setdefault(r["series"], []).append(([float(r[k]) for k in "xyz"], float(r["probability"])))
    return score, cand


def auc(y, s):
    y, s = np.asarray(y), np.asarray(s)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return gt / (len(pos) * len(neg))


def cpm(keys, cand, les):
    """LUNA16: a candidate within a lesion's radius hits it; others are false positives."""
    events, n_les = [], 0
    for k in keys:
        L = les.get(k, [])
        n_les += len(L)
        best = {}
        for c, p in cand.get(k, []):
            hit = False
            for i, (x, d) in enumerate(L):
                if sum((a - b) ** 2 for a, b in zip(c, x)) < (d / 2) ** 2:
                    hit = True
                    best[i] = max(best.get(i, -1.0), p)
            if not hit:
                events.append((p, 0))
        events += [(p, 1) for p in best.values()]
    if n_les == 0:
        return float("nan")
    events.sort(key=lambda e: -e[0])
    tp = fp = 0
    sens, fpr = [0.0], [0.0]
    for p, hit in events:
        tp, fp = tp + hit, fp + (1 - hit)
        sens.append(tp / n_les)
        fpr.append(fp / len(keys))
    return float(np.mean([np.interp(f, fpr, sens) for f in FPS]))


def metrics(keys, lab, les, pred):
    score, cand = pred
    return auc([lab[k] for k in keys], [score.get(k, 0.0) for k in keys]), cpm(keys, cand, les)


# ------------------------------------------------------------------------- the CNN arm
def run_cnn(shards, labels, train, test, out, steps, seed, batch=8, crop=32, lr=1e-3, mine_every=300):
    import glob, h5py, torch, torch.nn as nn, torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lab, pat, les = read_labels(labels)
    want = set(train) | set(test)
    vols = {}
    for f in sorted(glob.glob(os.path.join(shards, "*.h5"))):
        with h5py.File(f, "r") as h:
            for k in h["volumes"]:
                if k in want:
                    d = h["volumes"][k]
                    A = np.array(d.attrs["affine"]).reshape(4, 4)
                    L = []
                    for x, dia in les.get(k, []):
                        ijk = np.linalg.inv(A) @ np.array(x + [1.0])
                        L.append([ijk[2], ijk[1], ijk[0], dia])
                    vols[k] = dict(v=d[()].astype(np.float32), A=A, les=np.array(L).reshape(-1, 4),
                                   sp=np.array(d.attrs["spacing"])[::-1])
    C, ST = crop, 2

    def cbr(i, o, s=1):
        return nn.Sequential(nn.Conv3d(i, o, 3, s, 1), nn.InstanceNorm3d(o, affine=True), nn.LeakyReLU(0.01))

    class CNN(nn.Module):
        def __init__(s):
            super().__init__()
            s.a = nn.Sequential(cbr(1, 16, 2), cbr(16, 16))
            s.b = nn.Sequential(cbr(16, 32, 2), cbr(32, 32))
            s.c = nn.Sequential(cbr(32, 64, 2), cbr(64, 64))
            s.d, s.e = cbr(64 + 32, 32), cbr(32 + 16, 16)
            s.head = nn.Conv3d(16, 4, 1)
            nn.init.constant_(s.head.bias[:1], float(np.log(0.01 / 0.99)))

        def forward(s, x):
            a = s.a(x); b = s.b(a); c = s.c(b)
            d = s.d(torch.cat([F.interpolate(c, scale_factor=2), b], 1))
            return s.head(s.e(torch.cat([F.interpolate(d, scale_factor=2), a], 1)))

    def targets(L, sp):
        g = C // ST
        hm = np.zeros((g, g, g), np.float32); off = np.zeros((3, g, g, g), np.float32); msk = np.zeros_like(hm)
        ax = np.arange(g) * ST + (ST - 1) / 2
        zz, yy, xx = np.meshgrid(ax, ax, ax, indexing="ij")
        for l in L:
            sig = np.maximum(l[3] / 2 / sp / 2, 1.0)
            hm = np.maximum(hm, np.exp(-0.5 * (((zz - l[0]) / sig[0]) ** 2 + ((yy - l[1]) / sig[1]) ** 2 + ((xx - l[2]) / sig[2]) ** 2)))
            u = [(l[i] + 0.5) / ST for i in range(3)]
            c = [int(np.floor(x)) for x in u]
            if all(0 <= c[i] < g for i in range(3)):
                hm[c[0], c[1], c[2]] = 1.0; msk[c[0], c[1], c[2]] = 1.0
                for i in range(3):
                    off[i, c[0], c[1], c[2]] = u[i] - c[i]
        return hm, off, msk

    def sample(k, centre=None, on_lesion=False):
        d = vols[k]; v = d["v"]; sh = np.array(v.shape)
        if centre is not None:
            c = np.round(centre + rng.uniform(-C / 4, C / 4, 3)).astype(int)
        elif on_lesion and len(d["les"]):
            l = d["les"][rng.integers(len(d["les"]))]
            c = np.round(l[:3] + rng.uniform(-C / 3, C / 3, 3)).astype(int)
        else:
            c = np.array([rng.integers(0, n) for n in sh])
        s0 = np.clip(c - C // 2, 0, np.maximum(sh - C, 0))
        x = np.full((C, C, C), v.min(), np.float32)
        sub = v[s0[0]:s0[0] + C, s0[1]:s0[1] + C, s0[2]:s0[2] + C]
        x[:sub.shape[0], :sub.shape[1], :sub.shape[2]] = sub
        L = [np.concatenate([l[:3] - s0, l[3:]]) for l in d["les"]]
        for a in range(3):
            if rng.random() < 0.5:
                x = np.flip(x, a)
                L = [np.concatenate([l[:a], [C - 1 - l[a]], l[a + 1:]]) for l in L]
        x = np.ascontiguousarray(x) * (1 + rng.uniform(-0.1, 0.1)) + rng.uniform(-0.1, 0.1)
        return (x,) + targets(L, d["sp"])

    def loss_fn(out, hm, off, msk):
        p = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4); pos = (msk > 0.5).float()
        lp = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
        ln = -(torch.log(1 - p) * p ** 2 * (1 - hm) ** 4 * (1 - pos)).sum()
        n = pos.sum().clamp(min=1)
        return (lp + ln) / n + (F.l1_loss(out[:, 1:], off, reduction="none").sum(1) * msk).sum() / n

    model = CNN()

    @torch.no_grad()
    def predict(k):
        d = vols[k]; v = d["v"]; W = C; S = 3 * C // 4
        pad = [(0, max(W - n, 0) + (-(max(n, W) - W)) % S) for n in v.shape]
        x = np.pad(v, pad, constant_values=v.min()); g = [n // ST for n in x.shape]
        acc = torch.zeros(4, *g); cnt = torch.zeros(*g)
        starts = [range(0, n - W + 1, S) for n in x.shape]
        wins = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
        t = np.minimum(np.arange(W // ST) + 1, W // ST - np.arange(W // ST)).astype(np.float32)
        tw = torch.tensor(t[:, None, None] * t[None, :, None] * t[None, None, :])
        for i in range(0, len(wins), 8):
            ws = wins[i:i + 8]
            ob = model(torch.tensor(np.stack([x[a:a + W, b:b + W, c:c + W] for a, b, c in ws]))[:, None])
            for (a, b, c), o in zip(ws, ob):
                sl = (slice(a // ST, (a + W) // ST), slice(b // ST, (b + W) // ST), slice(c // ST, (c + W) // ST))
                acc[(slice(None),) + sl] += torch.cat([torch.sigmoid(o[:1]), o[1:]]) * tw; cnt[sl] += tw
        out = acc / cnt.clamp(min=1e-6)
        gz = [(n + ST - 1) // ST for n in v.shape]
        out = out[:, :gz[0], :gz[1], :gz[2]]
        h = out[0]; mp = F.max_pool3d(h[None, None], 3, 1, 1)[0, 0]
        pk = (h == mp) & (h > 0.01); idx = torch.nonzero(pk); sc = h[pk]; o = torch.argsort(-sc)[:50]
        cand = []
        for i in o:
            zyx = (idx[i].numpy() + out[1:, idx[i][0], idx[i][1], idx[i][2]].numpy()) * ST - 0.5
            lps = d["A"] @ np.array([zyx[2], zyx[1], zyx[0], 1.0])
            cand.append((lps[:3], float(sc[i]), zyx))
        return float(h.max()), cand

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    hard = []
    for step in range(steps):
        if mine_every and step >= steps // 3 and (step - steps // 3) % mine_every == 0:
            model.eval(); hard = []
            for k in train:
                _, cs = predict(k)
                kept = 0
                for _, p, zyx in cs:
                    mm = vols[k]["sp"]
                    if kept < 8 and all(np.sum(((zyx - l[:3]) * mm) ** 2) > max(l[3] / 2, 6.0) ** 2 for l in vols[k]["les"]):
                        hard.append((k, zyx)); kept += 1
            model.train()
        bt = []
        for _ in range(batch):
            u = rng.random()
            if hard and u < 0.25:
                k, c = hard[rng.integers(len(hard))]; bt.append(sample(k, centre=c))
            else:
                bt.append(sample(train[rng.integers(len(train))], on_lesion=u < 0.5))
        x, hm, off, msk = [torch.tensor(np.stack([b[i] for b in bt])) for i in range(4)]
        loss = loss_fn(model(x[:, None]), hm, off, msk)
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step()
    model.eval()
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write("series,x,y,z,probability\n")
        for k in test:
            s, cs = predict(k)
            f.write(f"{k},,,,{s:.6f}\n")
            for lps, p, _ in cs:
                f.write(f"{k},{lps[0]:.3f},{lps[1]:.3f},{lps[2]:.3f},{p:.6f}\n")
    os.replace(tmp, out)


# ------------------------------------------------------------------------------ driver
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for a in ("det-fit", "shards", "labels", "train", "test", "mae", "out"):
        ap.add_argument("--" + a, required=a not in ("mae", "det-fit"))
    ap.add_argument("--budgets", default="10,20,40")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default="mae,scratch,cnn")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--extra", default="", help="more key=value options for det_fit")
    ap.add_argument("--bootstrap", type=int, default=2000)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    # det_fit links OpenBLAS itself: give it the kernels vesalius chooses for this CPU
    # (pipeline/front.c, as bench/run does); a virtual CPU otherwise gets the slowest ones
    vesalius = a.det_fit and os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(a.det_fit))), "vesalius")
    if vesalius and "OPENBLAS_CORETYPE" not in os.environ and os.access(vesalius, os.X_OK):
        for line in subprocess.run([vesalius, "--version"], capture_output=True, text=True).stdout.splitlines():
            w = line.split()
            if w and w[0] == "OpenBLAS" and w[-1].startswith("MAX_THREADS"):
                os.environ["OPENBLAS_CORETYPE"] = w[-2]
    train = [l.strip() for l in open(a.train) if l.strip()]
    test = [l.strip() for l in open(a.test) if l.strip()]
    budgets = [int(b) for b in a.budgets.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    arms = a.arms.split(",")
    lab, pat, les = read_labels(a.labels)
    assert not set(train) & set(test), "a volume is in both TRAIN and TEST"
    assert not {pat[k] for k in train} & {pat[k] for k in test}, "a patient is in both TRAIN and TEST"

    def job(arm, b, s):
        out = os.path.join(a.out, f"{arm}-b{b}-s{s}.csv")
        if os.path.exists(out):
            return out
        lst = os.path.join(a.out, f"train-b{b}.txt")
        with open(lst, "w") as f:
            f.write("\n".join(train[:b]) + "\n")
        t0 = time.time()
        if arm == "cnn":
            run_cnn(a.shards, a.labels, train[:b], test, out, a.steps, s)
        else:
            opts = [f"steps={a.steps}", f"seed={s}", "threads=1"] + a.extra.split()
            opts += [f"init={a.mae}", "layer_decay=0.75"] if arm == "mae" else ["layer_decay=1"]
            if arm == "scratch" and a.mae:  # the MAE's architecture, from a random start
                opts += [f"arch_of={a.mae}"]
            subprocess.run([a.det_fit, a.shards, a.labels, lst, a.test, out + ".tmp"] + opts,
                           check=True, stdout=subprocess.DEVNULL, stderr=open(out + ".log", "w"))
            os.replace(out + ".tmp", out)
        print(f"{arm} budget {b} seed {s}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        return out

    cells = [(arm, b, s) for b in budgets for s in seeds for arm in arms]
    with ThreadPoolExecutor(a.jobs) as ex:
        paths = dict(zip(cells, ex.map(lambda c: job(*c), cells)))
    preds = {c: read_pred(p) for c, p in paths.items()}

    rng = np.random.default_rng(0)
    patients = sorted({pat[k] for k in test})
    by_pat = {p: [k for k in test if pat[k] == p] for p in patients}
    rows = []
    print(f"{'budget':>6} {'arm':>8} {'AUC mean (sd)':>16} {'CPM mean (sd)':>16}")
    for b in budgets:
        for arm in arms:
            m = np.array([metrics(test, lab, les, preds[(arm, b, s)]) for s in seeds])
            rows.append(dict(budget=b, arm=arm, auc=m[:, 0].mean(), auc_sd=m[:, 0].std(ddof=1) if len(seeds) > 1 else 0.0,
                             cpm=m[:, 1].mean(), cpm_sd=m[:, 1].std(ddof=1) if len(seeds) > 1 else 0.0))
            r = rows[-1]
            print(f"{b:>6} {arm:>8} {r['auc']:.3f} ({r['auc_sd']:.3f})    {r['cpm']:.3f} ({r['cpm_sd']:.3f})")
        for other in [x for x in arms if x != "mae"]:
            if "mae" not in arms:
                break
            diffs = []
            for _ in range(a.bootstrap):  # resample test patients and seeds, paired across arms
                ks = [k for p in rng.choice(patients, len(patients)) for k in by_pat[p]]
                ss = rng.choice(seeds, len(seeds))
                d = [np.subtract(metrics(ks, lab, les, preds[("mae", b, s)]),
                                 metrics(ks, lab, les, preds[(other, b, s)])) for s in ss]
                diffs.append(np.nanmean(d, axis=0))
            diffs = np.array(diffs)
            point = np.mean([np.subtract(metrics(test, lab, les, preds[("mae", b, s)]),
                                         metrics(test, lab, les, preds[(other, b, s)])) for s in seeds], axis=0)
            lo, hi = np.nanpercentile(diffs, [2.5, 97.5], axis=0)
            print(f"{b:>6} mae-{other}: AUC {point[0]:+.3f} [{lo[0]:+.3f}, {hi[0]:+.3f}]  "
                  f"CPM {point[1]:+.3f} [{lo[1]:+.3f}, {hi[1]:+.3f}]")
            rows.append(dict(budget=b, arm=f"mae-{other}", auc=point[0], auc_lo=lo[0], auc_hi=hi[0],
                             cpm=point[1], cpm_lo=lo[1], cpm_hi=hi[1]))
    keys = ["budget", "arm", "auc", "auc_sd", "auc_lo", "auc_hi", "cpm", "cpm_sd", "cpm_lo", "cpm_hi"]
    with open(os.path.join(a.out, "table.csv"), "w") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k, "")) for k in keys})


if __name__ == "__main__":
    main()
