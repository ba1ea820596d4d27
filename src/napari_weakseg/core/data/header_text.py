"""MetaImage and NRRD headers: text headers that may name their data
files (one, a list or a pattern), which must lie in the header's folder
(see :mod:`~.headers`)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from .header_base import (
    CHUNK,
    EXTERNAL_DATA_ENV,
    bad,
    check_size,
    check_spacing,
    external_data_allowed,
    stream_length,
)

#: longest list of data file names read from a header (bytes)
_LIST_BYTES = 16 << 20
#: a file name pattern with one integer field: ``slice%03d.raw``
_PATTERN = re.compile(r"[^%]*%0?[1-9]?[0-9]?d[^%]*")
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


def _zlib_chunks(p: Path, offset: int) -> Iterator[bytes]:
    d = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip stream
    with p.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(CHUNK):
            yield d.decompress(chunk)
            if d.eof:
                return
        yield d.flush()
    if not d.eof:
        raise zlib.error("the stream ends early")


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
    raise bad(p, "its header has no end within 64 KiB")


def _lines_after(p: Path, pos: int) -> list[str]:
    """The non-blank lines of ``p`` after byte ``pos`` (a list of data
    files), at most :data:`_LIST_BYTES` of them."""
    with p.open("rb") as f:
        f.seek(pos)
        raw = f.read(_LIST_BYTES + 1)
    if len(raw) > _LIST_BYTES:
        raise bad(p, "its list of data files is longer than 16 MiB")
    lines = (t.decode("latin-1").strip() for t in raw.splitlines())
    return [t for t in lines if t]


def _pattern_files(
    p: Path, fmt: str, numbers: list[int], count: int
) -> list[str]:
    """The first ``count`` names of ``fmt % i`` for ``i`` from ``first``
    to ``last`` by ``step`` (``numbers``)."""
    first, last, step = numbers
    if not _PATTERN.fullmatch(fmt):
        raise bad(
            p,
            f"its data file pattern '{fmt[:60]}' is not a file name with "
            "one %d field",
        )
    if step == 0 or (last - first) * step < 0:
        raise bad(
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
            raise bad(
                p,
                f"its data file {name[:80]} lies outside its folder (set "
                f"{EXTERNAL_DATA_ENV}=1 to allow it)",
            )


def _ints(p: Path, text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split()]
    except ValueError:
        raise bad(
            p, f"its {what} '{text[:40]}' are not whole numbers"
        ) from None


def _floats(p: Path, text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split()]
    except ValueError:
        raise bad(p, f"its {what} '{text[:40]}' are not numbers") from None


def _dims(
    p: Path, fields: dict, count: tuple[str, str], sizes: tuple[str, str]
) -> list[int]:
    """Sizes of a text header: a count field (1..4) and as many sizes."""
    n = _ints(p, fields.get(count[0], "0"), count[1])
    if len(n) != 1 or not 1 <= n[0] <= 4:
        raise bad(p, f"its header gives {count[1]} = {fields.get(count[0])}")
    dims = _ints(p, fields.get(sizes[0], ""), sizes[1])
    if len(dims) != n[0]:
        raise bad(p, f"its {sizes[1]} {dims} does not have {n[0]} values")
    return dims


def metaimage_layout(
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
            raise bad(
                p,
                f"its data file pattern '{data_file[:60]}' needs a first, "
                "last and step number",
            )
        names = _pattern_files(p, words[0], numbers, dims[-1])
        return fields, pos, dims, names
    return fields, pos, dims, [data_file] if data_file else []


def check_metaimage(p: Path) -> None:
    fields, pos, dims, names = metaimage_layout(p)
    if names:
        _check_inside(p, names)
    etype = fields.get("elementtype", "").upper()
    if etype not in _META_BYTES:
        raise bad(p, f"its ElementType '{etype}' is unknown")
    channels = _ints(
        p,
        fields.get("elementnumberofchannels", "1"),
        "ElementNumberOfChannels",
    )
    if len(channels) != 1 or not 1 <= channels[0] <= 64:
        raise bad(p, "its ElementNumberOfChannels is not 1..64")
    need = check_size(p, dims, _META_BYTES[etype], channels[0])
    spacing = fields.get("elementspacing") or fields.get("elementsize")
    if spacing:
        check_spacing(p, _floats(p, spacing, "ElementSpacing"))
    compressed = fields.get("compresseddata", "false").lower() == "true"
    if names is None:
        _check_data(p, p, pos, need, compressed)
        return
    for name in names:
        if not (p.parent / name).is_file():
            raise bad(p, f"its data file {name[:80]} is missing")
    if len(names) == 1:
        _check_data(p, p.parent / names[0], 0, need, compressed)
    elif names and not compressed:
        # MetaIO reads short or missing slice files as whatever memory
        # held: every file must hold its share
        sizes = [(p.parent / name).stat().st_size for name in names]
        if sum(sizes) < need:
            raise bad(
                p,
                f"its {len(names)} data files hold {sum(sizes):,} of the "
                f"{need:,} bytes its header announces",
            )
        share = need // len(names)
        for name, size in zip(names, sizes):
            if size < share:
                raise bad(
                    p,
                    f"its data file {name[:80]} is truncated ({size:,} of "
                    f"{share:,} bytes)",
                )
    elif not names:
        raise bad(p, "its header names no data file")


def _check_data(p: Path, src: Path, offset: int, need: int, packed: bool):
    if packed:
        have = stream_length(p, _zlib_chunks(src, offset))
        if have != need:
            raise bad(
                p, f"its compressed data holds {have:,} bytes, not {need:,}"
            )
    elif src.stat().st_size - offset < need:
        have = max(0, src.stat().st_size - offset)
        raise bad(
            p,
            f"it is truncated ({have:,} of the {need:,} bytes its header "
            "announces)",
        )


def _is_nrrd_list(text: str) -> bool:
    """Whether a header line is ``data file: LIST``: names follow."""
    key, _, value = text.partition(":")
    return key.strip().lower() in ("data file", "datafile") and (
        value.split()[:1] == ["LIST"]
    )


def nrrd_layout(
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
        raise bad(p, "it has no NRRD header")
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


def check_nrrd(p: Path) -> None:
    fields, pos, sizes, names = nrrd_layout(p)
    if names:
        _check_inside(p, names)
    kind = fields.get("type", "").lower()
    if kind not in _NRRD_BYTES:
        raise bad(p, f"its type '{kind}' is unknown")
    need = check_size(p, sizes, _NRRD_BYTES[kind])
    if "spacings" in fields:
        text = fields["spacings"].replace("nan", "")  # nan: no spatial axis
        check_spacing(p, _floats(p, text, "spacings"))
    encoding = fields.get("encoding", "raw").lower()
    if names is None:
        src, offset = p, pos
    elif len(names) == 1:  # lists and patterns: teem checks each file
        src, offset = p.parent / names[0], 0
        if not src.is_file():
            raise bad(p, f"its data file {names[0][:80]} is missing")
    else:
        return
    if encoding == "raw":
        _check_data(p, src, offset, need, False)
    elif encoding in ("gzip", "gz"):
        _check_data(p, src, offset, need, True)
