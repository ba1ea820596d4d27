"""Microscopy stacks through tifffile: geometry from the writer's own
metadata or ImageJ's; colour (RGB) samples are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..base.errors import WeaksegError
from .formats import Volume
from .geometry import Geometry


def read_tiff(p: Path, lazy: bool) -> Volume:
    import tifffile

    with tifffile.TiffFile(p) as tif:
        series = tif.series[0]
        axes = series.axes.upper()
        if "S" in axes:
            raise WeaksegError(
                f"{p.name} is a colour (RGB) image with "
                f"{series.shape[axes.index('S')]} samples per pixel (axes "
                f"{axes}); napari-weakseg reads single-channel volumes "
                "(convert it to greyscale or split the channels first)."
            )
        geometry = _tiff_geometry(tif)
        meta = {"tiff_axes": series.axes}
    if lazy:
        try:
            return Volume(tifffile.memmap(p, mode="r"), geometry, meta)
        except ValueError:  # compressed: fall back to reading
            pass
    return Volume(tifffile.imread(p), geometry, meta)


def _tiff_geometry(tif: Any) -> Geometry:
    shaped = tif.shaped_metadata
    if shaped and "spacing" in shaped[0]:
        return Geometry.from_dict(shaped[0])
    ij = tif.imagej_metadata
    if ij:
        page = tif.pages[0]
        xres = page.tags.get("XResolution")
        yres = page.tags.get("YResolution")

        def size(tag: Any) -> float:
            num, den = tag.value if tag else (1, 1)
            return float(den) / float(num) if num else 1.0

        return Geometry(
            spacing=(ij.get("spacing", 1.0), size(yres), size(xres))
        )
    return Geometry()


def write_tiff(p: Path, data: np.ndarray, g: Geometry) -> None:
    import tifffile

    axes = "CZYX" if data.ndim == 4 else "ZYX"
    tifffile.imwrite(
        p,
        data,
        photometric="minisblack",  # 3 or 4 slices are no RGB(A) image
        metadata={"axes": axes, **g.to_dict()},
    )
