"""Regenerate the shipped sample volumes from the files nilearn ships.

Run from the repository root with the dev dependencies installed::

    .venv/bin/python sample_data/make_samples.py

It writes, in this folder:

* ``mni152_t1_2mm.nii.gz``: the MNI ICBM152 2009 (sym, 09a) T1 template
  resampled by nilearn to 2 mm;
* ``mni152_tissue_2mm.nii.gz``: 0 = background, 1 = grey matter,
  2 = white matter (argmax of the GM/WM probability maps where >= 0.5);
* ``mni152_sparse_2mm.nii.gz``: the tissue labels on a few evenly spaced
  slices per axis, 255 (unlabelled) elsewhere: the demo's annotation.

nilearn is a dev dependency only; loading the samples needs no network.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn import datasets

HERE = Path(__file__).resolve().parent
IGNORE = 255
SPARSE_SLICES_PER_AXIS = 2


def main() -> None:
    t1 = datasets.load_mni152_template(resolution=2)
    gm = datasets.load_mni152_gm_template(resolution=2).get_fdata()
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata()
    tissue = np.zeros(gm.shape, np.uint8)
    fg = np.maximum(gm, wm) >= 0.5
    tissue[fg & (gm >= wm)] = 1
    tissue[fg & (wm > gm)] = 2

    sparse = np.full(tissue.shape, IGNORE, np.uint8)
    for axis in range(3):
        n = tissue.shape[axis]
        for i in np.linspace(0, n, SPARSE_SLICES_PER_AXIS + 2)[1:-1]:
            idx = [slice(None)] * 3
            idx[axis] = int(round(i))
            sparse[tuple(idx)] = tissue[tuple(idx)]

    image = np.asarray(t1.get_fdata(), np.float32)
    for name, data in [
        ("mni152_t1_2mm.nii.gz", image),
        ("mni152_tissue_2mm.nii.gz", tissue),
        ("mni152_sparse_2mm.nii.gz", sparse),
    ]:
        img = nib.Nifti1Image(data, t1.affine)
        img.header.set_xyzt_units("mm")
        nib.save(img, HERE / name)
        print(f"wrote {name} {data.shape} {data.dtype}")


if __name__ == "__main__":
    main()
