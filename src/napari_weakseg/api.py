"""Headless Python API: one function per widget, same parameter names.

Everything here runs without Qt; the napari docks and the ``weakseg`` CLI
call these functions (or the core generators behind them).

Examples
--------
>>> from napari_weakseg import api
>>> result = api.train("t1.nii.gz", "sparse.nii.gz", "model.safetensors")
>>> labels, probabilities = api.predict("model.safetensors", "t1.nii.gz")
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .core import defaults
from .core.errors import WeaksegError
from .core.events import Finished
from .core.io import Volume, read_volume, write_volume
from .core.validate import require_3d, require_finite, require_same_grid

PathLike = str | os.PathLike
VolumeLike = PathLike | np.ndarray | Volume

__all__ = [
    "Volume",
    "WeaksegError",
    "boxes_to_masks",
    "class_activation_map",
    "crf",
    "load_model",
    "predict",
    "pretrain",
    "read_volume",
    "train",
    "train_classifier",
    "write_volume",
]


def as_volume(
    v: VolumeLike, lazy: bool = False, like: Volume | None = None
) -> Volume:
    """A :class:`Volume` from a path, an array or a Volume.

    A bare array has no geometry of its own: it takes that of ``like``
    (labels drawn on an image share its grid).
    """
    if isinstance(v, Volume):
        return v
    if isinstance(v, str | os.PathLike):
        return read_volume(v, lazy=lazy)
    return Volume(v) if like is None else Volume(v, like.geometry)


def _as_list(x: VolumeLike | Sequence[VolumeLike]) -> list[VolumeLike]:
    if isinstance(x, str | os.PathLike | np.ndarray | Volume):
        return [x]
    return list(x)


def train(
    images: VolumeLike | Sequence[VolumeLike],
    labels: VolumeLike | Sequence[VolumeLike],
    out: PathLike,
    *,
    steps: int = defaults.STEPS,
    minutes: float | None = None,
    patch_size: Sequence[int] | None = None,
    batch_size: int = defaults.BATCH_SIZE,
    base_filters: int = defaults.BASE_FILTERS,
    learning_rate: float = defaults.LEARNING_RATE,
    augment: str = defaults.AUGMENT,
    ignore_label: int = defaults.IGNORE,
    init: PathLike | None = None,
    device: str = "auto",
    seed: int = 0,
    class_names: Sequence[str] = (),
    callback: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
) -> Finished:
    """Train a 3D U-Net on sparse labels and write the model to ``out``.

    ``labels`` hold 0 = background, 1..K = classes and ``ignore_label``
    for unlabelled voxels.  ``augment``: ``"flips"`` mirrors patches on
    every axis; ``"none"`` is better when classes are told apart by where
    they lie (head vs body, left vs right); ``"full"`` adds 90° turns,
    intensity and noise.  ``callback`` receives every event (steps,
    validation, checkpoints); set ``stop`` to end early with a checkpoint.
    """
    from .core.inference import run
    from .core.training import TrainConfig, iter_train

    ims = [as_volume(v) for v in _as_list(images)]
    lbs = [as_volume(v, like=im) for v, im in zip(_as_list(labels), ims)] + [
        as_volume(v) for v in _as_list(labels)[len(ims) :]
    ]
    if len(ims) != len(lbs):
        raise WeaksegError(
            f"Give one label volume per image ({len(ims)} images, "
            f"{len(lbs)} label volumes)."
        )
    for k, (im, lb) in enumerate(zip(ims, lbs), start=1):
        require_3d(im.data, f"image {k}")
        require_same_grid(
            im.shape,
            lb.shape,
            im.geometry,
            lb.geometry,
            (f"image {k}", f"labels {k}"),
        )
    config = TrainConfig(
        steps=steps,
        minutes=minutes,
        batch_size=batch_size,
        patch_size=list(patch_size) if patch_size else None,
        base_filters=base_filters,
        learning_rate=learning_rate,
        augment=augment,
        ignore_label=ignore_label,
        device=device,
        seed=seed,
        class_names=list(class_names),
    )
    gen = iter_train(
        [np.asarray(v.data) for v in ims],
        [np.asarray(v.data) for v in lbs],
        out,
        config,
        spacing=ims[0].geometry.spacing,
        init=init,
        stop=stop,
    )
    return run(gen, callback)


def load_model(path: PathLike, device: str = "auto") -> tuple[Any, Any]:
    """``(torch module, ModelConfig)`` from a model file; never runs code."""
    from .core.device import resolve_device
    from .core.models import load_model as _load

    return _load(path, resolve_device(device))


def predict(
    model: PathLike | tuple[Any, Any],
    image: VolumeLike,
    *,
    out: PathLike | None = None,
    probabilities: PathLike | None = None,
    device: str = "auto",
    tta: bool = False,
    overlap: float = 0.5,
    callback: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Segment a whole volume; optionally write labels/probabilities.

    Returns ``(labels, probabilities)``: uint8 classes and float32
    ``(C, Z, Y, X)`` softmax.  Written files keep the input's geometry.
    """
    from .core.device import resolve_device
    from .core.inference import iter_predict, run

    dev = resolve_device(device)
    net, config = (
        load_model(model, str(dev))
        if isinstance(model, str | os.PathLike)
        else model
    )
    if config.kind != "unet":
        raise WeaksegError(
            f"This is a {config.kind} model; predict needs a segmentation "
            "model (from train or box2mask)."
        )
    vol = as_volume(image, lazy=True)
    require_3d(vol.data, "image")
    gen = iter_predict(
        net,
        vol.data,
        config.patch_size,
        config.normalisation,
        dev,
        config.num_classes,
        overlap=overlap,
        tta=tta,
        stop=stop,
        on_progress=callback or (lambda _: None),  # windows on this thread
    )
    labels, probs = run(gen, callback)
    if out is not None:
        write_volume(out, Volume(labels, vol.geometry))
    if probabilities is not None:
        write_volume(probabilities, Volume(probs, vol.geometry))
    return labels, probs


def boxes_to_masks(
    image: VolumeLike,
    boxes: PathLike | Sequence[Any],
    *,
    out: PathLike | None = None,
    model_out: PathLike | None = None,
    rounds: int = 3,
    steps_per_round: int = 150,
    initial: str = "grabcut",
    crf: bool = True,
    outside_boxes: bool = True,
    wrong_class: bool = True,
    off_core: bool = True,
    min_fill: float = 0.5,
    core_fraction: float = 0.2,
    base_filters: int = 16,
    init: PathLike | None = None,
    device: str = "auto",
    seed: int = 0,
    callback: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
) -> np.ndarray:
    """Dense masks from 3D boxes by recursive training with suppression.

    ``boxes`` is a CSV/JSON file (``z0,y0,x0,z1,y1,x1,class``, voxel
    indices, end exclusive) or a list of :class:`~.core.boxes.Box`.  Each
    suppression rule can be switched off; ``initial`` is ``"grabcut"`` (the
    default: an intensity model of the box against its surroundings, which
    also finds objects that miss their box's centre) or ``"box"`` (Box^i:
    the box's centre is the object).
    """
    import tempfile

    from .core.box2mask import Rules, iter_boxes_to_masks
    from .core.boxes import read_boxes
    from .core.inference import run
    from .core.training import TrainConfig

    vol = as_volume(image)
    require_3d(vol.data, "image")
    if isinstance(boxes, str | os.PathLike):
        boxes = read_boxes(boxes)
    rules = Rules(outside_boxes, wrong_class, off_core, min_fill, crf)
    config = TrainConfig(
        steps=steps_per_round,
        base_filters=base_filters,
        device=device,
        seed=seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = model_out or os.path.join(tmp, "box2mask.safetensors")
        gen = iter_boxes_to_masks(
            np.asarray(vol.data),
            list(boxes),
            model,
            rounds,
            config,
            vol.geometry.spacing,
            rules,
            initial,
            core_fraction,
            init=init,
            stop=stop,
        )
        labels = run(gen, callback)
    if out is not None:
        write_volume(out, Volume(labels, vol.geometry))
    return labels


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
    from .core.crf import crf_refine
    from .core.device import resolve_device

    vol, prob = as_volume(image), as_volume(probabilities)
    require_3d(vol.data, "image")
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


def train_classifier(
    crops: PathLike | Sequence[Any],
    out: PathLike,
    *,
    steps: int = 300,
    base_filters: int = 16,
    batch_size: int = 4,
    init: PathLike | None = None,
    device: str = "auto",
    seed: int = 0,
    callback: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
) -> Finished:
    """Train a 3D classifier from image-level labels of crops.

    ``crops`` is a CSV (``image,z0,y0,x0,z1,y1,x1,class``; empty box =
    whole image) or a list of :class:`~.core.classifier.Crop`.  Each image
    is read and normalised once; ``init`` may be a U-Net, a classifier or
    a pretrained encoder.
    """
    from .core.classifier import cut, iter_train_classifier, read_crops
    from .core.inference import run
    from .core.normalise import normalise
    from .core.training import TrainConfig

    if isinstance(crops, str | os.PathLike):
        crops = read_crops(crops)
    volumes: dict[str, Volume] = {}
    arrays, classes = [], []
    for c in crops:
        if c.image not in volumes:
            vol = as_volume(c.image)
            require_3d(vol.data, c.image)
            volumes[c.image] = Volume(
                normalise(np.asarray(vol.data)), vol.geometry
            )
        arrays.append(cut(volumes[c.image].data, c.box))
        classes.append(c.cls)
    spacing = next(iter(volumes.values())).geometry.spacing
    config = TrainConfig(
        steps=steps,
        base_filters=base_filters,
        batch_size=batch_size,
        device=device,
        seed=seed,
        val_every=max(1, min(50, steps)),
    )
    gen = iter_train_classifier(
        arrays, classes, out, config, spacing, init, stop
    )
    return run(gen, callback)


def class_activation_map(
    model: PathLike,
    image: VolumeLike,
    *,
    out: PathLike | None = None,
    method: str = "gradcam",
    layer: str | None = None,
    class_index: int = 1,
    device: str = "auto",
    callback: Callable[[Any], None] | None = None,
) -> np.ndarray:
    """Raw CAM / Grad-CAM / Grad-CAM++ map of a whole volume.

    Works with segmentation models (class logits summed over the volume,
    by sliding windows of the model's patch size) and classifiers (one
    pass up to 192^3 voxels).  The map has the image's geometry.
    """
    from .core.cam import map_volume
    from .core.device import resolve_device
    from .core.events import Progress
    from .core.normalise import normalise

    dev = resolve_device(device)
    net, config = load_model(model, str(dev))
    vol = as_volume(image)
    require_3d(vol.data, "image")
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

    def on_window(i: int, n: int) -> None:
        if callback is not None:
            callback(Progress(i, n, "map"))

    m = map_volume(
        net, img, class_index, method, layer, window, dev, on_window
    )[tuple(slice(0, n) for n in shape)]
    if out is not None:
        write_volume(out, Volume(m, vol.geometry))
    return m


def pretrain(
    images: VolumeLike | Sequence[VolumeLike],
    out: PathLike,
    *,
    tasks: str | Sequence[str] = ("rotation", "contrastive"),
    steps: int = 300,
    minutes: float | None = None,
    patch: int = 32,
    batch_size: int = 4,
    base_filters: int = 16,
    device: str = "auto",
    seed: int = 0,
    callback: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
) -> Finished:
    """Self-supervised pretraining of the shared encoder; writes ``out``.

    The encoder file initialises :func:`train`, :func:`train_classifier`
    and :func:`boxes_to_masks` (``init=``) when their ``base_filters``
    match.
    """
    from .core.inference import run
    from .core.pretraining import PretrainConfig, iter_pretrain
    from .core.ssl import parse_tasks

    vols = [as_volume(v) for v in _as_list(images)]
    config = PretrainConfig(
        steps=steps,
        minutes=minutes,
        tasks=parse_tasks(tasks),
        patch=patch,
        batch_size=batch_size,
        base_filters=base_filters,
        device=device,
        seed=seed,
    )
    gen = iter_pretrain(
        [np.asarray(v.data) for v in vols],
        out,
        config,
        vols[0].geometry.spacing,
        stop,
    )
    return run(gen, callback)
