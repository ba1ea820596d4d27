"""Volume formats: the suffixes read and written, and :class:`Volume`.

Which reader a path goes to is decided here by its suffix (``.nii.gz``
included) or, for a folder, by what it holds (a zarr store, a DICOM
series); the readers and writers per format live in ``volume_*``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..base.errors import WeaksegError
from .geometry import Geometry

SITK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr",)
SUFFIXES = SITK_SUFFIXES + TIFF_SUFFIXES + ZARR_SUFFIXES


@dataclass
class Volume:
    """An array in (z, y, x) order with its geometry and file metadata."""

    data: Any
    geometry: Geometry = field(default_factory=Geometry)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def suffix_of(path: str | os.PathLike) -> str:
    """The format suffix, ``.nii.gz`` included, lower case; '' if none."""
    name = Path(path).name.lower()
    for s in SUFFIXES:
        if name.endswith(s):
            return s
    return Path(name).suffix


def is_dicom_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a DICOM series."""
    p = Path(path)
    if not p.is_dir() or suffix_of(p) in ZARR_SUFFIXES:
        return False
    import SimpleITK as sitk

    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p)))


def is_zarr_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zarr store (v2 or v3), safe to replace whole."""
    p = Path(path)
    return suffix_of(p) in ZARR_SUFFIXES and any(
        (p / m).exists() for m in (".zarray", ".zgroup", "zarr.json")
    )


def can_read(path: str | os.PathLike) -> bool:
    """Cheap check used by the napari reader hook."""
    return suffix_of(path) in SUFFIXES or is_dicom_dir(path)


def check_dtype(p: Path, dtype: Any) -> None:
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        raise WeaksegError(
            f"Could not read {p.name}: its voxels are complex numbers "
            f"({dtype}); napari-weakseg reads real-valued images (save the "
            "magnitude instead)."
        )
