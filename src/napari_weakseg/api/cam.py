"""Class activation maps, their pseudo-labels and segmentations."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.base import defaults
from ..core.base.errors import WeaksegError
from ..core.data.outputs import (
    MODEL,
    VOLUME,
    check_outputs,
)
from ..core.data.validate import require_3d, require_same_grid
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
from .boxes import _listed, _recursive
from .classifier import _crops_of
from .models import load_model


@_checked
def iter_segment_from_map(
    image: VolumeLike,
    cam_map: VolumeLike,
    *,
    out: PathLike | None = None,
    crops: PathLike | Sequence[Any] | None = None,
    class_index: int = 1,
    rounds: int = defaults.BOX_ROUNDS,
    steps_per_round: int = defaults.BOX_STEPS_PER_ROUND,
    crf: bool = True,
    expand: bool = True,
    model_out: PathLike | None = None,
    base_filters: int = defaults.BASE_FILTERS,
    device: str = "auto",
    seed: int = defaults.SEED,
    stop: threading.Event | None = None,
) -> Events:
    """Seed, expand, constrain from a class map already computed.

    Seeds are the map's confident voxels; a U-Net trains on them for
    ``rounds`` rounds (dense CRF between rounds); voxels of the crops
    labelled 0 in ``crops`` (a CSV like ``train-classifier``'s or a list
    of :class:`~.core.classifier.Crop`) stay background, and with
    ``expand`` the crops labelled ``class_index`` add SEC's expansion
    loss (the U-Net must cover the class in each).  When ``image``
    is a path only the crops of that file count; otherwise the crops must
    all name one image.  Yields training events and each round's labels
    (:class:`~.core.events.Round`); returns the label volume.
    """
    from ..core.base import recipe

    settings = _round_settings(
        class_index, rounds, steps_per_round, crf, expand, base_filters, device
    )
    made = recipe.make(
        "segment-from-map",
        {"image": image, "map": cam_map, "crops": _crops_input(crops)},
        settings,
        seed,
    )
    return (
        yield from _segment_from_map(
            image,
            cam_map,
            out=out,
            crops=crops,
            model_out=model_out,
            seed=seed,
            stop=stop,
            made=made,
            **settings,
        )
    )


def _round_settings(
    class_index: int,
    rounds: int,
    steps_per_round: int,
    crf: bool,
    expand: bool,
    base_filters: int,
    device: str,
) -> dict[str, Any]:
    """The settings a map's segmentation shares between its recipe and
    :func:`_segment_from_map` (in the recipe's order)."""
    return {
        "class_index": class_index,
        "rounds": rounds,
        "steps_per_round": steps_per_round,
        "crf": crf,
        "expand": expand,
        "base_filters": base_filters,
        "device": device,
    }


def _crops_input(crops: Any) -> Any:
    """Crops as a recipe's input: the file, or the objects' text."""
    if crops is None or isinstance(crops, str | os.PathLike):
        return crops
    return _listed(crops)


def _segment_from_map(
    image: VolumeLike,
    cam_map: VolumeLike,
    *,
    out: PathLike | None,
    crops: PathLike | Sequence[Any] | None,
    class_index: int,
    rounds: int,
    steps_per_round: int,
    crf: bool,
    expand: bool,
    model_out: PathLike | None,
    base_filters: int,
    device: str,
    seed: int,
    stop: threading.Event | None,
    made: dict,
) -> Events:
    """:func:`iter_segment_from_map`, its U-Net keeping the recipe
    ``made``."""
    from ..core.methods import cam2seg
    from ..core.train.budget import Budget

    check_outputs(
        {"out": (out, VOLUME), "model_out": (model_out, MODEL)},
        [image, cam_map, crops],
    )
    vol = as_volume(image)
    require_3d(vol.data, _label(image))
    _finite(vol, _label(image))
    cam_vol = as_volume(cam_map, name="map")
    require_same_grid(vol.shape, cam_vol.shape, names=("image", "map"))
    _finite(cam_vol, _label(cam_map, what="map"))
    m = np.asarray(cam_vol.data, np.float32)
    rows = _crops_of(crops, image)
    whole = (0, 0, 0, *vol.data.shape)
    absent = [c.box or whole for c in rows if c.cls == 0]
    present = [c.box or whole for c in rows if expand and c.cls == class_index]
    budget = Budget(steps=steps_per_round, seed=seed, device=device)
    return (
        yield from _recursive(
            lambda model: cam2seg.iter_cam_to_masks(
                np.asarray(vol.data),
                m,
                model,
                class_index,
                rounds,
                None,
                vol.geometry.spacing,
                absent,
                crf=crf,
                stop=stop,
                present=present,
                budget=budget,
                base_filters=base_filters,
                recipe=made,
            ),
            vol,
            out,
            model_out,
        )
    )


segment_from_map = _blocking(iter_segment_from_map)


@_checked
def iter_cam_to_segmentation(
    model: PathLike,
    image: VolumeLike,
    *,
    out: PathLike | None = None,
    crops: PathLike | Sequence[Any] | None = None,
    class_index: int = 1,
    method: str = "cam",
    rounds: int = defaults.BOX_ROUNDS,
    steps_per_round: int = defaults.BOX_STEPS_PER_ROUND,
    crf: bool = True,
    expand: bool = True,
    model_out: PathLike | None = None,
    base_filters: int = defaults.BASE_FILTERS,
    device: str = "auto",
    seed: int = defaults.SEED,
    stop: threading.Event | None = None,
) -> Events:
    """Image-level labels to a segmentation: the map of ``image`` by the
    classifier ``model`` (any model :func:`class_activation_map` reads),
    then :func:`iter_segment_from_map` with the other parameters.  Yields
    the map's progress, training events and each round's labels; returns
    the label volume.
    """
    from ..core.base import recipe

    check_outputs(
        {"out": (out, VOLUME), "model_out": (model_out, MODEL)},
        [model, image, crops],
    )
    settings = _round_settings(
        class_index, rounds, steps_per_round, crf, expand, base_filters, device
    )
    made = recipe.make(
        "cam2seg",
        {"model": model, "image": image, "crops": _crops_input(crops)},
        # the method second, as before: a key repeated keeps its place
        {"class_index": class_index, "method": method, **settings},
        seed,
    )
    vol = as_volume(image)
    rows = _crops_of(crops, image)  # a bad crops file fails before the map
    m = yield from iter_class_activation_map(
        model,
        vol,
        method=method,
        class_index=class_index,
        device=device,
        stop=stop,
    )
    return (
        yield from _segment_from_map(
            vol,
            Volume(m, vol.geometry),
            out=out,
            crops=rows,
            model_out=model_out,
            seed=seed,
            stop=stop,
            made=made,
            **settings,
        )
    )


cam_to_segmentation = _blocking(iter_cam_to_segmentation)


@_checked
def iter_class_activation_map(
    model: PathLike,
    image: VolumeLike,
    *,
    out: PathLike | None = None,
    method: str = "gradcam",
    layer: str | None = None,
    class_index: int = 1,
    device: str = "auto",
    stop: threading.Event | None = None,
) -> Events:
    """Raw CAM / Grad-CAM / Grad-CAM++ map of a whole volume.

    Works with segmentation models (class logits summed over the volume,
    by sliding windows of the model's patch size) and classifiers (one
    pass up to 192^3 voxels).  Yields :class:`~.core.events.Progress` per
    window; returns the map, which has the image's geometry.
    """
    from ..core.base.device import resolve_device
    from ..core.data.normalise import normalise
    from ..core.methods.cam import iter_map_volume

    check_outputs({"out": (out, VOLUME)}, [model, image])
    dev = resolve_device(device)
    net, config = load_model(model, str(dev))
    if not 0 <= class_index < config.num_classes:
        raise WeaksegError(
            f"Class {class_index} is out of range: the model knows classes "
            f"0..{config.num_classes - 1}."
        )
    vol = as_volume(image)
    require_3d(vol.data, _label(image))
    _finite(vol, _label(image))
    img = normalise(np.asarray(vol.data), config.normalisation)
    shape = img.shape
    # An image smaller than the model's patch is padded (edge values) so the
    # deepest block keeps more than one voxel; the map is cut back.
    pad = [(0, max(0, int(p) - s)) for p, s in zip(config.patch_size, shape)]
    img = np.pad(img, pad, mode="edge")
    window = (
        config.patch_size
        if (config.kind == "unet" or img.size > 192**3)
        else None
    )
    m = yield from iter_map_volume(
        net, img, class_index, method, layer, window, dev, stop
    )
    m = m[tuple(slice(0, n) for n in shape)]
    if out is not None:
        write_volume(out, Volume(m, vol.geometry))
    return m


class_activation_map = _blocking(iter_class_activation_map)


def cam_layers(model: PathLike) -> tuple[list[str], str, Any]:
    """``(layer names, default layer, ModelConfig)``: the blocks of a
    model a CAM can read, the one it reads by default, and the model's
    settings (its classes)."""
    from ..core.methods.cam import default_layer, list_layers

    net, config = load_model(model, "cpu")
    names = list_layers(net)
    if not names:
        raise WeaksegError(
            f"{os.fspath(model)} has no spatial layer a CAM could read."
        )
    return names, default_layer(net), config


@_checked
def pseudo_labels(
    cam_map: VolumeLike,
    class_index: int = 1,
    *,
    threshold: str | float = "otsu",
    band: float = defaults.CAM_BAND,
    ignore_label: int = defaults.IGNORE,
) -> np.ndarray:
    """Seeds from a CAM as sparse labels: confident object voxels are
    ``class_index``, confident background 0, the rest ``ignore_label``
    (train on them to expand the seeds)."""
    from ..core.methods.cam import pseudo_labels as _seeds

    m = np.asarray(as_volume(cam_map).data)
    require_3d(m, "map")
    return _seeds(m, class_index, threshold, band, ignore_label)
