"""The docks' base classes: :class:`Dock` (viewer, session, layer
pickers that follow each other, named fields and scripts) and
:class:`TaskDock` (a dock whose jobs run in a worker, with Start, Stop,
a progress bar and a status line)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

from magicgui.widgets import (
    Container,
    Label,
    ProgressBar,
    PushButton,
    create_widget,
)

from ..core.base.defaults import IMAGE_KEY, ROLE_ANNOTATION
from ..core.base.errors import WeaksegError
from .fields import as_layer_picker
from .layers import best_layer, mismatch, rank, role_of, style_annotation
from .loading import load_engine
from .scripting import Scriptable
from .session import session_for
from .shortcuts import bind_shortcuts
from .tooltips import apply_tooltips
from .workers import report_error, start_worker


class Dock(Scriptable, Container):
    """Base of the docks: viewer, session, pickers; named fields,
    ``run``/``start`` and scripts (:mod:`.scripting`).

    The pickers follow each other: picking an image re-picks the layers
    of the other pickers for it (its annotation layer, or none), and
    picking a layer that belongs to another image picks that image.
    """

    def __init__(self, viewer: Any) -> None:
        super().__init__(labels=True)
        load_engine(viewer)
        self._viewer = viewer
        self._roles: list[tuple[Any, str | None]] = []
        self._following = False
        # the image picker's value as last set by anyone but napari's
        # refresh of the choices (which falls back to the first image)
        self._chosen_image: Any = None
        self._refreshing = False
        self._session = session_for(viewer)
        self.shortcuts = bind_shortcuts(viewer, self)

    def layer_picker(
        self,
        kind: str = "Image",
        label: str = "image",
        role: str | None = "image",
        **kw: Any,
    ) -> Any:
        """A dropdown of the viewer's layers of one kind.

        It defaults to the layer of ``role`` (see :mod:`.layers`) that
        belongs to the dock's image, else stays empty: a dense reference,
        another role's layer or another image's layer is never picked for
        the user.
        """
        options = {"nullable": role != "image", **kw.pop("options", {})}
        widget = create_widget(
            annotation=f"napari.layers.{kind}",
            label=label,
            options=options,
            **kw,
        )
        as_layer_picker(widget)  # takes a layer or its name
        self._roles.append((widget, role))
        widget.changed.connect(lambda _: self._picked(widget, role))
        if role == "image":
            widget.changed.connect(self._chose_image)
        return widget

    def _chose_image(self, value: Any) -> None:
        if not self._refreshing:
            self._chosen_image = value

    def extend(self, widgets: Any) -> None:
        """Add controls, with their tooltips from :mod:`.tooltips`."""
        widgets = list(widgets)
        self._name_controls(widgets)
        button = self._script_menu()  # Copy as script, after Stop
        if button is not None:
            stop = getattr(self, "stop_button", None)
            at = widgets.index(stop) + 1 if stop in widgets else len(widgets)
            widgets.insert(at, button)
        super().extend(widgets)
        apply_tooltips(self)

    def reset_choices(self, *args: Any) -> None:
        """Refresh the pickers, then default each empty one to its role
        (the image picker too unless its value was picked: by the user,
        by a follow-up or by an earlier default)."""
        with self.following():
            self._refreshing = True
            try:
                super().reset_choices(*args)
            finally:
                self._refreshing = False
        picker = self.image_picker()
        self.pick_defaults(
            picker is not None and picker.value is not self._chosen_image
        )

    @contextmanager
    def following(self) -> Iterator[None]:
        """Set pickers without their follow-ups (no signal loops)."""
        was, self._following = self._following, True
        try:
            yield
        finally:
            self._following = was

    def image_picker(self) -> Any:
        return next((w for w, r in self._roles if r == "image"), None)

    def picked_image(self) -> Any:
        picker = self.image_picker()
        return None if picker is None else picker.value

    def default_image(self, layers: list[Any]) -> Any:
        """The image picker's default among ``layers``: a plain image,
        one that a layer of this dock's roles belongs to first."""
        roles = {r for _, r in self._roles if r != "image"}
        named = {
            la.metadata.get(IMAGE_KEY)
            for la in self._viewer.layers
            if role_of(la) in roles
        }
        return best_layer(
            sorted(layers, key=lambda la: la.name not in named), "image"
        )

    def pick_defaults(self, fresh_image: bool = False) -> None:
        """Default every empty picker (or one holding a layer that is no
        default for it) to its role, for the dock's image; with
        ``fresh_image`` the image picker too (its value was napari's
        first choice, not the user's)."""
        with self.following():
            picker = self.image_picker()
            if picker is not None and (
                fresh_image
                or picker.value is None
                or rank(picker.value, "image") >= 9
            ):
                best = self.default_image(
                    [c for c in picker.choices if c is not None]
                )
                if best is not None:
                    picker.value = best
                self._chosen_image = picker.value
            image = self.picked_image()
            for widget, role in self._roles:
                current = widget.value
                if role == "image" or (
                    current is not None and rank(current, role, image) < 9
                ):
                    continue
                layers = [c for c in widget.choices if c is not None]
                best = best_layer(layers, role, image)
                if best is not current and (
                    best is not None or None in widget.choices
                ):
                    widget.value = best
        self._style_annotations()

    def _style_annotations(self) -> None:
        for widget, role in self._roles:
            if role == ROLE_ANNOTATION and widget.value is not None:
                style_annotation(widget.value)

    def _picked(self, widget: Any, role: str | None) -> None:
        """The user picked a layer: the other pickers follow it."""
        if self._following:
            return
        with self.following():
            if role == "image":
                self._repick_for_image()
            else:
                self._follow_owner(widget)
        self._style_annotations()

    def _repick_for_image(self, keep: Any = None) -> None:
        """Each role picker takes the best layer of the picked image
        (or none), unless it holds one as good; ``keep`` stays."""
        image = self.picked_image()
        for widget, role in self._roles:
            if role == "image" or widget is keep:
                continue
            layers = [c for c in widget.choices if c is not None]
            best = best_layer(layers, role, image)
            current = widget.value
            if current is not None:
                now = rank(current, role, image)
                if now < 9 and (
                    best is None or now <= rank(best, role, image)
                ):
                    continue
            if best is not current and (
                best is not None or None in widget.choices
            ):
                widget.value = best

    def _follow_owner(self, widget: Any) -> None:
        """A layer that names another image picks that image (if it is in
        the viewer); the other pickers then follow the image."""
        layer, picker = widget.value, self.image_picker()
        if layer is None or picker is None:
            return
        owner = layer.metadata.get(IMAGE_KEY)
        image = picker.value
        if owner is None or (image is not None and image.name == owner):
            return
        match = [c for c in picker.choices if getattr(c, "name", 0) == owner]
        if match:
            picker.value = match[0]
            self._repick_for_image(keep=widget)

    def refuse_mismatch(self, layer: Any, what: str) -> bool:
        """Whether ``layer`` does not belong to the picked image; if so
        the reason is one notification naming both layers."""
        reason = mismatch(layer, self.picked_image(), what)
        if reason:
            report_error(WeaksegError(reason))
        return bool(reason)


class TaskDock(Dock):
    """A dock whose jobs run in a worker thread.

    It owns the controls every such dock shows: the start button
    (``start_button``, or the attribute :attr:`START` names), which
    starts the dock's first job (see :meth:`jobs`), ``stop_button``, the
    ``progress`` bar and the ``status`` line.  :meth:`launch` runs a job
    with them: the start buttons are off and Stop is on until it ends;
    Stop (:meth:`request_stop`) asks it to end after its current step.
    The dock places them (:meth:`task_controls` and ``status``).
    """

    #: the start button: its attribute name and its text
    START = ("start_button", "Start")
    #: the progress bar's label
    PROGRESS = "progress"
    #: other buttons that start a job (off while one runs)
    BUSY: tuple[str, ...] = ()
    #: the status line once Stop is pressed ('': left as it is)
    STOPPING = ""

    def __init__(self, viewer: Any) -> None:
        super().__init__(viewer)
        self._stop = threading.Event()
        self.worker: Any = None
        name, text = self.START
        start = PushButton(text=text)
        setattr(self, name, start)
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(value=0, max=1, label=self.PROGRESS)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)  # paths and layer names
        jobs = self.jobs()
        if jobs:
            start.changed.connect(getattr(self, next(iter(jobs.values()))))
        self.stop_button.changed.connect(self.request_stop)

    @property
    def start_control(self) -> PushButton:
        """The start button (``start_button`` or the one :attr:`START`
        names)."""
        return getattr(self, self.START[0])

    def task_controls(self) -> list[Any]:
        """Start, Stop and the progress bar, in the order docks show them
        (the status line goes where the dock wants it)."""
        return [self.start_control, self.stop_button, self.progress]

    def launch(
        self,
        job: Callable[[], Generator[Any, None, Any]],
        on_event: Callable[[Any], None],
        on_done: Callable[[Any], None],
        on_finish: Callable[[], None] | None = None,
    ) -> Any:
        """Run ``job`` (a core generator) in a worker with Stop on and the
        start buttons off until it ends, then ``on_finish``; returns the
        worker (``on_event``/``on_done``: see :func:`.start_worker`)."""
        self._stop.clear()
        self._set_running(True)

        def finished() -> None:
            self._set_running(False)
            if on_finish is not None:
                on_finish()

        self.worker = start_worker(job, on_event, on_done, finished)
        return self.worker

    def request_stop(self) -> None:
        """Ask the running job to end after its current step or window."""
        self._stop.set()
        if self.STOPPING:
            self.status.value = self.STOPPING

    def _set_running(self, running: bool) -> None:
        for name in (self.START[0], *self.BUSY):
            getattr(self, name).enabled = not running
        self.stop_button.enabled = running
