"""OME-Zarr (NGFF 0.4 / 0.5) volumes: multiscale read and write.

An OME-Zarr image is a zarr group whose ``multiscales`` metadata lists
its resolution levels (arrays in the group), their axes and, per level, a
``scale`` and optional ``translation``.  Written with zarr itself (no
extra dependency): level 0 is the data, each next level halves the
spatial axes (mean of 2x2x2 blocks for images, every other voxel for
labels, so classes stay classes), as the reference ``ome-zarr`` writer
does.  Only the three spatial axes are read; a channel or time axis of
length 1 is dropped, longer ones are refused with one sentence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..base.errors import WeaksegError
from .geometry import Geometry
from .zarr_checked import checked_zarr

SPATIAL = ("z", "y", "x")


def _attrs(path: Path) -> dict:
    for name in ("zarr.json", ".zattrs"):
        f = path / name
        if f.is_file():
            try:
                meta = json.loads(f.read_text())
            except (OSError, ValueError):
                return {}
            return (
                meta.get("attributes", meta) if name == "zarr.json" else meta
            )
    return {}


def multiscales(path: str | os.PathLike) -> dict | None:
    """The first ``multiscales`` entry of an OME-Zarr group, else None."""
    attrs = _attrs(Path(path))
    entries = attrs.get("ome", attrs).get("multiscales")
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        return entries[0]
    return None


def is_ome_zarr(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and multiscales(path) is not None


def _axes(ms: dict, name: str) -> list[str]:
    axes = ms.get("axes") or ["z", "y", "x"]
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    if names[-3:] != list(SPATIAL) and [n.lower() for n in names[-3:]] != list(
        SPATIAL
    ):
        raise WeaksegError(
            f"{name} has axes {names}; napari-weakseg reads volumes whose "
            "last three axes are z, y, x."
        )
    return names


def _transform(dataset: dict, ndim: int) -> tuple[list[float], list[float]]:
    scale, shift = [1.0] * ndim, [0.0] * ndim
    for t in dataset.get("coordinateTransformations", []):
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]]
        elif t.get("type") == "translation":
            shift = [float(v) for v in t["translation"]]
    return scale, shift


def first_level(path: str | os.PathLike) -> Any:
    """Level 0 of an OME-Zarr group as stored (every axis), or None when
    the metadata or the array is missing."""
    import zarr

    ms = multiscales(path)
    datasets = (ms or {}).get("datasets") or [{}]
    if not isinstance(datasets[0], dict) or "path" not in datasets[0]:
        return None
    try:
        level = zarr.open_group(str(path), mode="r")[str(datasets[0]["path"])]
    except Exception:  # noqa: BLE001 - read_levels explains what is wrong
        return None
    return level if hasattr(level, "nchunks") else None


def read_levels(
    path: str | os.PathLike,
) -> tuple[list[Any], list[Geometry]]:
    """Every level as a lazy zarr array (spatial axes only) with its
    geometry (spacing = scale, origin = translation), finest first.  A
    chunk that fails to decode raises :class:`WeaksegError`."""
    import zarr

    p = Path(path)
    ms = multiscales(p)
    if ms is None:
        raise WeaksegError(
            f"{p.name} is a zarr group without OME-Zarr (NGFF) multiscales "
            "metadata; point at one array inside it."
        )
    names = _axes(ms, p.name)
    datasets = ms.get("datasets") or []
    if not datasets:
        raise WeaksegError(f"{p.name} lists no resolution level.")
    group = zarr.open_group(str(p), mode="r")
    levels, geoms = [], []
    for d in datasets:
        key = str(d.get("path", ""))
        try:
            arr = group[key]
        except KeyError:
            raise WeaksegError(
                f"{p.name} lists the level '{key}' but holds no such array."
            ) from None
        if arr.ndim != len(names):
            raise WeaksegError(
                f"Level '{key}' of {p.name} has {arr.ndim} axes; the "
                f"metadata names {len(names)}."
            )
        extra = arr.shape[:-3]
        if any(n != 1 for n in extra):
            raise WeaksegError(
                f"{p.name} has {'x'.join(map(str, extra))} channels or time "
                "points; napari-weakseg reads one 3D volume (split them)."
            )
        arr = checked_zarr(arr, p.name)
        arr = arr[(0,) * len(extra)] if extra else arr
        scale, shift = _transform(d, len(names))
        levels.append(arr)
        geoms.append(Geometry(tuple(scale[-3:]), tuple(shift[-3:])))
    return levels, geoms


def write(
    path: str | os.PathLike,
    data: np.ndarray,
    geometry: Geometry,
    levels: int = 3,
    labels: bool | None = None,
) -> None:
    """An OME-Zarr (NGFF 0.4) image group at ``path`` (replaced whole)."""
    data = np.asarray(data)
    base = create(path, data.shape, data.dtype, geometry, levels, labels)
    base[...] = data
    fill_levels(path)


def create(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    dtype: Any,
    geometry: Geometry,
    levels: int = 3,
    labels: bool | None = None,
    chunks: tuple[int, ...] | None = None,
) -> Any:
    """An empty OME-Zarr group; returns level 0 to be written (block by
    block if need be), after which :func:`fill_levels` builds the rest."""
    import zarr

    if not np.allclose(geometry.matrix, np.eye(3), atol=1e-6):
        raise WeaksegError(
            "OME-Zarr has no rotation: this volume's direction is oblique; "
            "write NIfTI, NRRD or MetaImage instead."
        )
    if len(shape) not in (3, 4):
        raise WeaksegError(
            f"OME-Zarr output takes a 3D volume or channels first (got "
            f"{len(shape)} axes)."
        )
    channels = len(shape) == 4
    dtype = np.dtype(dtype)
    if labels is None:
        labels = np.issubdtype(dtype, np.integer)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    spacing = np.asarray(geometry.spacing, float)
    datasets = []
    level_shape = tuple(int(s) for s in shape)
    for k in range(max(1, levels)):
        if k and min(level_shape[-3:]) < 2:
            break
        edge = chunks or tuple(64 for _ in level_shape)
        group.create_array(
            str(k),
            shape=level_shape,
            dtype=dtype,
            chunks=tuple(min(s, c) for s, c in zip(level_shape, edge)),
        )
        factor = 2.0**k
        # a mean of 2^k voxels sits at their centre; a subsampled label
        # voxel is the first of its block
        offset = 0.0 if labels else (factor - 1) / 2
        shift = np.asarray(geometry.origin, float) + offset * spacing
        lead = [1.0] if channels else []
        lead0 = [0.0] if channels else []
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [
                    {"type": "scale", "scale": lead + list(spacing * factor)},
                    {
                        "type": "translation",
                        "translation": lead0 + list(shift),
                    },
                ],
            }
        )
        level_shape = level_shape[:-3] + tuple(
            (s + 1) // 2 if labels else s // 2 for s in level_shape[-3:]
        )
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": Path(path).name,
            "axes": ([{"name": "c", "type": "channel"}] if channels else [])
            + [
                {"name": a, "type": "space", "unit": "millimeter"}
                for a in SPATIAL
            ],
            "datasets": datasets,
        }
    ]
    group.attrs["weakseg_geometry"] = geometry.to_dict()
    group.attrs["weakseg_labels"] = bool(labels)
    return _complete(group["0"])


def _complete(arr: Any) -> Any:
    """``arr`` writing its empty chunks too, so that the store holds every
    chunk (one lacking chunks is refused when read); the setting is not
    stored, every handle that writes needs it."""
    return arr.with_config({"write_empty_chunks": True})


def fill_levels(path: str | os.PathLike, slab: int = 64) -> None:
    """Compute every level after the first from the one before it, one
    slab of ``2 * slab`` planes at a time (memory: one slab)."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    labels = bool(group.attrs.get("weakseg_labels", False))
    names = [d["path"] for d in group.attrs["multiscales"][0]["datasets"]]
    for fine, coarse in zip(names, names[1:]):
        src, dst = group[fine], _complete(group[coarse])
        for z0 in range(0, dst.shape[-3], slab):
            z1 = min(dst.shape[-3], z0 + slab)
            block = np.asarray(src[..., 2 * z0 : 2 * z1, :, :])
            half = (
                np.stack([_halve(c, labels) for c in block])
                if block.ndim == 4
                else _halve(block, labels)
            )
            dst[..., z0:z1, :, :] = half[..., : z1 - z0, :, :]


def _halve(level: np.ndarray, labels: bool) -> np.ndarray:
    if labels:
        return np.ascontiguousarray(level[::2, ::2, ::2])
    even = tuple(slice(0, s - s % 2) for s in level.shape)
    v = level[even].astype(np.float32)
    z, y, x = (s // 2 for s in v.shape)
    return v.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5)).astype(level.dtype)
