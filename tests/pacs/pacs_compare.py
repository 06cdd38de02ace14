#!/usr/bin/python3
"""pacs_compare.py A B — two `vesalius ingest` outputs hold the same live volumes (the catalog's
live rows, read with sqlite3, then the shards with h5py, independently of vesalius): the same
keys (series, study, patient pseudonyms), voxel checksums, shapes, modality and geometry,
whatever the shard layout. Prints the first differences."""
import sqlite3, sys
import h5py, numpy as np

def volumes(out):
    v = {}
    db = sqlite3.connect('file:%s/catalog.sqlite?mode=ro' % out, uri=True)
    live = db.execute("SELECT h.name, v.series_key FROM volumes v JOIN shards h ON v.shard_id=h.id"
                      " WHERE v.state='live'").fetchall()
    by_shard = {}
    for name, key in live:
        by_shard.setdefault(name, []).append(key)
    for name, keys in sorted(by_shard.items()):
        with h5py.File('%s/shards/%s' % (out, name), 'r') as h:
            for k in keys:
                d = h['volumes'][k]
                a = d.attrs
                row = (a['checksum'], d.shape, str(a['modality']), str(a['study_key']), str(a['patient_key']),
                       tuple(np.round(np.array(a['affine'], float).ravel(), 5)),
                       tuple(np.round(np.array(a['spacing'], float), 5)))
                if k in v and v[k] != row:
                    print('%s: volume %s twice with different content' % (out, k))
                v[k] = row
    return v

a, b = volumes(sys.argv[1]), volumes(sys.argv[2])
diff = sorted(set(a) ^ set(b)) + sorted(k for k in set(a) & set(b) if a[k] != b[k])
for k in diff[:5]:
    print('differs: %s\n  A: %s\n  B: %s' % (k, a.get(k), b.get(k)))
print('%d volumes vs %d, %d differ' % (len(a), len(b), len(diff)))
sys.exit(1 if diff or not a else 0)
