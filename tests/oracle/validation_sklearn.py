#!/usr/bin/python3
"""validation_sklearn.py WORKDIR — `vesalius validate` against scikit-learn and a Python twin
of LUNA16's noduleCADEvaluationLUNA16.py (computeFROC: sklearn roc_curve, then numpy.interp).

Checks, each printed as ok/FAIL: ROC points and AUC equal roc_curve(drop_intermediate=False)
and roc_auc_score on random, heavily tied and two-arm cases; Brier, operating points and
reliability bins (pooled over seeds); per-seed AUC and their mean; one class only is a clear
error with no report written; on the realistic simulated study (validation_data.py: label
budgets 10 and 20, 3 seeds, dev and test series): FROC sensitivities, CPM and AP of the test
series, and every 95% interval of the paired bootstrap over test patients and seeds, recomputed
here with numpy, sklearn and a Python PCG32 drawing the same resamples.
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
        f.write("series,seed,arm,probability\n")
        for arm, seeds in preds.items():
            for seed, rows in enumerate(seeds):
                for k, s in rows.items():
                    f.write("%s,%d,%s,%.6f\n" % (k, seed, arm, s))
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
    """arms: arm -> one score list per seed. Curves pool the seeds; AUC is their mean."""
    labels = dict(zip(keys, y))
    preds = {arm: [dict(zip(keys, sc)) for sc in seeds] for arm, seeds in arms.items()}
    p, rep, _ = run(name, labels, preds)
    check(name + ": validate exits 0", p.returncode == 0, p.stderr)
    if rep is None:
        return
    for arm, seeds in arms.items():
        per = [np.round(np.asarray(sc), 6) for sc in seeds]
        s = np.concatenate(per)
        yb = np.tile(np.asarray(y), len(per))
        vol = rep["arms"][arm]["volume"]
        fpr, tpr, thr = roc_curve(yb, s, drop_intermediate=False)
        roc = np.array([[np.nan if t is None else t for t in pt] for pt in vol["roc"]])
        check("%s/%s: ROC fpr, tpr equal sklearn roc_curve over the seeds (%d points)" % (name, arm, len(fpr)),
              close(roc[:, 1], fpr) and close(roc[:, 2], tpr))
        check("%s/%s: ROC thresholds equal sklearn's (first is +inf: null)" % (name, arm),
              vol["roc"][0][0] is None and close(roc[1:, 0], thr[1:]))
        aucs = [roc_auc_score(y, sc) for sc in per]
        auc = float(np.mean(aucs))
        check("%s/%s: AUC equals the mean over seeds of roc_auc_score" % (name, arm),
              abs(vol["auc"]["value"] - auc) <= TOL, "%r vs %r" % (vol["auc"]["value"], auc))
        check("%s/%s: comparison.%s.auc.value is the AUC" % (name, arm, arm),
              abs(rep["comparison"][arm]["auc"]["value"] - auc) <= TOL)
        got = [ps["auc"] for ps in rep["arms"][arm]["seeds"]["per_seed"]]
        check("%s/%s: per-seed AUC equals roc_auc_score per seed" % (name, arm), close(got, aucs))
        if len(per) > 1:
            check("%s/%s: sd over seeds (n - 1)" % (name, arm),
                  abs(rep["arms"][arm]["seeds"]["auc_sd"] - float(np.std(aucs, ddof=1))) <= TOL)
        cal = vol["calibration"]
        check("%s/%s: Brier equals brier_score_loss" % (name, arm),
              abs(cal["brier"] - brier_score_loss(yb, s)) <= TOL)
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
    n_cases = len(rep["cases"])
    check(name + ": cases table has one row per series, seed and arm",
          n_cases == len(keys) * sum(len(v) for v in arms.values()))


rnd = random.Random(2024)
keys = ["S%04d" % i for i in range(200)]
y = [1 if rnd.random() < 0.35 else 0 for _ in keys]
volume_case("random", keys, y, {"mae": [[rnd.random() for _ in keys]]})
volume_case("tied", keys, y, {"mae": [[rnd.choice([0, .25, .5, .75, 1]) for _ in keys]],
                              "scratch": [[rnd.choice([.2, .8]) if yy else rnd.choice([.2, .2, .8]) for yy in y]]})
volume_case("separable", keys[:30], [i % 2 for i in range(30)],
            {"mae": [[0.9 if i % 2 else 0.1 for i in range(30)]]})
volume_case("seeds", keys, y, {arm: [[min(1, max(0, rnd.gauss(0.3 + 0.3 * yy, 0.25))) for yy in y] for _ in range(3)]
                               for arm in ("mae", "scratch")})

# one class only: a clear error, no NaN, nothing written
p, rep, out = run("oneclass", {k: 0 for k in keys[:20]}, {"mae": [{k: rnd.random() for k in keys[:20]}]})
check("one class: exit code 1", p.returncode == 1, "got %d" % p.returncode)
check("one class: the message says both classes are needed", "needs both classes" in p.stderr, p.stderr)
check("one class: no NaN in the message", "nan" not in p.stderr.lower())
check("one class: no report written", not os.path.exists(os.path.join(out, "report.json")))

# ---- FROC / CPM / AP and the bootstrap: Python twins on the realistic study ----
sim = os.path.join(work, "sim")
subprocess.run(["/usr/bin/python3", os.path.join(HERE, "..", "fixtures", "validation_data.py"), sim], check=True)
lesions, label, patient_of = {}, {}, {}
with open(os.path.join(sim, "labels.csv")) as f:
    for r in csv.DictReader(f):
        label[r["series"]] = int(r["label"])
        patient_of[r["series"]] = r["patient"]
        if r["x"]:
            lesions.setdefault(r["series"], []).append(
                (float(r["x"]), float(r["y"]), float(r["z"]), float(r["diameter"]), r["irrelevant"] == "1"))
# fit -> {series: volume score}, fit -> {series: [candidates]}; fit = (arm, budget, seed)
score, cands, sets = {}, {}, {}
def take(r):
    fit = (r["arm"], int(r["budget"]), int(r["seed"]))
    sets[r["series"]] = r["set"]
    cands.setdefault(fit, {}).setdefault(r["series"], [])
    if r.get("x") in (None, ""):
        score.setdefault(fit, {})[r["series"]] = float(r["probability"])
    else:
        cands[fit][r["series"]].append((float(r["x"]), float(r["y"]), float(r["z"]), float(r["probability"])))
with open(os.path.join(sim, "predictions_mae.csv")) as f:
    for r in csv.DictReader(f):
        take(r)
with open(os.path.join(sim, "predictions_scratch.jsonl")) as f:
    for line in f:
        take(json.loads(line))
test = sorted((k for k in label if sets[k] == "test"), key=lambda k: k.encode())
BUDGETS, SEEDS = (10, 20), (0, 1, 2)


def luna16(scans):
    """noduleCADEvaluationLUNA16.py's matching and computeFROC, condensed. scans: a list of
    (series, candidates), a series listed as often as it counts."""
    gt, prob, excl = [], [], []
    n_images = len(scans)
    dup = irr_hits = 0
    for sk, cs in scans:
        cand = dict(enumerate(cs))
        cand2 = dict(cand)
        hit_rel, hit_irr = set(), set()
        for (x, y, z, d, irr) in lesions.get(sk, []):
            r2 = (d / 2.0) ** 2
            inside = [i for i, c in cand.items() if (c[0] - x) ** 2 + (c[1] - y) ** 2 + (c[2] - z) ** 2 < r2]
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
                gt.append(1.0); prob.append(max(cand[i][3] for i in inside)); excl.append(False)
            else:
                gt.append(1.0); prob.append(-1); excl.append(True)
        for c in cand2.values():
            gt.append(0.0); prob.append(c[3]); excl.append(False)
        irr_hits += len(hit_irr - hit_rel)
    gl = [g for g, e in zip(gt, excl) if not e]
    pl = [p for p, e in zip(prob, excl) if not e]
    n_det, n_les = sum(gl), sum(gt)
    if n_les == 0:
        return None, float("nan"), float("nan"), None, dup, irr_hits
    fpr, tpr, _ = roc_curve(gl, pl)
    fps = fpr * (len(pl) - n_det) / n_images
    sens = tpr * n_det / n_les
    pts = [0.125, 0.25, 0.5, 1, 2, 4, 8]
    s_itp = np.interp(pts, fps, sens)
    ap = average_precision_score(gl, pl) * n_det / n_les
    fpr, tpr, _ = roc_curve(gl, pl, drop_intermediate=False)
    curve = np.stack([fpr * (len(pl) - n_det) / n_images, tpr * n_det / n_les], axis=1)
    return s_itp, float(np.mean(s_itp)), ap, curve, dup, irr_hits


B = 200
out = os.path.join(sim, "out")
p = subprocess.run([V, "validate", "--labels", os.path.join(sim, "labels.csv"),
                    "--predictions", os.path.join(sim, "predictions_mae.csv"),
                    "--predictions", os.path.join(sim, "predictions_scratch.jsonl"),
                    "--out", out, "--bootstrap", str(B), "--seed", "5"], capture_output=True, text=True)
check("realistic study: validate exits 0", p.returncode == 0, p.stderr)
rep = json.load(open(os.path.join(out, "report.json"))) if p.returncode == 0 else None
for arm in ("mae", "scratch"):
    if rep is None:
        break
    pooled = [(k, cands[(arm, 20, sd)][k]) for sd in SEEDS for k in test]
    s_itp, _, _, curve, dup, irr_hits = luna16(pooled)
    per_seed = [luna16([(k, cands[(arm, 20, sd)][k]) for k in test]) for sd in SEEDS]
    cpm = float(np.mean([x[1] for x in per_seed]))
    ap = float(np.mean([x[2] for x in per_seed]))
    les = rep["arms"][arm]["lesion"]
    got = [c["sensitivity"] for c in les["cpm_sensitivities"]]
    check("%s: sensitivities at 1/8..8 FP/scan (seeds pooled) equal the LUNA16 twin" % arm, close(got, s_itp),
          "%r vs %r" % (got, list(s_itp)))
    check("%s: CPM equals the mean over seeds of the LUNA16 twin's (%.4f)" % (arm, cpm),
          abs(les["cpm"]["value"] - cpm) <= TOL, "%r" % les["cpm"]["value"])
    check("%s: AP equals the mean over seeds of sklearn average_precision_score x detected/all" % arm,
          abs(les["ap"]["value"] - ap) <= TOL, "%r vs %r" % (les["ap"]["value"], ap))
    froc = np.array([pt[1:] for pt in les["froc"]])
    check("%s: every FROC point equals the twin's (%d points)" % (arm, len(curve)), close(froc, curve))
    check("%s: duplicate hits (%d) and irrelevant-only hits (%d) counted as the twin does" % (arm, dup, irr_hits),
          les["n_duplicate_hits"] == dup and les["n_irrelevant_hits"] == irr_hits and dup > 0,
          "%d, %d" % (les["n_duplicate_hits"], les["n_irrelevant_hits"]))


# the operating point chosen on dev (seeds of the headline budget pooled), applied to test
devk = [k for k in label if sets[k] == "dev"]
for arm in ("mae", "scratch"):
    if rep is None:
        break
    pos = sorted((score[(arm, 20, sd)][k] for sd in SEEDS for k in devk if label[k]), reverse=True)
    thr = pos[math.ceil(0.9 * len(pos) - 1e-9) - 1]
    ys = np.array([label[k] for sd in SEEDS for k in test])
    ss = np.array([score[(arm, 20, sd)][k] for sd in SEEDS for k in test])
    sens, spec = np.mean(ss[ys == 1] >= thr), np.mean(ss[ys == 0] < thr)
    op = rep["arms"][arm]["volume"]["dev_operating_point"]
    check("%s: the dev-chosen threshold (%.3f: sensitivity >= 0.9 on dev) and its test sensitivity and specificity" % (arm, thr),
          op is not None and abs(op["threshold"] - thr) <= TOL and abs(op["sensitivity"] - sens) <= TOL
          and abs(op["specificity"] - spec) <= TOL, "%r vs %r" % (op, (thr, sens, spec)))


class PCG32:
    """io/base/rng.c: PCG32 (O'Neill 2014), rng_seed and rng_below (pcg32_boundedrand)."""
    M64, M32 = (1 << 64) - 1, (1 << 32) - 1

    def __init__(self, seed, stream):
        self.state, self.inc = 0, ((stream << 1) | 1) & self.M64
        self.u32()
        self.state = (self.state + seed) & self.M64
        self.u32()

    def u32(self):
        old = self.state
        self.state = (old * 6364136223846793005 + self.inc) & self.M64
        xs = (((old >> 18) ^ old) >> 27) & self.M32
        rot = old >> 59
        return ((xs >> rot) | (xs << ((-rot) & 31))) & self.M32

    def below(self, n):
        threshold = ((1 << 32) - n) % n
        while True:
            x = self.u32()
            if x >= threshold:
                return x % n


def auc_w(keys, sc, w):
    yy = np.array([label[k] for k in keys]); ww = np.array(w, float)
    if ww[yy == 1].sum() == 0 or ww[yy == 0].sum() == 0:
        return float("nan")
    keep = ww > 0
    return roc_auc_score(yy[keep], np.array([sc[k] for k in keys])[keep], sample_weight=ww[keep])


def seed_mean(vals, ms):
    num = sum(m * v for m, v in zip(ms, vals) if m and not math.isnan(v))
    den = sum(m for m, v in zip(ms, vals) if m and not math.isnan(v))
    return num / den if den else float("nan")


if rep is not None:
    pats = []  # the test patients in the order of the test series (sorted by key), as the report numbers them
    for k in test:
        if patient_of[k] not in pats:
            pats.append(patient_of[k])
    for budget in BUDGETS:
        r = PCG32(5, 0x626f6f74)
        vals = {(arm, m): [] for arm in ("mae", "scratch") for m in ("auc", "cpm")}
        for b in range(B):
            count = [0] * len(pats)
            for _ in pats:
                count[r.below(len(pats))] += 1
            ms = [0] * len(SEEDS)
            for _ in SEEDS:
                ms[r.below(len(SEEDS))] += 1
            w = [count[pats.index(patient_of[k])] for k in test]
            for arm in ("mae", "scratch"):
                aucs = [auc_w(test, score[(arm, budget, sd)], w) if ms[i] else float("nan") for i, sd in enumerate(SEEDS)]
                cpms = [luna16([(k, cands[(arm, budget, sd)][k]) for k, c in zip(test, w) for _ in range(c)])[1]
                        if ms[i] else float("nan") for i, sd in enumerate(SEEDS)]
                vals[(arm, "auc")].append(seed_mean(aucs, ms))
                vals[(arm, "cpm")].append(seed_mean(cpms, ms))
        row = [x for x in rep["budgets"] if x["budget"] == budget][0]
        for m in ("auc", "cpm"):
            for arm in ("mae", "scratch"):
                v = np.array(vals[(arm, m)]); v = v[~np.isnan(v)]
                want = np.quantile(v, [0.025, 0.975])
                got = row[arm][m]["ci95"]
                check("budget %d %s %s: 95%% interval over test patients and seeds equals the numpy twin" % (budget, arm, m),
                      close(got, want), "%r vs %r" % (got, list(want)))
            dv = np.array(vals[("mae", m)]) - np.array(vals[("scratch", m)]); dv = dv[~np.isnan(dv)]
            want = np.quantile(dv, [0.025, 0.975])
            got = row["difference_mae_minus_scratch"][m]["ci95"]
            check("budget %d %s: paired difference interval equals the numpy twin" % (budget, m), close(got, want),
                  "%r vs %r" % (got, list(want)))
print("%d failed" % fails)
sys.exit(1 if fails else 0)
