#!/usr/bin/python3
"""validation_data.py OUT_DIR [SEED [N_SERIES]] — a realistic, deterministic validation study.

Simulates what `vesalius predict` writes for 40 labeled CT scans from 32 patients (about half
with 1-3 tumours of 5-30 mm, some lesions marked irrelevant), in 5 patient-level folds, for two
detectors: one fine-tuned from the MAE (sharper, fewer false positives) and one from scratch.
Writes labels.csv, predictions_mae.csv, predictions_scratch.jsonl (the JSON-lines syntax),
pretrain.log / finetune_mae.log / finetune_scratch.log (JSON lines as log_event writes them),
preview.png (a reconstruction-like grey image) and shards/*.h5 stand-ins.
Extra columns carry planted identifiers that must never reach a report.
"""
import json, math, os, random, struct, sys, zlib

out = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 7
rnd = random.Random(seed)
os.makedirs(out, exist_ok=True)
PLANTED = ["DOE^JOHN", "19650412", "MRN-4471923"]

n_series = int(sys.argv[3]) if len(sys.argv) > 3 else 40
n_patients, k = n_series * 4 // 5, 5
patients = ["P%04d" % (1000 + i) for i in range(n_patients)]
series = []
for i in range(n_series):
    p = patients[i] if i < n_patients else patients[rnd.randrange(n_patients)]
    series.append(("1.2.826.0.1.3680043.10.1." + str(5000 + i * 7), p))
fold_of_patient = {p: i % k for i, p in enumerate(sorted(patients, key=lambda _: rnd.random()))}

lesions = {}  # series -> [(x, y, z, diameter, irrelevant)]
for key, _ in series:
    ls = []
    if rnd.random() < 0.5:
        for _ in range(rnd.choice([1, 1, 2, 3])):
            ls.append((rnd.uniform(-150, 150), rnd.uniform(-120, 120), rnd.uniform(-300, 0),
                       rnd.uniform(5, 30), 1 if rnd.random() < 0.12 else 0))
    lesions[key] = ls

with open(os.path.join(out, "labels.csv"), "w") as f:
    f.write("series,patient,label,x,y,z,diameter,irrelevant,patient_name\n")
    for key, p in series:
        lab = 1 if any(not l[4] for l in lesions[key]) else 0
        if not lesions[key]:
            f.write("%s,%s,%d,,,,,,%s\n" % (key, p, lab, PLANTED[0]))
        for (x, y, z, d, irr) in lesions[key]:
            f.write("%s,%s,%d,%.3f,%.3f,%.3f,%.2f,%d,%s\n" % (key, p, lab, x, y, z, d, irr, PLANTED[0]))

def detector(arm, skill, fp_rate):
    rows = []
    for key, p in series:
        fold = fold_of_patient[p]
        cands = []
        for (x, y, z, d, irr) in lesions[key]:
            if rnd.random() < skill:  # found: near the centre, sometimes twice
                for _ in range(1 if rnd.random() < 0.8 else 2):
                    r = d / 2 * rnd.uniform(0, 0.8)
                    th, ph = rnd.uniform(0, 2 * math.pi), rnd.uniform(0, math.pi)
                    prob = min(0.999, max(0.01, rnd.gauss(0.55 + 0.35 * skill, 0.15)))
                    cands.append((x + r * math.sin(ph) * math.cos(th), y + r * math.sin(ph) * math.sin(th),
                                  z + r * math.cos(ph), round(prob, 3)))
        for _ in range(rnd.randrange(0, 2 * fp_rate + 1)):
            prob = min(0.99, max(0.01, rnd.betavariate(1.5, 4 + 4 * skill)))
            cands.append((rnd.uniform(-150, 150), rnd.uniform(-120, 120), rnd.uniform(-300, 0), round(prob, 3)))
        rows.append((key, fold, cands))
    return rows

def write_csv(path, arm, rows):
    with open(path, "w") as f:
        f.write("series,fold,arm,x,y,z,probability,referring_physician\n")
        for key, fold, cands in rows:
            f.write("%s,%d,%s,,,,%.3f,%s\n" % (key, fold, arm, max([c[3] for c in cands] + [0.02]), PLANTED[1]))
            for (x, y, z, prob) in cands:
                f.write("%s,%d,%s,%.2f,%.2f,%.2f,%.3f,%s\n" % (key, fold, arm, x, y, z, prob, PLANTED[1]))

def write_jsonl(path, arm, rows):
    with open(path, "w") as f:
        for key, fold, cands in rows:
            f.write(json.dumps({"series": key, "fold": fold, "arm": arm, "probability": max([c[3] for c in cands] + [0.02]),
                                "mrn": PLANTED[2]}) + "\n")
            for (x, y, z, prob) in cands:
                f.write(json.dumps({"series": key, "fold": fold, "arm": arm, "x": round(x, 2), "y": round(y, 2),
                                    "z": round(z, 2), "probability": prob, "nested": {"a": [1, "}"]}}) + "\n")

write_csv(os.path.join(out, "predictions_mae.csv"), "mae", detector("mae", 0.85, 2))
write_jsonl(os.path.join(out, "predictions_scratch.jsonl"), "scratch", detector("scratch", 0.6, 4))

def log(path, component, steps, l0, l1):
    with open(path, "w") as f:
        for s in range(0, steps + 1, 10):
            loss = l1 + (l0 - l1) * math.exp(-s / (steps / 4)) + rnd.gauss(0, 0.01)
            f.write(json.dumps({"time": "2026-01-01T00:00:%02d.000Z" % (s % 60), "level": "info",
                                "component": component, "event": "train.step",
                                "msg": "step for " + PLANTED[0], "step": str(s), "loss": "%.5f" % loss}) + "\n")
            if s % 100 == 0:
                f.write(json.dumps({"time": "x", "level": "info", "component": component,
                                    "event": "checkpoint", "msg": "saved"}) + "\n")
log(os.path.join(out, "pretrain.log"), "pretrain", 600, 1.0, 0.35)
log(os.path.join(out, "finetune_mae.log"), "finetune", 300, 0.8, 0.12)
log(os.path.join(out, "finetune_scratch.log"), "finetune", 300, 0.9, 0.3)

def png(path, w, h):
    raw = b""
    for yy in range(h):
        raw += b"\x00" + bytes(int(128 + 100 * math.sin(xx / 7.0) * math.cos(yy / 9.0)) for xx in range(w))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(os.path.join(out, "preview.png"), 96, 64)

os.makedirs(os.path.join(out, "shards"), exist_ok=True)
for i in range(3):
    with open(os.path.join(out, "shards", "shard-%03d.h5" % i), "wb") as f:
        f.write(bytes(rnd.randrange(256) for _ in range(1000)))
with open(os.path.join(out, "study.yaml"), "w") as f:
    f.write("# demo study\nseed: %d\nvalidation:\n  bootstrap: 1000\n" % seed)
