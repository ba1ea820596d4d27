"""NIfTI-1 and NIfTI-2 headers: checked against the file's size, and
the NaN / infinite voxels that ITK's reader would turn into 0."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .header_base import (
    CHUNK,
    bad,
    check_size,
    check_spacing,
    gzip_chunks,
    stream_length,
)

_NIFTI_BYTES = {
    2: 1,
    4: 2,
    8: 4,
    16: 4,
    64: 8,
    256: 1,
    512: 2,
    768: 4,
    1024: 8,
    1280: 8,
    32: 8,
    128: 3,
    2304: 4,
}


def check_nifti(p: Path, gz: bool) -> None:
    order, dim, code, pixdim, offset = _nifti_header(p, gz)
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise bad(p, f"its header gives {ndim} dimensions")
    if code not in _NIFTI_BYTES:
        raise bad(p, f"its header gives the unknown data type {code}")
    need = offset + check_size(p, list(dim[1 : ndim + 1]), _NIFTI_BYTES[code])
    # ITK reads a negative pixdim as its absolute value (a flip lives in
    # the qform/sform); 0 and NaN stay refused
    check_spacing(p, [abs(float(x)) for x in pixdim[1 : min(ndim, 3) + 1]])
    have = stream_length(p, gzip_chunks(p)) if gz else p.stat().st_size
    if have < need:
        raise bad(
            p,
            f"it is truncated ({have:,} of the {need:,} bytes its header "
            "announces)",
        )


#: NIfTI float types whose NaN / Inf ITK's reader turns into 0
_NIFTI_FLOATS = {16: "f4", 64: "f8"}


def nifti_nonfinite(path: str | os.PathLike) -> tuple[Any, Any] | None:
    """``(flat indices, values)`` of the NaN / infinite voxels of a float
    NIfTI file, in file order (= the C order of ``(z, y, x)`` arrays), or
    None when it has none.  ITK's reader turns them into 0 silently, so
    the file's own bytes are scanned, chunk by chunk."""
    import numpy as np

    p = Path(path)
    gz = p.name.lower().endswith(".gz")
    order, dim, code, _, offset = _nifti_header(p, gz)
    if code not in _NIFTI_FLOATS:
        return None
    dtype = np.dtype(order + _NIFTI_FLOATS[code])
    count = math.prod(dim[1 : dim[0] + 1])
    chunks = gzip_chunks(p) if gz else _file_chunks(p)
    found_at, found = [], []
    skip, start, rest = offset, 0, b""
    for chunk in chunks:
        if skip:
            cut = min(skip, len(chunk))
            chunk, skip = chunk[cut:], skip - cut
        buf = rest + chunk
        usable = len(buf) - len(buf) % dtype.itemsize
        values = np.frombuffer(buf[:usable], dtype)[: max(0, count - start)]
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            found_at.append(bad + start)
            found.append(values[bad])
        start += values.size
        rest = buf[usable:]
        if start >= count:
            break
    if not found_at:
        return None
    return np.concatenate(found_at), np.concatenate(found).astype(float)


def _file_chunks(p: Path) -> Iterator[bytes]:
    with p.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _nifti_header(p: Path, gz: bool) -> tuple[str, Any, int, Any, int]:
    """Byte order, dim, datatype code, pixdim and data offset."""
    try:
        if gz:
            with gzip.open(p, "rb") as f:
                head = f.read(540)
        else:
            with p.open("rb") as f:
                head = f.read(540)
    except (EOFError, OSError, zlib.error) as exc:
        raise bad(p, f"it is damaged ({exc})") from None
    if len(head) < 348:
        raise bad(p, "it is shorter than a NIfTI header")
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size in (348, 540):
            break
    else:
        raise bad(p, "it has no NIfTI header")
    if size == 348:
        dim = struct.unpack(order + "8h", head[40:56])
        code, bitpix = struct.unpack(order + "2h", head[70:74])
        pixdim = struct.unpack(order + "8f", head[76:108])
        offset = int(struct.unpack(order + "f", head[108:112])[0])
    else:
        if len(head) < 540:
            raise bad(p, "its NIfTI-2 header is cut short")
        code, bitpix = struct.unpack(order + "2h", head[12:16])
        dim = struct.unpack(order + "8q", head[16:80])
        pixdim = struct.unpack(order + "8d", head[80:144])
        offset = struct.unpack(order + "q", head[168:176])[0]
    return order, dim, code, pixdim, offset
