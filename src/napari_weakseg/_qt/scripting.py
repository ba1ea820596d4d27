"""Scripting the docks: named fields, ``run``/``start``, copy as script.

Every control of a dock has a ``name`` (the API keyword or CLI flag of
the same concept where there is one, see :data:`RENAMED`), so magicgui's
scripting surface works on the docks::

    dock["steps"].value = 300
    dock.update(steps=300, device="cpu")
    settings = dock.asdict()
    result = dock.run(steps=300)      # waits, returns what it produced

Bad input is one :class:`~..core.errors.WeaksegError` sentence and
changes nothing: an unknown field (the sentence lists the valid ones), a
layer name not in the viewer, a value outside the field's range, a run
while the dock is running.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Label,
    ProgressBar,
    PushButton,
)
from magicgui.widgets.bases import (
    CategoricalWidget,
    RangedWidget,
    ValueWidget,
    Widget,
)

from ..core.base.errors import Cancelled, WeaksegError

#: field names that differ from the dock's attribute names: the API
#: keyword / CLI flag of the same concept
RENAMED = {
    "TrainWidget": {"annotations": "labels"},
    "BoxesWidget": {
        "shapes": "boxes",
        "steps": "steps_per_round",
        "outside": "outside_boxes",
        "wrong": "wrong_class",
    },
}

#: each dock's name in sentences
TITLES = {
    "AnnotationWidget": "Annotate",
    "TrainWidget": "Train",
    "ApplyWidget": "Apply",
    "BoxesWidget": "Boxes",
    "CamWidget": "CAM",
    "PretrainWidget": "Pretrain",
}

#: the jobs ``run``/``start`` can start: name -> method (the first is the
#: default)
JOBS = {
    "AnnotationWidget": {"new_layer": "create_annotation_layer"},
    "TrainWidget": {"train": "start_training"},
    "ApplyWidget": {"apply": "start_apply", "compare": "start_compare"},
    "BoxesWidget": {"masks": "start_run"},
    "CamWidget": {"map": "start_map", "segment": "start_segment"},
    "PretrainWidget": {"pretrain": "start_pretraining"},
}

#: controls that show results, not settings (never in ``asdict``)
SHOWN = (PushButton, Label, ProgressBar)


@dataclass
class RunResult:
    """What a dock's run produced.

    ``path``: the model or encoder file it wrote (None if none);
    ``layers``: the layers it added or filled, in order; ``value``: the
    job's own return value (e.g. training's
    :class:`~..core.events.Finished`).
    """

    path: Path | None = None
    layers: list[Any] = field(default_factory=list)
    value: Any = None


@dataclass
class _Outcome:
    done: bool = False
    value: Any = None
    error: BaseException | None = None
    loop: Any = None


# --- where the docks report -------------------------------------------------

#: errors :func:`._common.report_error` collects instead of showing, and
#: workers :func:`._common.start_worker` creates without starting, while
#: a dock's ``start`` runs (``None``: not collecting)
CAPTURED: list[BaseException] | None = None
DEFERRED: list[Any] | None = None


@contextmanager
def _collecting() -> Iterator[tuple[list, list]]:
    global CAPTURED, DEFERRED
    was = CAPTURED, DEFERRED
    CAPTURED, DEFERRED = [], []
    try:
        yield CAPTURED, DEFERRED
    finally:
        CAPTURED, DEFERRED = was


class LayerPicker(ComboBox):
    """A layer dropdown that accepts a layer or a layer's name."""

    @property  # type: ignore[override]
    def value(self) -> Any:
        return ComboBox.value.fget(self)

    @value.setter
    def value(self, value: Any) -> None:
        ComboBox.value.fset(self, self.resolve(value))

    def resolve(self, value: Any) -> Any:
        """``value`` as one of the choices: a name becomes its layer."""
        if value is None or value in self.choices:
            return value
        self.reset_choices()  # a layer added since the last refresh
        if value in self.choices:
            return value
        kind = _kind(self)
        names = [c.name for c in self.choices if c is not None]
        wanted = (
            value if isinstance(value, str) else getattr(value, "name", "")
        )
        match = [c for c in self.choices if getattr(c, "name", None) == wanted]
        if match and isinstance(value, str):
            return match[0]
        raise WeaksegError(
            f"No {kind} layer named '{wanted}' in the viewer for "
            f"'{self.name}'; "
            + (
                f"its {kind} layers are: {', '.join(names)}."
                if names
                else f"it has no {kind} layer."
            )
        )


def _kind(picker: Any) -> str:
    annotation = getattr(picker, "annotation", None)
    name = getattr(annotation, "__name__", None) or str(annotation or "")
    return name.rsplit(".", 1)[-1].strip("'>").lower() or "matching"


def as_layer_picker(widget: Any) -> Any:
    """Make a napari layer ComboBox a :class:`LayerPicker` (in place)."""
    if type(widget) is ComboBox:
        widget.__class__ = LayerPicker
    return widget


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # arrays and the like
        return False


def _checked(widget: Any, name: str, value: Any, title: str) -> Any:
    """``value`` as ``widget`` takes it, or one sentence saying why not."""
    where = f"'{name}' of the {title} dock"
    if isinstance(widget, LayerPicker):
        value = widget.resolve(value)
        if value is None and None not in widget.choices:
            raise WeaksegError(f"{where} needs a layer.")
        return value
    if isinstance(widget, CheckBox):
        if not isinstance(value, bool):
            raise WeaksegError(f"{where} is True or False, not {value!r}.")
        return value
    if isinstance(widget, RangedWidget):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WeaksegError(f"{where} is a number, not {value!r}.")
        if not widget.min <= value <= widget.max:
            raise WeaksegError(
                f"{where} must be between {widget.min} and {widget.max}, "
                f"not {value}."
            )
        return value
    if isinstance(widget, CategoricalWidget):
        choices = list(widget.choices)
        many = isinstance(value, list | tuple) and widget._allow_multiple
        bad = [v for v in (value if many else [value]) if v not in choices]
        if bad:
            raise WeaksegError(
                f"{where} must be "
                + ("among" if many else "one of")
                + f" {', '.join(map(str, choices)) or 'nothing yet'}, not "
                f"{bad[0]!r}."
            )
        return value
    if isinstance(widget, ValueWidget) or hasattr(widget, "value"):
        return value
    raise WeaksegError(f"{where} cannot be set.")


# --- copy as script ----------------------------------------------------------


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
    from .layers import geometry_of

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
    from .layers import sparse_from_layer
    from .train_widget import model_file

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
    from ._common import home

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
    from ._common import home

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
    from ._common import home

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
    tasks = [
        t
        for t in ("rotation", "contrastive", "inpainting", "masked")
        if getattr(dock, t).value
    ]
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


class CopyScript:
    """*Copy as script*: the dock's settings as Python or a command."""

    def script_call(self) -> Call:
        build = CALLS.get(type(self).__name__)
        if build is None:
            raise WeaksegError(
                f"The {self.title} dock has no job a script could run."  # type: ignore[attr-defined]
            )
        return build(self)

    def as_script(
        self, kind: str = "python", out: str | Path | None = None
    ) -> str:
        """The equivalent of the dock's settings: ``kind`` ``"python"``
        (``api`` calls) or ``"cli"`` (a ``weakseg`` command); layers with
        no file on disk are saved beside the output and named in it.
        With ``out`` the script is written to that file too."""
        if kind not in ("python", "cli"):
            raise WeaksegError(f"A script is 'python' or 'cli', not {kind!r}.")
        call = self.script_call()
        title = self.title  # type: ignore[attr-defined]
        text = call.python(title) if kind == "python" else call.shell(title)
        if out is not None:
            import os

            from ..core.base.files import discard, temporary_sibling

            target = Path(out)
            tmp = temporary_sibling(target)
            try:
                tmp.write_text(text)
                os.replace(tmp, target)
            finally:
                discard(tmp)
        return text

    def copy_script(self, kind: str = "python") -> str:
        """Put :meth:`as_script` on the clipboard (and return it)."""
        from qtpy.QtWidgets import QApplication

        text = self.as_script(kind)
        QApplication.clipboard().setText(text)
        return text

    def _script_menu(self) -> Any:
        """A *Copy as script* button with its menu (Python, command, to
        a file), or None for a dock with no script."""
        if type(self).__name__ not in CALLS:
            return None
        button = PushButton(text="Copy as script")
        button.name = "copy_script_button"
        button.gui_only = True
        button.label = ""
        button.tooltip = (
            "The dock's settings as a Python script (api calls) or a "
            "weakseg command, to the clipboard or a file."
        )
        from qtpy.QtWidgets import QMenu

        menu = QMenu(button.native)
        actions = (
            ("Python to clipboard", lambda: self._copy("python")),
            ("weakseg command to clipboard", lambda: self._copy("cli")),
            ("Save as Python file…", lambda: self._save("python")),
            ("Save as shell file…", lambda: self._save("cli")),
        )
        for text, slot in actions:
            menu.addAction(text).triggered.connect(slot)
        button.native.setMenu(menu)
        self._script_actions = menu
        return button

    def _copy(self, kind: str) -> None:
        from napari.utils.notifications import show_info

        from ._common import report_error

        try:
            self.copy_script(kind)
        except WeaksegError as exc:
            report_error(exc)
            return
        show_info("Copied the script to the clipboard.")

    def _save(self, kind: str) -> None:
        from qtpy.QtWidgets import QFileDialog

        from ._common import home, report_error

        suffix = ".py" if kind == "python" else ".sh"
        chosen, _ = QFileDialog.getSaveFileName(
            self.native,  # type: ignore[attr-defined]
            "Save the script",
            str(home() / f"{self.title.lower()}{suffix}"),  # type: ignore[attr-defined]
        )
        if chosen:
            try:
                self.as_script(kind, chosen)
            except WeaksegError as exc:
                report_error(exc)


class Scriptable(CopyScript):
    """Named fields, ``update``/``asdict``/``[name]``, ``run``/``start``.

    A mixin of :class:`._common.Dock` (a magicgui ``Container``).
    """

    # --- names ---------------------------------------------------------------

    def _name_controls(self, widgets: list[Any]) -> None:
        """Name each control after its attribute (or :data:`RENAMED`);
        buttons, labels and progress bars are shown, not settings."""
        attrs = {
            id(w): a for a, w in vars(self).items() if isinstance(w, Widget)
        }
        renamed = RENAMED.get(type(self).__name__, {})
        for w in widgets:
            if not w.name and id(w) in attrs:
                if w._label is None:  # keep the label it showed unnamed
                    w.label = ""
                w.name = renamed.get(attrs[id(w)], attrs[id(w)])
            if isinstance(w, SHOWN):
                w.gui_only = True

    @property
    def title(self) -> str:
        return TITLES.get(type(self).__name__, type(self).__name__)

    def fields(self) -> list[Any]:
        """The settings: named value controls that are not results."""
        return [
            w
            for w in self._list  # type: ignore[attr-defined]
            if w.name and not w.gui_only and hasattr(w, "value")
        ]

    def field_names(self) -> list[str]:
        return [w.name for w in self.fields()]

    def _control(self, name: str) -> Any:
        widget = self.get_widget(name)  # type: ignore[attr-defined]
        if widget is None:
            raise WeaksegError(
                f"The {self.title} dock has no field '{name}'; its fields "
                f"are: {', '.join(self.field_names())}."
            )
        return widget

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._control(key)
        return super().__getitem__(key)  # type: ignore[misc]

    def asdict(self) -> dict[str, Any]:
        """Every setting by name (what :meth:`update` takes back)."""
        return {w.name: w.value for w in self.fields()}

    def update(
        self, mapping: Mapping[str, Any] | None = None, **settings: Any
    ) -> None:
        """Set fields by name; every value is checked first, and one bad
        name or value changes nothing (one sentence)."""
        settings = {**dict(mapping or {}), **settings}
        if not settings:
            return
        widgets = {name: self._control(name) for name in settings}
        for name, w in widgets.items():
            if w.gui_only:
                raise WeaksegError(
                    f"'{name}' of the {self.title} dock shows a result and "
                    f"cannot be set; its fields are: "
                    f"{', '.join(self.field_names())}."
                )
        if any(isinstance(w, LayerPicker) for w in widgets.values()):
            self.reset_choices()  # type: ignore[attr-defined]
        values = {
            name: (
                settings[name]
                if _same(w.value, settings[name])
                else _checked(w, name, settings[name], self.title)
            )
            for name, w in widgets.items()
        }
        # the image first: the other pickers follow it, then take theirs
        order = sorted(
            values,
            key=lambda n: (
                n != "image",
                not isinstance(widgets[n], LayerPicker),
            ),
        )
        for name in order:
            w = widgets[name]
            if _same(w.value, values[name]):
                continue
            try:
                w.value = values[name]
            except WeaksegError:
                raise
            except (ValueError, TypeError) as exc:
                raise WeaksegError(
                    f"'{name}' of the {self.title} dock cannot be "
                    f"{settings[name]!r} ({exc})."
                ) from None

    # --- run -----------------------------------------------------------------

    def jobs(self) -> dict[str, str]:
        return JOBS.get(type(self).__name__, {})

    @property
    def running(self) -> bool:
        worker = getattr(self, "worker", None)
        if worker is not None and worker.is_running:
            return True
        # a worker started by start() counts from start(), before its
        # thread reports running, until it has finished
        out = getattr(self, "_outcome", None)
        started = getattr(self, "_started_worker", None)
        return started is not None and out is not None and not out.done

    def start(self, job: str | None = None, **settings: Any) -> Any:
        """Apply ``settings``, start the dock's job (``job``: one of
        :meth:`jobs`, the first by default) and return its worker (the
        return value of a job with no worker)."""
        jobs = self.jobs()
        if not jobs:
            raise WeaksegError(f"The {self.title} dock has no job to run.")
        if job is None:
            job = next(iter(jobs))
        if job not in jobs:
            raise WeaksegError(
                f"The {self.title} dock has no job '{job}'; its jobs are: "
                f"{', '.join(jobs)}."
            )
        if self.running:
            raise WeaksegError(
                f"The {self.title} dock is already running; wait for it to "
                "end or stop it first."
            )
        self.update(**settings)
        self.reset_choices()  # type: ignore[attr-defined]
        self._outcome = _Outcome()
        self._started_worker = None
        from . import layers as layer_module

        self._produced: list[Any] = []
        viewer_layers = self._viewer.layers  # type: ignore[attr-defined]
        viewer_layers.events.inserted.connect(self._record_inserted)
        layer_module.RECORDERS.append(self._produced)
        with _collecting() as (errors, workers):
            try:
                returned = getattr(self, jobs[job])()
            except WeaksegError as exc:
                errors.append(exc)
        if errors or not workers:
            self._stop_recording()
        if errors:
            exc = errors[0]
            if isinstance(exc, WeaksegError):
                raise WeaksegError(str(exc))
            raise exc
        if not workers:  # a job done at once (no worker)
            self._outcome = _Outcome(done=True, value=returned)
            return returned
        worker = workers[-1]
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._started_worker = worker
        worker.start()
        return worker

    def run(self, job: str | None = None, **settings: Any) -> RunResult:
        """Apply ``settings``, run the dock's job to its end (processing
        Qt events meanwhile) and return what it produced; a failure is
        one :class:`WeaksegError` with the dock's sentence."""
        started = self.start(job, **settings)
        if started is None or not hasattr(started, "finished"):
            added = [started] if hasattr(started, "data") else []
            return RunResult(layers=added, value=started)
        self.wait()
        out = self._outcome
        if out.error is not None:
            if isinstance(out.error, Cancelled):
                raise WeaksegError(
                    f"The {self.title} dock's job was stopped before it "
                    "produced anything."
                )
            if isinstance(out.error, WeaksegError):
                raise WeaksegError(str(out.error))
            raise out.error
        layers: list[Any] = []
        for layer in self._produced:
            if layer not in layers and layer in self._viewer.layers:
                layers.append(layer)
        path = getattr(out.value, "best_path", None)
        return RunResult(
            path=Path(path) if path else None, layers=layers, value=out.value
        )

    def wait(self) -> None:
        """Process Qt events until the job started last has ended."""
        from qtpy.QtCore import QEventLoop

        out = getattr(self, "_outcome", None)
        if out is None or out.done:
            return
        out.loop = QEventLoop()
        try:
            out.loop.exec()
        finally:
            out.loop = None

    def _record_inserted(self, event: Any) -> None:
        self._produced.append(event.value)

    def _stop_recording(self) -> None:
        from . import layers as layer_module

        self._viewer.layers.events.inserted.disconnect(  # type: ignore
            self._record_inserted
        )
        if self._produced in layer_module.RECORDERS:
            layer_module.RECORDERS.remove(self._produced)

    def _on_returned(self, value: Any) -> None:
        self._outcome.value = value

    def _on_errored(self, exc: BaseException) -> None:
        self._outcome.error = exc

    def _on_finished(self) -> None:
        self._stop_recording()
        out = self._outcome
        out.done = True
        if out.loop is not None:
            out.loop.quit()
