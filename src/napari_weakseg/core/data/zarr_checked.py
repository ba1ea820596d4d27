"""zarr arrays whose reads name the store when a chunk is damaged.

:func:`checked_zarr` wraps an array so that a chunk that fails to decode
raises one :class:`~.errors.WeaksegError` sentence; both plain zarr stores
(:mod:`~.volume_zarr`) and OME-Zarr levels (:mod:`~.ngff`) are read
through it.
"""

from __future__ import annotations

import functools
from typing import Any

from ..base.errors import WeaksegError


def _damaged(name: str, exc: BaseException) -> WeaksegError:
    why = f"{type(exc).__name__}: {str(exc)[:80]}".rstrip(": ")
    return WeaksegError(
        f"{name} has a damaged chunk ({why}); restore the store from a copy "
        "or write it again."
    )


def _decoding(read: Any) -> Any:
    """A zarr read method that raises WeaksegError for a chunk that
    fails to decode (a bad selection still raises as zarr does)."""

    @functools.wraps(read)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(self, *args, **kwargs)
        except (WeaksegError, IndexError, TypeError, MemoryError):
            raise
        except Exception as exc:  # codecs raise anything on bad bytes
            name = getattr(self, "_weakseg_name", "The zarr store")
            raise _damaged(name, exc) from exc

    return checked


def _checked_class() -> type:
    """:class:`CheckedZarrArray`, built on first use (zarr is imported
    lazily); a module attribute so that dask workers can unpickle it."""
    cls = globals().get("_CHECKED")
    if cls is not None:
        return cls
    import zarr

    reads = (
        "get_basic_selection",
        "get_orthogonal_selection",
        "get_mask_selection",
        "get_coordinate_selection",
        "get_block_selection",
    )
    cls = type(
        "CheckedZarrArray",
        (zarr.Array,),
        {
            "__module__": __name__,
            "__doc__": "A zarr array whose reads raise WeaksegError for a "
            "damaged chunk; everything else is zarr's (attrs, chunks, "
            "dask.array.from_zarr).",
            **{n: _decoding(getattr(zarr.Array, n)) for n in reads},
        },
    )
    globals()["_CHECKED"] = cls
    return cls


def __getattr__(name: str) -> Any:
    if name == "CheckedZarrArray":
        return _checked_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def checked_zarr(arr: Any, name: str) -> Any:
    """``arr`` (a zarr array) as a :class:`CheckedZarrArray` whose reads
    name ``name`` in the sentence of a damaged chunk; other arrays as
    they are."""
    import zarr

    if not isinstance(arr, zarr.Array):
        return arr
    checked = _checked_class()(arr.async_array)
    checked._weakseg_name = name
    return checked
