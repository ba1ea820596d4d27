"""napari reader hook: medical and microscopy volumes with geometry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .core.base.errors import WeaksegError
from .core.data.volumes import can_read, read_volume

LABEL_HINTS = ("label", "seg", "mask", "annot", "tissue", "truth")
LayerData = tuple[Any, dict[str, Any], str]


def napari_get_reader(
    path: str | list[str],
) -> Callable[[str | list[str]], list[LayerData]] | None:
    """Return :func:`read_layers` when napari-weakseg can read ``path``."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or not all(can_read(p) for p in paths):
        return None
    return read_layers


def layer_type_for(path: str | Path, data: Any) -> str:
    """``labels`` for integer volumes whose name says so, else ``image``."""
    name = Path(path).name.lower()
    integer = np.issubdtype(np.dtype(data.dtype), np.integer)
    return (
        "labels"
        if integer and any(h in name for h in LABEL_HINTS)
        else "image"
    )


def read_layers(path: str | list[str]) -> list[LayerData]:
    """Read each path into one layer; geometry becomes scale/translate."""
    paths = [path] if isinstance(path, str) else list(path)
    out: list[LayerData] = []
    for p in paths:
        try:
            # label stores leave their empty (background) chunks out
            labels = any(h in Path(p).name.lower() for h in LABEL_HINTS)
            vol = read_volume(p, lazy=True, allow_missing_chunks=labels)
        except WeaksegError as exc:
            # napari shows reader errors as a notification: keep it short.
            raise ValueError(str(exc)) from None
        kwargs = vol.geometry.layer_kwargs()
        kwargs["metadata"]["source_path"] = str(p)
        kwargs["metadata"]["source_metadata"] = vol.metadata
        name = Path(p).name
        for s in (
            ".nii.gz",
            ".nii",
            ".nrrd",
            ".mha",
            ".mhd",
            ".tif",
            ".tiff",
            ".ome.zarr",
            ".zarr",
        ):
            if name.lower().endswith(s):
                name = name[: -len(s)]
                break
        kwargs["name"] = name
        data = vol.data
        if int(vol.metadata.get("ome_zarr_levels", 1)) > 1:
            from .core.data.ngff import read_levels

            data = read_levels(p)[0]  # a pyramid: napari shows it lazily
            kwargs["multiscale"] = True
        out.append((data, kwargs, layer_type_for(p, vol.data)))
    return out
