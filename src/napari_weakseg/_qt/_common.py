"""Helpers the docks share: session, workers, names, notifications."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, create_widget
from napari.utils.notifications import show_error, show_info
from psygnal import Signal

from ..core.errors import Cancelled, WeaksegError


class Dock(Container):
    """Base of the docks: viewer, session, stop flag, worker, pickers."""

    def __init__(self, viewer: Any) -> None:
        super().__init__(labels=True)
        # torch/MONAI load when the first dock opens: their C extensions
        # hold the GIL while initialising, which would freeze the viewer
        # if it happened in a worker mid-task.  torch._dynamo is what the
        # first optimiser imports (a 170 ms freeze at the first step).
        import monai.networks.nets  # noqa: F401
        import torch  # noqa: F401
        import torch._dynamo  # noqa: F401

        self._viewer = viewer
        self._roles: list[tuple[Any, str | None]] = []
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
        belongs to the dock's image, else stays empty: a dense reference
        or another role's layer is never picked for the user.
        """
        options = {"nullable": role != "image", **kw.pop("options", {})}
        widget = create_widget(
            annotation=f"napari.layers.{kind}",
            label=label,
            options=options,
            **kw,
        )
        self._roles.append((widget, role))
        return widget

    def extend(self, widgets: Any) -> None:
        """Add controls, with their tooltips from :mod:`.tooltips`."""
        from .tooltips import apply_tooltips

        super().extend(widgets)
        apply_tooltips(self)

    def reset_choices(self, *args: Any) -> None:
        """Refresh the pickers, then default each empty one to its role."""
        super().reset_choices(*args)
        self.pick_defaults()

    def pick_defaults(self) -> None:
        from ..core.defaults import ROLE_ANNOTATION
        from .layers import best_layer, rank, style_annotation

        image = getattr(getattr(self, "image", None), "value", None)
        for widget, role in getattr(self, "_roles", []):
            current = widget.value
            if current is not None and rank(current, role, image) < 9:
                continue
            layers = [c for c in widget.choices if c is not None]
            best = best_layer(layers, role, image)
            if best is not current and (
                best is not None or None in widget.choices
            ):
                widget.value = best
        for widget, role in getattr(self, "_roles", []):
            if role == ROLE_ANNOTATION and widget.value is not None:
                style_annotation(widget.value)


class Session:
    """What the docks of one viewer share: the model and the last result.

    Widgets hold no model state; they read and observe this object.
    """

    model_changed = Signal(object)
    encoder_changed = Signal(object)

    def __init__(self) -> None:
        self.model_path: Path | None = None
        self.encoder_path: Path | None = None
        self.uncertainty: np.ndarray | None = None

    def set_encoder(self, path: str | Path) -> None:
        self.encoder_path = Path(path)
        self.encoder_changed.emit(self.encoder_path)

    def set_model(self, path: str | Path | None) -> None:
        self.model_path = Path(path) if path else None
        self.model_changed.emit(self.model_path)


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> Session:
    """The session of ``viewer`` (one per viewer, gone with it)."""
    if viewer not in _SESSIONS:
        from .layers import follow_ndisplay

        _SESSIONS[viewer] = Session()
        follow_ndisplay(viewer)
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
    """One sentence in a notification for bad input; Stop is no error."""
    if isinstance(exc, Cancelled):
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
    notification; ``on_finish`` runs however the job ended.
    """
    from napari.qt.threading import create_worker

    worker = create_worker(job)
    worker.yielded.connect(on_event)
    worker.returned.connect(on_return)
    worker.errored.connect(report_error)
    worker.finished.connect(on_finish)
    worker.start()
    return worker
