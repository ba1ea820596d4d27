"""Input checks that turn bad input into one clear sentence."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base.errors import WeaksegError
from .geometry import Geometry

#: voxels read at once when a lazy volume is checked
SLAB_VOXELS = 1 << 24


def require_3d(data: Any, name: str = "image") -> None:
    """Refuse anything but a single-channel 3D volume."""
    ndim = len(data.shape)
    if ndim == 3:
        return
    if ndim < 3:
        raise WeaksegError(
            f"'{name}' is {ndim}D with shape {tuple(data.shape)}; "
            "a 3D volume is needed."
        )
    raise WeaksegError(
        f"'{name}' has {ndim} dimensions {tuple(data.shape)}; pick one "
        "channel or time point to get a 3D volume first."
    )


def require_finite(data: Any, name: str = "image") -> None:
    """Refuse NaN or infinite voxels anywhere in ``data``: an array in
    memory at once, a lazy one (zarr, dask, memory map) slab by slab of
    about :data:`SLAB_VOXELS` voxels."""
    if not np.issubdtype(np.dtype(data.dtype), np.floating):
        return
    if isinstance(data, np.ndarray):
        bad = int(np.count_nonzero(~np.isfinite(data)))
    else:
        shape = tuple(data.shape)
        plane = int(np.prod(shape[1:], dtype=np.int64)) or 1
        depth = max(1, SLAB_VOXELS // plane)
        bad = 0
        for z in range(0, shape[0], depth):
            slab = np.asarray(data[z : z + depth])
            bad += int(np.count_nonzero(~np.isfinite(slab)))
    if bad:
        raise WeaksegError(
            f"'{name}' has {bad} NaN or infinite voxels; replace them "
            "before training or prediction."
        )


def require_same_grid(
    image_shape: tuple[int, ...],
    labels_shape: tuple[int, ...],
    image_geometry: Geometry | None = None,
    labels_geometry: Geometry | None = None,
    names: tuple[str, str] = ("image", "labels"),
) -> None:
    """Refuse labels that do not sit on the image's voxel grid."""
    a, b = names
    if tuple(image_shape) != tuple(labels_shape):
        raise WeaksegError(
            f"'{b}' has shape {tuple(labels_shape)} but '{a}' has shape "
            f"{tuple(image_shape)}; they must be on the same voxel grid."
        )
    if (
        image_geometry is not None
        and labels_geometry is not None
        and not image_geometry.allclose(labels_geometry)
    ):
        raise WeaksegError(
            f"'{b}' and '{a}' have the same shape but different spacing, "
            "origin or direction; resample the labels onto the image first."
        )


def require_integer_labels(data: np.ndarray, name: str = "labels") -> None:
    """Refuse label volumes of a floating-point type with fractions."""
    arr = np.asarray(data)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return
    if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
        return
    raise WeaksegError(
        f"'{name}' holds fractional values; a label volume must hold "
        "integer class indices."
    )
