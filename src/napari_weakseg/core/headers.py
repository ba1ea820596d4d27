"""Check a file's own header against its size before a library reads it.

SimpleITK trusts headers: a truncated NIfTI reads with the missing voxels
as 0, a MetaImage claiming ``NDims = 10000000000`` crashes the process,
and compressed garbage decodes into uninitialised memory.  So the
NIfTI, MetaImage and NRRD headers are parsed here first, in plain Python
that cannot crash: dimensions, voxel counts (against a ceiling), bytes
per voxel, spacing, and the data actually present (compressed streams are
decoded to count their bytes, without keeping them).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from .errors import WeaksegError

#: default ceiling on voxels in one volume (``WEAKSEG_MAX_VOXELS``)
MAX_VOXELS = 2**31
_CHUNK = 1 << 20
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
_META_BYTES = {
    "MET_UCHAR": 1,
    "MET_CHAR": 1,
    "MET_USHORT": 2,
    "MET_SHORT": 2,
    "MET_UINT": 4,
    "MET_INT": 4,
    "MET_ULONG": 8,
    "MET_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_LONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
_NRRD_BYTES = {
    **dict.fromkeys(
        (
            "uchar",
            "unsigned char",
            "uint8",
            "uint8_t",
            "signed char",
            "int8",
            "int8_t",
            "char",
        ),
        1,
    ),
    **dict.fromkeys(
        (
            "short",
            "short int",
            "signed short",
            "int16",
            "int16_t",
            "ushort",
            "unsigned short",
            "uint16",
            "uint16_t",
            "signed short int",
            "unsigned short int",
        ),
        2,
    ),
    **dict.fromkeys(
        (
            "int",
            "signed int",
            "int32",
            "int32_t",
            "uint",
            "unsigned int",
            "uint32",
            "uint32_t",
            "float",
        ),
        4,
    ),
    **dict.fromkeys(
        (
            "longlong",
            "long long",
            "int64",
            "int64_t",
            "ulonglong",
            "unsigned long long",
            "uint64",
            "uint64_t",
            "double",
            "long long int",
            "signed long long",
            "signed long long int",
            "unsigned long long int",
        ),
        8,
    ),
}


def max_voxels() -> int:
    """The voxel ceiling: ``WEAKSEG_MAX_VOXELS`` or :data:`MAX_VOXELS`."""
    try:
        return int(os.environ.get("WEAKSEG_MAX_VOXELS", MAX_VOXELS))
    except ValueError:
        return MAX_VOXELS


def check_header(path: str | os.PathLike) -> None:
    """Raise :class:`WeaksegError` if ``path``'s header lies or is unsafe."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        _check_nifti(p, name.endswith(".gz"))
    elif name.endswith((".mha", ".mhd")):
        _check_metaimage(p)
    elif name.endswith((".nrrd", ".nhdr")):
        _check_nrrd(p)


def _bad(p: Path, why: str) -> WeaksegError:
    return WeaksegError(f"Could not read {p.name}: {why}.")


def _check_size(p: Path, dims: list[int], nbytes: int, channels: int = 1):
    if not dims or any(d < 1 for d in dims):
        raise _bad(p, f"its header gives the size {dims}")
    voxels = math.prod(dims)
    if voxels > max_voxels():
        raise _bad(
            p,
            f"its header claims {voxels:,} voxels, over the limit of "
            f"{max_voxels():,} (set WEAKSEG_MAX_VOXELS to raise it)",
        )
    return voxels * nbytes * channels


def _check_spacing(p: Path, spacing: list[float]) -> None:
    if any(not math.isfinite(s) or s <= 0 for s in spacing):
        raise _bad(p, f"its voxel spacing {spacing} is not positive")


def _stream_length(p: Path, chunks: Iterator[bytes]) -> int:
    n = 0
    try:
        for c in chunks:
            n += len(c)
    except (EOFError, OSError, zlib.error) as exc:
        raise _bad(p, f"its compressed data is damaged ({exc})") from None
    return n


def _gzip_chunks(p: Path) -> Iterator[bytes]:
    with gzip.open(p, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _zlib_chunks(p: Path, offset: int) -> Iterator[bytes]:
    d = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip stream
    with p.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(_CHUNK):
            yield d.decompress(chunk)
            if d.eof:
                return
        yield d.flush()
    if not d.eof:
        raise zlib.error("the stream ends early")


# --- NIfTI ----------------------------------------------------------------


def _check_nifti(p: Path, gz: bool) -> None:
    try:
        if gz:
            with gzip.open(p, "rb") as f:
                head = f.read(540)
        else:
            with p.open("rb") as f:
                head = f.read(540)
    except (EOFError, OSError, zlib.error) as exc:
        raise _bad(p, f"it is damaged ({exc})") from None
    if len(head) < 348:
        raise _bad(p, "it is shorter than a NIfTI header")
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size in (348, 540):
            break
    else:
        raise _bad(p, "it has no NIfTI header")
    if size == 348:
        dim = struct.unpack(order + "8h", head[40:56])
        code, bitpix = struct.unpack(order + "2h", head[70:74])
        pixdim = struct.unpack(order + "8f", head[76:108])
        offset = int(struct.unpack(order + "f", head[108:112])[0])
    else:
        if len(head) < 540:
            raise _bad(p, "its NIfTI-2 header is cut short")
        code, bitpix = struct.unpack(order + "2h", head[12:16])
        dim = struct.unpack(order + "8q", head[16:80])
        pixdim = struct.unpack(order + "8d", head[80:144])
        offset = struct.unpack(order + "q", head[168:176])[0]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise _bad(p, f"its header gives {ndim} dimensions")
    if code not in _NIFTI_BYTES:
        raise _bad(p, f"its header gives the unknown data type {code}")
    need = offset + _check_size(p, list(dim[1 : ndim + 1]), _NIFTI_BYTES[code])
    _check_spacing(p, [float(x) for x in pixdim[1 : min(ndim, 3) + 1]])
    have = _stream_length(p, _gzip_chunks(p)) if gz else p.stat().st_size
    if have < need:
        raise _bad(
            p,
            f"it is truncated ({have:,} of the {need:,} bytes its header "
            "announces)",
        )


# --- MetaImage ---------------------------------------------------------------


def _text_header(p: Path, sep: str, end) -> tuple[dict[str, str], int]:
    """``key<sep>value`` lines up to the line ``end`` says is the last."""
    fields: dict[str, str] = {}
    pos = 0
    with p.open("rb") as f:
        raw = f.read(1 << 16)
    for line in raw.splitlines(keepends=True):
        pos += len(line)
        text = line.decode("latin-1").strip()
        if end(text):
            return fields, pos
        if sep in text:
            k, v = text.split(sep, 1)
            fields[k.strip().lower()] = v.strip()
    raise _bad(p, "its header has no end within 64 KiB")


def _ints(p: Path, text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split()]
    except ValueError:
        raise _bad(
            p, f"its {what} '{text[:40]}' are not whole numbers"
        ) from None


def _floats(p: Path, text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split()]
    except ValueError:
        raise _bad(p, f"its {what} '{text[:40]}' are not numbers") from None


def _dims(
    p: Path, fields: dict, count: tuple[str, str], sizes: tuple[str, str]
) -> list[int]:
    """Sizes of a text header: a count field (1..4) and as many sizes."""
    n = _ints(p, fields.get(count[0], "0"), count[1])
    if len(n) != 1 or not 1 <= n[0] <= 4:
        raise _bad(p, f"its header gives {count[1]} = {fields.get(count[0])}")
    dims = _ints(p, fields.get(sizes[0], ""), sizes[1])
    if len(dims) != n[0]:
        raise _bad(p, f"its {sizes[1]} {dims} does not have {n[0]} values")
    return dims


def _check_metaimage(p: Path) -> None:
    fields, pos = _text_header(
        p, "=", lambda t: t.lower().startswith("elementdatafile")
    )
    with p.open("rb") as f:  # the ElementDataFile line itself
        f.seek(0)
        raw = f.read(pos)
    last = raw.splitlines()[-1].decode("latin-1")
    data_file = last.split("=", 1)[1].strip() if "=" in last else ""
    dims = _dims(p, fields, ("ndims", "NDims"), ("dimsize", "DimSize"))
    etype = fields.get("elementtype", "").upper()
    if etype not in _META_BYTES:
        raise _bad(p, f"its ElementType '{etype}' is unknown")
    channels = _ints(
        p,
        fields.get("elementnumberofchannels", "1"),
        "ElementNumberOfChannels",
    )
    if len(channels) != 1 or not 1 <= channels[0] <= 64:
        raise _bad(p, "its ElementNumberOfChannels is not 1..64")
    need = _check_size(p, dims, _META_BYTES[etype], channels[0])
    spacing = fields.get("elementspacing") or fields.get("elementsize")
    if spacing:
        _check_spacing(p, _floats(p, spacing, "ElementSpacing"))
    compressed = fields.get("compresseddata", "false").lower() == "true"
    if data_file.upper() == "LOCAL":
        src, offset = p, pos
    elif data_file and " " not in data_file and "%" not in data_file:
        src, offset = p.parent / data_file, 0
        if not src.is_file():
            raise _bad(p, f"its data file {data_file} is missing")
    else:
        return  # file lists: SimpleITK checks each file itself
    _check_data(p, src, offset, need, compressed)


def _check_data(p: Path, src: Path, offset: int, need: int, packed: bool):
    if packed:
        have = _stream_length(p, _zlib_chunks(src, offset))
        if have != need:
            raise _bad(
                p, f"its compressed data holds {have:,} bytes, not {need:,}"
            )
    elif src.stat().st_size - offset < need:
        have = max(0, src.stat().st_size - offset)
        raise _bad(
            p,
            f"it is truncated ({have:,} of the {need:,} bytes its header "
            "announces)",
        )


# --- NRRD -------------------------------------------------------------------


def _check_nrrd(p: Path) -> None:
    with p.open("rb") as f:
        magic = f.read(8)
    if not magic.startswith(b"NRRD000"):
        raise _bad(p, "it has no NRRD header")
    fields, pos = _text_header(p, ":", lambda t: t == "")
    sizes = _dims(p, fields, ("dimension",) * 2, ("sizes",) * 2)
    kind = fields.get("type", "").lower()
    if kind not in _NRRD_BYTES:
        raise _bad(p, f"its type '{kind}' is unknown")
    need = _check_size(p, sizes, _NRRD_BYTES[kind])
    if "spacings" in fields:
        text = fields["spacings"].replace("nan", "")  # nan: no spatial axis
        _check_spacing(p, _floats(p, text, "spacings"))
    encoding = fields.get("encoding", "raw").lower()
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if " " in data_file or "%" in data_file or data_file == "LIST":
            return
        src, offset = p.parent / data_file, 0
        if not src.is_file():
            raise _bad(p, f"its data file {data_file} is missing")
    else:
        src, offset = p, pos
    if encoding == "raw":
        _check_data(p, src, offset, need, False)
    elif encoding in ("gzip", "gz"):
        _check_data(p, src, offset, need, True)
