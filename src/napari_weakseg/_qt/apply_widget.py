"""Apply dock: predict a whole volume, then accept corrected slices."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    FileEdit,
    PushButton,
)
from napari.utils.notifications import show_warning

from ..core.base.defaults import (
    IMAGE_KEY,
    OUTPUT_KEY,
    ROLE_ANNOTATION,
    ROLE_PREDICTION,
    ROLE_PROBABILITIES,
)
from ..core.base.errors import WeaksegError
from ..core.data.sparse import AXES, BACKGROUND_BRUSH
from .compare import CompareScores
from .dock import TaskDock
from .layer_data import edit_slice, is_large, volume_of
from .layers import (
    note_produced,
    pair_mismatch,
    rank,
    style_classes,
    upsert_layer,
)
from .session import home
from .workers import report_error


class ApplyWidget(CompareScores, TaskDock):
    """Sliding-window prediction into new layers, with progress and Stop;
    corrections back into the annotations; scores against a reference."""

    START = ("apply_button", "Apply")

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.image = self.layer_picker()
        self.model = FileEdit(
            mode="r", label="model file", filter="*.safetensors *.zip"
        )
        self.tta = CheckBox(text="flip test-time augmentation", value=False)
        self.show_probabilities = CheckBox(
            text="add probability layers", value=False
        )
        self.prediction = self.layer_picker(
            "Labels", "prediction", ROLE_PREDICTION
        )
        self.annotations = self.layer_picker(
            "Labels", "annotations", ROLE_ANNOTATION
        )
        self.accept = PushButton(text="Accept current slice as annotation")
        self.extend(
            [
                self.image,
                self.model,
                self.tta,
                self.show_probabilities,
                *self.task_controls(),
                self.prediction,
                self.annotations,
                self.accept,
                self.status,
                *self.compare_controls(),
            ]
        )
        self._style_scores()
        self.accept.changed.connect(self.accept_current_slice)
        self.image.changed.connect(self._note_model)
        self.model.changed.connect(self._note_model)
        self._session.model_changed.connect(self._on_model)
        self._layer: Any = None  # the prediction layer of the run
        self._made = False  # whether the run added it (removed if no result)
        self._moved = 0.0  # when the progress bar last moved
        self._on_model(self._session.model_path)

    # --- which image ------------------------------------------------------

    def _on_model(self, path: Path | None) -> None:
        """A new model: its file, and the image it was trained on if that
        layer is in the viewer."""
        if path is None:
            return
        self.model.value = str(path)
        name = self._session.model_image
        match = [
            c for c in self.image.choices if getattr(c, "name", 0) == name
        ]
        if match and self.image.value is not match[0]:
            self.image.value = match[0]  # its pickers follow
        self._note_model()

    def _trained_on(self) -> str | None:
        """The image the chosen model file was trained on, if known."""
        session = self._session
        if session.model_path is None or session.model_image is None:
            return None
        if Path(str(self.model.value)) != session.model_path:
            return None
        return session.model_image

    def default_image(self, layers: list[Any]) -> Any:
        """The model's training image, else the selected image layer (or
        the image the selected layer belongs to), else the base rule."""
        trained = self._trained_on()
        active = self._viewer.layers.selection.active
        owner = None if active is None else active.metadata.get(IMAGE_KEY)
        plain = [la for la in layers if rank(la, "image") < 9]
        for wanted in (trained, getattr(active, "name", None), owner):
            for layer in plain:
                if wanted is not None and layer.name == wanted:
                    return layer
        return super().default_image(layers)

    def _note_model(self, *_: Any) -> None:
        """Say (no error) when the image is not the model's own."""
        trained, image = self._trained_on(), self.image.value
        note = ""
        if trained is not None and image is not None and image.name != trained:
            note = f"The model was trained on '{trained}', not '{image.name}'."
        if note or self.status.value.startswith("The model was trained"):
            self.status.value = note

    # --- apply ------------------------------------------------------------

    def start_apply(self) -> Any:
        """Predict in a worker; returns the worker (tests wait on it).

        The prediction layer is added now, empty, and filled in place when
        the result arrives: no layer is inserted then (a 120 ms stall of
        the viewer).  Loading torch and the model happens in the worker,
        never on the GUI thread; a bad model file still ends as one
        notification.
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
        large = is_large(volume)
        name = image.name
        if large:
            folder = home() / "predictions"
            stem = re.sub(r"[^\w.-]+", "_", image.name)
            outputs["out"] = folder / f"{stem} prediction.zarr"
            if self.show_probabilities.value:
                outputs["probabilities"] = folder / f"{stem} p.zarr"

        def job() -> Any:
            from ..api import class_names, iter_predict, uncertainty

            names = class_names(model_path)
            labels, probs = yield from iter_predict(
                model_path,
                volume,
                tta=tta,
                stop=self._stop,
                name=f"'{name}'",
                **outputs,
            )
            if outputs:  # no entropy over a volume larger than memory
                import dask.array as da

                lazy = None if probs is None else da.from_zarr(probs)
                return labels, lazy, None, names
            # per-voxel entropy drives the slice suggestions; off the GUI
            return labels, probs, uncertainty(probs), names

        self._image = image
        self._layer, self._made = None, False
        if not large:
            self._layer, self._made = self._empty_prediction(image, volume)
        return self.launch(job, self._on_event, self._on_done, self._finished)

    def _empty_prediction(self, image: Any, volume: Any) -> tuple[Any, bool]:
        """The plugin's prediction layer of ``image`` (kept as it is until
        the result arrives), or a new empty one; whether it is new."""
        name = f"{image.name} prediction"
        for layer in self._viewer.layers:
            if layer.metadata.get(OUTPUT_KEY) == name:
                return layer, False
        empty = np.zeros(volume.data.shape, np.uint8)
        layer = self._output_layer(name, empty, image)
        with self.following():
            self.reset_choices()
            self.prediction.value = layer
        return layer, True

    def _on_event(self, event: Any) -> None:
        from ..core.base.events import Notice

        if isinstance(event, Notice):  # e.g. unlike the training data
            show_warning(event.message)
            return
        # a progress bar repaints at once when its value changes: windows
        # arrive many times a second, the bar moves five times a second
        now = time.monotonic()
        if event.done < event.total and now - self._moved < 0.2:
            return
        self._moved = now
        self.progress.max = max(1, event.total)
        self.progress.value = event.done

    def _on_done(self, result: Any) -> None:
        labels, probs, self._session.uncertainty, *rest = result
        names = list(rest[0]) if rest and rest[0] else None
        if names is None and probs is not None:
            from ..core.base.classes import default

            names = default(int(probs.shape[0]))
        image, layer = self._image, self._layer
        name = f"{image.name} prediction"
        if layer is not None and layer in self._viewer.layers:
            _fill(layer, labels)
        else:  # a large volume (zarr stores), or the layer was deleted
            layer = self._output_layer(name, labels, image)
        self._made = False  # it holds a result now: it stays
        note_produced(layer)
        if names:
            style_classes(layer, names)
        shown = probs is not None and self.show_probabilities.value
        for c in range(1, probs.shape[0] if shown else 1):
            self._output_layer(
                f"{image.name} p({names[c] if names else f'class {c}'})",
                probs[c],
                image,
                "image",
            )
        self.reset_choices()
        self.prediction.value = layer
        self.status.value = f"prediction in layer '{layer.name}'"
        trained = self._trained_on()
        if trained is not None and trained != image.name:
            self.status.value += f" (the model was trained on '{trained}')"

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
        if self._made and self._layer in self._viewer.layers:
            self._viewer.layers.remove(self._layer)  # stopped: no result
        self._layer, self._made = None, False

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
        reason = pair_mismatch(pred, ann)
        if reason:
            report_error(WeaksegError(reason))
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


def _fill(layer: Any, labels: Any) -> None:
    """Put a result into an existing layer in place (no new layer, no
    new texture size), else replace its data."""
    data = layer.data
    if (
        isinstance(data, np.ndarray)
        and isinstance(labels, np.ndarray)
        and data.shape == labels.shape
        and data.dtype == labels.dtype
        and data.flags.writeable
    ):
        data[...] = labels
        layer.refresh()
    else:
        layer.data = labels
