# fold_eval.py LABELS.csv SPLITS.csv PRED.csv FOLD — volume AUC of a fold's training and held-out patients
# (volume row = max token probability) and how many lesions a top-4 candidate hits (within
# max(radius, 8 mm)), from `vesalius predict` output over every labeled volume.
import csv, sys, math
from sklearn.metrics import roc_auc_score
labels, splits, pred, fold = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
lab = {}; les = {}
for r in csv.DictReader(open(labels)):
    lab[r['series']] = (r['patient'], int(r['label']))
    if r['x']: les.setdefault(r['series'], []).append([float(r[k]) for k in 'xyz'] + [float(r['diameter'])])
pf = {}
for r in csv.DictReader(l for l in open(splits) if not l.startswith('#')): pf[r['patient']] = int(r['fold'])
score = {}; cands = {}
for r in csv.DictReader(open(pred)):
    if r['series'] not in lab: continue
    if not r['x']: score[r['series']] = float(r['probability'])
    else: cands.setdefault(r['series'], []).append([float(r[k]) for k in 'xyz'] + [float(r['probability'])])
for part in ('train', 'test'):
    ss = [s for s in score if (pf[lab[s][0]] == fold) == (part == 'test')]
    y = [lab[s][1] for s in ss]; p = [score[s] for s in ss]
    hit = tot = 0
    for s in ss:
        for l in les.get(s, []):
            tot += 1
            top = sorted(cands.get(s, []), key=lambda c: -c[3])[:4]
            if any(math.dist(c[:3], l[:3]) < max(l[3] / 2, 8) for c in top): hit += 1
    auc = roc_auc_score(y, p) if 0 < sum(y) < len(y) else float('nan')
    print(f"{part}: n={len(ss)} pos={sum(y)} AUC={auc:.3f} lesions hit in top4 {hit}/{tot}")
