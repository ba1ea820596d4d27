"""Boxes-to-masks dock: rectangles with a depth and a class -> dense masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    PushButton,
    SpinBox,
)

from ..core.base import defaults
from ..core.base.defaults import (
    IMAGE_KEY,
    ROLE_BOXES,
    ROLE_KEY,
    ROLE_PREDICTION,
)
from ..core.base.errors import WeaksegError
from ..core.data.boxes import Box, read_boxes, write_boxes
from .dock import TaskDock
from .fields import bounded
from .layer_data import boxes_to_shapes_data, shapes_to_boxes, volume_of
from .layers import mismatch, unique_name, upsert_layer
from .session import home
from .workers import report_error


class BoxesWidget(TaskDock):
    """Draw boxes, pick rules and rounds, watch the pseudo-labels improve."""

    PROGRESS = "round"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.image = self.layer_picker()
        self.shapes = self.layer_picker("Shapes", "boxes", ROLE_BOXES)
        self.new_boxes = PushButton(text="New boxes layer")
        self.box_class = SpinBox(
            value=1,
            min=1,
            max=defaults.BACKGROUND_BRUSH - 1,
            label="class of new boxes",
        )
        self.depth = SpinBox(
            value=9, min=1, max=10_000, label="depth (slices)"
        )
        self.file = FileEdit(
            mode="r", label="boxes file", filter="*.csv *.json"
        )
        self.load = PushButton(text="Load boxes")
        self.save = PushButton(text="Save boxes")
        self.rounds = bounded("rounds", defaults.BOX_ROUNDS, "rounds")
        self.steps = bounded(
            "steps_per_round", defaults.BOX_STEPS_PER_ROUND, "steps per round"
        )
        self.initial = ComboBox(
            choices=list(defaults.BOX_INITIALS),
            value=defaults.BOX_INITIALS[0],
            label="initial targets",
        )
        self.crf = CheckBox(text="CRF refinement", value=True)
        self.outside = CheckBox(text="outside boxes -> background", value=True)
        self.wrong = CheckBox(text="wrong class -> background", value=True)
        self.off_core = CheckBox(
            text="drop parts missing the box core", value=True
        )
        self.min_fill = bounded(
            "min_fill",
            defaults.MIN_FILL,
            step=0.05,
            label="reset below × initial size",
        )
        self.extend(
            [
                self.image,
                self.shapes,
                self.new_boxes,
                self.box_class,
                self.depth,
                self.file,
                self.load,
                self.save,
                self.rounds,
                self.steps,
                self.initial,
                self.crf,
                self.outside,
                self.wrong,
                self.off_core,
                self.min_fill,
                *self.task_controls(),
                self.status,
            ]
        )
        self.new_boxes.changed.connect(self.create_boxes_layer)
        self.box_class.changed.connect(self._set_default_class)
        self.load.changed.connect(self.load_boxes)
        self.save.changed.connect(self.save_boxes)

    def _layer_geometry(self) -> dict[str, Any]:
        image = self.image.value
        if image is None:
            return {}
        return {"scale": image.scale, "translate": image.translate}

    def create_boxes_layer(self, data=None, features=None) -> Any:
        """A Shapes layer for boxes, on the image's grid and naming it."""
        image = self.image.value
        meta = {ROLE_KEY: ROLE_BOXES}
        if image is not None:
            meta[IMAGE_KEY] = image.name
        layer = self._viewer.add_shapes(
            data if data is not None else [],
            shape_type="rectangle",
            name=unique_name(self._viewer, "boxes"),
            edge_color="yellow",
            face_color="transparent",
            edge_width=1,
            ndim=3,
            features=features
            or {"class": np.array([], int), "depth": np.array([], int)},
            metadata=meta,
            **self._layer_geometry(),
        )
        layer.feature_defaults = {
            "class": int(self.box_class.value),
            "depth": int(self.depth.value),
        }
        layer.mode = "add_rectangle"
        self.reset_choices()
        self.shapes.value = layer
        return layer

    def _set_default_class(self, *_: Any) -> None:
        layer = self.shapes.value
        if layer is not None:
            layer.feature_defaults = {
                "class": int(self.box_class.value),
                "depth": int(self.depth.value),
            }

    def current_boxes(self) -> list[Box]:
        image, shapes = self.image.value, self.shapes.value
        if image is None or shapes is None or len(shapes.data) == 0:
            raise WeaksegError("Pick an image and a boxes layer with boxes.")
        reason = mismatch(shapes, image, "boxes")
        if reason:
            raise WeaksegError(reason)
        return shapes_to_boxes(shapes, image, int(self.depth.value))

    def load_boxes(self) -> Any:
        try:
            boxes = read_boxes(Path(str(self.file.value)))
        except WeaksegError as exc:
            report_error(exc)
            return None
        data, features = boxes_to_shapes_data(boxes)
        return self.create_boxes_layer(data, features)

    def save_boxes(self) -> None:
        try:
            write_boxes(Path(str(self.file.value)), self.current_boxes())
        except WeaksegError as exc:
            report_error(exc)

    def start_run(self) -> Any:
        """Run the rounds in a worker (torch work happens there)."""
        from ..core.data.boxes import check_boxes

        try:
            image = self.image.value
            boxes = check_boxes(self.current_boxes(), image.data.shape)
        except WeaksegError as exc:
            report_error(exc)
            return None
        rounds = int(self.rounds.value)
        settings = {
            "model_out": home() / "models" / "box2mask.safetensors",
            "rounds": rounds,
            "steps_per_round": int(self.steps.value),
            "initial": str(self.initial.value),
            "crf": bool(self.crf.value),
            "outside_boxes": bool(self.outside.value),
            "wrong_class": bool(self.wrong.value),
            "off_core": bool(self.off_core.value),
            "min_fill": float(self.min_fill.value),
            "stop": self._stop,
        }
        volume = volume_of(image)
        self._image = image

        def job() -> Any:
            from ..api import iter_boxes_to_masks

            return (yield from iter_boxes_to_masks(volume, boxes, **settings))

        self.progress.max = rounds
        return self.launch(job, self._on_event, self._on_done)

    def _show(self, name: str, labels: np.ndarray) -> Any:
        return upsert_layer(
            self._viewer, name, labels, self._image, ROLE_PREDICTION
        )

    def _on_event(self, event: Any) -> None:
        from ..core.base.events import Round, Step

        if isinstance(event, Round):
            self.progress.value = event.round
            self._show(f"{self._image.name} pseudo-labels", event.labels)
            self.status.value = (
                f"round {event.round}/{event.rounds}: "
                f"{100 * event.changed:.2f} % of box voxels changed"
            )
        elif isinstance(event, Step) and event.step % 10 == 0:
            self.status.value = f"training step {event.step}/{event.total}"

    def _on_done(self, labels: np.ndarray) -> None:
        self._show(f"{self._image.name} box masks", labels)
