"""CAM dock: where a model looks, as an overlay, and seeds from it."""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    FileEdit,
    FloatSlider,
    PushButton,
)

from ..core.base import defaults
from ..core.base.defaults import (
    DONE_KEY,
    IMAGE_KEY,
    ROLE_ANNOTATION,
    ROLE_CAM,
    ROLE_KEY,
    ROLE_PREDICTION,
)
from ..core.base.errors import WeaksegError
from ..core.base.events import Round
from .dock import TaskDock
from .fields import bounded
from .layer_data import volume_of
from .layers import transform_of, unique_name, upsert_layer
from .workers import report_error


class CamWidget(TaskDock):
    """Pick a model, a layer, a class and a method; see the map.

    The map and the segmentation from it share Stop (one job at a time).
    """

    START = ("compute", "Compute map")
    PROGRESS = "windows"
    BUSY = ("segment",)

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.image = self.layer_picker()
        self.model = FileEdit(
            mode="r", label="model file", filter="*.safetensors"
        )
        # the blocks of the model file (kept when napari refreshes the
        # dropdowns, as it does whenever a layer is added)
        self._blocks: list[str] = []
        self.layer = ComboBox(choices=self._block_names, label="target layer")
        self.class_index = bounded("class_index", 1, "class")
        self.method = ComboBox(
            choices=list(defaults.CAM_METHODS), label="method"
        )
        self.opacity = FloatSlider(
            value=0.6, min=0, max=1, label="map opacity"
        )
        self.to_labels = PushButton(text="Map to pseudo-labels")
        self.segment = PushButton(text="Segment from map")
        self.segment.tooltip = (
            "Seed, expand, constrain: a U-Net trains on the map's confident "
            "voxels, the dense CRF refines each round"
        )
        self.extend(
            [
                self.image,
                self.model,
                self.layer,
                self.class_index,
                self.method,
                *self.task_controls(),
                self.opacity,
                self.to_labels,
                self.segment,
                self.status,
            ]
        )
        self.model.changed.connect(self.load_layers)
        self.opacity.changed.connect(self._set_opacity)
        self.to_labels.changed.connect(self.map_to_pseudo_labels)
        self.segment.changed.connect(self.start_segment)
        self._map_layer: Any = None
        if self._session.model_path is not None:
            self.model.value = str(self._session.model_path)

    def _block_names(self, *_: Any) -> list[str]:
        return self._blocks

    def load_layers(self, *_: Any) -> list[str]:
        """Fill the layer dropdown from the model file."""
        from ..api import cam_layers

        try:
            names, default, config = cam_layers(str(self.model.value))
        except WeaksegError as exc:
            report_error(exc)
            return []
        self._blocks = list(names)
        self.layer.reset_choices()
        self.layer.value = default
        self.class_index.max = config.num_classes - 1
        if config.pooling == "topk":  # its map is what it pools: CAM
            self.method.value = "cam"
        self.status.value = f"{config.kind}, {config.num_classes} classes"
        return names

    def start_map(self) -> Any:
        """Compute the map in a worker (torch work happens there)."""
        image = self.image.value
        if image is None or not self.layer.choices:
            report_error(WeaksegError("Pick an image and a model file first."))
            return None
        args = {
            "method": str(self.method.value),
            "layer": str(self.layer.value),
            "class_index": int(self.class_index.value),
            "stop": self._stop,
        }
        model, volume = str(self.model.value), volume_of(image)
        self._image = image

        def job() -> Any:
            from ..api import iter_class_activation_map

            return (
                yield from iter_class_activation_map(model, volume, **args)
            )

        return self.launch(job, self._on_event, self._on_done)

    def _on_event(self, event: Any) -> None:
        self.progress.max, self.progress.value = event.total, event.done

    def _on_done(self, m: np.ndarray) -> None:
        name = (
            f"{self._image.name} {self.method.value} "
            f"class {self.class_index.value}"
        )
        self._map_layer = upsert_layer(
            self._viewer,
            name,
            m,
            self._image,
            ROLE_CAM,
            "image",
            colormap="inferno",
            blending="additive",
            opacity=float(self.opacity.value),
        )

    def _set_opacity(self, value: float) -> None:
        if self._map_layer is not None:
            self._map_layer.opacity = float(value)

    def start_segment(self) -> Any:
        """Seed -> expand -> constrain from the map, in a worker; the
        result is a new labels layer (the image's own layers untouched)."""
        if self._map_layer is None:
            report_error(WeaksegError("Compute a map first."))
            return None
        image, cam_map, stop = self._image, self._map_layer.data, self._stop
        volume, cls = volume_of(image), int(self.class_index.value)

        def job() -> Any:
            from ..api import iter_segment_from_map

            return (
                yield from iter_segment_from_map(
                    volume, cam_map, class_index=cls, stop=stop
                )
            )

        def done(labels: np.ndarray) -> None:
            upsert_layer(
                self._viewer,
                f"{image.name} segmentation from map",
                labels,
                image,
                ROLE_PREDICTION,
            )

        def event(e: Any) -> None:
            if isinstance(e, Round):
                self.status.value = f"round {e.round} of {e.rounds}"

        return self.launch(job, event, done)

    def map_to_pseudo_labels(self) -> Any:
        """Seeds as a painting layer the Train dock consumes directly."""
        from ..api import pseudo_labels
        from ..core.data.sparse import from_sparse_labels

        if self._map_layer is None:
            report_error(WeaksegError("Compute a map first."))
            return None
        try:
            sparse = pseudo_labels(
                self._map_layer.data, int(self.class_index.value)
            )
        except WeaksegError as exc:
            report_error(exc)
            return None
        painted, _ = from_sparse_labels(sparse)
        placed = transform_of(self._image)
        geo = placed.pop("metadata", {})
        return self._viewer.add_labels(
            painted,
            name=unique_name(self._viewer, f"{self._image.name} seeds"),
            **placed,
            metadata={
                **geo,
                DONE_KEY: {},
                ROLE_KEY: ROLE_ANNOTATION,
                IMAGE_KEY: self._image.name,
            },
        )
