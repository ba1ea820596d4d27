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
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..base.errors import WeaksegError
from ..base.files import discard, temporary_sibling
from .geometry import Geometry
from .headers import check_header, max_voxels
from .headers import data_files as _header_data_files

SITK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr",)
SUFFIXES = SITK_SUFFIXES + TIFF_SUFFIXES + ZARR_SUFFIXES
#: set to ``allow`` to read DICOM series with missing or uneven slices
DICOM_GAPS_ENV = "WEAKSEG_DICOM_GAPS"


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
            vol = _read_zarr(p, lazy, allow_missing_chunks)
        elif p.is_dir():
            vol = _read_dicom(p)
        elif suffix in TIFF_SUFFIXES:
            vol = _read_tiff(p, lazy)
        elif suffix in SITK_SUFFIXES:
            check_header(p)
            vol = _read_sitk(p)
        if vol is not None:
            _check_dtype(p, vol.data.dtype)
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


def _check_dtype(p: Path, dtype: Any) -> None:
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        raise WeaksegError(
            f"Could not read {p.name}: its voxels are complex numbers "
            f"({dtype}); napari-weakseg reads real-valued images (save the "
            "magnitude instead)."
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
        from . import ngff

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
        from . import ngff

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
        _write_sitk(folder / header, data, g)
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


_SITK_IO = {
    ".nii.gz": "NiftiImageIO",
    ".nii": "NiftiImageIO",
    ".nrrd": "NrrdImageIO",
    ".nhdr": "NrrdImageIO",
    ".mha": "MetaImageIO",
    ".mhd": "MetaImageIO",
}


def _read_sitk(p: Path) -> Volume:
    import SimpleITK as sitk

    suffix = suffix_of(p)
    if p.name.endswith(suffix):
        vol = _from_sitk(sitk.ReadImage(str(p)))
    else:  # ITK knows the suffixes in lower case only: ``X.MHD`` needs its IO
        vol = _from_sitk(sitk.ReadImage(str(p), imageIO=_SITK_IO[suffix]))
    if suffix in (".nii", ".nii.gz"):
        _restore_nonfinite(p, vol)
    return vol


def _restore_nonfinite(p: Path, vol: Volume) -> None:
    """Put back the NaN / Inf voxels that ITK's NIfTI reader turned into
    0, so they are refused where the image is used, like in any format."""
    from .headers import nifti_nonfinite

    found = nifti_nonfinite(p)
    data = vol.data
    if found is None or not np.issubdtype(data.dtype, np.floating):
        return
    at, values = found
    if data.ndim == 3 and at.max() < data.size:
        data.reshape(-1)[at] = values.astype(data.dtype)


def _read_dicom(p: Path) -> Volume:
    """The first series in ``p``, refused when a slice is missing,
    damaged, duplicated or placed unevenly (GDCM leaves out the files it
    cannot parse and ITK then stretches the spacing over the gap), unless
    ``WEAKSEG_DICOM_GAPS=allow``: then the spacing is the median step."""
    import SimpleITK as sitk

    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p))
    if not ids:
        raise WeaksegError(f"No DICOM series found in the folder {p}.")
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(p), ids[0]))
    allow = os.environ.get(DICOM_GAPS_ENV, "").strip().lower() == "allow"
    if not allow:
        _check_left_out(p, files)
    step = _dicom_step(p, files, allow)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    img = reader.Execute()
    if allow and step and img.GetDimension() == 3:
        img.SetSpacing((*img.GetSpacing()[:2], step))
    return _from_sitk(img)


def _dicom_info(f: str | os.PathLike) -> dict[str, str]:
    """A DICOM file's header tags (no pixel read); raises RuntimeError
    when it is not a readable DICOM file."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(f))
    reader.ReadImageInformation()
    return {
        k: reader.GetMetaData(k)
        for k in ("0020|0032", "0020|0037")
        if reader.HasMetaDataKey(k)
    }


def _check_left_out(p: Path, files: list[str]) -> None:
    """Refuse a file beside the series, named like its slices, that GDCM
    left out because it cannot parse it (a truncated or overwritten
    slice)."""
    import SimpleITK as sitk

    def kind(f: Path) -> str:  # "IM0001", "x.dcm", "1.2.840.1.15" (UIDs)
        return "#" if f.suffix[1:].isdigit() else f.suffix.lower()

    listed = {Path(f).resolve() for f in files}
    kinds = {kind(Path(f)) for f in files}
    others = [
        f
        for f in sorted(p.iterdir())
        if not f.name.startswith(".")
        and f.name.upper() != "DICOMDIR"
        and kind(f) in kinds
        and f.is_file()
        and f.resolve() not in listed
    ]
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(p)) if others else ()
    for other in ids[1:]:  # the slices of the folder's other series
        listed.update(
            Path(f).resolve()
            for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(
                str(p), other
            )
        )
    for f in (f for f in others if f.resolve() not in listed):
        try:
            _dicom_info(f)  # readable: another series, not ours
        except RuntimeError:
            raise WeaksegError(
                f"The DICOM series in {p} leaves out {f.name}, which is "
                "damaged or not DICOM; a slice is missing or damaged "
                f"(remove {f.name} if it does not belong to the series, or "
                f"set {DICOM_GAPS_ENV}=allow to read the series without "
                "it)."
            ) from None


def _ds_quantum(text: str) -> float:
    """The rounding step of a DICOM decimal string ("12.5" -> 0.1)."""
    worst = 0.0
    for part in text.split("\\"):
        part = part.strip()
        if not part or "e" in part.lower():
            continue
        decimals = len(part.split(".", 1)[1]) if "." in part else 0
        worst = max(worst, 10.0**-decimals)
    return worst


def _dicom_step(p: Path, files: list[str], allow: bool) -> float | None:
    """The median step between slice positions along the slice normal;
    refuses (unless ``allow``) a slice that cannot be read, slices that
    share a position or steps that differ.  None when the slices carry
    no positions (one file, or tags absent)."""
    if len(files) < 2:
        return None
    infos = []
    for f in files:
        try:
            infos.append(_dicom_info(f))
        except RuntimeError:
            if allow:
                return None
            raise WeaksegError(
                f"The DICOM series in {p} lists the slice {Path(f).name}, "
                "which cannot be read; it is damaged."
            ) from None
    have = [len(i) == 2 for i in infos]
    if not any(have):
        return None
    try:
        if not all(have):
            raise ValueError
        pos = np.array(
            [[float(v) for v in i["0020|0032"].split("\\")] for i in infos]
        )
        ori = np.array(
            [[float(v) for v in i["0020|0037"].split("\\")] for i in infos]
        )
        if pos.shape[1] != 3 or ori.shape[1] != 6:
            raise ValueError
    except ValueError:
        if allow:
            return None
        raise WeaksegError(
            f"The DICOM series in {p} has slices without a readable "
            "position or orientation (tags 0020|0032, 0020|0037)."
        ) from None
    normal = np.cross(ori[0, :3], ori[0, 3:])
    if not np.all(np.isfinite(normal)) or np.linalg.norm(normal) < 1e-6:
        return None  # no slice normal: left to ITK
    normal /= np.linalg.norm(normal)
    depth = pos @ normal
    order = np.argsort(depth, kind="stable")
    steps = np.diff(depth[order])
    step = float(np.median(steps))
    if allow:
        return step if step > 0 else None
    names = [Path(files[k]).name for k in order]
    # positions are written with few decimals: allow their rounding, but
    # never a whole slice (a missing slice moves a step by one spacing)
    rounding = max(_ds_quantum(i["0020|0032"]) for i in infos)
    rounding *= float(np.abs(normal).sum())
    tol = max(1e-3 * step, min(rounding, 0.25 * step))
    tilt = np.abs(ori - ori[0]).max(axis=1)
    if tilt.max() > 1e-3:
        k = int(np.argmax(tilt))
        raise WeaksegError(
            f"The DICOM series in {p} mixes slice orientations "
            f"({Path(files[0]).name} and {Path(files[k]).name}); it is not "
            "one volume."
        )
    for k, d in enumerate(steps):
        if d <= tol:
            raise WeaksegError(
                f"The DICOM series in {p} has two slices at the same "
                f"position ({names[k]} and {names[k + 1]}); remove the "
                f"duplicate (or set {DICOM_GAPS_ENV}=allow to read it "
                "anyway)."
            )
    for k, d in enumerate(steps):
        if abs(d - step) > tol:
            raise WeaksegError(
                f"The DICOM series in {p} has a gap or uneven slice "
                f"spacing between slices {k + 1} and {k + 2} ({names[k]} "
                f"and {names[k + 1]}: {d:.4g} mm vs {step:.4g} mm); a "
                f"slice is missing or damaged (set {DICOM_GAPS_ENV}=allow "
                "to read it anyway)."
            )
    return step


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


def _write_tiff(p: Path, data: np.ndarray, g: Geometry) -> None:
    import tifffile

    axes = "CZYX" if data.ndim == 4 else "ZYX"
    tifffile.imwrite(
        p,
        data,
        photometric="minisblack",  # 3 or 4 slices are no RGB(A) image
        metadata={"axes": axes, **g.to_dict()},
    )


# --- zarr ------------------------------------------------------------------


def _read_zarr(p: Path, lazy: bool, allow_missing: bool = False) -> Volume:
    import zarr

    from . import ngff

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
    _check_dtype(p, arr.dtype)
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


def _free_memory() -> int:
    """Bytes of memory available now (a large number if unknown)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62
