"""Overlap scores restricted to the voxels that matter."""

from __future__ import annotations

import numpy as np


def dice_per_class(
    prediction: np.ndarray,
    truth: np.ndarray,
    num_classes: int,
    mask: np.ndarray | None = None,
) -> list[float]:
    """Dice of classes ``1..num_classes-1``; NaN where both are empty.

    Only voxels where ``mask`` is true count (e.g. voxels nobody
    annotated, or held-out slices).
    """
    p, t = np.asarray(prediction), np.asarray(truth)
    if mask is not None:
        p, t = p[mask], t[mask]
    out = []
    for c in range(1, num_classes):
        pc, tc = p == c, t == c
        denom = int(pc.sum()) + int(tc.sum())
        inter = int(np.logical_and(pc, tc).sum())
        out.append(2.0 * inter / denom if denom else float("nan"))
    return out


def iou_per_class(
    prediction: np.ndarray,
    truth: np.ndarray,
    num_classes: int,
    mask: np.ndarray | None = None,
) -> list[float]:
    """Intersection over union of classes ``1..num_classes-1``."""
    return [
        d / (2.0 - d) if np.isfinite(d) else d
        for d in dice_per_class(prediction, truth, num_classes, mask)
    ]


def entropy(probabilities: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-voxel entropy (nats) of class probabilities ``(C, Z, Y, X)``:
    0 where the model is sure, ``log C`` where it cannot tell."""
    p = np.asarray(probabilities, np.float32)
    return -(p * np.log(p + eps)).sum(axis=0)
