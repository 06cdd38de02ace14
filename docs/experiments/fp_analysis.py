#!/usr/bin/env python3
"""fp_analysis — where a finished run's detector goes wrong on its test set, read against a
synthetic cohort's truth: what the strongest candidate of each negative volume sits on (a cyst
from lookalikes.csv, or anything else), the volume AUC with every cyst candidate dropped, and
which lesions, by diameter, score above the negatives' median and 90th percentile.

  fp_analysis.py --uid-key build/tests/uid_key OUT COHORT SITE_KEY [ARM ...]

OUT is a `vesalius run` output (finetune-ARM/predictions-ARM.csv, finetune-mae/labels.csv),
COHORT a `vesalius demo-cohort` folder (labels/lookalikes.csv), SITE_KEY the study's key (the
cysts' UIDs become series keys through it). A candidate hits a lesion within its radius (at
least 5 mm) and a cyst within its radius + 3 mm. Measured figures: docs/experiments/README.md.
"""
import argparse, collections, csv, subprocess

import numpy as np

from det_table import auc, read_labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uid-key", required=True)
    ap.add_argument("out")
    ap.add_argument("cohort")
    ap.add_argument("key")
    ap.add_argument("arms", nargs="*", default=["mae", "scratch"])
    a = ap.parse_args()
    lab, _, raw = read_labels(f"{a.out}/finetune-mae/labels.csv")
    les = {s: [(np.array(x), d) for x, d in v] for s, v in raw.items()}
    look = list(csv.DictReader(open(f"{a.cohort}/labels/lookalikes.csv")))
    uids = sorted({r["seriesuid"] for r in look})
    keyed = subprocess.run([a.uid_key, a.key], input="\n".join(uids) + "\n", capture_output=True,
                           text=True, check=True).stdout.split()
    key_of = dict(line.split(",") for line in keyed)
    cyst = collections.defaultdict(list)
    for r in look:
        cyst[key_of[r["seriesuid"]]].append(
            (np.array([float(r[k]) for k in ("coordX", "coordY", "coordZ")]), float(r["diameter_mm"])))

    def kind(s, c):
        for x, d in les.get(s, []):
            if np.linalg.norm(c - x) <= max(d / 2, 5):
                return "lesion"
        for x, d in cyst.get(s, []):
            if np.linalg.norm(c - x) <= max(d / 2, 5) + 3:
                return "cyst"
        return "other"

    for arm in a.arms:
        rows = [r for r in csv.DictReader(open(f"{a.out}/finetune-{arm}/predictions-{arm}.csv"))
                if r["set"] == "test"]
        for fit in sorted({(int(r["budget"]), int(r["seed"])) for r in rows}):
            cand, vs = collections.defaultdict(list), {}
            for r in rows:
                if (int(r["budget"]), int(r["seed"])) != fit:
                    continue
                if r["x"]:
                    cand[r["series"]].append((np.array([float(r[k]) for k in "xyz"]), float(r["probability"])))
                else:
                    vs[r["series"]] = float(r["probability"])
            test = sorted(set(vs) | set(cand))
            score = {s: vs.get(s, max([p for _, p in cand[s]], default=0.0)) for s in test}
            no_cyst = {s: max([p for c, p in cand[s] if kind(s, c) != "cyst"], default=0.0) for s in test}
            y = [lab[s] for s in test]
            top = lambda s: kind(s, max(cand[s], key=lambda t: t[1])[0])
            neg = collections.Counter(top(s) for s in test if lab[s] == 0 and cand[s])
            pos = collections.Counter(top(s) for s in test if lab[s] == 1 and cand[s])
            print(f"{arm} budget {fit[0]} seed {fit[1]}: AUC {auc(y, [score[s] for s in test]):.3f}, "
                  f"without cyst candidates {auc(y, [no_cyst[s] for s in test]):.3f}; top candidate of "
                  f"negatives {dict(neg)}, of positives {dict(pos)}")
            negs = np.array([score[s] for s in test if lab[s] == 0])
            hit = np.array([(d, max([p for c, p in cand[s] if np.linalg.norm(c - x) <= max(d / 2, 5)], default=0.0))
                            for s in test if lab[s] == 1 for x, d in les[s]])
            for lo, hi in ((0, 12), (12, 20), (20, 1000)):
                sel = hit[(hit[:, 0] >= lo) & (hit[:, 0] < hi)]
                if len(sel):
                    print(f"  lesions {lo}-{hi if hi < 1000 else ''} mm: {len(sel)}, above the negatives' "
                          f"median {np.mean(sel[:, 1] > np.median(negs)):.2f}, above their 90th percentile "
                          f"{np.mean(sel[:, 1] > np.percentile(negs, 90)):.2f}")


if __name__ == "__main__":
    main()
