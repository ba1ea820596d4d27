"""The image-level classifier that class activation maps read."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.base import defaults
from ..core.base.errors import WeaksegError
from ..core.data.outputs import (
    MODEL,
    check_outputs,
)
from ..core.data.validate import require_3d
from ..core.data.volumes import Volume
from ._common import (
    Events,
    PathLike,
    VolumeLike,
    _blocking,
    _checked,
    as_volume,
)


@_checked
def iter_train_classifier(
    crops: PathLike | Sequence[Any],
    out: PathLike,
    *,
    steps: int = defaults.STEPS,
    minutes: float | None = None,
    base_filters: int = defaults.BASE_FILTERS,
    batch_size: int = 4,
    init: PathLike | None = None,
    device: str = "auto",
    seed: int = defaults.SEED,
    pooling: str = "topk",
    stop: threading.Event | None = None,
) -> Events:
    """Train a 3D classifier from image-level labels of crops.

    ``crops`` is a CSV (``image,z0,y0,x0,z1,y1,x1,class``; empty box =
    whole image) or a list of :class:`~.core.classifier.Crop`.  Each image
    is read and normalised once; ``init`` may be a U-Net, a classifier or
    a pretrained encoder (``pooling="gap"``).  ``pooling="topk"`` (the
    default) trains :class:`~.core.milnet.LocalClassifier`, whose class
    map localises.  Returns :class:`~.core.events.Finished` with the best
    validation accuracy.
    """
    from ..core.base import recipe
    from ..core.data.normalise import normalise
    from ..core.methods import classifier
    from ..core.train.budget import Budget

    crops_file = crops if isinstance(crops, str | os.PathLike) else None
    if crops_file is not None:
        crops = classifier.read_crops(crops_file)
    check_outputs(
        {"out": (out, MODEL)},
        [crops_file, init, *{c.image for c in crops}],
    )
    volumes: dict[str, Volume] = {}
    arrays, classes = [], []
    margin = classifier.crop_margin(pooling)
    for c in crops:
        if c.image not in volumes:
            vol = as_volume(c.image)
            require_3d(vol.data, c.image)
            volumes[c.image] = Volume(
                normalise(np.asarray(vol.data)), vol.geometry
            )
        arrays.append(classifier.cut(volumes[c.image].data, c.box, margin))
        classes.append(c.cls)
    if not volumes:
        raise WeaksegError("Give at least one crop.")
    spacing = next(iter(volumes.values())).geometry.spacing
    made = recipe.make(
        "train-classifier",
        # crops given as objects, not a file: no command names them
        {"crops": crops_file or list(crops), "init": init},
        {
            "steps": steps,
            "minutes": minutes,
            "base_filters": base_filters,
            "batch_size": batch_size,
            "device": device,
            "pooling": pooling,
        },
        seed,
    )
    config = classifier.ClassifierConfig(
        budget=Budget(
            steps=steps,
            minutes=minutes,
            val_every=max(1, min(50, steps)),
            seed=seed,
            device=device,
        ),
        base_filters=base_filters,
        batch_size=batch_size,
        recipe=made,
    )
    return (
        yield from classifier.iter_train_classifier(
            arrays, classes, out, config, spacing, init, stop, pooling, margin
        )
    )


train_classifier = _blocking(iter_train_classifier)


def _crops_of(
    crops: PathLike | Sequence[Any] | None, image: VolumeLike
) -> list[Any]:
    """The crops (CSV or :class:`~.core.classifier.Crop` list) of
    ``image``: those naming its file, or all when they name one image."""
    from ..core.methods.classifier import read_crops

    if crops is None:
        return []
    rows = read_crops(crops) if isinstance(crops, str | os.PathLike) else crops
    if isinstance(image, str | os.PathLike):
        own = [
            c
            for c in rows
            if os.path.abspath(c.image) == os.path.abspath(image)
        ]
        if rows and not own:  # a path spelt otherwise: say so, not ignore
            raise WeaksegError(
                f"None of the {len(rows)} crops names {Path(image).name} "
                f"(they name {Path(rows[0].image).name}"
                f"{' and others' if len({c.image for c in rows}) > 1 else ''}"
                "); give the crops of this image."
            )
        return own
    if len({c.image for c in rows}) > 1:
        raise WeaksegError(
            "The crops name several images; give the image as a file path "
            "so its own crops can be picked."
        )
    return list(rows)
