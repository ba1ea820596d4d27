"""Training from volumes larger than memory: read patches from the store.

A :class:`LazyImage` normalises only the patch it is asked for, with
statistics from a sample of blocks (:func:`~.normalise.intensity_stats`).
:class:`SparseLabels` keeps the label store on disk and, from one pass
over it block by block, where each class is labelled: sparse slices are
a tiny share of the volume, so their coordinates fit in memory when the
volume does not.  Patches that reach past the volume's edge are padded
(image: edge values, labels: ignore), as in-memory volumes are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .normalise import apply_normalisation, intensity_stats

#: labelled voxels kept per class (a random subset beyond), as MONAI's
#: ``ClassesToIndicesd(max_samples_per_class=...)`` does in memory
MAX_PER_CLASS = 200_000


def read_box(
    array: Any, start: Sequence[int], size: Sequence[int], pad: Any
) -> np.ndarray:
    """``array[start : start + size]``; outside the volume: ``pad``
    (``"edge"`` repeats the border, a number fills)."""
    shape = array.shape
    lo = [max(0, int(a)) for a in start]
    hi = [min(s, int(a) + int(n)) for a, n, s in zip(start, size, shape)]
    inside = np.asarray(array[tuple(slice(a, b) for a, b in zip(lo, hi))])
    widths = [
        (a - int(s), int(s) + int(n) - b)
        for a, b, s, n in zip(lo, hi, start, size)
    ]
    if not any(w for pair in widths for w in pair):
        return inside
    if pad == "edge":
        return np.pad(inside, widths, mode="edge")
    return np.pad(inside, widths, constant_values=pad)


@dataclass
class LazyImage:
    """An image store read patch by patch, normalised on the way."""

    data: Any
    stats: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stats:
            self.stats = intensity_stats(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape)

    def patch(self, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
        block = read_box(self.data, start, size, "edge")
        return apply_normalisation(block, self.stats)


@dataclass
class SparseLabels:
    """A label store and, per class, the flat indices of labelled voxels."""

    data: Any
    ignore: int
    indices: list[np.ndarray]
    labelled: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape)

    @classmethod
    def scan(
        cls, data: Any, ignore: int, slab: int | None = None, seed: int = 0
    ) -> SparseLabels:
        """One pass over ``data`` in slabs of whole chunks along z."""
        shape = tuple(int(s) for s in data.shape)
        chunk_z = _z_chunk(data)
        slab = slab or max(1, 64 // chunk_z) * chunk_z
        plane = shape[1] * shape[2]
        found: dict[int, list[np.ndarray]] = {}
        for z0 in range(0, shape[0], slab):
            block = np.asarray(data[z0 : z0 + slab])
            flat = block.reshape(-1)
            where = np.flatnonzero(flat != ignore)
            if not len(where):
                continue
            values = flat[where]
            for v in np.unique(values):
                found.setdefault(int(v), []).append(
                    where[values == v].astype(np.int64) + z0 * plane
                )
        rng = np.random.default_rng(seed)
        classes = max(found, default=-1) + 1
        indices, labelled = [], 0
        for c in range(classes):
            idx = np.concatenate(found.get(c, [np.zeros(0, np.int64)]))
            labelled += len(idx)
            if len(idx) > MAX_PER_CLASS:
                idx = np.sort(rng.choice(idx, MAX_PER_CLASS, replace=False))
            indices.append(idx)
        return cls(data, ignore, indices, labelled)

    def values(self) -> set[int]:
        """The labelled values (classes)."""
        return {c for c, idx in enumerate(self.indices) if len(idx)}

    def patch(self, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
        return read_box(self.data, start, size, self.ignore).astype(np.uint8)


def _z_chunk(data: Any) -> int:
    """The store's chunk length along z (zarr: an int; dask: a tuple of
    block lengths); 16 when it has none."""
    chunks = getattr(data, "chunks", None)
    if not chunks:
        return 16
    first = chunks[0]
    return max(1, int(first[0] if isinstance(first, tuple) else first))


def is_lazy(image: Any, threshold: int) -> bool:
    """A volume to train from lazily: not in memory, more voxels than
    ``threshold``."""
    voxels = int(np.prod(image.shape, dtype=np.float64))
    return not isinstance(image, np.ndarray) and voxels > threshold
