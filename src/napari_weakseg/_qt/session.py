"""What the docks of one viewer share (:class:`Session`), and where
their files go (:func:`home`, :func:`model_file`)."""

from __future__ import annotations

import os
import re
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from .layers import follow_ndisplay, follow_renames


class Session:
    """What the docks of one viewer share: the model and the last result.

    Widgets hold no model state; they read and observe this object.
    """

    model_changed = Signal(object)
    encoder_changed = Signal(object)

    def __init__(self) -> None:
        self.model_path: Path | None = None
        self.model_image: str | None = None
        self.encoder_path: Path | None = None
        self.uncertainty: np.ndarray | None = None

    def set_encoder(self, path: str | Path) -> None:
        self.encoder_path = Path(path)
        self.encoder_changed.emit(self.encoder_path)

    def set_model(
        self, path: str | Path | None, image_name: str | None = None
    ) -> None:
        """A new model; ``image_name``: the layer it was trained on (the
        Apply dock then defaults to that image)."""
        self.model_path = Path(path) if path else None
        self.model_image = image_name if path else None
        self.model_changed.emit(self.model_path)


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> Session:
    """The session of ``viewer`` (one per viewer, gone with it)."""
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = Session()
        follow_ndisplay(viewer)
        follow_renames(viewer)
    return _SESSIONS[viewer]


def home() -> Path:
    """Where autosaves and default model files live."""
    return Path(
        os.environ.get("WEAKSEG_HOME", Path.home() / ".napari-weakseg")
    )


#: the model file field until the user picks a file: each run then
#: writes a new file named after the image and the time (see model_file)
AUTO_NAME = "<image> <date time>.safetensors"


def model_file(field: Path, image: str, now: datetime | None = None) -> Path:
    """Where a run writes its model: the file the user chose, or for the
    untouched field a new file in its folder named after the image and
    the time (``MNI152 T1 2025-05-04 153000.safetensors``), never an
    earlier run's."""
    if field.name != AUTO_NAME:
        return field
    stem = re.sub(r"[^\w .-]+", "_", image).strip(" .") or "model"
    stamp = (now or datetime.now()).strftime("%Y-%m-%d %H%M%S")
    path = field.parent / f"{stem} {stamp}.safetensors"
    k = 2
    while path.exists():  # two runs within one second
        path = field.parent / f"{stem} {stamp} [{k}].safetensors"
        k += 1
    return path
