"""Scripting the docks: named fields, ``run``/``start``, copy as script.

Every control of a dock has a ``name`` (the API keyword or CLI flag of
the same concept where there is one, see :data:`RENAMED`), so magicgui's
scripting surface works on the docks::

    dock["steps"].value = 300
    dock.update(steps=300, device="cpu")
    settings = dock.asdict()
    result = dock.run(steps=300)      # waits, returns what it produced

Bad input is one :class:`~..core.base.errors.WeaksegError` sentence and
changes nothing: an unknown field (the sentence lists the valid ones), a
layer name not in the viewer, a value outside the field's range, a run
while the dock is running.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magicgui.widgets import Label, ProgressBar, PushButton
from magicgui.widgets.bases import Widget

from ..core.base.errors import Cancelled, WeaksegError
from . import layers as layer_module
from .copy_script import CopyScript
from .fields import LayerPicker, checked_value, same_value
from .workers import collecting

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
    :class:`~..core.base.events.Finished`).
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


class Scriptable(CopyScript):
    """Named fields, ``update``/``asdict``/``[name]``, ``run``/``start``.

    A mixin of :class:`.dock.Dock` (a magicgui ``Container``).
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
                if same_value(w.value, settings[name])
                else checked_value(w, name, settings[name], self.title)
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
            if same_value(w.value, values[name]):
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
        self._produced: list[Any] = []
        viewer_layers = self._viewer.layers  # type: ignore[attr-defined]
        viewer_layers.events.inserted.connect(self._record_inserted)
        layer_module.RECORDERS.append(self._produced)
        with collecting() as (errors, workers):
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
