#!/usr/bin/env python3
"""score_ensemble — the volume AUC of an ensemble of finished fits, at the score level: each
volume's score the mean of the fits' volume scores, against each fit's own AUC.

  score_ensemble.py --labels LABELS --test TEST FIT.csv [FIT.csv ...]

LABELS and the FIT.csv files are in det_table.py's forms (det_fit's predictions), TEST the
volumes to score, one series key a line. Candidates are not merged, so no CPM: the product's
ensembles (finetune.members) average heat maps instead. Measured figures:
docs/experiments/README.md.
"""
import argparse

from det_table import metrics, read_labels, read_pred


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("fits", nargs="+")
    a = ap.parse_args()
    lab, _, les = read_labels(a.labels)
    test = open(a.test).read().split()
    preds = [read_pred(f) for f in a.fits]
    for f, p in zip(a.fits, preds):
        print(f"{f}: AUC {metrics(test, lab, les, p)[0]:.3f}")
    mean = {k: sum(p[0][k] for p in preds) / len(preds) for k in test}
    print(f"mean of the {len(preds)} fits' scores: AUC {metrics(test, lab, les, (mean, {}))[0]:.3f}")


if __name__ == "__main__":
    main()
