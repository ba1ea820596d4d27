"""Validation of a U-Net during training: per-class Dice on the voxels
held out for it (the labelled voxels of a few fixed boxes for volumes
larger than memory)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from ..base import defaults
from ..base.metrics import dice_per_class
from ..data.lazy import LazyImage, SparseLabels
from ..predict.sliding import predict_probabilities
from .trainset import TrainSet


def validate(
    model: torch.nn.Module,
    trainset: TrainSet,
    patch: Sequence[int],
    device: torch.device,
) -> list[float]:
    """Per-class Dice on the validation voxels (their bounding box only)."""
    scores = []
    for img, truth, mask in zip(
        trainset.images, trainset.truths, trainset.val_masks
    ):
        if isinstance(truth, SparseLabels):
            scores += _validate_lazy(
                model, img, truth, trainset, patch, device
            )
            continue
        if not mask.any():
            continue
        nz = np.nonzero(mask)
        box = tuple(
            slice(max(0, int(i.min()) - p // 2), int(i.max()) + 1 + p // 2)
            for i, p in zip(nz, patch)
        )
        probs = predict_probabilities(
            model, img[box], patch, device, overlap=defaults.QUICK_OVERLAP
        )
        pred = np.argmax(probs, axis=0)
        scores.append(
            dice_per_class(pred, truth[box], trainset.num_classes, mask[box])
        )
    model.train()
    with warnings.catch_warnings():  # a class absent from the held-out
        warnings.simplefilter("ignore", RuntimeWarning)  # slices: NaN
        return list(np.nanmean(np.asarray(scores, float), axis=0))


def _validate_lazy(
    model: torch.nn.Module,
    image: LazyImage,
    truth: SparseLabels,
    trainset: TrainSet,
    patch: Sequence[int],
    device: torch.device,
    count: int = 4,
) -> list[list[float]]:
    """Dice on the labelled voxels of a few fixed boxes (two patches a
    side) around labelled voxels of a volume larger than memory."""
    rng = np.random.default_rng(0)  # the same boxes at every validation
    size = [2 * int(p) for p in patch]
    scores = []
    for _ in range(count):
        present = [idx for idx in truth.indices if len(idx)]
        chosen = present[int(rng.integers(len(present)))]
        voxel = np.unravel_index(
            int(chosen[int(rng.integers(len(chosen)))]), truth.shape
        )
        start = [int(v) - s // 2 for v, s in zip(voxel, size)]
        labels = truth.patch(start, size)
        probs = predict_probabilities(
            model,
            image.patch(start, size),
            patch,
            device,
            overlap=defaults.QUICK_OVERLAP,
        )
        scores.append(
            dice_per_class(
                np.argmax(probs, axis=0),
                labels,
                trainset.num_classes,
                labels != truth.ignore,
            )
        )
    return scores
