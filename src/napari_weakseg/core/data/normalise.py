"""Per-image intensity normalisation, described by the model's config.

Each image is clipped to its own percentiles and z-scored; the method and
percentiles are stored in the model so prediction repeats exactly what
training did.  Statistics come from a strided subsample of an in-memory
image and from randomly placed blocks of a lazy one (zarr, dask,
memory-mapped TIFF), so they never read the whole volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..base.errors import WeaksegError

#: the normalisation of a model that names none: clip to the 0.5 and 99.5
#: percentiles, then z-score
DEFAULT = {"method": "percentile_zscore", "lower": 0.5, "upper": 99.5}
_SAMPLE_VOXELS = 2_000_000
#: edge of the blocks sampled from lazy volumes
_BLOCK = 32


def intensity_stats(
    image: Any, config: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Clip bounds, mean and std of ``image`` (numpy, zarr or dask)."""
    sample = _sample(image).astype(np.float64, copy=False)
    lo, hi = np.percentile(sample, list(percentiles(config)))
    clipped = np.clip(sample, lo, hi)
    std = float(clipped.std())
    return {
        "lo": float(lo),
        "hi": float(hi),
        "mean": float(clipped.mean()),
        "std": std if std > 1e-8 else 1.0,
    }


def percentiles(config: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
    """The lower and upper clip percentiles of a normalisation ``config``
    (:data:`DEFAULT`'s where it names none)."""
    cfg = {**DEFAULT, **(config or {})}
    return cfg["lower"], cfg["upper"]


def _sample(image: Any) -> np.ndarray:
    """About :data:`_SAMPLE_VOXELS` voxels of ``image``, flattened."""
    n = int(np.prod(image.shape, dtype=np.float64))
    if isinstance(image, np.ndarray) or n <= _SAMPLE_VOXELS:
        step = max(1, int(round((n / _SAMPLE_VOXELS) ** (1 / 3))))
        return np.asarray(image[::step, ::step, ::step]).ravel()
    edge = [min(_BLOCK, int(s)) for s in image.shape]
    count = -(-_SAMPLE_VOXELS // int(np.prod(edge)))
    rng = np.random.default_rng(0)  # the same blocks every time
    parts = []
    for _ in range(count):
        start = [
            int(rng.integers(s - e + 1)) for s, e in zip(image.shape, edge)
        ]
        box = tuple(slice(a, a + e) for a, e in zip(start, edge))
        parts.append(np.asarray(image[box]).ravel())
    return np.concatenate(parts)


def apply_normalisation(block: Any, stats: Mapping[str, float]) -> np.ndarray:
    """Clip and z-score ``block`` with precomputed ``stats`` (float32)."""
    arr = np.asarray(block, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise WeaksegError(
            "The image holds NaN or infinite values; replace them (e.g. "
            "with the background value) before using it."
        )
    arr = np.clip(arr, stats["lo"], stats["hi"])
    return (arr - np.float32(stats["mean"])) / np.float32(stats["std"])


def normalise(
    image: Any, config: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Normalise a whole in-memory image with its own statistics."""
    return apply_normalisation(image, intensity_stats(image, config))
