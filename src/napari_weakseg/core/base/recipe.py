"""The recipe a model file keeps: how it was made, to make it again.

A recipe is a JSON object in the model's config: the command, every
setting, each input (file name and SHA-256, or for an array its SHA-256
alone), the package version and the seed.  :func:`command_line` turns it
back into the ``weakseg`` command that, run again on the same machine
with another ``--out``, trains the same weights (training is seeded, see
:func:`~.device.seeded`).
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: CLI flags of the settings whose flag is not ``--<name-with-dashes>``
FLAGS: dict[str, str] = {"class_index": "--class"}

#: switches on by default: the flag that turns each off (given when the
#: setting is False, nothing when True)
NEGATED: dict[str, str] = {
    "crf": "--no-crf",
    "outside_boxes": "--no-outside-rule",
    "wrong_class": "--no-class-rule",
    "off_core": "--no-core-rule",
    "expand": "--no-expand",
}

#: commands whose model is ``--model-out`` and whose ``--out`` is a
#: label volume (the command again writes it beside the model)
LABELS_OUT = ("box2mask", "cam2seg")

#: recipes of API functions that no ``weakseg`` command runs: the
#: function that made them
API_ONLY: dict[str, str] = {"segment-from-map": "api.segment_from_map"}

#: settings with several values after one flag (nargs), not repeated
SPREAD = ("patch_size",)

#: settings whose flag is repeated, once per value
REPEATED = ("unlabelled",)


def sha256_file(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file's bytes; of a folder (a zarr store, a DICOM
    series, a pool of volumes): of its files' names and sizes, which is
    quick however large it is.  None if unreadable."""
    p = Path(path)
    digest = hashlib.sha256()
    try:
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                rel = f.relative_to(p).as_posix()
                digest.update(f"{rel}|{f.stat().st_size}\n".encode())
            return digest.hexdigest()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def sha256_array(data: Any) -> str | None:
    """SHA-256 of an in-memory array's shape, dtype and bytes; None for
    data on disk (zarr, dask: read whole only to hash it, never)."""
    if not isinstance(data, np.ndarray):
        data = getattr(data, "data", None)
        if not isinstance(data, np.ndarray):
            return None
    digest = hashlib.sha256(f"{data.shape}|{data.dtype.str}|".encode())
    digest.update(np.ascontiguousarray(data).tobytes())
    return digest.hexdigest()


def describe(source: Any) -> dict[str, Any]:
    """One input: ``{"file": absolute path, "sha256": ...}`` for a path,
    ``{"file": None, "sha256": ...}`` for an array or volume."""
    if isinstance(source, str | os.PathLike):
        p = Path(source).expanduser().resolve()
        return {"file": str(p), "sha256": sha256_file(p)}
    return {"file": None, "sha256": sha256_array(source)}


def make(
    command: str,
    inputs: Mapping[str, Any],
    settings: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The recipe of a run of ``command`` (a ``weakseg`` subcommand).

    ``inputs``: flag name -> a source or a list of sources (None: not
    given); ``settings``: the keyword settings as JSON-able values.
    """
    from ... import __version__

    described: dict[str, Any] = {}
    for name, value in inputs.items():
        if value is None:
            continue
        many = isinstance(value, list | tuple)
        items = [describe(v) for v in (value if many else [value])]
        described[name] = items if many else items[0]
    return {
        "command": command,
        "inputs": described,
        "settings": {k: _jsonable(v) for k, v in settings.items()},
        "seed": int(seed),
        "version": __version__,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def missing_files(recipe: Mapping[str, Any]) -> list[str]:
    """Inputs of the recipe that were arrays, not files (no command can
    name them)."""
    out = []
    for name, value in recipe.get("inputs", {}).items():
        for item in value if isinstance(value, list) else [value]:
            if not item.get("file"):
                out.append(name)
    return out


def command_line(recipe: Mapping[str, Any], out: str | os.PathLike) -> str:
    """The ``weakseg`` command that runs the recipe again into ``out``
    (the model; a command of :data:`LABELS_OUT` writes its labels beside
    it)."""
    words = ["weakseg", str(recipe["command"])]
    for name, value in recipe.get("inputs", {}).items():
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        for item in value if isinstance(value, list) else [value]:
            words += [flag, item.get("file") or f"<{name} array>"]
    if recipe["command"] in LABELS_OUT:
        model = Path(out)
        labels = model.with_name(
            model.name.removesuffix(".safetensors") + " labels.nii.gz"
        )
        words += ["--out", str(labels), "--model-out", str(model)]
    else:
        words += ["--out", str(out)]
    settings = dict(recipe.get("settings", {}))
    settings.setdefault("seed", recipe.get("seed", 0))
    for name, value in settings.items():
        if value is None or value == [] or value == "":
            continue
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        if isinstance(value, bool) and name in NEGATED:
            if not value:
                words.append(NEGATED[name])
        elif isinstance(value, bool):
            if value:
                words.append(flag)
        elif name in SPREAD and isinstance(value, list):
            words += [flag, *map(str, value)]
        elif name in REPEATED and isinstance(value, list):
            for v in value:
                words += [flag, str(v)]
        elif isinstance(value, list):
            words += [flag, ",".join(map(str, value))]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def runnable(recipe: Mapping[str, Any]) -> bool:
    """Whether a ``weakseg`` command makes the recipe again: its command
    is one, and every input was a file."""
    return bool(recipe) and (
        str(recipe.get("command")) not in API_ONLY
        and not missing_files(recipe)
    )


def check_inputs(recipe: Mapping[str, Any]) -> list[str]:
    """Inputs whose file is gone or has changed since (one line each)."""
    notes = []
    for name, value in recipe.get("inputs", {}).items():
        for item in value if isinstance(value, list) else [value]:
            file = item.get("file")
            if not file:
                continue
            if not Path(file).exists():
                notes.append(f"{name} {file} is gone")
            elif sha256_file(file) != item.get("sha256"):
                notes.append(f"{name} {file} has changed since")
    return notes


def lines(recipe: Mapping[str, Any], out: str | os.PathLike) -> list[str]:
    """The recipe as lines of text (what ``weakseg info`` prints)."""
    text = [
        f"made by: weakseg {recipe.get('command')} (napari-weakseg "
        f"{recipe.get('version')}, seed {recipe.get('seed')})"
    ]
    for name, value in recipe.get("inputs", {}).items():
        for item in value if isinstance(value, list) else [value]:
            where = item.get("file") or "(an array in memory)"
            text.append(f"  {name}: {where}  sha256 {item.get('sha256')}")
    for name, value in recipe.get("settings", {}).items():
        text.append(f"  {name}: {value}")
    arrays = missing_files(recipe)
    made_by = API_ONLY.get(str(recipe.get("command")))
    if made_by:
        text.append(f"again: no command ({made_by} made it; call it again)")
    elif arrays:
        text.append(
            "again: no command (its "
            + ", ".join(sorted(set(arrays)))
            + " came from memory, not files; save them and run weakseg "
            f"{recipe.get('command')})"
        )
    else:
        text.append("again: " + command_line(recipe, other_out(out)))
    text += [f"note: {n}" for n in check_inputs(recipe)]
    return text


def other_out(out: str | os.PathLike) -> str:
    p = Path(out)
    return str(p.with_name(p.stem + " again" + p.suffix))


__all__: Sequence[str] = [
    "command_line",
    "describe",
    "lines",
    "make",
    "runnable",
    "sha256_array",
    "sha256_file",
]
