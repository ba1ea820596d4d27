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
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)

from ..core.boxes import Box, read_boxes, write_boxes
from ..core.defaults import ROLE_BOXES, ROLE_PREDICTION
from ..core.errors import WeaksegError
from ._common import Dock, report_error, start_worker, unique_name
from .layers import upsert_layer

BOX_FEATURES = ("class", "depth")


def shapes_to_boxes(shapes: Any, image: Any, depth: int = 5) -> list[Box]:
    """Rectangles of a Shapes layer as voxel boxes of ``image``.

    A rectangle drawn on a slice spans that slice's plane; its extent along
    the slicing axis is the ``depth`` feature (or ``depth``) centred on the
    slice.  A shape drawn in 3D spans its own bounding box.
    """
    features = shapes.features
    boxes = []
    for i, verts in enumerate(shapes.data):
        world = np.asarray([shapes.data_to_world(v) for v in verts])
        vox = np.asarray([image.world_to_data(w) for w in world])[:, -3:]
        lo, hi = vox.min(axis=0), vox.max(axis=0)
        flat = [a for a in range(3) if np.isclose(lo[a], hi[a])]
        cls = int(features["class"][i]) if "class" in features else 1
        d = int(features["depth"][i]) if "depth" in features else depth
        start = np.floor(lo + 0.5).astype(int)
        stop = np.floor(hi + 0.5).astype(int) + 1
        for a in flat:
            start[a] = int(np.floor(lo[a] - (d - 1) / 2 + 0.5))
            stop[a] = start[a] + d
        boxes.append(Box(*start.tolist(), *stop.tolist(), cls))
    return boxes


def boxes_to_shapes_data(boxes: list[Box]) -> tuple[list[np.ndarray], dict]:
    """Rectangles on each box's middle z-slice, with class and depth."""
    data = []
    for b in boxes:
        z = (b.z0 + b.z1 - 1) / 2
        data.append(
            np.array(
                [
                    [z, b.y0, b.x0],
                    [z, b.y0, b.x1 - 1],
                    [z, b.y1 - 1, b.x1 - 1],
                    [z, b.y1 - 1, b.x0],
                ],
                float,
            )
        )
    features = {
        "class": [b.cls for b in boxes],
        "depth": [b.z1 - b.z0 for b in boxes],
    }
    return data, features


class BoxesWidget(Dock):
    """Draw boxes, pick rules and rounds, watch the pseudo-labels improve."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.image = self.layer_picker()
        self.shapes = self.layer_picker("Shapes", "boxes", ROLE_BOXES)
        self.new_boxes = PushButton(text="New boxes layer")
        self.box_class = SpinBox(
            value=1, min=1, max=254, label="class of new boxes"
        )
        self.depth = SpinBox(
            value=9, min=1, max=10_000, label="depth (slices)"
        )
        self.file = FileEdit(
            mode="r", label="boxes file", filter="*.csv *.json"
        )
        self.load = PushButton(text="Load boxes")
        self.save = PushButton(text="Save boxes")
        self.rounds = SpinBox(value=3, min=1, max=20, label="rounds")
        self.steps = SpinBox(
            value=150, min=1, max=100_000, label="steps per round"
        )
        self.initial = ComboBox(
            choices=["grabcut", "box"],
            value="grabcut",
            label="initial targets",
        )
        self.crf = CheckBox(text="CRF refinement", value=True)
        self.outside = CheckBox(text="outside boxes -> background", value=True)
        self.wrong = CheckBox(text="wrong class -> background", value=True)
        self.off_core = CheckBox(
            text="drop parts missing the box core", value=True
        )
        self.min_fill = FloatSpinBox(
            value=0.5,
            min=0,
            max=1,
            step=0.05,
            label="reset below × initial size",
        )
        self.start = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(value=0, max=1, label="round")
        self.status = Label(value="")
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
                self.start,
                self.stop_button,
                self.progress,
                self.status,
            ]
        )
        self.new_boxes.changed.connect(self.create_boxes_layer)
        self.box_class.changed.connect(self._set_default_class)
        self.load.changed.connect(self.load_boxes)
        self.save.changed.connect(self.save_boxes)
        self.start.changed.connect(self.start_run)
        self.stop_button.changed.connect(lambda: self._stop.set())

    def _layer_geometry(self) -> dict[str, Any]:
        image = self.image.value
        if image is None:
            return {}
        return {"scale": image.scale, "translate": image.translate}

    def create_boxes_layer(self, data=None, features=None) -> Any:
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
        from ..core.boxes import check_boxes
        from ._common import home

        try:
            image = self.image.value
            boxes = check_boxes(self.current_boxes(), image.data.shape)
        except WeaksegError as exc:
            report_error(exc)
            return None
        rule_values = (
            self.outside.value,
            self.wrong.value,
            self.off_core.value,
            float(self.min_fill.value),
            self.crf.value,
        )
        data, spacing = np.asarray(image.data), tuple(image.scale)[-3:]
        steps = int(self.steps.value)
        rounds, initial = int(self.rounds.value), str(self.initial.value)
        out = home() / "models" / "box2mask.safetensors"
        self._stop.clear()
        self._image = image

        def job() -> Any:
            from ..core.box2mask import Rules, iter_boxes_to_masks
            from ..core.training import TrainConfig

            return (
                yield from iter_boxes_to_masks(
                    data,
                    boxes,
                    out,
                    rounds,
                    TrainConfig(steps=steps),
                    spacing,
                    Rules(*rule_values),
                    initial,
                    stop=self._stop,
                )
            )

        self.progress.max = rounds
        self.start.enabled, self.stop_button.enabled = False, True
        self.worker = start_worker(
            job, self._on_event, self._on_done, self._done
        )
        return self.worker

    def _show(self, name: str, labels: np.ndarray) -> Any:
        return upsert_layer(
            self._viewer, name, labels, self._image, ROLE_PREDICTION
        )

    def _on_event(self, event: Any) -> None:
        from ..core.events import Round, Step

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

    def _done(self) -> None:
        self.start.enabled, self.stop_button.enabled = True, False
