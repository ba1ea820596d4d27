"""One compact dock: the workflow as tabs, each scrolling on its own.

Annotate → Train → Apply/correct, then Boxes, CAM and Pretrain: the same
docks as the separate commands, in one tab widget that fits a 1280×800
window.  napari calls :meth:`reset_choices` when layers change; it is
passed on to every tab.
"""

from __future__ import annotations

from typing import Any

import napari
from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget


class WeakSegWidget(QWidget):
    """All docks of napari-weakseg as tabs, in workflow order."""

    TABS = (
        ("Annotate", "annotation_widget", "AnnotationWidget"),
        ("Train", "train_widget", "TrainWidget"),
        ("Apply", "apply_widget", "ApplyWidget"),
        ("Boxes", "boxes_widget", "BoxesWidget"),
        ("CAM", "cam_widget", "CamWidget"),
        ("Pretrain", "pretrain_widget", "PretrainWidget"),
    )

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        import importlib

        super().__init__()
        self.tabs = QTabWidget()
        self.docks: dict[str, Any] = {}
        for title, module, name in self.TABS:
            cls = getattr(
                importlib.import_module(f"{__package__}.{module}"), name
            )
            dock = cls(viewer)
            page = QWidget()  # the form at the top, not spread out
            column = QVBoxLayout(page)
            column.addWidget(dock.native)
            column.addStretch(1)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(page)
            self.tabs.addTab(scroll, title)
            self.docks[title] = dock
        # Scroll areas report no width of their own: take the widest tab's,
        # so napari gives the dock room for its labels.
        widest = max(d.native.sizeHint().width() for d in self.docks.values())
        self.setMinimumWidth(min(480, widest + 24))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

    def reset_choices(self, *args: Any) -> None:
        for dock in self.docks.values():
            dock.reset_choices()
