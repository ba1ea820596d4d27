"""Helpers the docks share: session, workers, names, notifications."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, create_widget
from napari.utils.notifications import show_error, show_info
from psygnal import Signal

from ..core.base.errors import Cancelled, WeaksegError
from . import scripting

#: shown in napari's status bar while the first dock loads torch/MONAI
LOADING = "napari-weakseg: loading the engine (torch, MONAI)…"

#: what the first dock imports (see :func:`load_engine`)
ENGINE = ("torch", "torch._dynamo", "monai.networks.nets")


def load_engine(viewer: Any) -> None:
    """Import torch and MONAI, saying so in the status bar the first time.

    They load on the GUI thread when the first dock opens: their C
    extensions hold the GIL while initialising, which would freeze the
    viewer just as long if it happened in a worker mid-task.
    torch._dynamo is what the first optimiser imports (a 170 ms freeze
    at the first step).  A busy laptop takes up to 20 s: the status bar
    and a busy cursor say what the wait is.
    """
    import importlib
    import sys

    if all(name in sys.modules for name in ENGINE):
        return
    before = _say_status(viewer, LOADING)
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        for name in ENGINE:
            importlib.import_module(name)
    finally:
        QApplication.restoreOverrideCursor()
        _say_status(viewer, before)


def _say_status(viewer: Any, text: Any) -> Any:
    """Put ``text`` in the viewer's status bar and paint it now (the GUI
    thread is about to block); returns the previous status."""
    before = getattr(viewer, "status", "")
    try:
        viewer.status = text
    except Exception:  # not a napari viewer (a test double)
        return before
    from qtpy.QtCore import QEvent
    from qtpy.QtWidgets import QApplication, QMainWindow, QWidget

    for window in QApplication.topLevelWidgets():  # napari's main windows
        if isinstance(window, QMainWindow) and window.isVisible():
            # laid out and painted now: the layout request is sent, not
            # posted, so no other event runs (the dock is half built)
            bar = window.statusBar()
            for widget in (bar, *bar.findChildren(QWidget)):
                request = QEvent(QEvent.Type.LayoutRequest)
                QApplication.sendEvent(widget, request)
            bar.repaint()
    return before


class Dock(scripting.Scriptable, Container):
    """Base of the docks: viewer, session, stop flag, worker, pickers;
    named fields, ``run``/``start`` and scripts (:mod:`.scripting`).

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
        from .shortcuts import bind_shortcuts

        self.shortcuts = bind_shortcuts(viewer, self)
        self._stop = threading.Event()
        self.worker: Any = None

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
        scripting.as_layer_picker(widget)  # takes a layer or its name
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
        from .tooltips import apply_tooltips

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
        from ..core.base.defaults import IMAGE_KEY
        from .layers import best_layer, role_of

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
        from .layers import best_layer, rank

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
        from ..core.base.defaults import ROLE_ANNOTATION
        from .layers import style_annotation

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
        from .layers import best_layer, rank

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
        from ..core.base.defaults import IMAGE_KEY

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
        from .layers import mismatch

        reason = mismatch(layer, self.picked_image(), what)
        if reason:
            report_error(WeaksegError(reason))
        return bool(reason)


class Session:
    """What the docks of one viewer share: the model and the last result.

    Widgets hold no model state; they read and observe this object.
    """

    model_changed = Signal(object)
    encoder_changed = Signal(object)

    def __init__(self) -> None:
        self.model_path: Path | None = None
        self.model_image: str | None = None
        self.encoder_path: Path | None = None
        self.uncertainty: np.ndarray | None = None

    def set_encoder(self, path: str | Path) -> None:
        self.encoder_path = Path(path)
        self.encoder_changed.emit(self.encoder_path)

    def set_model(
        self, path: str | Path | None, image_name: str | None = None
    ) -> None:
        """A new model; ``image_name``: the layer it was trained on (the
        Apply dock then defaults to that image)."""
        self.model_path = Path(path) if path else None
        self.model_image = image_name if path else None
        self.model_changed.emit(self.model_path)


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> Session:
    """The session of ``viewer`` (one per viewer, gone with it)."""
    if viewer not in _SESSIONS:
        from .layers import follow_ndisplay, follow_renames

        _SESSIONS[viewer] = Session()
        follow_ndisplay(viewer)
        follow_renames(viewer)
    return _SESSIONS[viewer]


def home() -> Path:
    """Where autosaves and default model files live."""
    return Path(
        os.environ.get("WEAKSEG_HOME", Path.home() / ".napari-weakseg")
    )


def unique_name(viewer: Any, base: str) -> str:
    """``base``, or ``base [2]``... so no existing layer is replaced."""
    names = {layer.name for layer in viewer.layers}
    if base not in names:
        return base
    k = 2
    while f"{base} [{k}]" in names:
        k += 1
    return f"{base} [{k}]"


def report_error(exc: BaseException) -> None:
    """One sentence in a notification for bad input; Stop is no error.
    While a script starts a dock (:meth:`.scripting.Scriptable.start`)
    the error is collected and raised there instead."""
    if scripting.CAPTURED is not None:
        scripting.CAPTURED.append(exc)
    elif isinstance(exc, Cancelled):
        show_info("Stopped.")
    elif isinstance(exc, WeaksegError):
        show_error(str(exc))
    else:
        show_error(f"Unexpected error ({type(exc).__name__}): {exc}")


def start_worker(
    job: Callable[[], Generator[Any, None, Any]],
    on_event: Callable[[Any], None],
    on_return: Callable[[Any], None],
    on_finish: Callable[[], None],
) -> Any:
    """Run a core generator in napari's worker thread.

    Events reach ``on_event`` on the GUI thread; errors become one
    notification (not raised again on the GUI thread, where napari would
    show a second one with the traceback); ``on_finish`` runs however the
    job ended.
    """
    from napari.qt.threading import create_worker

    worker = create_worker(job, _ignore_errors=True)
    worker.yielded.connect(on_event)
    worker.returned.connect(on_return)
    worker.errored.connect(report_error)
    worker.finished.connect(on_finish)
    if scripting.DEFERRED is not None:  # a script starts it (see there)
        scripting.DEFERRED.append(worker)
    else:
        worker.start()
    return worker
