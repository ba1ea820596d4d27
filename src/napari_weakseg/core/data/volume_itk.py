"""NIfTI, NRRD and MetaImage volumes through SimpleITK.

Geometry comes back in (z, y, x) order; NaN and infinite voxels that
ITK's NIfTI reader turns into 0 are put back from the file's own bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .formats import Volume, suffix_of
from .geometry import Geometry


def from_sitk(img: Any) -> Volume:
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


def read_sitk(p: Path) -> Volume:
    import SimpleITK as sitk

    suffix = suffix_of(p)
    if p.name.endswith(suffix):
        vol = from_sitk(sitk.ReadImage(str(p)))
    else:  # ITK knows the suffixes in lower case only: ``X.MHD`` needs its IO
        vol = from_sitk(sitk.ReadImage(str(p), imageIO=_SITK_IO[suffix]))
    if suffix in (".nii", ".nii.gz"):
        _restore_nonfinite(p, vol)
    return vol


def _restore_nonfinite(p: Path, vol: Volume) -> None:
    """Put back the NaN / Inf voxels that ITK's NIfTI reader turned into
    0, so they are refused where the image is used, like in any format."""
    from .header_nifti import nifti_nonfinite

    found = nifti_nonfinite(p)
    data = vol.data
    if found is None or not np.issubdtype(data.dtype, np.floating):
        return
    at, values = found
    if data.ndim == 3 and at.max() < data.size:
        data.reshape(-1)[at] = values.astype(data.dtype)


def write_sitk(p: Path, data: np.ndarray, g: Geometry) -> None:
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
