"""napari writer hooks: image and labels layers back to disk, geometry kept."""

from __future__ import annotations

from typing import Any

import numpy as np

from .core.data.geometry import Geometry
from .core.data.volumes import Volume, write_volume


def _write(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    ndim = np.ndim(data)
    geometry = Geometry.from_layer(
        meta.get("scale", (1.0,) * ndim),
        meta.get("translate", (0.0,) * ndim),
        meta.get("metadata"),
    )
    write_volume(path, Volume(np.asarray(data), geometry))
    return [path]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an image layer (NIfTI, NRRD, MetaImage, TIFF or zarr)."""
    return _write(path, data, meta)


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a labels layer, keeping its integer dtype."""
    return _write(path, data, meta)
