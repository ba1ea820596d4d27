"""Boxes to masks (recursive training) and CRF refinement."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.base import defaults
from ..core.base.errors import WeaksegError
from ..core.data.outputs import (
    MODEL,
    VOLUME,
    check_outputs,
)
from ..core.data.validate import require_3d, require_finite
from ..core.data.volumes import Volume, write_volume
from ._common import (
    Events,
    PathLike,
    VolumeLike,
    _blocking,
    _checked,
    _finite,
    _label,
    as_volume,
)


@_checked
def iter_boxes_to_masks(
    image: VolumeLike,
    boxes: PathLike | Sequence[Any],
    *,
    out: PathLike | None = None,
    model_out: PathLike | None = None,
    rounds: int = defaults.BOX_ROUNDS,
    steps_per_round: int = defaults.BOX_STEPS_PER_ROUND,
    initial: str = "grabcut",
    crf: bool = True,
    outside_boxes: bool = True,
    wrong_class: bool = True,
    off_core: bool = True,
    min_fill: float = defaults.MIN_FILL,
    core_fraction: float = defaults.CORE_FRACTION,
    base_filters: int = defaults.BASE_FILTERS,
    init: PathLike | None = None,
    device: str = "auto",
    seed: int = defaults.SEED,
    stop: threading.Event | None = None,
) -> Events:
    """Dense masks from 3D boxes by recursive training with suppression.

    ``boxes`` is a CSV/JSON file (``z0,y0,x0,z1,y1,x1,class``, voxel
    indices, end exclusive) or a list of :class:`~.core.boxes.Box`.  Each
    suppression rule can be switched off; ``initial`` is ``"grabcut"`` (the
    default: an intensity model of the box against its surroundings, which
    also finds objects that miss their box's centre) or ``"box"`` (Box^i:
    the box's centre is the object).  Yields each round's labels
    (:class:`~.core.events.Round`) and the training events; returns the
    final label volume.
    """

    from ..core.base import recipe
    from ..core.data.boxes import read_boxes
    from ..core.methods import box2mask
    from ..core.train.budget import Budget

    check_outputs(
        {"out": (out, VOLUME), "model_out": (model_out, MODEL)},
        [image, boxes, init],
    )
    vol = as_volume(image)
    require_3d(vol.data, _label(image))
    _finite(vol, _label(image))
    boxes_file = boxes if isinstance(boxes, str | os.PathLike) else None
    if boxes_file is not None:
        boxes = read_boxes(boxes_file)
    rules = box2mask.Rules(outside_boxes, wrong_class, off_core, min_fill, crf)
    made = recipe.make(
        "box2mask",
        {
            "image": image,
            "boxes": boxes_file or _listed(boxes),
            "init": init,
        },
        {
            "rounds": rounds,
            "steps_per_round": steps_per_round,
            "initial": initial,
            "crf": crf,
            "outside_boxes": outside_boxes,
            "wrong_class": wrong_class,
            "off_core": off_core,
            "min_fill": min_fill,
            "core_fraction": core_fraction,
            "base_filters": base_filters,
            "device": device,
        },
        seed,
    )
    budget = Budget(steps=steps_per_round, seed=seed, device=device)
    return (
        yield from _recursive(
            lambda model: box2mask.iter_boxes_to_masks(
                np.asarray(vol.data),
                list(boxes),
                model,
                rounds,
                None,
                vol.geometry.spacing,
                rules,
                initial,
                core_fraction,
                init=init,
                stop=stop,
                budget=budget,
                base_filters=base_filters,
                recipe=made,
            ),
            vol,
            out,
            model_out,
        )
    )


def _listed(rows: Any) -> np.ndarray:
    """Boxes or crops given as objects, as one array a recipe can hash
    (their text: no command can name them)."""
    return np.frombuffer(repr(list(rows)).encode(), np.uint8)


def _recursive(
    rounds: Callable[[str], Events],
    vol: Volume,
    out: PathLike | None,
    model_out: PathLike | None,
) -> Events:
    """Run a recursive trainer (``rounds(model path)``) with its U-Net in
    ``model_out`` or a scratch file; write the labels to ``out``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model = model_out or os.path.join(tmp, "rounds.safetensors")
        labels = yield from rounds(os.fspath(model))
    if out is not None:
        write_volume(out, Volume(labels, vol.geometry))
    return labels


boxes_to_masks = _blocking(iter_boxes_to_masks)


@_checked
def crf(
    image: VolumeLike,
    probabilities: VolumeLike,
    *,
    out: PathLike | None = None,
    device: str = "auto",
) -> np.ndarray:
    """Dense-CRF refinement of class probabilities ``(C, Z, Y, X)``.

    Returns (and optionally writes) the refined label volume.
    """
    from ..core.base.device import resolve_device
    from ..core.methods.crf import crf_refine

    check_outputs({"out": (out, VOLUME)}, [image, probabilities])
    vol = as_volume(image)
    prob = as_volume(probabilities, name="probabilities")
    require_3d(vol.data, _label(image))
    shape = tuple(np.shape(prob.data))
    if len(shape) != 4 or shape[1:] != vol.shape:
        raise WeaksegError(
            f"Probabilities of shape {shape} do not fit the image of shape "
            f"{vol.shape}; expected (classes, *image shape)."
        )
    require_finite(np.asarray(vol.data), "image")
    require_finite(np.asarray(prob.data), "probabilities")
    q = crf_refine(
        np.asarray(vol.data),
        np.asarray(prob.data),
        vol.geometry.spacing,
        device=resolve_device(device),
    )
    labels = np.argmax(q, axis=0).astype(np.uint8)
    if out is not None:
        write_volume(out, Volume(labels, vol.geometry))
    return labels
