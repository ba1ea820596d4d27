"""Read and write 3D volumes with their physical geometry.

SimpleITK handles the medical formats (NIfTI, NRRD, MetaImage, DICOM
series); tifffile handles microscopy stacks; zarr handles volumes larger
than memory.  Geometry always comes back in (z, y, x) order, and writing
then reading a volume gives the same array, spacing, origin and direction.

What a reader cannot trust is refused with one sentence naming the file:
a DICOM series with a missing, damaged or unevenly placed slice (set
``WEAKSEG_DICOM_GAPS=allow`` to read it anyway, its slices stacked at the
median step), a header whose data file lies outside its folder (see
:mod:`.headers`), a zarr store that lacks chunks or holds one that does
not decode, an invalid geometry, colour (RGB) TIFF samples and complex
voxels.

This module is the entry point: it picks a reader or writer by format
(:mod:`.formats`) and makes every write atomic; the readers and writers
of each format live in :mod:`.volume_itk`, :mod:`.volume_dicom`,
:mod:`.volume_tiff` and :mod:`.volume_zarr`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..base.errors import WeaksegError
from ..base.files import discard, temporary_sibling
from . import ngff
from .formats import (
    SITK_SUFFIXES,
    SUFFIXES,
    TIFF_SUFFIXES,
    ZARR_SUFFIXES,
    Volume,
    can_read,
    check_dtype,
    is_dicom_dir,
    is_zarr_store,
    suffix_of,
)
from .geometry import Geometry
from .headers import check_header
from .headers import data_files as _header_data_files
from .volume_dicom import read_dicom
from .volume_itk import read_sitk, write_sitk
from .volume_tiff import read_tiff, write_tiff
from .volume_zarr import read_zarr


def is_collection(path: str | os.PathLike) -> bool:
    """A folder of volumes (not itself one volume: zarr store, DICOM)."""
    p = Path(path)
    return p.is_dir() and not is_dicom_dir(p) and suffix_of(p) != ".zarr"


def volume_files(folder: str | os.PathLike) -> list[Path]:
    """The volumes in a folder, sorted by name: files and zarr stores with
    a volume suffix and DICOM series folders (hidden entries skipped)."""
    entries = sorted(Path(folder).iterdir())
    return [
        p
        for p in entries
        if not p.name.startswith(".") and (can_read(p) or is_zarr_store(p))
    ]


def data_files(path: str | os.PathLike) -> list[Path]:
    """The files, resolved, that reading ``path`` takes voxels from
    besides ``path`` itself: the data file(s) a MetaImage or NRRD header
    names (``.mhd``/``.nhdr``, and ``.mha``/``.nrrd`` whose data lies in
    another file); ``[]`` when the data is inline, the format has none or
    ``path`` does not exist.  Raises :class:`WeaksegError` for a header
    that cannot be parsed."""
    if suffix_of(path) not in (".mha", ".mhd", ".nrrd", ".nhdr"):
        return []
    return _header_data_files(path)


def companion_files(path: str | os.PathLike) -> list[Path]:
    """The files :func:`write_volume` creates beside ``path``: the
    compressed data file of a header pair (``x.mhd`` -> ``x.zraw``,
    ``x.nhdr`` -> ``x.raw.gz``); ``[]`` for single-file formats."""
    p = Path(path)
    suffix = suffix_of(p)
    stem = p.name[: -len(suffix)] if suffix else p.name
    if suffix == ".mhd":
        return [p.parent / f"{stem}.zraw"]
    if suffix == ".nhdr":
        return [p.parent / f"{stem}.raw.gz"]
    return []


def read_volume(
    path: str | os.PathLike,
    lazy: bool = False,
    allow_missing_chunks: bool = False,
) -> Volume:
    """Read a volume.

    Parameters
    ----------
    path
        A file in any supported format, a ``.zarr`` folder or a folder
        holding one DICOM series.
    lazy
        Return a zarr/memory-mapped array instead of loading into memory
        where the format allows it (zarr, uncompressed TIFF).  A lazy
        zarr array raises :class:`WeaksegError` when a chunk it reads
        turns out damaged.
    allow_missing_chunks
        Read a zarr store that lacks chunks (they read as its fill value,
        as label stores that leave out empty chunks intend); by default
        such a store is refused, its chunks being lost.

    A DICOM series with a missing, damaged or unevenly spaced slice is
    refused; with the environment variable ``WEAKSEG_DICOM_GAPS=allow``
    it is read as GDCM sorts it, its slice spacing the median step
    between slice positions.
    """
    p = Path(path)
    if not p.exists():
        raise WeaksegError(f"No file or folder at {p}.")
    suffix = suffix_of(p)
    try:
        vol = None
        if suffix in ZARR_SUFFIXES:
            vol = read_zarr(p, lazy, allow_missing_chunks)
        elif p.is_dir():
            vol = read_dicom(p)
        elif suffix in TIFF_SUFFIXES:
            vol = read_tiff(p, lazy)
        elif suffix in SITK_SUFFIXES:
            check_header(p)
            vol = read_sitk(p)
        if vol is not None:
            check_dtype(p, vol.data.dtype)
            return vol
    except WeaksegError as exc:
        named = _naming(p, exc)
        if named is exc:
            raise
        raise named from exc
    except Exception as exc:  # the libraries raise anything on bad bytes
        raise WeaksegError(
            f"Could not read {p.name}: it is damaged or not a valid "
            f"{suffix or 'image'} file ({type(exc).__name__})."
        ) from exc
    raise WeaksegError(
        f"Unsupported file type '{suffix or p.name}'; napari-weakseg reads "
        f"{', '.join(SUFFIXES)} and DICOM series folders."
    )


def _naming(p: Path, exc: WeaksegError) -> WeaksegError:
    """``exc`` if its sentence names the file, else one that does."""
    text = str(exc).strip()
    if re.search(rf"(?<![\w.-]){re.escape(p.name)}(?![\w-])", text):
        return exc
    if text[1:2].islower():  # "The origin ..." -> "the origin ..."
        text = text[:1].lower() + text[1:]
    return WeaksegError(f"Could not read {p.name}: {text.rstrip('.')}.")


def write_volume(path: str | os.PathLike, volume: Volume) -> Path:
    """Write ``volume`` atomically: a unique temporary, then a rename.

    Nothing is written over a folder (a zarr store excepted, which is
    replaced whole).  A MetaImage ``.mhd`` or NRRD ``.nhdr`` pair is
    written under the final names inside a temporary folder beside the
    output, then the data file and the header are renamed into place.
    Temporaries are removed on every exit path.
    """
    p = Path(path)
    suffix = suffix_of(p)
    if suffix not in SUFFIXES:
        raise WeaksegError(
            f"Cannot write '{suffix or p.name}'; use one of "
            f"{', '.join(s for s in SUFFIXES if s != '.nhdr')}."
        )
    data = np.asarray(volume.data)
    if data.ndim not in (3, 4):
        raise WeaksegError(
            "Only 3D volumes (or channel-first 4D stacks such as class "
            f"probabilities) can be written, got shape {data.shape}."
        )
    if suffix in (".mhd", ".nhdr"):
        _refuse_folder(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        _write_pair(p, data, volume.geometry)
        return p
    with atomic_output(p) as tmp:
        if suffix in SITK_SUFFIXES:
            write_sitk(tmp, data, volume.geometry)
        elif suffix in TIFF_SUFFIXES:
            write_tiff(tmp, data, volume.geometry)
        else:
            create_store(tmp, p, data.shape, data.dtype, volume.geometry)[
                ...
            ] = data
            finish_store(tmp, p)
    return p


def _refuse_folder(p: Path) -> None:
    if p.is_dir() and not is_zarr_store(p):
        raise WeaksegError(f"{p} is an existing folder; give a file name.")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block
    ends without error and removed on every other exit (a stop, Ctrl-C, a
    full disk): nothing half-written is ever at ``path``.  An existing
    zarr store at ``path`` is replaced whole; any other folder is refused.
    """
    p = Path(path)
    _refuse_folder(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(p)
    try:
        yield tmp
        if p.is_dir():  # an old zarr store: out of the way, then removed
            old = _temporary_sibling(p)
            os.replace(p, old)
            os.replace(tmp, p)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, p)
    finally:
        discard(tmp)


def is_zarr_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a zarr output (``.zarr``, ``.ome.zarr``)."""
    return suffix_of(Path(path)) in ZARR_SUFFIXES


def create_store(
    tmp: Path,
    final: str | os.PathLike,
    shape: tuple[int, ...],
    dtype: Any,
    geometry: Geometry,
    chunks: tuple[int, ...] | None = None,
) -> Any:
    """An empty zarr output at ``tmp`` for the name ``final`` (OME-Zarr
    when it ends in ``.ome.zarr``); returns the array to fill, block by
    block if need be; then call :func:`finish_store`."""
    import zarr

    if Path(final).name.lower().endswith(".ome.zarr"):
        return ngff.create(tmp, shape, dtype, geometry, chunks=chunks)
    edge = chunks or tuple(64 for _ in shape)
    arr = zarr.open(
        str(tmp),
        mode="w",
        shape=shape,
        dtype=dtype,
        chunks=tuple(min(s, c) for s, c in zip(shape, edge)),
        # every chunk stored, empty ones too: a store that lacks a chunk
        # is refused when read (see read_volume)
        config={"write_empty_chunks": True},
    )
    arr.attrs["weakseg_geometry"] = geometry.to_dict()
    return arr


def finish_store(tmp: Path, final: str | os.PathLike) -> None:
    """Build an OME-Zarr output's lower resolution levels."""
    if Path(final).name.lower().endswith(".ome.zarr"):
        ngff.fill_levels(tmp)


def _write_pair(p: Path, data: np.ndarray, g: Geometry) -> None:
    """Header + data file written in a temporary folder, then renamed."""
    folder = temporary_sibling(p)
    folder.mkdir()
    # ITK knows the suffixes in lower case only (``X.MHD`` would come out
    # as ``X.mhd``, ``X.NHDR`` as one attached NRRD file)
    suffix = suffix_of(p)
    header = p.name[: -len(suffix)] + suffix
    try:
        write_sitk(folder / header, data, g)
        for f in sorted(folder.iterdir(), key=lambda f: f.name == header):
            dest = p if f.name == header else p.parent / f.name
            if f.name != header and dest.is_dir():
                raise WeaksegError(
                    f"{dest} is an existing folder; give another file name."
                )
            os.replace(f, dest)  # data first, header last
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _temporary_sibling(p: Path) -> Path:
    """A temporary beside ``p`` named after it, keeping its format suffix
    (the writers pick the format by it); stale ones are removed first
    (:mod:`~.files`)."""
    return temporary_sibling(p, suffix_of(p))


__all__ = [
    "SUFFIXES",
    "Volume",
    "atomic_output",
    "can_read",
    "companion_files",
    "create_store",
    "data_files",
    "finish_store",
    "is_collection",
    "is_dicom_dir",
    "is_zarr_path",
    "is_zarr_store",
    "read_volume",
    "suffix_of",
    "volume_files",
    "write_volume",
]
