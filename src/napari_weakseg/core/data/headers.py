"""Check a file's own header against its size before a library reads it.

SimpleITK trusts headers: a truncated NIfTI reads with the missing voxels
as 0, a MetaImage claiming ``NDims = 10000000000`` crashes the process,
and compressed garbage decodes into uninitialised memory.  So the
NIfTI, MetaImage and NRRD headers are parsed here first, in plain Python
that cannot crash: dimensions, voxel counts (against a ceiling), bytes
per voxel, spacing, and the data actually present (compressed streams are
decoded to count their bytes, without keeping them).

A MetaImage or NRRD header names the file(s) holding its voxels; they must
lie in the header's folder or below it (symbolic links and ``..``
resolved), so that a header cannot make the product read, say,
``/etc/passwd`` as an image.  Set ``WEAKSEG_ALLOW_EXTERNAL_DATA=1`` to
follow data files elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from .header_nifti import check_nifti
from .header_text import (
    check_metaimage,
    check_nrrd,
    metaimage_layout,
    nrrd_layout,
)


def data_files(path: str | os.PathLike) -> list[Path]:
    """The files a MetaImage or NRRD header reads its voxels from,
    resolved (symbolic links and ``..`` followed); ``[]`` when the voxels
    are inline or ``path`` is not such a header.  Raises
    :class:`WeaksegError` for a header that cannot be parsed."""
    p = Path(path)
    name = p.name.lower()
    if not p.is_file():
        return []
    if name.endswith((".mha", ".mhd")):
        names = metaimage_layout(p)[3]
    elif name.endswith((".nrrd", ".nhdr")):
        names = nrrd_layout(p)[3]
    else:
        return []
    return [(p.parent / n).resolve() for n in names or ()]


def check_header(path: str | os.PathLike) -> None:
    """Raise :class:`WeaksegError` if ``path``'s header lies or is unsafe."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        check_nifti(p, name.endswith(".gz"))
    elif name.endswith((".mha", ".mhd")):
        check_metaimage(p)
    elif name.endswith((".nrrd", ".nhdr")):
        check_nrrd(p)
