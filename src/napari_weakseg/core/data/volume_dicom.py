"""DICOM series: read one folder's series, refusing what cannot be
trusted (a missing, damaged, duplicated or unevenly placed slice) unless
``WEAKSEG_DICOM_GAPS=allow``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..base.errors import WeaksegError
from .formats import Volume
from .volume_itk import from_sitk

#: set to ``allow`` to read DICOM series with missing or uneven slices
DICOM_GAPS_ENV = "WEAKSEG_DICOM_GAPS"


def read_dicom(p: Path) -> Volume:
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
    return from_sitk(img)


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
