"""Check sparse training data and hold back slices for validation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import defaults
from ..base.defaults import IGNORE
from ..base.errors import WeaksegError
from ..data.lazy import LazyImage, SparseLabels, is_lazy
from ..data.normalise import intensity_stats, normalise
from ..data.sparse import from_sparse_labels
from ..data.validate import require_3d, require_finite, require_integer_labels


@dataclass
class TrainSet:
    """Normalised images, training targets and validation masks.

    A volume larger than memory is a :class:`~.lazy.LazyImage` with
    :class:`~.lazy.SparseLabels` as target and truth, and no mask
    (validation reads patches around its labelled voxels).
    """

    images: list[Any]
    targets: list[Any]
    val_masks: list[np.ndarray | None]
    truths: list[Any]
    num_classes: int
    held_out: bool

    @property
    def train_voxels(self) -> int:
        return sum(
            t.labelled
            if isinstance(t, SparseLabels)
            else int((t != self.ignore).sum())
            for t in self.targets
        )

    @property
    def val_voxels(self) -> int:
        return sum(
            t.labelled if m is None else int(m.sum())
            for m, t in zip(self.val_masks, self.targets)
        )

    ignore: int = IGNORE


def held_out_slices(
    sparse: np.ndarray, ignore: int, every: int = 4, most: int = 6
) -> dict[int, list[int]]:
    """Every ``every``-th fully labelled slice, at most ``most`` of them.

    With fewer than ``every`` done slices nothing is held back (all labels
    are needed for training) and validation runs on training voxels.  With
    many (dense labels) only ``most`` spread-out slices are held back, so
    the first training phase does not lose most of the labels.
    """
    _, done = from_sparse_labels(sparse, ignore)
    flat = [(a, i) for a in range(3) for i in done[a]]
    if len(flat) < every:
        return {}
    every = max(every, -(-len(flat) // most))
    out: dict[int, list[int]] = {}
    for a, i in flat[every // 2 :: every]:
        out.setdefault(a, []).append(i)
    return out


def prepare(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    ignore: int = IGNORE,
    num_classes: int | None = None,
    normalisation: dict | None = None,
    hold_out: bool = True,
    names: Sequence[str] | None = None,
) -> TrainSet:
    """Validate inputs and build targets; one clear sentence on bad input
    (naming each image by ``names``: file or layer names)."""
    if len(images) != len(labels) or not images:
        raise WeaksegError(
            f"Give one label volume per image ({len(images)} images, "
            f"{len(labels)} label volumes)."
        )
    norm, targets, masks, truths = [], [], [], []
    present: set[int] = set()
    for k, (img, lbl) in enumerate(zip(images, labels)):
        name = (
            names[k]
            if names
            else f"image {k + 1}"
            if len(images) > 1
            else "image"
        )
        require_3d(img, name)
        require_3d(lbl, "labels")
        if tuple(img.shape) != tuple(lbl.shape):
            raise WeaksegError(
                f"Labels have shape {tuple(lbl.shape)} but {name} has shape "
                f"{tuple(img.shape)}; they must be on the same voxel grid."
            )
        if is_lazy(img, defaults.LARGE_VOXELS):
            lazy = _lazy_pair(img, lbl, ignore, normalisation, name)
            present |= lazy[1].values()
            norm.append(lazy[0])
            targets.append(lazy[1])
            truths.append(lazy[1])
            masks.append(None)
            continue
        require_integer_labels(lbl)
        img = np.asarray(img)
        require_finite(img, name)
        lbl = np.asarray(lbl).astype(np.int64)
        values = set(np.unique(lbl).tolist()) - {ignore}
        bad = sorted(v for v in values if v < 0 or v > 254)
        if bad:
            raise WeaksegError(
                f"The labels of {name} hold the value {bad[0]}; use 0 for "
                "background, "
                f"1..254 for classes and {ignore} for unlabelled voxels."
            )
        if not values and len(images) > 1:
            raise WeaksegError(
                f"The labels of {name} have no labelled voxel; annotate that "
                "image or leave it out."
            )
        present |= values
        lbl = lbl.astype(np.uint8)
        target = lbl.copy()
        mask = np.zeros(lbl.shape, bool)
        for axis, idx in (
            held_out_slices(lbl, ignore) if hold_out else {}
        ).items():
            sl: list = [slice(None)] * 3
            sl[axis] = idx
            mask[tuple(sl)] = True
        target[mask] = ignore
        norm.append(normalise(img, normalisation))
        targets.append(target)
        truths.append(lbl)
        masks.append(mask)
    if not present:
        raise WeaksegError(
            "No labelled voxel: annotate at least one slice or scribble."
        )
    if len(present) < 2:
        raise WeaksegError(
            f"Only class {present.pop()} is labelled; annotate background "
            "and at least one structure."
        )
    k = max(present) + 1 if num_classes is None else num_classes
    if max(present) >= k:
        raise WeaksegError(
            f"Labels hold class {max(present)} but the model has only "
            f"{k - 1} classes."
        )
    held = any(m is not None and m.any() for m in masks)
    if not held:  # validate on the training labels themselves
        masks = [
            None if isinstance(t, SparseLabels) else t != ignore
            for t in targets
        ]
    return TrainSet(norm, targets, masks, truths, k, held, ignore)


def _lazy_pair(
    img: Any, lbl: Any, ignore: int, normalisation: dict | None, name: str
) -> tuple[LazyImage, SparseLabels]:
    """A volume larger than memory: patches are read from the stores."""
    if not np.issubdtype(np.dtype(lbl.dtype), np.integer):
        raise WeaksegError(
            f"The labels of {name} are stored as {lbl.dtype}; a label "
            "store larger than memory must hold integers."
        )
    labels = SparseLabels.scan(lbl, ignore)
    bad = sorted(v for v in labels.values() if v > 254)
    if bad:
        raise WeaksegError(
            f"Labels hold the value {bad[0]}; use 0 for background, "
            f"1..254 for classes and {ignore} for unlabelled voxels."
        )
    return LazyImage(img, intensity_stats(img, normalisation)), labels
