"""Patch sampling for sparse labels with MONAI dictionary transforms.

Every patch holds a labelled voxel of a class drawn uniformly among the
classes present (MONAI's ``ClassesToIndicesd`` precomputes where each
class is), so classes are balanced however few voxels each has.  That
voxel lies at a uniformly random place in its patch, and partly
labelled volumes get a quarter patch of margin, so a sparse slice does
not always sit at the same place in the patch (the network would learn
where the loss is instead of what it sees; see the README's real-data
table).  Unlabelled voxels (the ignore value) are never chosen.

Augmentation (``augment``): ``auto`` (the default) is planned from the
labels by :func:`~.planner.plan_augmentation`: the axes it mirrors, and
``affine``'s turns, scaling and jitter when an axis is left unmirrored.
``flips`` mirrors every axis, as a plain MONAI loop does; ``none``
mirrors nothing, which is better when classes are told apart by where
they lie (a hippocampus head lies anterior of its body; left vs right);
``affine`` mirrors nothing either but turns the patch by up to 15° about
each axis, scales it by up to 10 % and jitters its intensity (voxels the
turn brings in from outside the patch are unlabelled, not background);
``full`` mirrors, adds 90° rotations in a plane with equal spacing and
patch size, intensity scale/shift and noise, which cost quality at short
budgets (see the README's recipe ablation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import (
    ClassesToIndicesd,
    Compose,
    Lambdad,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from ..base.defaults import AUGMENTATIONS, IGNORE
from ..base.errors import WeaksegError
from ..data.lazy import SparseLabels
from .planner import SAMPLE, AugmentPlan, ClassVoxels, plan_augmentation


def affine_steps(
    ignore: int,
    angle: float = np.pi / 12,
    scale: float = 0.1,
    prob: float = 0.5,
) -> list:
    """Small turns and scaling of image and labels (bilinear / nearest);
    labels are shifted by one around the resampling so that its zero
    padding comes out as ``ignore``, not background."""

    def up(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.int16) + 1

    def down(a):
        a = torch.as_tensor(a).to(torch.int16)
        return torch.where(a == 0, ignore, a - 1).to(torch.uint8)

    return [
        Lambdad("label", up),
        RandAffined(
            ["image", "label"],
            prob=prob,
            rotate_range=(angle,) * 3,
            scale_range=(scale,) * 3,
            mode=("bilinear", "nearest"),
            padding_mode=("border", "zeros"),
        ),
        Lambdad("label", down),
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
    ]


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


@dataclass
class PatchSampler:
    """Draws augmented ``(image, label)`` batches from labelled volumes.

    Parameters
    ----------
    images, labels
        Normalised float32 images and sparse uint8 labels, (Z, Y, X) each,
        or for volumes larger than memory :class:`~.lazy.LazyImage` and
        :class:`~.lazy.SparseLabels`, read one patch at a time.
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
    #: margin around partly labelled volumes, as a share of the patch on
    #: each side (edge image, ignore labels); densely labelled volumes get
    #: none (no slice to give away where the loss is)
    margin: float = 0.25

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
            if isinstance(lbl, SparseLabels):  # read patch by patch
                if lbl.labelled:
                    self._items.append(
                        {"lazy": (img, lbl), "label_cls_indices": lbl.indices}
                    )
                    self._weights.append(lbl.labelled)
                continue
            img, lbl = pad_to_patch(img, lbl, patch, self.ignore_label)
            n = int(np.count_nonzero(lbl != self.ignore_label))
            if n == 0:
                continue
            # A margin (image: edge values, labels: ignore)
            # so a labelled voxel can sit anywhere in its patch: a sparse
            # slice that always sat at the same place in the patch would
            # let the network learn where the loss is, not what it sees.
            if n < lbl.size and self.margin > 0:
                margin = [(int(p * self.margin),) * 2 for p in patch]
                img = np.pad(img, margin, mode="edge")
                lbl = np.pad(lbl, margin, constant_values=self.ignore_label)
            item = {"image": img[None], "label": lbl[None]}
            self._items.append(index(item))
            self._weights.append(n)
        if not self._items:
            raise WeaksegError(
                "No labelled voxel: annotate at least one slice or scribble."
            )
        steps = []
        level = {True: "flips", False: "none"}.get(self.augment, self.augment)
        if level not in AUGMENTATIONS:
            raise WeaksegError(
                f"Unknown augmentation '{level}' ({', '.join(AUGMENTATIONS)})."
            )
        #: what ``auto`` chose from the labels (None for other levels)
        self.plan = self._planned() if level == "auto" else None
        if self.plan is not None:
            self.mirrored = list(self.plan.mirrored)
        else:
            self.mirrored = [] if level in ("none", "affine") else [0, 1, 2]
        steps += [RandFlipd(["image", "label"], 0.5, a) for a in self.mirrored]
        if level == "affine" or (self.plan is not None and self.plan.affine):
            steps += affine_steps(self.ignore_label)
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
        self._patch = patch
        self._transform = Compose(steps, lazy=False)
        self._transform.set_random_state(seed=self.seed)
        self._rng = np.random.default_rng(self.seed)
        w = np.asarray(self._weights, float)
        self._p = w / w.sum()

    def _planned(self) -> AugmentPlan:
        """:func:`~.planner.plan_augmentation` from the class indices
        already gathered for sampling (labelled voxels only) and the
        normalised intensities there."""
        rng = np.random.default_rng(self.seed)
        volumes = []
        for item in self._items:
            lazy = "lazy" in item
            shape = item["lazy"][1].shape if lazy else item["label"].shape[1:]
            classes = []
            for c, idx in enumerate(item["label_cls_indices"]):
                idx = np.asarray(idx)
                if c == 0 or not len(idx):
                    continue
                # a lazy image is read voxel by voxel: fewer of them
                keep = SAMPLE // 16 if lazy else SAMPLE
                if len(idx) > keep:
                    idx = rng.choice(idx, keep, replace=False)
                coords = np.stack(np.unravel_index(idx, shape), 1)
                if lazy:
                    img = item["lazy"][0]
                    values = np.array(
                        [
                            float(img.patch(p, (1, 1, 1)).ravel()[0])
                            for p in coords
                        ]
                    )
                else:
                    values = np.asarray(item["image"][0]).reshape(-1)[idx]
                classes.append(ClassVoxels(c, coords, values))
            volumes.append(classes)
        return plan_augmentation(volumes)

    def _crop(self, item: dict) -> dict:
        """A patch holding one labelled voxel (its class drawn uniformly
        among the classes present) at a uniformly random place in it."""
        rng, patch = self._rng, self._patch
        indices = item["label_cls_indices"]
        present = [c for c, idx in enumerate(indices) if len(idx)]
        chosen = indices[present[int(rng.integers(len(present)))]]
        flat = int(chosen[int(rng.integers(len(chosen)))])
        if "lazy" in item:  # the margin is read as padding
            img, lbl = item["lazy"]
            voxel = np.unravel_index(flat, lbl.shape)
            m = [int(p * self.margin) for p in patch]
            start = [
                min(max(-a, int(v) - int(rng.integers(p))), s + a - p)
                for v, p, s, a in zip(voxel, patch, lbl.shape, m)
            ]
            return {
                "image": img.patch(start, patch)[None],
                "label": lbl.patch(start, patch)[None],
            }
        shape = item["label"].shape[1:]
        voxel = np.unravel_index(flat, shape)
        start = [
            min(max(0, int(v) - int(rng.integers(p))), s - p)
            for v, p, s in zip(voxel, patch, shape)
        ]
        box = (slice(None), *(slice(a, a + p) for a, p in zip(start, patch)))
        return {"image": item["image"][box], "label": item["label"][box]}

    def sample(self) -> dict[str, torch.Tensor]:
        """One augmented patch pair: image (1, *patch), label (1, *patch)."""
        i = int(self._rng.choice(len(self._items), p=self._p))
        # the engine draws batches inside its autocast region: resampling
        # (affine) must stay float32 whatever precision the step runs in
        with torch.autocast("cpu", enabled=False):
            out = self._transform(self._crop(self._items[i]))
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
