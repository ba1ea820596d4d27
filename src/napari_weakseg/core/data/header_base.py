"""What every header check shares: the voxel ceiling, the sentence of a
refusal, size and spacing checks, and counting decompressed bytes."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from ..base.errors import WeaksegError

#: default ceiling on voxels in one volume (``WEAKSEG_MAX_VOXELS``)
MAX_VOXELS = 2**31
#: environment variable that lets headers name data files anywhere
EXTERNAL_DATA_ENV = "WEAKSEG_ALLOW_EXTERNAL_DATA"
CHUNK = 1 << 20


def max_voxels() -> int:
    """The voxel ceiling: ``WEAKSEG_MAX_VOXELS`` or :data:`MAX_VOXELS`."""
    try:
        return int(os.environ.get("WEAKSEG_MAX_VOXELS", MAX_VOXELS))
    except ValueError:
        return MAX_VOXELS


def external_data_allowed() -> bool:
    """Whether ``WEAKSEG_ALLOW_EXTERNAL_DATA=1`` lets headers name data
    files outside their folder."""
    value = os.environ.get(EXTERNAL_DATA_ENV, "").strip().lower()
    return value in ("1", "true", "yes")


def bad(p: Path, why: str) -> WeaksegError:
    return WeaksegError(f"Could not read {p.name}: {why}.")


def check_size(p: Path, dims: list[int], nbytes: int, channels: int = 1):
    if not dims or any(d < 1 for d in dims):
        raise bad(p, f"its header gives the size {dims}")
    voxels = math.prod(dims)
    if voxels > max_voxels():
        raise bad(
            p,
            f"its header claims {voxels:,} voxels, over the limit of "
            f"{max_voxels():,} (set WEAKSEG_MAX_VOXELS to raise it)",
        )
    return voxels * nbytes * channels


def check_spacing(p: Path, spacing: list[float]) -> None:
    if any(not math.isfinite(s) or s <= 0 for s in spacing):
        raise bad(p, f"its voxel spacing {spacing} is not positive")


def stream_length(p: Path, chunks: Iterator[bytes]) -> int:
    n = 0
    try:
        for c in chunks:
            n += len(c)
    except (EOFError, OSError, zlib.error) as exc:
        raise bad(p, f"its compressed data is damaged ({exc})") from None
    return n


def gzip_chunks(p: Path) -> Iterator[bytes]:
    with gzip.open(p, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk
