"""Commands in napari's Layers menu (npe2 ``menus:`` in napari.yaml).

*Layers > Segment* offers *Apply model to the selected image* and opens
the Train, Boxes and CAM docks; *Layers > Annotate* opens the Annotate
dock.  (napari lists widget commands only under Plugins, so each menu
item is a command that opens its dock.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari

from ..core.base.defaults import IMAGE_KEY
from ..core.base.errors import WeaksegError


def _dock(viewer: Any, name: str) -> Any:
    _, widget = viewer.window.add_plugin_dock_widget("napari-weakseg", name)
    return widget


def _selected_image(viewer: Any) -> Any:
    """The selected image layer, or the image the selected layer
    belongs to (an annotation, a prediction...)."""
    active = viewer.layers.selection.active
    if isinstance(active, napari.layers.Image):
        return active
    owner = None if active is None else active.metadata.get(IMAGE_KEY)
    for layer in viewer.layers:
        if isinstance(layer, napari.layers.Image) and layer.name == owner:
            return layer
    return None


def apply_selected(viewer: napari.viewer.Viewer) -> Any:
    """Open the Apply dock on the selected image and segment it with the
    dock's model; returns the worker (None, with one notification, when
    no image is selected or no model file is set)."""
    from .workers import report_error

    apply = _dock(viewer, "Apply and correct")
    image = _selected_image(viewer)
    if image is None:
        report_error(WeaksegError("Select an image layer to segment first."))
        return None
    apply.update(image=image)
    if not Path(str(apply.model.value)).is_file():
        report_error(
            WeaksegError(
                "Choose a model file in the Apply dock (or train one), then "
                "press Apply."
            )
        )
        return None
    return apply.start_apply()


def open_annotate(viewer: napari.viewer.Viewer) -> Any:
    """Open the Annotate dock."""
    return _dock(viewer, "Sparse slice annotation")


def open_train(viewer: napari.viewer.Viewer) -> Any:
    """Open the Train dock."""
    return _dock(viewer, "Train (sparse slices)")


def open_boxes(viewer: napari.viewer.Viewer) -> Any:
    """Open the Boxes dock."""
    return _dock(viewer, "Boxes to masks")


def open_cam(viewer: napari.viewer.Viewer) -> Any:
    """Open the CAM dock."""
    return _dock(viewer, "CAM and pseudo-labels")
