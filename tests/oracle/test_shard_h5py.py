"""test_shard_h5py — shards written by C, read by h5py: every dataset and attribute as
io/shard/SHARD_SCHEMA.md documents it, the same voxels and geometry as the C writer held in memory,
checksums recomputed with hashlib, and the affine mapping a voxel to the same LPS point."""
import glob
import hashlib
import json
import os
import sys

import h5py
import numpy as np

root = sys.argv[1]
fails = 0


def check(ok, what):
    global fails
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        fails += 1


shards = sorted(glob.glob(os.path.join(root, "shards", "shard-*.h5")))
check(len(shards) == 2, "two sealed shards")
check(not glob.glob(os.path.join(root, "shards", "*.tmp")), "no temporary files left")
seen = set()
for path in shards:
    name = os.path.basename(path)
    with h5py.File(path, "r") as f:
        check(f.attrs["format"] == "vesalius-shard", name + ": format")
        check(int(f.attrs["schema_version"]) == 1, name + ": schema_version")
        check(isinstance(f.attrs["vesalius_version"], str), name + ": vesalius_version")
        params = json.loads(f.attrs["creation_parameters"])
        check(params["chunk"] == [32, 48, 48] and params["deflate"] == 6, name + ": parameters")
        check(params["caller"] == {"study": "h5py-test"}, name + ": caller parameters")
        index = f["index"][()]
        check(int(f.attrs["n_volumes"]) == len(index) == len(f["volumes"]), name + ": counts")
        first = 0
        for row in index:
            key = row["key"].decode()
            seen.add(key)
            ref = json.load(open(os.path.join(root, "ref", key + ".json")))
            d = f["volumes"][key]
            arr = d[()]
            want = np.fromfile(os.path.join(root, "ref", key + ".bin"),
                               dtype={"int16": "<i2", "float32": "<f4"}[ref["dtype"]])
            want = want.reshape(ref["shape"])
            check(arr.dtype == want.dtype and arr.shape == tuple(ref["shape"]),
                  key + ": dtype and shape (slice, row, column)")
            check(np.array_equal(arr, want), key + ": voxels bit-exact")
            check(d.compression == "gzip" and d.compression_opts == 6 and d.shuffle
                  and d.fletcher32, key + ": shuffle + deflate 6 + fletcher32")
            check(d.chunks == tuple(min(c, s) for c, s in zip((32, 48, 48), arr.shape)),
                  key + ": chunks clipped to the volume")
            for a in ("spacing", "origin", "direction", "affine"):
                got = np.asarray(d.attrs[a], dtype=np.float64).ravel()
                check(np.array_equal(got, np.asarray(ref[a])), key + ": " + a + " exact")
            check(d.attrs["direction"].shape == (3, 3) and d.attrs["affine"].shape == (4, 4),
                  key + ": matrix shapes")
            for a in ("modality", "body_part", "units", "preprocessing", "patient_key",
                      "study_key", "series_key", "checksum"):
                check(d.attrs[a] == ref[a], key + ": " + a)
            uid = d.attrs.get("series_instance_uid")
            check((uid or "") == ref["series_instance_uid"], key + ": series_instance_uid only when retained")
            digest = "sha256:" + hashlib.sha256(arr.astype(arr.dtype.newbyteorder("<")).tobytes()).hexdigest()
            check(digest == d.attrs["checksum"] == row["checksum"].decode(), key + ": checksum")
            # The affine is direction * spacing (index order column, row, slice) + origin.
            A = d.attrs["affine"]
            sp = d.attrs["spacing"]
            D = d.attrs["direction"]
            check(np.allclose(A[:3, :3], D * sp[None, :], rtol=0, atol=1e-12)
                  and np.array_equal(A[:3, 3], d.attrs["origin"]) and np.array_equal(A[3], [0, 0, 0, 1]),
                  key + ": affine == [direction*spacing | origin]")
            # voxel [k][j][i] sits at LPS affine @ (i, j, k, 1)
            k, j, i = (s - 1 for s in arr.shape)
            lps = A @ np.array([i, j, k, 1.0])
            manual = d.attrs["origin"] + i * sp[0] * D[:, 0] + j * sp[1] * D[:, 1] + k * sp[2] * D[:, 2]
            check(np.allclose(lps[:3], manual, atol=1e-9), key + ": last voxel maps to the same LPS point")
            check(tuple(row["shape"]) == arr.shape and row["modality"].decode() == ref["modality"]
                  and int(row["first_voxel"]) == first, key + ": index row")
            first += arr.size
check(seen == {"ct-0004", "dx-0006", "2.25.329800735698586629295641978511506172918"}, "every volume found")
print("%d failed" % fails)
sys.exit(1 if fails else 0)
