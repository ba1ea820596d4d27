"""Read and write 3D volumes with their physical geometry.

SimpleITK handles the medical formats (NIfTI, NRRD, MetaImage, DICOM
series); tifffile handles microscopy stacks; zarr handles volumes larger
than memory.  Geometry always comes back in (z, y, x) order, and writing
then reading a volume gives the same array, spacing, origin and direction.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WeaksegError
from .geometry import Geometry
from .headers import check_header, max_voxels

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


def can_read(path: str | os.PathLike) -> bool:
    """Cheap check used by the napari reader hook."""
    return suffix_of(path) in SUFFIXES or is_dicom_dir(path)


def read_volume(path: str | os.PathLike, lazy: bool = False) -> Volume:
    """Read a volume.

    Parameters
    ----------
    path
        A file in any supported format, a ``.zarr`` folder or a folder
        holding one DICOM series.
    lazy
        Return a zarr/memory-mapped array instead of loading into memory
        where the format allows it (zarr, uncompressed TIFF).
    """
    p = Path(path)
    if not p.exists():
        raise WeaksegError(f"No file or folder at {p}.")
    suffix = suffix_of(p)
    try:
        if suffix in ZARR_SUFFIXES:
            return _read_zarr(p, lazy)
        if p.is_dir():
            return _read_dicom(p)
        if suffix in TIFF_SUFFIXES:
            return _read_tiff(p, lazy)
        if suffix in SITK_SUFFIXES:
            check_header(p)
            return _read_sitk(p)
    except WeaksegError:
        raise
    except Exception as exc:  # the libraries raise anything on bad bytes
        raise WeaksegError(
            f"Could not read {p.name}: it is damaged or not a valid "
            f"{suffix or 'image'} file ({type(exc).__name__})."
        ) from exc
    raise WeaksegError(
        f"Unsupported file type '{suffix or p.name}'; napari-weakseg reads "
        f"{', '.join(SUFFIXES)} and DICOM series folders."
    )


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
            _write_sitk(tmp, data, volume.geometry)
        elif suffix in TIFF_SUFFIXES:
            _write_tiff(tmp, data, volume.geometry)
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
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


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
        from . import ngff

        return ngff.create(tmp, shape, dtype, geometry, chunks=chunks)
    edge = chunks or tuple(64 for _ in shape)
    arr = zarr.open(
        str(tmp),
        mode="w",
        shape=shape,
        dtype=dtype,
        chunks=tuple(min(s, c) for s, c in zip(shape, edge)),
    )
    arr.attrs["weakseg_geometry"] = geometry.to_dict()
    return arr


def finish_store(tmp: Path, final: str | os.PathLike) -> None:
    """Build an OME-Zarr output's lower resolution levels."""
    if Path(final).name.lower().endswith(".ome.zarr"):
        from . import ngff

        ngff.fill_levels(tmp)


def _write_pair(p: Path, data: np.ndarray, g: Geometry) -> None:
    """Header + data file written in a temporary folder, then renamed."""
    folder = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
    try:
        _write_sitk(folder / p.name, data, g)
        for f in sorted(folder.iterdir(), key=lambda f: f.name == p.name):
            if f.name != p.name and (p.parent / f.name).is_dir():
                raise WeaksegError(
                    f"{p.parent / f.name} is an existing folder; give "
                    "another file name."
                )
            os.replace(f, p.parent / f.name)  # data first, header last
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _temporary_sibling(p: Path) -> Path:
    fd, name = tempfile.mkstemp(
        prefix=f".{p.name}.", suffix=suffix_of(p), dir=p.parent
    )
    os.close(fd)
    os.unlink(name)
    return Path(name)


# --- SimpleITK -------------------------------------------------------------


def _from_sitk(img: Any) -> Volume:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(img)
    if img.GetDimension() != 3:
        return Volume(arr, Geometry(), {})
    if img.GetNumberOfComponentsPerPixel() > 1:  # channel-last -> first
        arr = np.moveaxis(arr, -1, 0)
    d = np.asarray(img.GetDirection(), dtype=float).reshape(3, 3)
    geometry = Geometry(
        spacing=img.GetSpacing()[::-1],
        origin=img.GetOrigin()[::-1],
        direction=d[::-1, ::-1].ravel(),
    )
    meta = {k: img.GetMetaData(k) for k in img.GetMetaDataKeys()}
    return Volume(arr, geometry, meta)


def _read_sitk(p: Path) -> Volume:
    import SimpleITK as sitk

    return _from_sitk(sitk.ReadImage(str(p)))


def _read_dicom(p: Path) -> Volume:
    import SimpleITK as sitk

    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p))
    if not ids:
        raise WeaksegError(f"No DICOM series found in the folder {p}.")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(
        sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(p), ids[0])
    )
    return _from_sitk(reader.Execute())


def _write_sitk(p: Path, data: np.ndarray, g: Geometry) -> None:
    import SimpleITK as sitk

    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if data.ndim == 4:  # channel-first stack -> one vector-valued image
        img = sitk.GetImageFromArray(np.moveaxis(data, 0, -1), isVector=True)
    else:
        img = sitk.GetImageFromArray(data)
    img.SetSpacing(g.spacing[::-1])
    img.SetOrigin(g.origin[::-1])
    img.SetDirection(tuple(g.matrix[::-1, ::-1].ravel()))
    sitk.WriteImage(img, str(p), useCompression=True)


# --- TIFF ------------------------------------------------------------------


def _read_tiff(p: Path, lazy: bool) -> Volume:
    import tifffile

    with tifffile.TiffFile(p) as tif:
        geometry = _tiff_geometry(tif)
        meta = {"tiff_axes": tif.series[0].axes}
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


def _write_tiff(p: Path, data: np.ndarray, g: Geometry) -> None:
    import tifffile

    axes = "CZYX" if data.ndim == 4 else "ZYX"
    tifffile.imwrite(p, data, metadata={"axes": axes, **g.to_dict()})


# --- zarr ------------------------------------------------------------------


def _read_zarr(p: Path, lazy: bool) -> Volume:
    import zarr

    from . import ngff

    arr = zarr.open(str(p), mode="r")
    ome = not hasattr(arr, "shape")
    if ome:  # a group: OME-Zarr multiscales, level 0 is the volume
        levels, geometries = ngff.read_levels(p)
        arr, geometry = levels[0], geometries[0]
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
    attrs = dict(arr.attrs)
    if not ome:
        geometry = Geometry.from_dict(attrs.get("weakseg_geometry", {}))
    meta = {"zarr_attrs": json.dumps(attrs)}
    if ome:
        meta["ome_zarr_levels"] = str(len(levels))
    return Volume(arr if lazy else arr[...], geometry, meta)


def _free_memory() -> int:
    """Bytes of memory available now (a large number if unknown)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62
