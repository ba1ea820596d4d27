"""Benchmark cases built from the real volumes in ``../shared/data``.

Every case is one image with one label file per setting (``sparse``: 5 %
of the slices of the training part, ``dense``: all of it), a dense truth
and an evaluation mask that no label file touches.  Both arms of a
comparison read the very same files, so the product and the plain MONAI
reference differ only in their recipe.

- **hippocampus**: 3 labelled cases for training, 5 unseen cases for
  scoring, each z-scored on its own, padded to a common plane and stacked
  along z with gaps (unlabelled) between them.
- **FIB-SEM boundaries**: a 128 x 160 x 160 crop; labels on the first
  80 z-slices, scored on the last 40 (8 slices between stay unlabelled).
- **MNI152 GM/WM**: the shipped sample; labels on the left hemisphere,
  scored on the right one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_weakseg._sample_data import sample_path
from napari_weakseg.core.data.geometry import Geometry
from napari_weakseg.core.data.normalise import normalise
from napari_weakseg.core.data.sparse import evenly_spaced_slices
from napari_weakseg.core.data.volumes import Volume, read_volume, write_volume

IGNORE = 255
SHARED = Path(
    os.environ.get(
        "WEAKSEG_SHARED_DATA",
        Path(__file__).resolve().parents[2] / "shared" / "data",
    )
)
HIPPO_TRAIN = ("001", "003", "004")
HIPPO_TEST = ("006", "007", "008", "011", "014")


@dataclass
class Case:
    name: str
    image: np.ndarray
    truth: np.ndarray
    train_region: np.ndarray  # voxels whose labels may be given
    eval_mask: np.ndarray  # voxels scored (never labelled)
    num_classes: int
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def labels(self, setting: str, fraction: float = 0.05) -> np.ndarray:
        """``dense`` or ``sparse`` (``fraction`` of the training slices)."""
        out = np.full(self.truth.shape, IGNORE, np.uint8)
        if setting == "dense":
            out[self.train_region] = self.truth[self.train_region]
            return out
        box = [
            np.flatnonzero(
                np.any(
                    self.train_region,
                    axis=tuple(a for a in range(3) if a != axis),
                )
            )
            for axis in range(3)
        ]
        total = sum(len(b) for b in box)
        k = max(3, round(fraction * total))
        for axis, idx in enumerate(box):
            n = max(1, round(k * len(idx) / total))
            for j in evenly_spaced_slices(len(idx), n):
                sl = [slice(None)] * 3
                sl[axis] = int(idx[j])
                region = self.train_region[tuple(sl)]
                out[tuple(sl)][region] = self.truth[tuple(sl)][region]
        return out

    #: the separate volumes the image is made of (None: one volume)
    stacked: bool = False

    def volumes(self) -> list[tuple[slice, ...]]:
        """Boxes of the volumes a user would open one by one: each
        hippocampus case; the whole image otherwise."""
        if not self.stacked:
            return [tuple(slice(0, n) for n in self.image.shape)]
        from scipy import ndimage

        parts, _ = ndimage.label(self.train_region | self.eval_mask)
        return [b for b in ndimage.find_objects(parts) if b is not None]

    def paths(self, folder: Path, setting: str) -> dict[str, Path]:
        return {
            "image": folder / f"{self.name}_image.nii.gz",
            "labels": folder / f"{self.name}_{setting}.nii.gz",
            "truth": folder / f"{self.name}_truth.nii.gz",
        }

    def write(self, folder: Path, setting: str) -> dict[str, Path]:
        """Image, labels and truth as NIfTI files for both arms."""
        folder.mkdir(parents=True, exist_ok=True)
        geom = Geometry(spacing=self.spacing)
        paths = self.paths(folder, setting)
        if not paths["image"].exists():
            write_volume(paths["image"], Volume(self.image, geom))
            write_volume(paths["truth"], Volume(self.truth, geom))
        write_volume(paths["labels"], Volume(self.labels(setting), geom))
        return paths


def _read(path: Path) -> np.ndarray:
    return np.asarray(read_volume(path).data)


def hippocampus(gap: int = 4) -> Case:
    root = SHARED / "hippocampus_mri" / "labelled"
    ids = HIPPO_TRAIN + HIPPO_TEST
    imgs = [
        normalise(_read(root / "images" / f"hippocampus_{i}.nii.gz"))
        for i in ids
    ]
    lbls = [
        _read(root / "labels" / f"hippocampus_{i}.nii.gz").astype(np.uint8)
        for i in ids
    ]
    plane = [max(im.shape[a] for im in imgs) for a in (1, 2)]
    parts_i, parts_t, parts_r, parts_e = [], [], [], []
    for k, (im, lb) in enumerate(zip(imgs, lbls)):
        pad = [
            (0, gap),
            (0, plane[0] - im.shape[1]),
            (0, plane[1] - im.shape[2]),
        ]
        inside = np.pad(np.ones(im.shape, bool), pad)
        parts_i.append(np.pad(im, pad, constant_values=float(im.min())))
        parts_t.append(np.pad(lb, pad))
        train = k < len(HIPPO_TRAIN)
        parts_r.append(inside & train)
        parts_e.append(inside & (not train))
    return Case(
        "hippocampus",
        np.concatenate(parts_i).astype(np.float32),
        np.concatenate(parts_t),
        np.concatenate(parts_r),
        np.concatenate(parts_e),
        3,
        stacked=True,
    )


def fibsem(shape=(128, 160, 160), train=80, gap=8) -> Case:
    root = SHARED / "fibsem_medulla"
    sl = tuple(slice(0, s) for s in shape)
    img = _read(root / "image.nii.gz")[sl].astype(np.float32)
    truth = _read(root / "boundaries.nii.gz")[sl].astype(np.uint8)
    region = np.zeros(shape, bool)
    region[:train] = True
    ev = np.zeros(shape, bool)
    ev[train + gap :] = True
    return Case("fibsem", img, truth, region, ev, 2)


def mni() -> Case:
    img = np.asarray(read_volume(sample_path("mni152_t1_2mm.nii.gz")).data)
    truth = np.asarray(
        read_volume(sample_path("mni152_tissue_2mm.nii.gz")).data
    ).astype(np.uint8)
    half = img.shape[2] // 2
    region = np.zeros(img.shape, bool)
    region[:, :, : half - 2] = True
    ev = np.zeros(img.shape, bool)
    ev[:, :, half + 2 :] = True
    return Case(
        "mni", img.astype(np.float32), truth, region, ev, 3, (2.0, 2.0, 2.0)
    )


CASES = {"hippocampus": hippocampus, "fibsem": fibsem, "mni": mni}
