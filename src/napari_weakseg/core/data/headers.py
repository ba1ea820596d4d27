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

import gzip
import math
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..base.errors import WeaksegError

#: default ceiling on voxels in one volume (``WEAKSEG_MAX_VOXELS``)
MAX_VOXELS = 2**31
#: environment variable that lets headers name data files anywhere
EXTERNAL_DATA_ENV = "WEAKSEG_ALLOW_EXTERNAL_DATA"
_CHUNK = 1 << 20
#: longest list of data file names read from a header (bytes)
_LIST_BYTES = 16 << 20
#: a file name pattern with one integer field: ``slice%03d.raw``
_PATTERN = re.compile(r"[^%]*%0?[1-9]?[0-9]?d[^%]*")
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


def external_data_allowed() -> bool:
    """Whether ``WEAKSEG_ALLOW_EXTERNAL_DATA=1`` lets headers name data
    files outside their folder."""
    value = os.environ.get(EXTERNAL_DATA_ENV, "").strip().lower()
    return value in ("1", "true", "yes")


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
        names = _metaimage_layout(p)[3]
    elif name.endswith((".nrrd", ".nhdr")):
        names = _nrrd_layout(p)[3]
    else:
        return []
    return [(p.parent / n).resolve() for n in names or ()]


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
    order, dim, code, pixdim, offset = _nifti_header(p, gz)
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise _bad(p, f"its header gives {ndim} dimensions")
    if code not in _NIFTI_BYTES:
        raise _bad(p, f"its header gives the unknown data type {code}")
    need = offset + _check_size(p, list(dim[1 : ndim + 1]), _NIFTI_BYTES[code])
    # ITK reads a negative pixdim as its absolute value (a flip lives in
    # the qform/sform); 0 and NaN stay refused
    _check_spacing(p, [abs(float(x)) for x in pixdim[1 : min(ndim, 3) + 1]])
    have = _stream_length(p, _gzip_chunks(p)) if gz else p.stat().st_size
    if have < need:
        raise _bad(
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
    chunks = _gzip_chunks(p) if gz else _file_chunks(p)
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
        while chunk := f.read(_CHUNK):
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
    return order, dim, code, pixdim, offset


# --- MetaImage ---------------------------------------------------------------


def _text_header(
    p: Path, sep: str, end, eof_ends: bool = False
) -> tuple[dict[str, str], int]:
    """``key<sep>value`` lines up to the line ``end`` says is the last
    (kept), or to the end of the file when ``eof_ends`` (a detached
    header)."""
    fields: dict[str, str] = {}
    pos = 0
    with p.open("rb") as f:
        raw = f.read(1 << 16)
    for line in raw.splitlines(keepends=True):
        pos += len(line)
        text = line.decode("latin-1").strip()
        last = end(text)
        if sep in text:
            k, v = text.split(sep, 1)
            fields[k.strip().lower()] = v.strip()
        if last:
            return fields, pos
    if eof_ends and len(raw) < 1 << 16:
        return fields, pos
    raise _bad(p, "its header has no end within 64 KiB")


def _lines_after(p: Path, pos: int) -> list[str]:
    """The non-blank lines of ``p`` after byte ``pos`` (a list of data
    files), at most :data:`_LIST_BYTES` of them."""
    with p.open("rb") as f:
        f.seek(pos)
        raw = f.read(_LIST_BYTES + 1)
    if len(raw) > _LIST_BYTES:
        raise _bad(p, "its list of data files is longer than 16 MiB")
    lines = (t.decode("latin-1").strip() for t in raw.splitlines())
    return [t for t in lines if t]


def _pattern_files(
    p: Path, fmt: str, numbers: list[int], count: int
) -> list[str]:
    """The first ``count`` names of ``fmt % i`` for ``i`` from ``first``
    to ``last`` by ``step`` (``numbers``)."""
    first, last, step = numbers
    if not _PATTERN.fullmatch(fmt):
        raise _bad(
            p,
            f"its data file pattern '{fmt[:60]}' is not a file name with "
            "one %d field",
        )
    if step == 0 or (last - first) * step < 0:
        raise _bad(
            p,
            f"its data file numbers {first} to {last} by {step} do not "
            "count up or down to the last one",
        )
    stop = first + step * count
    stop = min(stop, last + 1) if step > 0 else max(stop, last - 1)
    return [fmt % i for i in range(first, stop, step)]


def _check_inside(p: Path, names: list[str]) -> None:
    """Refuse data files outside the header's folder (unless allowed)."""
    if external_data_allowed():
        return
    folder = p.parent.resolve()
    for name in names:
        if not (p.parent / name).resolve().is_relative_to(folder):
            raise _bad(
                p,
                f"its data file {name[:80]} lies outside its folder (set "
                f"{EXTERNAL_DATA_ENV}=1 to allow it)",
            )


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


def _metaimage_layout(
    p: Path,
) -> tuple[dict[str, str], int, list[int], list[str] | None]:
    """Header fields, header length, sizes and data file names (None:
    inline after the header).  ``ElementDataFile`` is ``LOCAL``, one file
    name, ``LIST [nD]`` followed by one name a line, or a pattern
    ``name%03d.raw [first last step]`` (MetaIO numbers from 1 to the last
    size when the numbers are left out)."""
    fields, pos = _text_header(
        p, "=", lambda t: t.lower().startswith("elementdatafile")
    )
    data_file = fields.get("elementdatafile", "")
    dims = _dims(p, fields, ("ndims", "NDims"), ("dimsize", "DimSize"))
    if data_file.upper() == "LOCAL":
        return fields, pos, dims, None
    words = data_file.split()
    if words and words[0].upper() == "LIST":
        return fields, pos, dims, _lines_after(p, pos)
    if "%" in data_file:
        numbers = _ints(p, " ".join(words[1:]), "data file numbers")
        if not numbers:
            numbers = [1, dims[-1], 1]
        if len(numbers) != 3:  # MetaIO divides by zero on two numbers
            raise _bad(
                p,
                f"its data file pattern '{data_file[:60]}' needs a first, "
                "last and step number",
            )
        names = _pattern_files(p, words[0], numbers, dims[-1])
        return fields, pos, dims, names
    return fields, pos, dims, [data_file] if data_file else []


def _check_metaimage(p: Path) -> None:
    fields, pos, dims, names = _metaimage_layout(p)
    if names:
        _check_inside(p, names)
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
    if names is None:
        _check_data(p, p, pos, need, compressed)
        return
    for name in names:
        if not (p.parent / name).is_file():
            raise _bad(p, f"its data file {name[:80]} is missing")
    if len(names) == 1:
        _check_data(p, p.parent / names[0], 0, need, compressed)
    elif names and not compressed:
        # MetaIO reads short or missing slice files as whatever memory
        # held: every file must hold its share
        sizes = [(p.parent / name).stat().st_size for name in names]
        if sum(sizes) < need:
            raise _bad(
                p,
                f"its {len(names)} data files hold {sum(sizes):,} of the "
                f"{need:,} bytes its header announces",
            )
        share = need // len(names)
        for name, size in zip(names, sizes):
            if size < share:
                raise _bad(
                    p,
                    f"its data file {name[:80]} is truncated ({size:,} of "
                    f"{share:,} bytes)",
                )
    elif not names:
        raise _bad(p, "its header names no data file")


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


def _is_nrrd_list(text: str) -> bool:
    """Whether a header line is ``data file: LIST``: names follow."""
    key, _, value = text.partition(":")
    return key.strip().lower() in ("data file", "datafile") and (
        value.split()[:1] == ["LIST"]
    )


def _nrrd_layout(
    p: Path,
) -> tuple[dict[str, str], int, list[int], list[str] | None]:
    """Header fields, header length, sizes and data file names (None:
    inline after the header).  The header ends at a blank line, or at the
    end of the file (a detached ``.nhdr`` header), or after ``data file:
    LIST``, whose names follow one a line; ``data file: name%03d.raw
    first last step [subdim]`` is a pattern."""
    with p.open("rb") as f:
        magic = f.read(8)
    if not magic.startswith(b"NRRD000"):
        raise _bad(p, "it has no NRRD header")
    fields, pos = _text_header(
        p, ":", lambda t: t == "" or _is_nrrd_list(t), eof_ends=True
    )
    sizes = _dims(p, fields, ("dimension",) * 2, ("sizes",) * 2)
    data_file = fields.get("data file") or fields.get("datafile")
    if not data_file:
        return fields, pos, sizes, None
    words = data_file.split()
    if words[0] == "LIST":
        return fields, pos, sizes, _lines_after(p, pos)
    if len(words) >= 4 and all(
        re.fullmatch(r"[-+]?\d+", w) for w in words[1:4]
    ):
        numbers = [int(w) for w in words[1:4]]
        names = _pattern_files(p, words[0], numbers, sizes[-1])
        return fields, pos, sizes, names
    return fields, pos, sizes, [data_file]


def _check_nrrd(p: Path) -> None:
    fields, pos, sizes, names = _nrrd_layout(p)
    if names:
        _check_inside(p, names)
    kind = fields.get("type", "").lower()
    if kind not in _NRRD_BYTES:
        raise _bad(p, f"its type '{kind}' is unknown")
    need = _check_size(p, sizes, _NRRD_BYTES[kind])
    if "spacings" in fields:
        text = fields["spacings"].replace("nan", "")  # nan: no spatial axis
        _check_spacing(p, _floats(p, text, "spacings"))
    encoding = fields.get("encoding", "raw").lower()
    if names is None:
        src, offset = p, pos
    elif len(names) == 1:  # lists and patterns: teem checks each file
        src, offset = p.parent / names[0], 0
        if not src.is_file():
            raise _bad(p, f"its data file {names[0][:80]} is missing")
    else:
        return
    if encoding == "raw":
        _check_data(p, src, offset, need, False)
    elif encoding in ("gzip", "gz"):
        _check_data(p, src, offset, need, True)
