"""Apply dock: predict a whole volume, then accept corrected slices."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
)

from ..core.annotation import AXES, BACKGROUND_BRUSH
from ..core.defaults import (
    ROLE_ANNOTATION,
    ROLE_PREDICTION,
    ROLE_PROBABILITIES,
)
from ..core.errors import WeaksegError
from ._common import (
    Dock,
    home,
    report_error,
    start_worker,
)
from .layers import edit_slice, is_large, upsert_layer, volume_of


class ApplyWidget(Dock):
    """Sliding-window prediction into new layers, with progress and Stop."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.image = self.layer_picker()
        self.model = FileEdit(
            mode="r", label="model file", filter="*.safetensors"
        )
        self.tta = CheckBox(text="flip test-time augmentation", value=False)
        self.show_probabilities = CheckBox(
            text="add probability layers", value=False
        )
        self.apply_button = PushButton(text="Apply")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(value=0, max=1, label="progress")
        self.prediction = self.layer_picker(
            "Labels", "prediction", ROLE_PREDICTION
        )
        self.annotations = self.layer_picker(
            "Labels", "annotations", ROLE_ANNOTATION
        )
        self.accept = PushButton(text="Accept current slice as annotation")
        self.status = Label(value="")
        self.extend(
            [
                self.image,
                self.model,
                self.tta,
                self.show_probabilities,
                self.apply_button,
                self.stop_button,
                self.progress,
                self.prediction,
                self.annotations,
                self.accept,
                self.status,
            ]
        )
        self.apply_button.changed.connect(self.start_apply)
        self.stop_button.changed.connect(lambda: self._stop.set())
        self.accept.changed.connect(self.accept_current_slice)
        self._session.model_changed.connect(self._on_model)
        self._on_model(self._session.model_path)

    def _on_model(self, path: Path | None) -> None:
        if path is not None:
            self.model.value = str(path)

    def start_apply(self) -> Any:
        """Predict in a worker; returns the worker (tests wait on it).

        Loading torch and the model happens in the worker, never on the
        GUI thread; a bad model file still ends as one notification.
        """
        image = self.image.value
        if image is None:
            report_error(WeaksegError("Pick an image to segment."))
            return None
        model_path = Path(str(self.model.value))
        if not model_path.is_file():
            report_error(WeaksegError(f"No model file at {model_path}."))
            return None
        volume, tta = volume_of(image, lazy=True), bool(self.tta.value)
        # A large volume goes block by block into zarr stores that the
        # layers then read lazily; memory stays one block.
        outputs: dict[str, Any] = {}
        if is_large(volume):
            folder = home() / "predictions"
            stem = re.sub(r"[^\w.-]+", "_", image.name)
            outputs["out"] = folder / f"{stem} prediction.zarr"
            if self.show_probabilities.value:
                outputs["probabilities"] = folder / f"{stem} p.zarr"
        self._stop.clear()

        def job() -> Any:
            from ..api import iter_predict, uncertainty

            labels, probs = yield from iter_predict(
                model_path, volume, tta=tta, stop=self._stop, **outputs
            )
            if outputs:  # no entropy over a volume larger than memory
                import dask.array as da

                lazy = None if probs is None else da.from_zarr(probs)
                return labels, lazy, None
            # per-voxel entropy drives the slice suggestions; off the GUI
            return labels, probs, uncertainty(probs)

        self.apply_button.enabled, self.stop_button.enabled = False, True
        self._image = image
        self.worker = start_worker(
            job, self._on_event, self._on_done, self._finished
        )
        return self.worker

    def _on_event(self, event: Any) -> None:
        self.progress.max = max(1, event.total)
        self.progress.value = event.done

    def _on_done(self, result: Any) -> None:
        labels, probs, self._session.uncertainty = result
        image = self._image
        layer = self._output_layer(f"{image.name} prediction", labels, image)
        shown = probs is not None and self.show_probabilities.value
        for c in range(1, probs.shape[0] if shown else 1):
            self._output_layer(
                f"{image.name} p(class {c})", probs[c], image, "image"
            )
        self.reset_choices()
        self.prediction.value = layer
        self.status.value = f"prediction in layer '{layer.name}'"

    def _output_layer(
        self, name: str, data: Any, image: Any, kind: str = "labels"
    ) -> Any:
        """Update our own output layer, or add a new one; never a user's."""
        if kind == "labels":
            return upsert_layer(
                self._viewer, name, data, image, ROLE_PREDICTION
            )
        # fixed contrast limits: napari need not scan the data
        return upsert_layer(
            self._viewer,
            name,
            data,
            image,
            ROLE_PROBABILITIES,
            "image",
            visible=False,
            colormap="magma",
            contrast_limits=(0, 1),
        )

    def _finished(self) -> None:
        self.apply_button.enabled, self.stop_button.enabled = True, False

    def accept_current_slice(self) -> None:
        """Copy the (corrected) prediction on the shown slice into the
        annotation layer and mark that slice done."""
        pred, ann = self.prediction.value, self.annotations.value
        if pred is None or ann is None or pred is ann:
            report_error(
                WeaksegError(
                    "Pick a prediction layer and a different annotation layer."
                )
            )
            return
        if pred.data.shape != ann.data.shape:
            report_error(
                WeaksegError(
                    "The prediction and the annotation layer have different "
                    "shapes."
                )
            )
            return
        dims = self._viewer.dims
        axis = dims.order[-3] - (dims.ndim - 3)
        i = int(dims.current_step[dims.order[-3]])
        sl: list[Any] = [slice(None)] * 3
        sl[axis] = i
        plane = np.asarray(pred.data[tuple(sl)])
        # Every voxel painted (0 -> background brush): the slice is done.
        # One edit in napari's history: Ctrl+Z on the layer undoes it all.
        edit_slice(ann, axis, i, np.where(plane == 0, BACKGROUND_BRUSH, plane))
        self.status.value = f"slice {AXES[axis]}={i} added to the annotations"
