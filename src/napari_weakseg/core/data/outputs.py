"""The rules every output path obeys, checked before any work starts.

An output is never an input of the same run (nor a data file that an
input's header reads, nor the ``.last`` checkpoint of a model output),
never an existing folder (a zarr store excepted, replaced whole), never
another output of the same run, has its kind's suffix, and its folder is
writable.  The API applies the rules to every function that writes; the
CLI and the docks inherit them from the API.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..base.errors import WeaksegError

MODEL = "model"
VOLUME = "volume"
TABLE = "table"  # any other file: a CSV
PACKAGE = "package"  # a bioimage.io model package (.zip)


def _resolved(paths: Iterable[Any]) -> dict[Path, Path]:
    """resolved path -> the path as given, for each path-like (the data
    files that header formats read included)."""
    from .volumes import data_files

    out: dict[Path, Path] = {}
    for x in paths:
        if not isinstance(x, str | os.PathLike):
            continue
        p = Path(x)
        if not p.exists():
            continue
        out.setdefault(p.resolve(), p)
        try:
            extra = data_files(p)
        except WeaksegError:
            extra = []
        for f in extra:
            out.setdefault(Path(f).resolve(), p)
    return out


def written_files(path: Path, kind: str) -> list[Path]:
    """Every file a ``kind`` output at ``path`` writes: itself, a model's
    ``.last`` checkpoint, a header format's data file."""
    from ..base.files import last_path
    from .volumes import companion_files

    if kind == MODEL:
        return [path, last_path(path)]
    if kind == VOLUME:
        return [path, *companion_files(path)]
    return [path]


def check_outputs(
    outputs: Mapping[str, tuple[Any, str]], inputs: Iterable[Any]
) -> None:
    """Refuse outputs that would destroy something, before any work.

    ``outputs``: parameter name -> (path or None, ``"model"`` or
    ``"volume"``); ``inputs``: every path the run reads (others ignored).
    """
    ins = _resolved(inputs)
    seen: dict[Path, Path] = {}
    for path, kind in outputs.values():
        if path is None:
            continue
        p = Path(path)
        _check_kind(p, kind)
        for f in written_files(p, kind):
            real = f.resolve()
            if real in ins:
                what = "is" if f == p else f"would write {f.name}, which is"
                raise WeaksegError(
                    f"The output {p} {what} also an input of this run "
                    f"({ins[real]}); write to another file."
                )
            if real in seen:
                raise WeaksegError(
                    f"Two outputs of this run would write the same file "
                    f"{f} ({seen[real]} and {p})."
                )
            seen[real] = p
        _check_writable(p)


def _check_kind(p: Path, kind: str) -> None:
    from .formats import SUFFIXES, is_zarr_store, suffix_of

    if kind == MODEL and not p.name.endswith(".safetensors"):
        raise WeaksegError(f"The model output {p} must end in .safetensors.")
    if kind == PACKAGE and not p.name.lower().endswith(".zip"):
        raise WeaksegError(f"The package output {p} must end in .zip.")
    if kind == VOLUME and suffix_of(p) not in SUFFIXES:
        raise WeaksegError(
            f"The output {p} needs a volume suffix "
            f"({', '.join(s for s in SUFFIXES if s != '.nhdr')})."
        )
    if p.is_dir() and not (kind == VOLUME and is_zarr_store(p)):
        raise WeaksegError(
            f"The output {p} is an existing folder; give a file name."
        )


def _check_writable(p: Path) -> None:
    real = p.resolve()
    parent = next(q for q in (real.parent, *real.parents) if q.exists())
    if not parent.is_dir():
        raise WeaksegError(f"Cannot write {p}: {parent} is not a folder.")
    if not os.access(parent, os.W_OK):
        raise WeaksegError(f"Cannot write {p}: {parent} is read-only.")


def batch_targets(
    inputs: list[Path], folder: Path, what: str = "output"
) -> list[Path]:
    """The output of each input of a batch (its name inside ``folder``),
    refused before any work when two inputs share a name or an output
    would replace any input (symbolic links followed)."""
    if folder.exists() and not folder.is_dir():
        raise WeaksegError(
            f"{folder} is a file; a batch writes into a folder."
        )
    targets = [folder / p.name for p in inputs]
    by_name: dict[str, Path] = {}
    for p in inputs:
        if p.name in by_name:
            raise WeaksegError(
                f"{by_name[p.name]} and {p} would both be written as "
                f"{folder / p.name}; rename one or predict them separately."
            )
        by_name[p.name] = p
    ins = _resolved(inputs)
    for t in targets:
        real = t.resolve()
        if real in ins:
            raise WeaksegError(
                f"The {what} {t} would replace the input {ins[real]}; write "
                "to another folder."
            )
        _check_kind(t, VOLUME)
    return targets
