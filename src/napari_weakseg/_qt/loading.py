"""Loading torch and MONAI when the first dock opens, said in napari's
status bar (see :func:`load_engine`)."""

from __future__ import annotations

from typing import Any

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
