#!/usr/bin/python3
"""split_check.py — an independent Python reading of studies/splits.h (hashlib's BLAKE2b, not
libsodium): roles of a split from its patients and classes, the budget order of a run seed and
the fit seed. Imported by the split and fine-tuning tests; run as
`split_check.py SPLITS.csv` it recomputes the file's roles from its own patients, classes, seed
and shares and exits 1 on any difference."""
import hashlib, math, struct, sys


def rank(seed, purpose, run, key):
    k = struct.pack("<QII", seed, purpose, run)
    return struct.unpack("<Q", hashlib.blake2b(key.encode(), digest_size=8, key=k).digest())[0]


def fit_seed(seed, run):
    return rank(seed, 3, run, "fit")


def read(path):
    lines = open(path).read().splitlines()
    head = dict(f.split("=") for f in lines[0].split()[4:])
    assert lines[0].startswith("# vesalius splits v2 ") and lines[1] == "patient,positive,role", lines[:2]
    rows = [l.split(",") for l in lines[2:]]
    return (int(head["seed"]), float(head["dev_share"]), float(head["test_share"]),
            {p: (int(pos), role) for p, pos, role in rows})


def roles(patients, seed, dev_share, test_share):
    """patients: {key: positive}; returns {key: role}."""
    out = {}
    for cls in (0, 1):
        ks = sorted((k for k, p in patients.items() if p == cls), key=lambda k: (rank(seed, 1, 0, k), k))
        m = len(ks)
        n_test = min(m, math.floor(test_share * m + 0.5))
        n_dev = min(m - n_test, math.floor(dev_share * m + 0.5))
        for j, k in enumerate(ks):
            out[k] = "test" if j < n_test else "dev" if j < n_test + n_dev else "train"
    return out


def budget_order(train, seed, run):
    """train: {key: positive} of the training patients; the order run seed `run` takes them."""
    cls = [sorted((k for k, p in train.items() if p == c), key=lambda k: (rank(seed, 2, run, k), k)) for c in (0, 1)]
    P, N = len(cls[1]), len(train)
    taken, out = [0, 0], []
    for pos in range(N):
        if taken[1] == len(cls[1]):
            c = 0
        elif taken[0] == len(cls[0]):
            c = 1
        elif pos == 1:
            c = 0 if taken[1] else 1
        else:
            c = 1 if 2 * ((pos + 1) * P - taken[1] * N) >= N else 0
        out.append(cls[c][taken[c]])
        taken[c] += 1
    return out


if __name__ == "__main__":
    seed, dev, test, rows = read(sys.argv[1])
    want = roles({k: p for k, (p, _) in rows.items()}, seed, dev, test)
    bad = [k for k, (_, r) in rows.items() if want[k] != r]
    print(("FAIL: %d roles differ from the Python reading" % len(bad)) if bad else
          "ok: %d roles equal the Python reading of splits.h" % len(rows))
    sys.exit(1 if bad else 0)
