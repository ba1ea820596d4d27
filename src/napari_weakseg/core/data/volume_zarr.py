"""Reading zarr stores (plain arrays and OME-Zarr groups).

A store that lacks chunks is refused (zarr would read them as its fill
value), as is one larger than the voxel ceiling or, read into memory,
than the memory free.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..base.errors import WeaksegError
from . import ngff
from .formats import Volume, check_dtype
from .geometry import Geometry
from .header_base import max_voxels
from .zarr_checked import checked_zarr


def read_zarr(p: Path, lazy: bool, allow_missing: bool = False) -> Volume:
    import zarr

    arr = zarr.open(str(p), mode="r")
    ome = not hasattr(arr, "shape")
    if ome:  # a group: OME-Zarr multiscales, level 0 is the volume
        levels, geometries = ngff.read_levels(p)
        arr, geometry = levels[0], geometries[0]
        stored = ngff.first_level(p)
    else:
        stored = arr
        arr = checked_zarr(arr, p.name)
    voxels = int(np.prod(arr.shape, dtype=np.float64))
    if voxels > max_voxels() or (
        not lazy and voxels * arr.dtype.itemsize > _free_memory()
    ):
        raise WeaksegError(
            f"{p.name} holds {voxels:,} voxels, more than "
            + (
                "fit in memory"
                if voxels <= max_voxels()
                else f"the limit of {max_voxels():,} (WEAKSEG_MAX_VOXELS)"
            )
            + "."
        )
    check_dtype(p, arr.dtype)
    attrs = dict(getattr(stored if ome else arr, "attrs", {}) or {})
    if not ome:
        geometry = Geometry.from_dict(attrs.get("weakseg_geometry", {}))
    if not allow_missing:
        _check_chunks(p, stored)
    meta = {"zarr_attrs": json.dumps(attrs)}
    if ome:
        meta["ome_zarr_levels"] = str(len(levels))
    return Volume(arr if lazy else np.asarray(arr[...]), geometry, meta)


_ZARR_META = {".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"}


def _stored_chunks(arr: Any) -> int:
    """How many chunk objects (shards, if sharded) ``arr`` has stored: a
    listing of what is there, not a probe of every possible chunk (a
    huge, mostly empty array would take hours)."""
    from zarr.core.sync import sync

    store, prefix = arr.store_path.store, arr.store_path.path
    prefix = f"{prefix}/" if prefix else ""

    async def count() -> int:
        n = 0
        async for key in store.list_prefix(prefix):
            name = key.rsplit("/", 1)[-1]
            n += name not in _ZARR_META and not name.startswith(".")
        return n

    return sync(count())


def _check_chunks(p: Path, arr: Any) -> None:
    """Refuse a store that lacks chunks: zarr reads them as its fill
    value, which would be segmented as if it were data."""
    if arr is None:
        return
    try:
        edge = getattr(arr, "shards", None) or arr.chunks
        total = math.prod(-(-s // c) for s, c in zip(arr.shape, edge))
        stored = _stored_chunks(arr)
    except Exception:  # noqa: BLE001 - a store zarr cannot list
        return
    if stored < total:
        fill = getattr(arr, "fill_value", None)
        raise WeaksegError(
            f"{p.name} lacks {total - stored:,} of {total:,} chunks (they "
            f"would read as {0 if fill is None else fill}); copy the store "
            "again from its source, or write it with its empty chunks."
        )


def _free_memory() -> int:
    """Bytes of memory available now (a large number if unknown)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62
