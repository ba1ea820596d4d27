"""Sparse slice annotation dock: axis, done slices, suggestions, autosave."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    Label,
    PushButton,
)
from napari.utils.key_bindings import KeyCode, KeyMod
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer

from ..core.base.defaults import DONE_KEY, IMAGE_KEY, ROLE_ANNOTATION, ROLE_KEY
from ..core.base.errors import WeaksegError
from ..core.data.sparse import (
    AXES,
    BACKGROUND_BRUSH,
    AnnotationStore,
    fill_done,
    labelled_fraction,
    merge_done,
    normalise_done,
    open_store,
    suggest_next_slice,
    to_sparse_labels,
    unmarked_plane,
)
from .dock import Dock
from .layer_data import (
    done_of,
    edit_slice,
    is_large,
    on_disk,
    record_done,
    restore_into,
    volume_of,
)
from .layers import mismatch, transform_of, unique_name
from .session import home
from .workers import report_error


def store_for(image: Any) -> AnnotationStore:
    """Autosave location for ``image``: keyed by its file, else its name."""
    source = image.metadata.get("source_path") or image.name
    key = hashlib.sha1(
        f"{source}|{tuple(image.data.shape)}".encode()
    ).hexdigest()[:16]
    return AnnotationStore(home() / "autosave", key)


#: napari's undo/redo keys of Labels layers and the methods they call
UNDO_KEYS = {
    KeyMod.CtrlCmd | KeyCode.KeyZ: "undo",
    KeyMod.CtrlCmd | KeyMod.Shift | KeyCode.KeyZ: "redo",
}


class AnnotationWidget(Dock):
    """Annotate a few slices in any orientation; the rest stays unlabelled."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.image = self.layer_picker()
        self.annotations = self.layer_picker(
            "Labels", "annotations", ROLE_ANNOTATION
        )
        self.axis = ComboBox(choices=list(AXES), value="z", label="slice axis")
        self.new_layer = PushButton(text="New annotation layer")
        self.background = PushButton(text="Background brush")
        self.mark_done = PushButton(text="Mark slice done")
        self.unmark = PushButton(text="Unmark slice")
        self.suggest = PushButton(text="Go to suggested slice")
        self.keys = PushButton(text="Shortcuts")
        self.info = Label(value="")
        self.extend(
            [
                self.image,
                self.annotations,
                self.axis,
                self.new_layer,
                self.background,
                self.mark_done,
                self.unmark,
                self.suggest,
                self.keys,
                self.info,
            ]
        )
        self.new_layer.changed.connect(self.create_annotation_layer)
        self.background.changed.connect(self.use_background_brush)
        self.mark_done.changed.connect(self.mark_current_slice_done)
        self.unmark.changed.connect(self.unmark_current_slice)
        self.suggest.changed.connect(self.go_to_suggestion)
        self.keys.changed.connect(self.show_shortcuts)
        self.axis.changed.connect(self._set_axis)
        self.annotations.changed.connect(self._watch)
        self._autosave_timer = QTimer()
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(1000)
        self._autosave_timer.timeout.connect(self.autosave)
        self._watched: Any = None
        self._pending: tuple[Any, Any] = (None, None)
        self._writer: threading.Thread | None = None
        self._watch(self.annotations.value)

    def show_shortcuts(self) -> str:
        """The plugin's keyboard shortcuts, in a notification."""

        from .shortcuts import help_text

        text = help_text()
        show_info("napari-weakseg shortcuts:\n" + text)
        return text

    # --- layers ------------------------------------------------------------

    def create_annotation_layer(self) -> Any:
        """A new Labels layer on the image's grid, restored from autosave."""
        image = self.image.value
        if image is None:
            report_error(WeaksegError("Open or pick an image first."))
            return None
        store = store_for(image)
        if is_large(volume_of(image, lazy=True)):
            return self._layer_on_disk(image, store.key)
        saved = store.load()
        if store.warning:
            show_warning(store.warning)
        layer = self._add_layer(image, np.zeros(image.data.shape, np.uint8))
        if saved is not None and saved[0].shape == layer.data.shape:
            restored = restore_into(layer, fill_done(*saved))
            if restored:
                show_info(
                    f"Restored {restored} annotated voxels of "
                    f"'{image.name}' from the autosave (Ctrl+Z takes them "
                    "back)."
                )
        self.reset_choices()
        self.annotations.value = layer
        return layer

    def _add_layer(self, image: Any, data: Any, done: Any = None) -> Any:
        placed = transform_of(image)
        geo = placed.pop("metadata", {})
        return self._viewer.add_labels(
            data,
            name=unique_name(self._viewer, f"{image.name} annotations"),
            **placed,
            metadata={
                **geo,
                DONE_KEY: merge_done(done),
                IMAGE_KEY: image.name,
                ROLE_KEY: ROLE_ANNOTATION,
            },
        )

    def _layer_on_disk(self, image: Any, key: str) -> Any:
        """An image larger than memory: the layer paints into a store on
        disk (every stroke saved as it lands; reopened next time)."""
        path = home() / "annotations" / f"{key}.zarr"
        existed = path.exists()
        try:
            data = open_store(path, image.data.shape)
        except WeaksegError as exc:
            report_error(exc)
            return None
        layer = self._add_layer(image, data, data.attrs.get(DONE_KEY))
        show_info(
            f"{'Reopened' if existed else 'Started'} the annotations of "
            f"'{image.name}' in {path}: strokes are saved as you paint."
        )
        self.reset_choices()
        self.annotations.value = layer
        return layer

    def _watch(self, layer: Any) -> None:
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._schedule_autosave)
            for key in UNDO_KEYS:
                self._watched.bind_key(key, None)
        self._watched = layer
        if layer is not None:
            layer.events.paint.connect(self._schedule_autosave)
            # napari emits no event on undo/redo: the layer's own keys do
            # the same and schedule an autosave of the undone state
            for key, method in UNDO_KEYS.items():
                layer.bind_key(key, self._undoer(method), overwrite=True)
        self.refresh_info()

    def _undoer(self, method: str) -> Any:
        def run(layer: Any) -> None:
            getattr(layer, method)()
            self._schedule_autosave()

        return run

    def _schedule_autosave(self, *_: Any) -> None:
        # What to save is kept now: the dock may be closed before the timer
        # fires, and the last strokes must still reach the disk.
        self._pending = (self._watched, self.image.value)
        self._autosave_timer.start()  # a second after the last stroke

    def autosave(self, wait: bool = False) -> None:
        """Write the annotation layer and done slices (atomically).

        The compressed write runs in a thread so large volumes never freeze
        the viewer; ``wait`` blocks until it is on disk.
        """
        try:
            self._autosave_timer.stop()  # this save supersedes a pending one
            self.refresh_info()
            layer, image = self.annotations.value, self.image.value
        except RuntimeError:  # the dock's widgets are gone (viewer closed)
            layer, image = self._pending
        if layer is None or image is None or on_disk(layer):
            return  # a layer on disk is saved stroke by stroke
        if mismatch(layer, image):  # never into another image's autosave
            image = self._image_of(layer)
            if image is None:
                return
        if self._writer is not None:
            self._writer.join()
        self._writer = threading.Thread(
            target=store_for(image).save,
            args=(np.array(layer.data, copy=True), done_of(layer)),
            daemon=True,
        )
        self._writer.start()
        if wait:
            self._writer.join()

    def _image_of(self, layer: Any) -> Any:
        """The image layer ``layer`` names as its own, on its grid."""
        name = layer.metadata.get(IMAGE_KEY)
        for candidate in self._viewer.layers:
            if candidate.name == name and not mismatch(layer, candidate):
                return candidate
        return None

    # --- slices ------------------------------------------------------------

    @property
    def axis_index(self) -> int:
        return AXES.index(self.axis.value)

    def _set_axis(self, *_: Any) -> None:
        ndim = self._viewer.dims.ndim
        a = ndim - 3 + self.axis_index
        rest = [d for d in range(ndim) if d != a]
        self._viewer.dims.order = (*rest[:-2], a, *rest[-2:])

    def current_slice(self) -> int:
        ndim = self._viewer.dims.ndim
        return int(self._viewer.dims.current_step[ndim - 3 + self.axis_index])

    def _shown_slice(self) -> tuple[Any, int, int, np.ndarray] | None:
        layer = self.annotations.value
        if layer is None:
            report_error(
                WeaksegError("Create or pick an annotation layer first.")
            )
            return None
        i, a = self.current_slice(), self.axis_index
        where: list[Any] = [slice(None)] * 3
        where[a] = i
        return layer, a, i, np.asarray(layer.data[tuple(where)])

    def mark_current_slice_done(self) -> None:
        """Paint the rest of the shown slice with the background brush: the
        slice is then done (fully labelled).  One edit: Ctrl+Z undoes it."""
        shown = self._shown_slice()
        if shown is None:
            return
        layer, a, i, plane = shown
        if i in done_of(layer)[a]:
            show_info(f"Slice {AXES[a]}={i} is already done.")
            return
        edit_slice(layer, a, i, np.where(plane == 0, BACKGROUND_BRUSH, plane))
        if on_disk(layer):
            record_done(layer, a, i, True)
        self.autosave()

    def unmark_current_slice(self) -> None:
        """Take the background brush off the shown slice (its classes
        stay): the slice is no longer done.  Ctrl+Z undoes it."""
        shown = self._shown_slice()
        if shown is None:
            return
        layer, a, i, _ = shown
        if on_disk(layer):
            record_done(layer, a, i, False)
        legacy = normalise_done(layer.metadata.get(DONE_KEY))
        if i in legacy[a]:  # a layer of an older session lists it
            legacy[a].remove(i)
            layer.metadata[DONE_KEY] = legacy
        plane = unmarked_plane(layer.data, a, i, done_of(layer))
        edit_slice(layer, a, i, plane)
        self.autosave()

    def use_background_brush(self) -> None:
        layer = self.annotations.value
        if layer is not None:
            layer.selected_label = BACKGROUND_BRUSH
            layer.mode = "paint"

    def go_to_suggestion(self) -> None:
        layer = self.annotations.value
        if layer is None:
            return
        try:
            i = suggest_next_slice(
                layer.data.shape,
                done_of(layer),
                self.axis_index,
                self._session.uncertainty,
            )
        except Exception as exc:  # every slice done -> one sentence
            report_error(exc)
            return
        self._set_axis()
        step = list(self._viewer.dims.current_step)
        step[self._viewer.dims.ndim - 3 + self.axis_index] = i
        self._viewer.dims.current_step = tuple(step)

    def refresh_info(self) -> None:
        layer = self.annotations.value
        if layer is None:
            self.info.value = "No annotation layer."
            return
        done = done_of(layer)
        parts = [f"{AXES[a]}: {done[a] or '-'}" for a in range(3)]
        if on_disk(layer):  # never scanned whole on the GUI thread
            self.info.value = "done " + "; ".join(parts) + "\n(on disk)"
            return
        frac = labelled_fraction(
            to_sparse_labels(np.asarray(layer.data), done)
        )
        self.info.value = (
            "done " + "; ".join(parts) + f"\nlabelled {100 * frac:.2f} %"
        )
