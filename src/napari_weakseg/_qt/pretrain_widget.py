"""Pretrain dock: self-supervised encoder from unlabelled image layers or
a folder of unlabelled volumes (streamed from disk)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import (
    CheckBox,
    FileEdit,
    Select,
)

from ..core.base import defaults
from ..core.base.errors import WeaksegError
from .dock import TaskDock
from .fields import bounded
from .layer_data import volume_of
from .plot import LossPlot
from .session import home
from .workers import report_error


class PretrainWidget(TaskDock):
    """Tasks, budget, live loss / rotation accuracy / contrastive top-1."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.images = Select(choices=self._image_names, label="images")
        self.folder = FileEdit(
            mode="d",
            label="or folder",
            value="",
            tooltip="a folder of unlabelled volumes, streamed from disk "
            "(used instead of the layers when set)",
        )
        self.rotation, self.contrastive, self.inpainting, self.masked = (
            CheckBox(text=t, value=t in defaults.PRETRAIN_TASKS)
            for t in defaults.PRETEXT_TASKS
        )
        self.steps = bounded("steps", defaults.STEPS, "steps")
        self.patch = bounded(
            "patch",
            defaults.PRETRAIN_PATCH,
            "patch",
            step=defaults.PATCH_MULTIPLE,
        )
        self.base_filters = bounded(
            "base_filters", defaults.BASE_FILTERS, "base filters"
        )
        self.out = FileEdit(
            mode="w",
            label="encoder file",
            filter="*.safetensors",
            value=str(home() / "models" / "encoder.safetensors"),
        )
        self.extend(
            [
                self.images,
                self.folder,
                self.rotation,
                self.contrastive,
                self.inpainting,
                self.masked,
                self.steps,
                self.patch,
                self.base_filters,
                self.out,
                *self.task_controls(),
                self.status,
            ]
        )
        self.plot = LossPlot("rotation acc. / top-1")
        self.native.layout().addWidget(self.plot)

    def _image_names(self, *_: Any) -> list[str]:
        return [
            layer.name
            for layer in self._viewer.layers
            if isinstance(layer, napari.layers.Image)
        ]

    def start_pretraining(self) -> Any:
        """Pretrain in a worker (torch work happens there)."""
        names = list(self.images.value)
        tasks = self.chosen_tasks()
        folder = self.pool_folder()
        if (not names and folder is None) or not tasks:
            report_error(
                WeaksegError(
                    "Pick image layers or a folder, and at least one task."
                )
            )
            return None
        volumes = (
            [str(folder)]
            if folder is not None
            else [volume_of(self._viewer.layers[n]) for n in names]
        )
        settings = {
            "steps": int(self.steps.value),
            "tasks": tasks,
            "patch": int(self.patch.value),
            "base_filters": int(self.base_filters.value),
            "stop": self._stop,
        }
        out = Path(str(self.out.value))
        self.plot.clear()
        self.skipped = 0

        def job() -> Any:
            from ..api import iter_pretrain

            return (yield from iter_pretrain(volumes, out, **settings))

        return self.launch(job, self._on_event, self._on_done, self._done)

    def chosen_tasks(self) -> tuple[str, ...]:
        """The pretext tasks ticked, in the order of
        :data:`~..core.base.defaults.PRETEXT_TASKS`."""
        return tuple(
            t for t in defaults.PRETEXT_TASKS if getattr(self, t).value
        )

    def pool_folder(self) -> Path | None:
        """The folder field's folder, or None when it is empty."""
        text = str(self.folder.value or "").strip()
        if text in ("", "."):
            return None
        return Path(text)

    def _on_event(self, event: Any) -> None:
        from ..core.base.events import Notice, Pretext, Skipped, Step

        if isinstance(event, Skipped):
            self.skipped += 1
            self.status.value = f"{self.skipped} skipped: {event.reason}"
        elif isinstance(event, Notice):
            self.status.value = event.message
        elif isinstance(event, Step):
            self.progress.max, self.progress.value = event.total, event.step
            self.plot.add_loss(event.step, event.loss)
        elif isinstance(event, Pretext):
            if event.rotation_accuracy == event.rotation_accuracy:  # not NaN
                self.plot.add_dice(event.step, event.rotation_accuracy)
            if event.contrastive_top1 == event.contrastive_top1:
                self.plot.add_extra(event.step, event.contrastive_top1)
            self.status.value = f"step {event.step}  {event.summary()}"
            self.plot.redraw()

    def _on_done(self, result: Any) -> None:
        self._session.set_encoder(result.best_path)
        self.status.value = f"encoder: {result.best_path}"

    def _done(self) -> None:
        self.plot.redraw(force=True)
