#!/usr/bin/python3
"""validation_sklearn.py WORKDIR — `vesalius validate` against scikit-learn and a Python twin
of LUNA16's noduleCADEvaluationLUNA16.py (computeFROC: sklearn roc_curve, then numpy.interp).

Checks, each printed as ok/FAIL: ROC points and AUC equal roc_curve(drop_intermediate=False)
and roc_auc_score on random, heavily tied and two-arm cases; Brier, operating points and
reliability bins; one class only is a clear error with no report written; per-fold AUC;
FROC sensitivities, CPM and AP on the realistic simulated study (validation_data.py).
"""
import csv, json, math, os, random, subprocess, sys
import numpy as np
from sklearn.metrics import roc_curve, roc_auc_score, brier_score_loss, average_precision_score

work = sys.argv[1]
V = os.environ["VESALIUS"]
HERE = os.path.dirname(os.path.abspath(__file__))
fails = 0
TOL = 2e-9  # report.json prints 10 decimals


def check(what, ok, detail=""):
    global fails
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else " " + detail))
    fails += 0 if ok else 1


def close(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and (a.size == 0 or np.max(np.abs(a - b)) <= TOL)


def run(name, labels, preds, extra=()):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "labels.csv"), "w") as f:
        f.write("series,label\n")
        for k, y in labels.items():
            f.write("%s,%d\n" % (k, y))
    with open(os.path.join(d, "pred.csv"), "w") as f:
        f.write("series,fold,arm,probability\n")
        for arm, rows in preds.items():
            for k, (fold, s) in rows.items():
                f.write("%s,%d,%s,%.6f\n" % (k, fold, arm, s))
    out = os.path.join(d, "out")
    p = subprocess.run([V, "validate", "--labels", os.path.join(d, "labels.csv"), "--predictions",
                        os.path.join(d, "pred.csv"), "--out", out, "--bootstrap", "0",
                        "--operating-point", "0.5", "--operating-point", "0.25", *extra],
                       capture_output=True, text=True)
    rep = None
    if p.returncode == 0:
        with open(os.path.join(out, "report.json")) as f:
            rep = json.load(f)
    return p, rep, out


def volume_case(name, keys, y, arms):
    labels = dict(zip(keys, y))
    preds = {arm: {k: (i % 5, s[i]) for i, k in enumerate(keys)} for arm, s in arms.items()}
    p, rep, _ = run(name, labels, preds)
    check(name + ": validate exits 0", p.returncode == 0, p.stderr)
    if rep is None:
        return
    for arm, s in arms.items():
        s = np.round(np.asarray(s), 6)
        vol = rep["arms"][arm]["volume"]
        fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
        roc = np.array([[np.nan if t is None else t for t in pt] for pt in vol["roc"]])
        check("%s/%s: ROC fpr, tpr equal sklearn roc_curve (%d points)" % (name, arm, len(fpr)),
              close(roc[:, 1], fpr) and close(roc[:, 2], tpr))
        check("%s/%s: ROC thresholds equal sklearn's (first is +inf: null)" % (name, arm),
              vol["roc"][0][0] is None and close(roc[1:, 0], thr[1:]))
        auc = roc_auc_score(y, s)
        check("%s/%s: AUC equals roc_auc_score" % (name, arm),
              abs(vol["auc"]["value"] - auc) <= TOL, "%r vs %r" % (vol["auc"]["value"], auc))
        check("%s/%s: comparison.%s.auc.value is the AUC" % (name, arm, arm),
              abs(rep["comparison"][arm]["auc"]["value"] - auc) <= TOL)
        cal = vol["calibration"]
        check("%s/%s: Brier equals brier_score_loss" % (name, arm),
              abs(cal["brier"] - brier_score_loss(y, s)) <= TOL)
        yb = np.asarray(y)
        for op in vol["operating_points"]:
            called = s >= op["threshold"]
            sens = np.sum(called & (yb == 1)) / np.sum(yb == 1)
            spec = np.sum(~called & (yb == 0)) / np.sum(yb == 0)
            check("%s/%s: sensitivity/specificity at %g" % (name, arm, op["threshold"]),
                  abs(op["sensitivity"] - sens) <= TOL and abs(op["specificity"] - spec) <= TOL)
        bins = np.minimum((s * 10).astype(int), 9)
        counts = [int(np.sum(bins == b)) for b in range(10)]
        check("%s/%s: reliability bin counts" % (name, arm),
              counts == [b["count"] for b in cal["bins"]])
        folds = np.array([i % 5 for i in range(len(keys))])
        want = []
        for f in range(5):
            m = folds == f
            want.append(roc_auc_score(yb[m], s[m]) if len(set(yb[m])) == 2 else None)
        got = [pf["auc"] for pf in rep["arms"][arm]["folds"]["per_fold"]]
        check("%s/%s: per-fold AUC equals roc_auc_score per fold" % (name, arm),
              all((g is None and w is None) or (g is not None and w is not None and abs(g - w) <= TOL)
                  for g, w in zip(got, want)) and len(got) == 5)
    n_cases = len(rep["cases"])
    check(name + ": cases table has one row per series and arm", n_cases == len(keys) * len(arms))


rnd = random.Random(2024)
keys = ["S%04d" % i for i in range(200)]
y = [1 if rnd.random() < 0.35 else 0 for _ in keys]
volume_case("random", keys, y, {"mae": [rnd.random() for _ in keys]})
volume_case("tied", keys, y, {"mae": [rnd.choice([0, .25, .5, .75, 1]) for _ in keys],
                              "scratch": [rnd.choice([.2, .8]) if yy else rnd.choice([.2, .2, .8]) for yy in y]})
volume_case("separable", keys[:30], [i % 2 for i in range(30)],
            {"mae": [0.9 if i % 2 else 0.1 for i in range(30)]})

# one class only: a clear error, no NaN, nothing written
p, rep, out = run("oneclass", {k: 0 for k in keys[:20]}, {"mae": {k: (0, rnd.random()) for k in keys[:20]}})
check("one class: exit code 1", p.returncode == 1, "got %d" % p.returncode)
check("one class: the message says both classes are needed", "needs both classes" in p.stderr, p.stderr)
check("one class: no NaN in the message", "nan" not in p.stderr.lower())
check("one class: no report written", not os.path.exists(os.path.join(out, "report.json")))

# ---- FROC / CPM / AP: Python twin of LUNA16's evaluation on the realistic study ----
sim = os.path.join(work, "sim")
subprocess.run(["/usr/bin/python3", os.path.join(HERE, "..", "fixtures", "validation_data.py"), sim], check=True)
lesions = {}
series = set()
with open(os.path.join(sim, "labels.csv")) as f:
    for r in csv.DictReader(f):
        series.add(r["series"])
        if r["x"]:
            lesions.setdefault(r["series"], []).append(
                (float(r["x"]), float(r["y"]), float(r["z"]), float(r["diameter"]), r["irrelevant"] == "1"))
cands = {"mae": [], "scratch": []}
with open(os.path.join(sim, "predictions_mae.csv")) as f:
    for r in csv.DictReader(f):
        if r["x"]:
            cands["mae"].append((r["series"], float(r["x"]), float(r["y"]), float(r["z"]), float(r["probability"])))
with open(os.path.join(sim, "predictions_scratch.jsonl")) as f:
    for line in f:
        r = json.loads(line)
        if "x" in r:
            cands["scratch"].append((r["series"], r["x"], r["y"], r["z"], r["probability"]))


def luna16(cs):
    """noduleCADEvaluationLUNA16.py's matching and computeFROC, condensed."""
    gt, prob, excl = [], [], []
    n_images = len(series)
    dup = irr_hits = 0
    for sk in sorted(series):
        cand = {i: c for i, c in enumerate(cs) if c[0] == sk}
        cand2 = dict(cand)
        hit_rel, hit_irr = set(), set()
        for (x, y, z, d, irr) in lesions.get(sk, []):
            r2 = (d / 2.0) ** 2
            inside = [i for i, c in cand.items() if (c[1] - x) ** 2 + (c[2] - y) ** 2 + (c[3] - z) ** 2 < r2]
            if irr:
                for i in inside:
                    cand2.pop(i, None)
                hit_irr.update(inside)
                continue
            for i in inside:
                cand2.pop(i, None)
            hit_rel.update(inside)
            dup += max(0, len(inside) - 1)
            if inside:
                gt.append(1.0); prob.append(max(cand[i][4] for i in inside)); excl.append(False)
            else:
                gt.append(1.0); prob.append(-1); excl.append(True)
        for c in cand2.values():
            gt.append(0.0); prob.append(c[4]); excl.append(False)
        irr_hits += len(hit_irr - hit_rel)
    gl = [g for g, e in zip(gt, excl) if not e]
    pl = [p for p, e in zip(prob, excl) if not e]
    n_det, n_les = sum(gl), sum(gt)
    fpr, tpr, _ = roc_curve(gl, pl)
    fps = fpr * (len(pl) - n_det) / n_images
    sens = tpr * n_det / n_les
    pts = [0.125, 0.25, 0.5, 1, 2, 4, 8]
    s_itp = np.interp(pts, fps, sens)
    ap = average_precision_score(gl, pl) * n_det / n_les
    fpr, tpr, _ = roc_curve(gl, pl, drop_intermediate=False)
    curve = np.stack([fpr * (len(pl) - n_det) / n_images, tpr * n_det / n_les], axis=1)
    return s_itp, float(np.mean(s_itp)), ap, curve, dup, irr_hits


out = os.path.join(sim, "out")
p = subprocess.run([V, "validate", "--labels", os.path.join(sim, "labels.csv"),
                    "--predictions", os.path.join(sim, "predictions_mae.csv"),
                    "--predictions", os.path.join(sim, "predictions_scratch.jsonl"),
                    "--out", out, "--bootstrap", "0"], capture_output=True, text=True)
check("realistic study: validate exits 0", p.returncode == 0, p.stderr)
rep = json.load(open(os.path.join(out, "report.json"))) if p.returncode == 0 else None
for arm in ("mae", "scratch"):
    if rep is None:
        break
    s_itp, cpm, ap, curve, dup, irr_hits = luna16(cands[arm])
    les = rep["arms"][arm]["lesion"]
    got = [c["sensitivity"] for c in les["cpm_sensitivities"]]
    check("%s: sensitivities at 1/8..8 FP/scan equal the LUNA16 twin" % arm, close(got, s_itp),
          "%r vs %r" % (got, list(s_itp)))
    check("%s: CPM equals the LUNA16 twin (%.4f)" % (arm, cpm), abs(les["cpm"]["value"] - cpm) <= TOL,
          "%r" % les["cpm"]["value"])
    check("%s: AP equals sklearn average_precision_score x detected/all" % arm,
          abs(les["ap"]["value"] - ap) <= TOL, "%r vs %r" % (les["ap"]["value"], ap))
    froc = np.array([pt[1:] for pt in les["froc"]])
    check("%s: every FROC point equals the twin's (%d points)" % (arm, len(curve)), close(froc, curve))
    check("%s: duplicate hits (%d) and irrelevant-only hits (%d) counted as the twin does" % (arm, dup, irr_hits),
          les["n_duplicate_hits"] == dup and les["n_irrelevant_hits"] == irr_hits and dup > 0,
          "%d, %d" % (les["n_duplicate_hits"], les["n_irrelevant_hits"]))
print("%d failed" % fails)
sys.exit(1 if fails else 0)
