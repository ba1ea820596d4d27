"""Train dock: sparse annotations -> 3D U-Net, in a worker thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    LineEdit,
)
from napari.utils.notifications import show_info

from ..core.base import defaults
from ..core.base.defaults import (
    IMAGE_KEY,
    OUTPUT_KEY,
    ROLE_ANNOTATION,
    ROLE_KEY,
    ROLE_PREVIEW,
)
from ..core.base.errors import WeaksegError
from .dock import TaskDock
from .fields import bounded
from .layer_data import annotated_pairs, sparse_from_layer, volume_of
from .layers import label_names, transform_of, unique_name
from .plot import LossPlot
from .session import AUTO_NAME, home, model_file
from .workers import report_error, start_worker


class TrainWidget(TaskDock):
    """Settings, Start/Stop, progress with ETA and a live loss/Dice plot."""

    STOPPING = "Stopping after this step..."

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.image = self.layer_picker()
        self.annotations = self.layer_picker(
            "Labels", "annotations", ROLE_ANNOTATION
        )
        self.steps = bounded("steps", defaults.STEPS, "steps")
        self.patience = bounded(
            "patience", 0, "stop after no gain (steps)", low=0
        )
        self.every_image = CheckBox(
            text="train on every annotated image", value=False
        )
        self.base_filters = bounded(
            "base_filters", defaults.BASE_FILTERS, "base filters"
        )
        self.device = ComboBox(choices=list(defaults.DEVICES), label="device")
        self.augment = ComboBox(
            choices=list(defaults.AUGMENTATIONS),
            value=defaults.AUGMENT,
            label="augmentation",
        )
        self.class_names = LineEdit(value="", label="class names")
        self.class_names.native.setPlaceholderText(
            "head, body (labels 1, 2...)"
        )
        self.init = FileEdit(
            mode="r", label="initialise from", filter="*.safetensors"
        )
        self.unlabelled = FileEdit(
            mode="d", label="unlabelled pool", nullable=True, value=None
        )
        self.warm = CheckBox(text="continue from current model", value=False)
        self.preview = CheckBox(
            text="live preview of the shown slice", value=False
        )
        self.out = FileEdit(
            mode="w",
            label="model file",
            filter="*.safetensors",
            value=str(home() / "models" / AUTO_NAME),
        )
        self.extend(
            [
                self.image,
                self.annotations,
                self.every_image,
                self.steps,
                self.patience,
                self.base_filters,
                self.device,
                self.augment,
                self.class_names,
                self.init,
                self.unlabelled,
                self.warm,
                self.preview,
                self.out,
                *self.task_controls(),
                self.status,
            ]
        )
        self.plot = LossPlot()
        self.native.layout().addWidget(self.plot)
        self.preview_worker: Any = None
        self._run_image: str | None = None
        self._session.encoder_changed.connect(self._offer_encoder)
        if self._session.encoder_path is not None:
            self._offer_encoder(self._session.encoder_path)

    def _offer_encoder(self, path: Path) -> None:
        """A pretrained encoder from the Pretrain dock becomes the init."""
        self.init.value = str(path)

    def _pool(self) -> list[str] | None:
        """The unlabelled pool folder (semi-supervised), if one is set."""
        folder = self.unlabelled.value
        return None if folder is None else [str(folder)]

    def _init_path(self) -> str | None:
        if self.warm.value and self._session.model_path is not None:
            return str(self._session.model_path)
        p = Path(str(self.init.value))
        return str(p) if p.is_file() else None

    def api_settings(self) -> dict[str, Any]:
        """The keywords of ``api.train`` the dock's fields stand for
        (what a run passes, and what *Copy as script* writes)."""
        return {
            "steps": int(self.steps.value),
            "patience": int(self.patience.value) or None,
            "base_filters": int(self.base_filters.value),
            "device": str(self.device.value),
            "augment": str(self.augment.value),
            "init": self._init_path(),
            "unlabelled": self._pool(),
            "class_names": self._class_names() or (),
        }

    def _class_names(self) -> str | None:
        """The names of labels 1..K: the field, else those the annotation
        layer carries in its features; None: ``class 1``, ``class 2``..."""
        typed = str(self.class_names.value).strip()
        if typed:
            return typed
        names = label_names(self.annotations.value)
        return ",".join(names) if names else None

    def training_pairs(self) -> list[tuple[Any, Any]]:
        """The (image, annotation) layers a run trains on: the chosen
        pair first, then with *every image* the other annotated ones."""
        image, ann = self.image.value, self.annotations.value
        pairs = [(image, ann)]
        if self.every_image.value:
            pairs += [
                (i, a)
                for i, a in annotated_pairs(self._viewer.layers)
                if a.name != ann.name
            ]
        return pairs

    def start_training(self) -> Any:
        """Start training in a worker; return it (tests wait on it).

        torch and MONAI work happens inside the worker, never in this slot.
        """
        image, ann = self.image.value, self.annotations.value
        if image is None or ann is None:
            report_error(
                WeaksegError(
                    "Pick an image and an annotation layer (Annotate dock: "
                    "New annotation layer)."
                )
            )
            return None
        if self.refuse_mismatch(ann, "annotation"):
            return None
        pairs = self.training_pairs()
        try:
            volumes = [volume_of(i, lazy=True) for i, _ in pairs]
            sparse = [sparse_from_layer(a) for _, a in pairs]
        except Exception as exc:
            report_error(exc)
            return None
        settings = {**self.api_settings(), "stop": self._stop}
        out = model_file(Path(str(self.out.value)), image.name)
        self._run_image = image.name
        self.plot.clear()
        if len(pairs) > 1:
            show_info(
                f"Training on {len(pairs)} images: "
                + ", ".join(i.name for i, _ in pairs)
            )

        def job() -> Any:
            from ..api import iter_train

            return (yield from iter_train(volumes, sparse, out, **settings))

        return self.launch(job, self._on_event, self._on_done, self._finished)

    def toggle_training(self) -> Any:
        """Start training, or stop the run in progress (one shortcut)."""
        if self.worker is not None and self.stop_button.enabled:
            self.request_stop()
            return None
        return self.start_training()

    def _on_event(self, event: Any) -> None:
        from ..core.base.events import (
            Plateau,
            Saved,
            Started,
            Step,
            Validation,
        )

        if isinstance(event, Started):
            self.progress.max = event.total_steps
            self.status.value = (
                f"device {event.device}, patch {event.patch_size}"
            )
            if event.augmentation:  # the choice here, its reason on hover
                self.status.value += ", " + event.augmentation.split(" (")[0]
                self.status.tooltip = "augmentation: " + event.augmentation
        elif isinstance(event, Step):
            self.progress.value = event.step
            self.status.value = (
                f"step {event.step}/{event.total}  loss {event.loss:.3f}  "
                f"ETA {event.eta_s:.0f} s"
            )
            self.plot.add_loss(event.step, event.loss)
            self.plot.redraw()
        elif isinstance(event, Plateau):
            self.status.value = (
                f"no better since step {event.best_step}: finishing early"
            )
        elif isinstance(event, Validation):
            self.plot.add_dice(event.step, event.mean_dice)
            self.plot.redraw()
        elif (
            isinstance(event, Saved)
            and event.kind == "last"
            and self.preview.value
            and self.preview_worker is None
        ):
            self.start_preview(event.path)

    def start_preview(self, checkpoint: str) -> Any:
        """Predict the slice on screen with the latest checkpoint."""
        image = self.image.value
        dims = self._viewer.dims
        axis = dims.order[-3] - (dims.ndim - 3)
        index = int(dims.current_step[dims.order[-3]])
        volume = volume_of(image)

        def job() -> Any:
            from ..api import predict_slice

            yield
            return predict_slice(checkpoint, volume, axis, index)

        def show(result: Any) -> None:
            sl, plane = result
            layer = self._preview_layer(image)
            layer.data[sl] = plane
            layer.refresh()

        def done() -> None:
            self.preview_worker = None

        self.preview_worker = start_worker(job, lambda _: None, show, done)
        return self.preview_worker

    def _preview_layer(self, image: Any) -> Any:
        for layer in self._viewer.layers:
            if layer.metadata.get(OUTPUT_KEY) == "preview":
                return layer
        placed = transform_of(image)
        geo = placed.pop("metadata", {})
        return self._viewer.add_labels(
            np.zeros(image.data.shape, np.uint8),
            name=unique_name(self._viewer, f"{image.name} preview"),
            **placed,
            opacity=0.5,
            metadata={
                **geo,
                OUTPUT_KEY: "preview",
                ROLE_KEY: ROLE_PREVIEW,
                IMAGE_KEY: image.name,
            },
        )

    def _on_done(self, result: Any) -> None:
        if result.steps == 0:
            show_info("Training stopped before its first step; no model.")
            return
        self._session.set_model(result.best_path, self._run_image)
        show_info(
            f"Training {'stopped' if result.stopped else 'finished'} after "
            f"{result.steps} steps; {result.summary()}."
        )
        best = Path(result.best_path)
        self.status.value = f"model: {best.name}\nin {best.parent}"

    def _finished(self) -> None:
        self.plot.redraw(force=True)
