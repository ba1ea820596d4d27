"""Patch sampling for sparse labels with MONAI dictionary transforms.

Patch centres are drawn per class from labelled voxels only
(:class:`~monai.transforms.RandCropByLabelClassesd` with equal ratios on
precomputed class indices), so every patch holds labels and classes are
balanced however few voxels each has.  Unlabelled voxels (the ignore value)
are never a centre.  Augmentation (``augment``): ``auto`` (the default)
mirrors only the axes along which the classes' positions do not tell them
apart (see :func:`mirror_axes`: a hippocampus head lies anterior of its
body, so mirroring that axis teaches the network the wrong class);
``flips`` mirrors every axis, as a plain MONAI loop does; ``full`` adds 90°
rotations in a plane with equal spacing and patch size, intensity
scale/shift and noise, which cost quality at short budgets (see the
README's recipe ablation); ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import (
    ClassesToIndicesd,
    Compose,
    RandCropByLabelClassesd,
    RandFlipd,
    RandGaussianNoised,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from .defaults import IGNORE
from .errors import WeaksegError


def pad_to_patch(
    image: np.ndarray, labels: np.ndarray, patch: Sequence[int], ignore: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pad volumes smaller than a patch: image by edge, labels by ignore."""
    pad = [(0, max(0, int(p) - s)) for p, s in zip(patch, image.shape)]
    if not any(after for _, after in pad):
        return image, labels
    return (
        np.pad(image, pad, mode="edge"),
        np.pad(labels, pad, constant_values=ignore),
    )


def rotation_planes(
    patch: Sequence[int], spacing: Sequence[float]
) -> list[tuple[int, int]]:
    """Planes (spatial axes) where a 90° turn keeps shape and physics."""
    planes = []
    for a, b in ((1, 2), (0, 2), (0, 1)):
        if patch[a] == patch[b] and np.isclose(
            spacing[a], spacing[b], rtol=0.1
        ):
            planes.append((a, b))
    return planes


def mirror_axes(
    labels: Sequence[np.ndarray], ignore: int, threshold: float = 0.5
) -> list[int]:
    """Axes along which mirroring keeps the classes' meaning.

    Along each axis, the centroids of every pair of foreground classes
    (labelled voxels only) must lie within ``threshold`` pooled standard
    deviations of each other, in every image; one foreground class (or
    none) puts no constraint on any axis.
    """
    keep = []
    for axis in range(3):
        ok = True
        for lbl in labels:
            lbl = np.asarray(lbl)
            where = np.nonzero((lbl != ignore) & (lbl > 0))
            values = lbl[where]
            classes = np.unique(values)
            if len(classes) < 2:
                continue
            pos = where[axis].astype(float)
            spread = pos.std() + 1e-9
            means = [pos[values == c].mean() for c in classes]
            if (max(means) - min(means)) / spread > threshold:
                ok = False
                break
        if ok:
            keep.append(axis)
    return keep


@dataclass
class PatchSampler:
    """Draws augmented ``(image, label)`` batches from labelled volumes.

    Parameters
    ----------
    images, labels
        Normalised float32 images and sparse uint8 labels, (Z, Y, X) each.
    patch_size
        Patch shape in voxels.
    num_classes
        Classes including background (labels 0..num_classes-1).
    """

    images: Sequence[np.ndarray]
    labels: Sequence[np.ndarray]
    patch_size: Sequence[int]
    num_classes: int
    spacing: Sequence[float] = (1.0, 1.0, 1.0)
    ignore_label: int = IGNORE
    augment: str | bool = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        patch = [int(p) for p in self.patch_size]
        self._items = []
        self._weights = []
        index = ClassesToIndicesd(
            keys="label",
            num_classes=self.num_classes,
            max_samples_per_class=200_000,
        )
        for img, lbl in zip(self.images, self.labels):
            img, lbl = pad_to_patch(img, lbl, patch, self.ignore_label)
            n = int(np.count_nonzero(lbl != self.ignore_label))
            if n == 0:
                continue
            item = {"image": img[None], "label": lbl[None]}
            self._items.append(index(item))
            self._weights.append(n)
        if not self._items:
            raise WeaksegError(
                "No labelled voxel: annotate at least one slice or scribble."
            )
        self._crop = RandCropByLabelClassesd(
            keys=["image", "label"],
            label_key="label",
            spatial_size=patch,
            num_classes=self.num_classes,
            num_samples=1,
            indices_key="label_cls_indices",
            warn=False,
        )
        steps = [self._crop]
        level = {True: "auto", False: "none"}.get(self.augment, self.augment)
        if level not in ("none", "auto", "flips", "full"):
            raise WeaksegError(
                f"Unknown augmentation '{level}' (none, auto, flips or full)."
            )
        self.mirrored = (
            mirror_axes(self.labels, self.ignore_label)
            if level == "auto"
            else []
            if level == "none"
            else [0, 1, 2]
        )
        steps += [RandFlipd(["image", "label"], 0.5, a) for a in self.mirrored]
        if level == "full":
            steps += [
                RandRotate90d(["image", "label"], 0.5, 3, plane)
                for plane in rotation_planes(patch, self.spacing)
            ]
            steps += [
                RandScaleIntensityd("image", factors=0.1, prob=0.5),
                RandShiftIntensityd("image", offsets=0.1, prob=0.5),
                RandGaussianNoised("image", prob=0.2, std=0.05),
            ]
        self._transform = Compose(steps, lazy=False)
        self._transform.set_random_state(seed=self.seed)
        self._rng = np.random.default_rng(self.seed)
        w = np.asarray(self._weights, float)
        self._p = w / w.sum()

    def sample(self) -> dict[str, torch.Tensor]:
        """One augmented patch pair: image (1, *patch), label (1, *patch)."""
        i = int(self._rng.choice(len(self._items), p=self._p))
        out = self._transform(self._items[i])
        out = out[0] if isinstance(out, list) else out
        return {
            "image": torch.as_tensor(
                np.asarray(out["image"]), dtype=torch.float32
            ),
            "label": torch.as_tensor(np.asarray(out["label"])).to(torch.uint8),
        }

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        """``size`` patches stacked into ``(B, 1, *patch)`` tensors."""
        items = [self.sample() for _ in range(size)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}
