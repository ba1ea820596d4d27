"""Predict one slice quickly: a slab one patch deep around it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..core.inference import predict_probabilities


def predict_slice(
    model: Any, config: Any, image: np.ndarray, axis: int, index: int
) -> tuple[tuple, np.ndarray]:
    """``(slices, labels)`` of slice ``index`` along ``axis``.

    The slab spans one patch along ``axis`` (clipped to the volume), so
    the network sees the same context as for the whole volume.
    """
    depth = int(config.patch_size[axis])
    start = max(0, min(index - depth // 2, image.shape[axis] - depth))
    stop = min(image.shape[axis], start + depth)
    slab: list[Any] = [slice(None)] * 3
    slab[axis] = slice(start, stop)
    probs = predict_probabilities(
        model,
        image[tuple(slab)],
        config.patch_size,
        torch.device("cpu"),
        overlap=0.25,
    )
    labels = np.argmax(probs, axis=0).astype(np.uint8)
    take: list[Any] = [slice(None)] * 3
    take[axis] = index - start
    out: list[Any] = [slice(None)] * 3
    out[axis] = index
    return tuple(out), labels[tuple(take)]
