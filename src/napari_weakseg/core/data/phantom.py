"""A small synthetic 3D phantom for fast tests and demos.

Two classes of blobs (bright ellipsoids = 1, dim shells = 2) on a noisy
background with a smooth intensity bias: easy to segment with a few
annotated slices, hard enough that thresholding alone is not perfect.
"""

from __future__ import annotations

import numpy as np


def make_phantom(
    shape: tuple[int, int, int] = (32, 48, 48),
    seed: int = 0,
    n_blobs: int = 4,
    noise: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image, labels)``: float32 intensities and uint8 classes."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(
        *(np.linspace(0.0, 1.0, s, dtype=np.float32) for s in shape),
        indexing="ij",
    )
    labels = np.zeros(shape, np.uint8)
    for i in range(n_blobs):
        c = rng.uniform(0.25, 0.75, 3)
        r = rng.uniform(0.12, 0.22, 3)
        d = (
            ((zz - c[0]) / r[0]) ** 2
            + ((yy - c[1]) / r[1]) ** 2
            + ((xx - c[2]) / r[2]) ** 2
        )
        if i % 2 == 0:
            labels[d <= 1.0] = 1
        else:
            labels[(d <= 1.0) & (d > 0.45)] = 2
    base = np.array([0.0, 1.0, 0.55], np.float32)[labels]
    bias = 0.15 * np.sin(3.0 * xx + 2.0 * yy) * np.cos(2.0 * zz)
    image = base + bias + noise * rng.standard_normal(shape, dtype=np.float32)
    return image.astype(np.float32), labels


def make_blobs(
    shape: tuple[int, int, int] = (24, 48, 48),
    seed: int = 0,
    grid: tuple[int, int, int] = (1, 2, 2),
    noise: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Separate roundish objects of two classes, one per grid cell.

    The box-supervision phantom: each object sits alone in its cell, so a
    box around it holds one object and background.  Class 1 is bright,
    class 2 dimmer; ``(image, labels)`` as :func:`make_phantom`.
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    cells = [s // g for s, g in zip(shape, grid)]
    for k, idx in enumerate(np.ndindex(*grid)):
        lo = [i * c for i, c in zip(idx, cells)]
        r = [c * rng.uniform(0.25, 0.38) for c in cells]
        centre = [
            lo_a + c / 2 + rng.uniform(-0.1, 0.1) * c
            for lo_a, c in zip(lo, cells)
        ]
        zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
        d = sum(
            ((g - c) / ra) ** 2 for g, c, ra in zip((zz, yy, xx), centre, r)
        )
        labels[d <= 1.0] = 1 + k % 2
    base = np.array([0.0, 1.0, 0.6], np.float32)[labels]
    image = base + noise * rng.standard_normal(shape, dtype=np.float32)
    return image.astype(np.float32), labels


def boxes_of(labels: np.ndarray) -> list[tuple[int, ...]]:
    """Tight boxes ``(z0, y0, x0, z1, y1, x1, class)`` of each object."""
    from scipy import ndimage

    out = []
    for c in range(1, int(labels.max()) + 1):
        comp, _ = ndimage.label(labels == c)
        for sl in ndimage.find_objects(comp):
            if sl is not None:
                out.append((*(s.start for s in sl), *(s.stop for s in sl), c))
    return out
