"""Headless Python API: the single facade over core.

Everything here runs without Qt.  The napari docks and the ``weakseg``
CLI call these functions and nothing deeper, so every input check lives
in one place.  Each long task comes twice: ``iter_<task>`` is a generator
that yields events (:mod:`~.core.events`) and returns the result (what a
napari worker runs), and ``<task>`` runs it to the end, passing every
event to ``callback``.

Examples
--------
>>> from napari_weakseg import api
>>> result = api.train("t1.nii.gz", "sparse.nii.gz", "model.safetensors")
>>> labels, probabilities = api.predict("model.safetensors", "t1.nii.gz")
>>> for event in api.iter_train("t1.nii.gz", "sparse.nii.gz", "m.safetensors"):
...     print(event)
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core import defaults
from .core.errors import WeaksegError
from .core.events import Progress, run
from .core.io import Volume, read_volume, write_volume
from .core.validate import require_3d, require_finite, require_same_grid

PathLike = str | os.PathLike
VolumeLike = PathLike | np.ndarray | Volume

__all__ = [
    "Volume",
    "WeaksegError",
    "boxes_to_masks",
    "cam_layers",
    "class_activation_map",
    "crf",
    "iter_boxes_to_masks",
    "iter_class_activation_map",
    "iter_predict",
    "iter_predict_batch",
    "iter_pretrain",
    "iter_train",
    "iter_train_classifier",
    "iter_cam_to_segmentation",
    "cam_to_segmentation",
    "iter_segment_from_map",
    "segment_from_map",
    "load_model",
    "predict",
    "predict_batch",
    "predict_slice",
    "pseudo_labels",
    "pretrain",
    "read_volume",
    "suggest_slice",
    "train",
    "train_classifier",
    "uncertainty",
    "write_volume",
]

Events = Generator[Any, None, Any]


def _blocking(
    gen_fn: Callable[..., Events], progress: str | None = None
) -> Callable[..., Any]:
    """``<task>(..., callback=None)`` from ``iter_<task>``: same
    parameters, plus a callback that receives every event.  With
    ``progress``, that parameter of ``gen_fn`` receives the callback too
    (work that reports on the calling thread instead of yielding)."""

    @functools.wraps(gen_fn)
    def task(
        *args: Any,
        callback: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        if progress is not None:
            kwargs[progress] = callback or (lambda _: None)
        return run(gen_fn(*args, **kwargs), callback)

    sig = inspect.signature(gen_fn)
    params = [p for p in sig.parameters.values() if p.name != progress]
    callback = inspect.Parameter(
        "callback",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation="Callable[[Any], None] | None",
    )
    at = next(
        (i for i, p in enumerate(params) if p.name == "stop"), len(params)
    )
    task.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[*params[:at], callback, *params[at:]],
        return_annotation=inspect.Signature.empty,
    )
    task.__name__ = task.__qualname__ = gen_fn.__name__.removeprefix("iter_")
    task.__doc__ = (
        f"Run :func:`{gen_fn.__name__}` to the end and return its result; "
        "``callback`` receives every event.\n\n" + (gen_fn.__doc__ or "")
    )
    del task.__wrapped__  # help() shows the signature above
    return task


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


def _pairs(
    images: VolumeLike | Sequence[VolumeLike],
    labels: VolumeLike | Sequence[VolumeLike],
) -> tuple[list[Volume], list[Volume]]:
    """(image, label) volumes checked to pair up on the same grids."""
    images, labels = _as_list(images), _as_list(labels)
    if len(images) != len(labels):
        raise WeaksegError(
            f"Give one label volume per image ({len(images)} images, "
            f"{len(labels)} label volumes)."
        )
    ims = [as_volume(v, lazy=True) for v in images]
    lbs = [as_volume(v, lazy=True, like=im) for v, im in zip(labels, ims)]
    for k, (im, lb) in enumerate(zip(ims, lbs), start=1):
        require_3d(im.data, f"image {k}")
        require_same_grid(
            im.shape,
            lb.shape,
            im.geometry,
            lb.geometry,
            (f"image {k}", f"labels {k}"),
        )
    return ims, lbs


def iter_train(
    images: VolumeLike | Sequence[VolumeLike],
    labels: VolumeLike | Sequence[VolumeLike],
    out: PathLike,
    *,
    steps: int = defaults.STEPS,
    minutes: float | None = None,
    patience: int | None = None,
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
    stop: threading.Event | None = None,
) -> Events:
    """Train a 3D U-Net on sparse labels and write the model to ``out``.

    ``labels`` hold 0 = background, 1..K = classes and ``ignore_label``
    for unlabelled voxels.  ``augment``: ``"flips"`` mirrors patches on
    every axis; ``"none"`` is better when classes are told apart by where
    they lie (head vs body, left vs right); ``"affine"`` mirrors nothing
    but turns (up to 15°), scales and jitters the intensity of patches;
    ``"full"`` adds 90° turns, intensity and noise.  ``patience``: end
    when validation has not improved for that many steps (an automatic
    budget; ``steps`` and ``minutes`` are then ceilings).  Yields steps,
    validations and checkpoints; returns :class:`~.core.events.Finished`.
    Set ``stop`` to end early with a checkpoint.
    """
    from .core import training

    ims, lbs = _pairs(images, labels)
    config = training.TrainConfig(
        steps=steps,
        minutes=minutes,
        patience=patience,
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
    return (
        yield from training.iter_train(
            [v.data for v in ims],  # stores larger than memory stay
            [v.data for v in lbs],  # on disk (read patch by patch)
            out,
            config,
            spacing=ims[0].geometry.spacing,
            init=init,
            stop=stop,
        )
    )


train = _blocking(iter_train)


def load_model(path: PathLike, device: str = "auto") -> tuple[Any, Any]:
    """``(torch module, ModelConfig)`` from a model file; never runs code."""
    from .core.device import resolve_device
    from .core.models import load_model as _load

    return _load(path, resolve_device(device))


def _segmentation_model(
    model: PathLike | tuple[Any, Any], device: Any
) -> tuple[Any, Any]:
    net, config = (
        load_model(model, str(device))
        if isinstance(model, str | os.PathLike)
        else model
    )
    if config.kind != "unet":
        raise WeaksegError(
            f"This is a {config.kind} model; predict needs a segmentation "
            "model (from train or box2mask)."
        )
    return net, config


def iter_predict(
    model: PathLike | tuple[Any, Any],
    image: VolumeLike,
    *,
    out: PathLike | None = None,
    probabilities: PathLike | None = None,
    device: str = "auto",
    tta: bool = False,
    overlap: float = 0.5,
    scheduler: Any = None,
    block: int | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[Any], None] | None = None,
) -> Events:
    """Segment a whole volume; optionally write labels/probabilities.

    Returns ``(labels, probabilities)``: uint8 classes and float32
    ``(C, Z, Y, X)`` softmax.  Written files keep the input's geometry.
    A volume of at most :data:`~.core.defaults.LARGE_VOXELS` is predicted in
    memory and every window is yielded as :class:`~.core.events.Progress`
    (MONAI runs in a helper thread; with ``on_progress`` it runs on the
    calling thread instead, faster, and windows go to ``on_progress``).
    A larger one, or any with ``scheduler``, goes block by block (edge
    ``block`` voxels): ``.zarr``/``.ome.zarr`` outputs are streamed and
    come back as lazy arrays, one progress event per block.
    ``scheduler``: ``"local"`` (a dask LocalCluster), the address of a
    dask.distributed scheduler whose workers see the model file and the
    outputs, or a :class:`distributed.Client`.
    """
    from .core import inference, tiled
    from .core.device import resolve_device

    dev = resolve_device(device)
    net, config = _segmentation_model(model, dev)
    vol = as_volume(image, lazy=True)
    require_3d(vol.data, "image")
    voxels = int(np.prod(vol.data.shape, dtype=np.float64))
    if scheduler is None and block is None and voxels <= defaults.LARGE_VOXELS:
        labels, probs = yield from inference.iter_predict(
            net,
            vol.data,
            config.patch_size,
            config.normalisation,
            dev,
            overlap=overlap,
            tta=tta,
            stop=stop,
            on_progress=on_progress,
        )
        if out is not None:
            write_volume(out, Volume(labels, vol.geometry))
        if probabilities is not None:
            write_volume(probabilities, Volume(probs, vol.geometry))
        return labels, probs
    if scheduler is not None:
        if not isinstance(model, str | os.PathLike):
            raise WeaksegError(
                "A distributed prediction needs the model file (its "
                "workers load it), not a loaded model."
            )
        net = tiled.ModelRef(str(model), device)
    with tiled.connect(scheduler) as client:
        return (
            yield from tiled.iter_predict_volume(
                net,
                config,
                vol,
                out,
                probabilities,
                overlap=overlap,
                tta=tta,
                stop=stop,
                on_progress=on_progress,
                client=client,
                edge=block or tiled.BLOCK_EDGE,
            )
        )


#: windows go to the callback on this thread: ~1.4× faster than streaming
#: them from a helper thread on a 2-core CPU
predict = _blocking(iter_predict, progress="on_progress")


@dataclass(frozen=True)
class Batch:
    """What a batch prediction wrote, and the inputs it skipped (path,
    one-sentence reason)."""

    written: list[str]
    skipped: list[tuple[str, str]]


def batch_inputs(images: PathLike | Sequence[PathLike]) -> list[Path]:
    """The volumes a batch covers: the files given, and the volumes inside
    any folder given (sorted), in order, each once."""
    from .core.io import is_collection, volume_files

    paths: list[Path] = []
    for item in _as_list(images):
        p = Path(item)
        paths += volume_files(p) if is_collection(p) else [p]
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise WeaksegError("No volume to predict (the folder is empty).")
    return unique


def iter_predict_batch(
    model: PathLike | tuple[Any, Any],
    images: PathLike | Sequence[PathLike],
    out_dir: PathLike,
    *,
    probabilities_dir: PathLike | None = None,
    device: str = "auto",
    tta: bool = False,
    overlap: float = 0.5,
    scheduler: Any = None,
    block: int | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[Any], None] | None = None,
) -> Events:
    """Segment many volumes (paths, or folders of volumes) with one model.

    Each label volume goes to ``out_dir`` under its input's name (and its
    probabilities to ``probabilities_dir``).  An input that cannot be read
    or segmented is skipped with one :class:`~.core.events.Skipped` event
    and the batch goes on; returns a :class:`Batch`.  One dask cluster
    (``scheduler``, see :func:`iter_predict`) serves the whole batch.
    """
    from .core import tiled
    from .core.device import resolve_device

    inputs = batch_inputs(images)
    outs = [Path(out_dir)] + (
        [Path(probabilities_dir)] if probabilities_dir else []
    )
    for folder in outs:
        if folder.exists() and not folder.is_dir():
            raise WeaksegError(f"{folder} is a file; give a folder.")
        if any(p.parent.resolve() == folder.resolve() for p in inputs):
            raise WeaksegError(
                f"{folder} holds inputs of this batch; write to another "
                "folder (outputs take their input's name)."
            )
    dev = resolve_device(device)
    loaded = (
        model if scheduler is not None else _segmentation_model(model, dev)
    )
    with tiled.connect(scheduler) as client:
        return (
            yield from _iter_batch(
                loaded,
                inputs,
                outs,
                probabilities_dir,
                str(dev),
                {
                    "tta": tta,
                    "overlap": overlap,
                    "scheduler": client,
                    "block": block,
                },
                stop,
                on_progress,
            )
        )


def _iter_batch(
    loaded: Any,
    inputs: list[Path],
    outs: list[Path],
    probabilities_dir: PathLike | None,
    device: str,
    options: dict[str, Any],
    stop: threading.Event | None,
    on_progress: Callable[[Any], None] | None,
) -> Events:
    from .core.errors import Cancelled
    from .core.events import Skipped

    out_dir = outs[0]
    written: list[str] = []
    skipped: list[tuple[str, str]] = []
    for k, path in enumerate(inputs, start=1):
        yield Progress(k - 1, len(inputs), f"volume {k}/{len(inputs)}")
        target = Path(out_dir) / path.name
        probs = (
            Path(probabilities_dir) / path.name if probabilities_dir else None
        )
        try:
            for folder in outs:
                folder.mkdir(parents=True, exist_ok=True)
            yield from iter_predict(
                loaded,
                path,
                out=target,
                probabilities=probs,
                device=device,
                stop=stop,
                on_progress=on_progress,
                **options,
            )
        except Cancelled:
            raise
        except (WeaksegError, OSError) as exc:
            skipped.append((str(path), str(exc)))
            yield Skipped(str(path), str(exc))
            continue
        written.append(str(target))
    yield Progress(len(inputs), len(inputs), "done")
    return Batch(written, skipped)


predict_batch = _blocking(iter_predict_batch, progress="on_progress")


def predict_slice(
    model: PathLike | tuple[Any, Any],
    image: VolumeLike,
    axis: int,
    index: int,
    *,
    device: str = "cpu",
) -> tuple[tuple, np.ndarray]:
    """``(slices, labels)`` of one slice: a slab one patch deep around
    slice ``index`` of ``axis`` (a live preview, not a whole volume)."""
    from .core.inference import predict_slice as _slice
    from .core.normalise import apply_normalisation, intensity_stats

    net, config = _segmentation_model(model, device)
    data = np.asarray(as_volume(image).data)
    require_3d(data, "image")
    if not 0 <= index < data.shape[axis]:
        raise WeaksegError(
            f"Slice {index} is outside the image (0..{data.shape[axis] - 1})."
        )
    norm = apply_normalisation(
        data, intensity_stats(data, config.normalisation)
    )
    return _slice(net, config, norm, axis, index, device)


def uncertainty(probabilities: VolumeLike) -> np.ndarray:
    """Per-voxel entropy of class probabilities ``(C, Z, Y, X)``: what
    :func:`suggest_slice` ranks slices by."""
    from .core.metrics import entropy

    probs = np.asarray(as_volume(probabilities).data)
    if probs.ndim != 4:
        raise WeaksegError(
            f"Probabilities need 4 dimensions (classes, Z, Y, X); got "
            f"{probs.ndim}."
        )
    return entropy(probs)


def suggest_slice(
    labels: VolumeLike,
    *,
    axis: int | str = 0,
    probabilities: VolumeLike | None = None,
    ignore_label: int = defaults.IGNORE,
    count: int = 1,
) -> list[int]:
    """The ``count`` slices on ``axis`` most worth annotating next.

    ``labels`` is a sparse label volume (what :func:`train` takes); its
    fully labelled slices count as done.  With ``probabilities`` (from
    :func:`predict`) the unannotated slices of highest mean entropy come
    first; without, slices farthest from every done slice.
    """
    from .core.annotation import AXES, from_sparse_labels, suggest_next_slice

    sparse = np.asarray(as_volume(labels).data)
    require_3d(sparse, "labels")
    a = AXES.index(axis) if isinstance(axis, str) else int(axis)
    if a not in (0, 1, 2):
        raise WeaksegError(f"Axis must be z, y, x or 0, 1, 2 (got {axis}).")
    entropy = None
    if probabilities is not None:
        entropy = uncertainty(probabilities)
        if entropy.shape != sparse.shape:
            raise WeaksegError(
                f"Probabilities of shape {entropy.shape} do not fit labels "
                f"of shape {sparse.shape}."
            )
    _, done = from_sparse_labels(sparse, ignore_label)
    picked: list[int] = []
    for _ in range(max(1, count)):
        if len(set(done[a])) >= sparse.shape[a]:
            break
        i = suggest_next_slice(sparse.shape, done, a, entropy)
        picked.append(i)
        done[a] = [*done[a], i]
    if not picked:
        raise WeaksegError(f"Every slice on axis {AXES[a]} is done.")
    return picked


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
    min_fill: float = 0.5,
    core_fraction: float = 0.2,
    base_filters: int = defaults.BASE_FILTERS,
    init: PathLike | None = None,
    device: str = "auto",
    seed: int = 0,
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

    from .core import box2mask
    from .core.boxes import read_boxes

    vol = as_volume(image)
    require_3d(vol.data, "image")
    if isinstance(boxes, str | os.PathLike):
        boxes = read_boxes(boxes)
    rules = box2mask.Rules(outside_boxes, wrong_class, off_core, min_fill, crf)
    config = box2mask.round_config(
        steps=steps_per_round,
        base_filters=base_filters,
        device=device,
        seed=seed,
    )
    return (
        yield from _recursive(
            lambda model: box2mask.iter_boxes_to_masks(
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
            ),
            vol,
            out,
            model_out,
        )
    )


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
    seed: int = 0,
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
    from .core import classifier
    from .core.normalise import normalise
    from .core.training import TrainConfig

    if isinstance(crops, str | os.PathLike):
        crops = classifier.read_crops(crops)
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
    config = TrainConfig(
        steps=steps,
        minutes=minutes,
        base_filters=base_filters,
        batch_size=batch_size,
        device=device,
        seed=seed,
        val_every=max(1, min(50, steps)),
    )
    return (
        yield from classifier.iter_train_classifier(
            arrays, classes, out, config, spacing, init, stop, pooling, margin
        )
    )


train_classifier = _blocking(iter_train_classifier)


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
    seed: int = 0,
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
    from .core import box2mask, cam2seg

    vol = as_volume(image)
    require_3d(vol.data, "image")
    m = np.asarray(as_volume(cam_map).data, np.float32)
    rows = _crops_of(crops, image)
    whole = (0, 0, 0, *vol.data.shape)
    absent = [c.box or whole for c in rows if c.cls == 0]
    present = [c.box or whole for c in rows if expand and c.cls == class_index]
    config = box2mask.round_config(
        steps=steps_per_round,
        base_filters=base_filters,
        device=device,
        seed=seed,
    )
    return (
        yield from _recursive(
            lambda model: cam2seg.iter_cam_to_masks(
                np.asarray(vol.data),
                m,
                model,
                class_index,
                rounds,
                config,
                vol.geometry.spacing,
                absent,
                crf=crf,
                stop=stop,
                present=present,
            ),
            vol,
            out,
            model_out,
        )
    )


segment_from_map = _blocking(iter_segment_from_map)


def _crops_of(
    crops: PathLike | Sequence[Any] | None, image: VolumeLike
) -> list[Any]:
    """The crops (CSV or :class:`~.core.classifier.Crop` list) of
    ``image``: those naming its file, or all when they name one image."""
    from .core.classifier import read_crops

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
    seed: int = 0,
    stop: threading.Event | None = None,
) -> Events:
    """Image-level labels to a segmentation: the map of ``image`` by the
    classifier ``model`` (any model :func:`class_activation_map` reads),
    then :func:`iter_segment_from_map` with the other parameters.  Yields
    the map's progress, training events and each round's labels; returns
    the label volume.
    """
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
        yield from iter_segment_from_map(
            vol,
            Volume(m, vol.geometry),
            out=out,
            crops=rows,
            class_index=class_index,
            rounds=rounds,
            steps_per_round=steps_per_round,
            crf=crf,
            expand=expand,
            model_out=model_out,
            base_filters=base_filters,
            device=device,
            seed=seed,
            stop=stop,
        )
    )


cam_to_segmentation = _blocking(iter_cam_to_segmentation)


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
    from .core.cam import iter_map_volume
    from .core.device import resolve_device
    from .core.normalise import normalise

    dev = resolve_device(device)
    net, config = load_model(model, str(dev))
    if not 0 <= class_index < config.num_classes:
        raise WeaksegError(
            f"Class {class_index} is out of range: the model knows classes "
            f"0..{config.num_classes - 1}."
        )
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
    from .core.cam import default_layer, list_layers

    net, config = load_model(model, "cpu")
    names = list_layers(net)
    if not names:
        raise WeaksegError(
            f"{os.fspath(model)} has no spatial layer a CAM could read."
        )
    return names, default_layer(net), config


def pseudo_labels(
    cam_map: VolumeLike,
    class_index: int = 1,
    *,
    threshold: str | float = "otsu",
    band: float = 0.5,
    ignore_label: int = defaults.IGNORE,
) -> np.ndarray:
    """Seeds from a CAM as sparse labels: confident object voxels are
    ``class_index``, confident background 0, the rest ``ignore_label``
    (train on them to expand the seeds)."""
    from .core.cam import pseudo_labels as _seeds

    m = np.asarray(as_volume(cam_map).data)
    require_3d(m, "map")
    return _seeds(m, class_index, threshold, band, ignore_label)


def iter_pretrain(
    images: VolumeLike | Sequence[VolumeLike],
    out: PathLike,
    *,
    tasks: str | Sequence[str] = defaults.PRETRAIN_TASKS,
    steps: int = defaults.STEPS,
    minutes: float | None = None,
    patch: int = defaults.PRETRAIN_PATCH,
    batch_size: int = 4,
    base_filters: int = defaults.BASE_FILTERS,
    network: str = "dynunet",
    device: str = "auto",
    seed: int = 0,
    stop: threading.Event | None = None,
) -> Events:
    """Self-supervised pretraining of the shared encoder; writes ``out``.

    The encoder file initialises :func:`train`, :func:`train_classifier`
    and :func:`boxes_to_masks` (``init=``) when their ``base_filters``
    match; the U-Net trained from it is ``network`` (``"dynunet"``, which
    the classifier shares, or ``"resunet"``, the default U-Net).  Yields
    steps and per-task pretext events; returns
    :class:`~.core.events.Finished` with the best validation loss.
    """
    from .core import pretraining
    from .core.ssl import parse_tasks

    vols = [as_volume(v) for v in _as_list(images)]
    if not vols:
        raise WeaksegError("Give at least one unlabelled volume.")
    config = pretraining.PretrainConfig(
        steps=steps,
        minutes=minutes,
        tasks=parse_tasks(tasks),
        patch=patch,
        batch_size=batch_size,
        base_filters=base_filters,
        network=network,
        device=device,
        seed=seed,
    )
    return (
        yield from pretraining.iter_pretrain(
            [np.asarray(v.data) for v in vols],
            out,
            config,
            vols[0].geometry.spacing,
            stop,
        )
    )


pretrain = _blocking(iter_pretrain)
