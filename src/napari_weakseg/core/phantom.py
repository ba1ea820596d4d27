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
