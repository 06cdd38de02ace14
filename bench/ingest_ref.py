#!/usr/bin/python3
"""bench/ingest_ref.py SERIES_DIR OUT.h5 — the peer of `vesalius ingest` in bench/ingest.sh:
what a hospital's research engineer writes with pydicom, numpy and h5py in an afternoon.

Reads every DICOM file of one series, orders the slices along the normal of
ImageOrientationPatient, applies RescaleSlope/Intercept, keeps int16 when the values fit, drops
the identifying attributes it copies nothing from (it stores only voxels and geometry), and
writes one HDF5 dataset: chunks 64^3, byte shuffle, gzip level 1, with spacing, origin and
direction as attributes. One thread, as such scripts are.
"""
import os
import sys

import h5py
import numpy as np
import pydicom


def load(folder):
    slices = []
    for name in sorted(os.listdir(folder)):
        ds = pydicom.dcmread(os.path.join(folder, name))
        if "PixelData" not in ds:
            continue
        slices.append(ds)
    if not slices:
        sys.exit("no images in %s" % folder)
    iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    slices.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))))
    return slices, iop, normal


def volume(slices):
    rows, cols = int(slices[0].Rows), int(slices[0].Columns)
    out = np.empty((len(slices), rows, cols), dtype=np.float32)
    exact = True
    for k, ds in enumerate(slices):
        slope = float(getattr(ds, "RescaleSlope", 1.0))
        intercept = float(getattr(ds, "RescaleIntercept", 0.0))
        hu = ds.pixel_array * slope + intercept  # float64, one slice
        exact = exact and bool(np.all(hu == np.round(hu))) and hu.min() >= -32768 and hu.max() <= 32767
        out[k] = hu
    return out.astype(np.int16) if exact else out


def main():
    folder, path = sys.argv[1], sys.argv[2]
    slices, iop, normal = load(folder)
    vox = volume(slices)
    first = np.array(slices[0].ImagePositionPatient, dtype=float)
    last = np.array(slices[-1].ImagePositionPatient, dtype=float)
    step = (last - first) / max(len(slices) - 1, 1)
    ps = [float(v) for v in slices[0].PixelSpacing]
    direction = np.stack([iop[:3], iop[3:], step / np.linalg.norm(step)], axis=1)
    chunks = tuple(min(64, n) for n in vox.shape)
    with h5py.File(path + ".tmp", "w") as f:
        d = f.create_dataset("volume", data=vox, chunks=chunks, shuffle=True,
                             compression="gzip", compression_opts=1)
        d.attrs["spacing"] = [ps[1], ps[0], float(np.linalg.norm(step))]
        d.attrs["origin"] = first
        d.attrs["direction"] = direction
        d.attrs["modality"] = str(slices[0].Modality)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
