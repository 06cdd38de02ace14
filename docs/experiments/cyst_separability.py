#!/usr/bin/env python3
"""cyst_separability — can a cyst be told from a tumour by what the detector's input holds? For
every labeled tumour and every cyst of a synthetic cohort, simple intensity features measured in
the preprocessed shards (the detector's input, in HU through the study's CT window): the core's
mean and spread, the surround, the contrast between them and the edge gradient per unit of
contrast; then the cross-validated AUC of cyst vs tumour for each feature (logistic regression)
and for all of them together (a random forest), over every tumour and over the hypodense ones.

  cyst_separability.py --uid-key build/tests/uid_key SHARDS COHORT SITE_KEY [--window LO HI]

SHARDS is a `vesalius run` output's ingest/shards, COHORT the `vesalius demo-cohort` folder
(labels/annotations.csv, labels/lookalikes.csv), SITE_KEY the study's key. A diagnosis of the
cohort at the study's scale, not a detector: no choice of the product is made from it. Measured
figures: docs/experiments/README.md.
"""
import argparse, csv, glob, subprocess

import h5py
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

NAMES = ["core HU", "core sd", "surround HU", "contrast", "edge / contrast"]


def features(v, affine, lps, diameter):
    """The five features of the object at lps (mm) with this diameter in volume v (HU)."""
    k, j, i = np.meshgrid(*[np.arange(n) for n in v.shape], indexing="ij")
    p = np.stack([i, j, k], -1) @ affine[:3, :3].T + affine[:3, 3]
    dist = np.linalg.norm(p - np.asarray(lps), axis=-1)
    r = diameter / 2
    core, shell = v[dist <= max(0.6 * r, 3.0)], v[(dist > r + 3) & (dist < r + 9)]
    contrast = core.mean() - np.median(shell)
    edge = np.linalg.norm(np.stack(np.gradient(v)), axis=0)[(dist > r - 3) & (dist < r + 3)]
    return [core.mean(), core.std(), shell.mean(), contrast, edge.mean() / max(abs(contrast), 1.0)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uid-key", required=True)
    ap.add_argument("--window", nargs=2, type=float, default=[-160.0, 240.0])
    ap.add_argument("shards")
    ap.add_argument("cohort")
    ap.add_argument("key")
    a = ap.parse_args()
    objs = []  # (seriesuid, lps, diameter, is tumour)
    for name, tumour in (("annotations", 1), ("lookalikes", 0)):
        for r in csv.DictReader(open(f"{a.cohort}/labels/{name}.csv")):
            if tumour or r["kind"] == "cyst":
                objs.append((r["seriesuid"], [float(r[c]) for c in ("coordX", "coordY", "coordZ")],
                             float(r["diameter_mm"]), tumour))
    uids = sorted({o[0] for o in objs})
    keyed = subprocess.run([a.uid_key, a.key], input="\n".join(uids) + "\n", capture_output=True,
                           text=True, check=True).stdout.split()
    key_of = dict(line.split(",") for line in keyed)
    where = {}
    for f in sorted(glob.glob(f"{a.shards}/*.h5")):
        with h5py.File(f, "r") as h:
            for k in h["volumes"]:
                where[k] = f
    lo, hi = a.window
    X, y = [], []
    for uid, lps, d, tumour in objs:
        k = key_of[uid]
        if k not in where:
            continue
        with h5py.File(where[k], "r") as h:
            ds = h["volumes"][k]
            X.append(features(ds[()] * (hi - lo) + lo, ds.attrs["affine"], lps, d))
            y.append(tumour)
    X, y = np.array(X), np.array(y)
    hypo = (y == 0) | (X[:, 3] < 0)
    print(f"{(y == 0).sum()} cysts, {(y == 1).sum()} tumours ({(hypo & (y == 1)).sum()} hypodense)")
    for i, n in enumerate(NAMES):
        print(f"  {n:16s} cyst {X[y == 0, i].mean():6.1f} sd {X[y == 0, i].std():5.1f} | tumour "
              f"{X[y == 1, i].mean():6.1f} sd {X[y == 1, i].std():5.1f} | hypodense tumour "
              f"{X[hypo & (y == 1), i].mean():6.1f} sd {X[hypo & (y == 1), i].std():5.1f}")
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    for i, n in enumerate(NAMES):
        z = (X[:, [i]] - X[:, [i]].mean()) / X[:, [i]].std()
        auc = cross_val_score(LogisticRegression(max_iter=1000), z, y, cv=cv, scoring="roc_auc")
        print(f"  cyst vs tumour by {n}: AUC {auc.mean():.3f}")
    forest = RandomForestClassifier(300, min_samples_leaf=3, random_state=0)
    for sel, n in ((np.ones(len(y), bool), "every tumour"), (hypo, "hypodense tumours")):
        auc = cross_val_score(forest, X[sel], y[sel], cv=cv, scoring="roc_auc")
        print(f"  cyst vs {n}, all five features (random forest): AUC {auc.mean():.3f}")


if __name__ == "__main__":
    main()
