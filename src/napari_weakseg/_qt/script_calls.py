"""The API call and ``weakseg`` command each dock's settings stand for
(what *Copy as script* writes, see :mod:`.copy_script`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.base.errors import WeaksegError
from .session import home, model_file


@dataclass
class Call:
    """One API call and its ``weakseg`` command: ``args`` are the
    positional inputs (python), ``cli`` the command's words after its
    name; ``notes`` name the layers saved to files for it."""

    function: str
    command: str
    args: list[Any]
    kwargs: dict[str, Any]
    cli: list[tuple[str, Any]]
    notes: list[str] = field(default_factory=list)

    def python(self, title: str) -> str:
        from .. import __version__

        lines = [
            f"# The {title} dock's settings as a script "
            f"(napari-weakseg {__version__}).",
            *(f"# {n}" for n in self.notes),
            "from napari_weakseg import api",
            "",
            f"result = api.{self.function}(",
            *(f"    {_py(a)}," for a in self.args),
            *(f"    {k}={_py(v)}," for k, v in self.kwargs.items()),
            ")",
            "print(result)",
        ]
        return "\n".join(lines) + "\n"

    def shell(self, title: str) -> str:
        import shlex

        words = ["weakseg", self.command]
        for flag, value in self.cli:
            if value is None or value is False:
                continue
            for v in value if isinstance(value, list) else [value]:
                words += [flag] if v is True else [flag, str(v)]
        lines = [
            f"# The {title} dock's settings as a command.",
            *(f"# {n}" for n in self.notes),
        ]
        return "\n".join([*lines, shlex.join(words)]) + "\n"


def _py(value: Any) -> str:
    if isinstance(value, Path):
        return repr(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    return repr(value)


def _flags(kwargs: Mapping[str, Any], **rename: str) -> list[tuple[str, Any]]:
    """``--name-with-dashes value`` for each keyword (renamed: its flag);
    a flag named ``--no-…`` is given when the value is False."""
    out = []
    for k, v in kwargs.items():
        flag = rename.get(k, "--" + k.replace("_", "-"))
        if flag.startswith("--no-") and isinstance(v, bool):
            out.append((flag, not v))
        else:
            out.append((flag, v))
    return out


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^\w .-]+", "_", name).strip(" .") or "layer"


def layer_file(
    layer: Any, folder: Path, notes: list[str], suffix: str = "", data=None
) -> Path:
    """The file ``layer`` was opened from, or (a layer with no file, or
    ``data`` standing for it) a NIfTI copy written into ``folder``."""
    from ..core.data.volumes import Volume, write_volume
    from .layer_data import geometry_of

    source = layer.metadata.get("source_path") or getattr(
        getattr(layer, "source", None), "path", None
    )
    if data is None and source and Path(source).is_file():
        return Path(source)
    import numpy as np

    path = folder / f"{_safe(layer.name)}{suffix}.nii.gz"
    array = np.asarray(layer.data if data is None else data)
    write_volume(path, Volume(array, geometry_of(layer)))
    notes.append(f"layer '{layer.name}' has no file: saved as {path}")
    return path


def _one(items: list[Any]) -> Any:
    return items[0] if len(items) == 1 else items


def _train_call(dock: Any) -> Call:
    from .layer_data import sparse_from_layer

    image, ann = dock.image.value, dock.annotations.value
    if image is None or ann is None:
        raise WeaksegError("Pick an image and an annotation layer first.")
    pairs = dock.training_pairs()
    out = model_file(Path(str(dock.out.value)), image.name)
    notes: list[str] = []
    images = [layer_file(i, out.parent, notes) for i, _ in pairs]
    labels = [
        layer_file(a, out.parent, notes, " sparse", sparse_from_layer(a))
        for _, a in pairs
    ]
    settings = {
        k: v
        for k, v in dock.api_settings().items()
        if v is not None and v != () and v != ""
    }
    cli = [("--image", images), ("--labels", labels), ("--out", out)]
    return Call(
        "train",
        "train",
        [_one(images), _one(labels), out],
        settings,
        cli + _flags(settings),
        notes,
    )


def _apply_call(dock: Any) -> Call:
    image = dock.image.value
    if image is None:
        raise WeaksegError("Pick an image to segment.")
    model = Path(str(dock.model.value))
    folder = home() / "predictions"
    notes: list[str] = []
    path = layer_file(image, folder, notes)
    out = folder / f"{_safe(image.name)} prediction.nii.gz"
    kwargs = {"out": out, "tta": bool(dock.tta.value)}
    cli = [("--model", model), ("--image", path)] + _flags(kwargs)
    return Call("predict", "predict", [model, path], kwargs, cli, notes)


def _boxes_call(dock: Any) -> Call:
    from ..core.data.boxes import write_boxes

    boxes = dock.current_boxes()
    image = dock.image.value
    folder = home() / "boxes"
    notes: list[str] = []
    path = layer_file(image, folder, notes)
    table = folder / f"{_safe(dock.shapes.value.name)}.csv"
    write_boxes(table, boxes)
    notes.append(f"boxes of layer '{dock.shapes.value.name}' in {table}")
    kwargs = {
        "out": folder / f"{_safe(image.name)} box masks.nii.gz",
        # the dock keeps the last round's model there too
        "model_out": home() / "models" / "box2mask.safetensors",
        "rounds": int(dock.rounds.value),
        "steps_per_round": int(dock.steps.value),
        "initial": str(dock.initial.value),
        "crf": bool(dock.crf.value),
        "outside_boxes": bool(dock.outside.value),
        "wrong_class": bool(dock.wrong.value),
        "off_core": bool(dock.off_core.value),
        "min_fill": float(dock.min_fill.value),
    }
    cli = [("--image", path), ("--boxes", table)] + _flags(
        kwargs,
        crf="--no-crf",
        outside_boxes="--no-outside-rule",
        wrong_class="--no-class-rule",
        off_core="--no-core-rule",
    )
    return Call(
        "boxes_to_masks", "box2mask", [path, table], kwargs, cli, notes
    )


def _cam_call(dock: Any) -> Call:
    image = dock.image.value
    if image is None or not dock.layer.choices:
        raise WeaksegError("Pick an image and a model file first.")
    model = Path(str(dock.model.value))
    folder = home() / "cam"
    notes: list[str] = []
    path = layer_file(image, folder, notes)
    kwargs = {
        "out": folder / f"{_safe(image.name)} {dock.method.value}.nii.gz",
        "method": str(dock.method.value),
        "layer": str(dock.layer.value),
        "class_index": int(dock.class_index.value),
    }
    cli = [("--model", model), ("--image", path)] + _flags(
        kwargs, class_index="--class"
    )
    return Call(
        "class_activation_map", "cam", [model, path], kwargs, cli, notes
    )


def _pretrain_call(dock: Any) -> Call:
    out = Path(str(dock.out.value))
    notes: list[str] = []
    folder = dock.pool_folder()
    if folder is not None:
        images: Any = [folder]
    else:
        images = [
            layer_file(dock._viewer.layers[n], out.parent, notes)
            for n in dock.images.value
        ]
    tasks = list(dock.chosen_tasks())
    if not images or not tasks:
        raise WeaksegError(
            "Pick image layers or a folder, and at least one task."
        )
    kwargs = {
        "tasks": tasks,
        "steps": int(dock.steps.value),
        "patch": int(dock.patch.value),
        "base_filters": int(dock.base_filters.value),
    }
    cli = (
        [("--image", images), ("--out", out)]
        + _flags({k: v for k, v in kwargs.items() if k != "tasks"})
        + [("--tasks", ",".join(tasks))]
    )
    return Call(
        "pretrain", "pretrain", [_one(images), out], kwargs, cli, notes
    )


CALLS = {
    "TrainWidget": _train_call,
    "ApplyWidget": _apply_call,
    "BoxesWidget": _boxes_call,
    "CamWidget": _cam_call,
    "PretrainWidget": _pretrain_call,
}
