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
import numbers
import os
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core.base import defaults, settings
from .core.base.errors import WeaksegError
from .core.base.events import Progress, run
from .core.data.outputs import (
    MODEL,
    TABLE,
    VOLUME,
    batch_targets,
    check_outputs,
)
from .core.data.validate import require_3d, require_finite, require_same_grid
from .core.data.volumes import Volume, read_volume, write_volume

PathLike = str | os.PathLike
VolumeLike = PathLike | np.ndarray | Volume

__all__ = [
    "Volume",
    "WeaksegError",
    "boxes_to_masks",
    "cam_layers",
    "class_activation_map",
    "class_names",
    "crf",
    "evaluate",
    "export_model",
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
    "model_info",
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


def _checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Check every numeric setting of ``fn`` that has a range in
    :data:`~.core.defaults.BOUNDS` (and ``patch_size`` / ``patch``) when
    called: one sentence for a value outside it.  A generator function
    stays one (the check runs when the first event is asked for)."""
    sig = inspect.signature(fn)
    names = [
        n
        for n in sig.parameters
        if n in defaults.BOUNDS or n in ("patch_size", "patch")
    ]

    def check(args: tuple, kwargs: dict) -> None:
        bound = sig.bind(*args, **kwargs)
        settings.check(
            **{n: bound.arguments[n] for n in names if n in bound.arguments}
        )

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any) -> Events:
            check(args, kwargs)
            return (yield from fn(*args, **kwargs))

        return gen

    @functools.wraps(fn)
    def plain(*args: Any, **kwargs: Any) -> Any:
        check(args, kwargs)
        return fn(*args, **kwargs)

    return plain


def as_volume(
    v: VolumeLike,
    lazy: bool = False,
    like: Volume | None = None,
    name: str = "image",
    labels: bool = False,
) -> Volume:
    """A :class:`Volume` from a path, an array-like or a Volume.

    A bare array has no geometry of its own: it takes that of ``like``
    (labels drawn on an image share its grid).  Any array-like (numpy,
    torch, zarr, dask) is one volume; a lazy one stays lazy.  ``labels``:
    a zarr store may omit the chunks that hold only background.
    """
    if isinstance(v, Volume):
        return v
    if isinstance(v, str | os.PathLike):
        return read_volume(v, lazy=lazy, allow_missing_chunks=labels)
    data = _array(v, name)
    return Volume(data) if like is None else Volume(data, like.geometry)


def _array(v: Any, name: str) -> Any:
    """``v`` as an array (lazy array-likes kept), refused in one sentence
    when it is no image: paths in a list, text, objects, empty, complex."""
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor
        v = v.detach().cpu().numpy()
    lazy = not isinstance(v, list | tuple | np.ndarray) and all(
        hasattr(v, a) for a in ("shape", "dtype", "__getitem__")
    )
    if isinstance(v, list | tuple) and any(
        isinstance(x, str | os.PathLike) for x in v
    ):
        raise WeaksegError(
            f"'{name}' is a list of {len(v)} paths; give one volume here "
            "(predict_batch segments several)."
        )
    try:
        arr = v if lazy else np.asarray(v)
        kind = np.dtype(arr.dtype).kind
    except (TypeError, ValueError):
        kind = "O"
    if kind not in "biuf":
        what = "complex numbers" if kind == "c" else type(v).__name__
        raise WeaksegError(
            f"'{name}' is not an image of numbers ({what}); give a file "
            "path, a Volume or a 3D array."
        )
    if 0 in tuple(arr.shape):
        raise WeaksegError(f"'{name}' is empty (shape {tuple(arr.shape)}).")
    return arr


def _as_list(x: VolumeLike | Sequence[VolumeLike]) -> list[VolumeLike]:
    """A list or tuple is several volumes; anything else (a path, a
    Volume, any array-like) is one."""
    if isinstance(x, list | tuple):
        return list(x)
    return [x]


def _label(v: Any, k: int | None = None, what: str = "image") -> str:
    """How messages name an input: its file name, else ``image 2``."""
    if isinstance(v, str | os.PathLike):
        return Path(v).name
    return what if k is None else f"{what} {k}"


def _finite(vol: Volume, name: str) -> None:
    """Refuse NaN or infinite voxels, wherever they are (a lazy volume is
    read slab by slab)."""
    require_finite(vol.data, name)


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
    names = [_label(v, k) for k, v in enumerate(images, start=1)]
    ims = [as_volume(v, True, name=n) for v, n in zip(images, names)]
    lbs = [
        as_volume(v, True, im, _label(v, k, "labels"), labels=True)
        for k, (v, im) in enumerate(zip(labels, ims), start=1)
    ]
    for k, (im, lb) in enumerate(zip(ims, lbs), start=1):
        require_3d(im.data, names[k - 1])
        require_same_grid(
            im.shape,
            lb.shape,
            im.geometry,
            lb.geometry,
            (names[k - 1], _label(labels[k - 1], k, "labels")),
        )
        _finite(im, names[k - 1])
    return ims, lbs


@_checked
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
    class_names: Sequence[str] | str = (),
    unlabelled: PathLike | Sequence[Any] | None = None,
    semi: str | None = None,
    semi_weight: float = defaults.SEMI_WEIGHT,
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

    ``unlabelled``: folders, glob patterns, files or arrays of unlabelled
    volumes of the same kind; they are streamed (a few in memory at a
    time) into semi-supervised training (``semi``): ``"selftrain"``, the
    default, trains twice for ``steps`` -- first on the labels, then,
    from those weights, on the labels plus the first model's confident
    pseudo-labels of every unlabelled volume (:mod:`~.core.selftrain`);
    ``"meanteacher"`` or ``"pseudo"`` add an online term of weight
    ``semi_weight`` to one run.  The unannotated voxels of the annotated
    volumes count as unlabelled too.  ``semi`` without ``unlabelled``
    uses those alone.
    Unreadable pool files are yielded as skipped.

    ``class_names``: the names of labels 1..K (``["head", "body"]`` or
    ``"head,body"``; the background's name may come first), stored in
    the model and shown wherever its classes are (default ``class 1``,
    ``class 2``...).
    """
    from .core.base import classes, recipe
    from .core.train import unet as training

    check_outputs(
        {"out": (out, MODEL)}, [*_as_list(images), *_as_list(labels), init]
    )
    names = classes.check(class_names)  # their count: once labels are read
    ims, lbs = _pairs(images, labels)
    made = recipe.make(
        "train",
        {"image": _as_list(images), "labels": _as_list(labels), "init": init},
        {
            "steps": steps,
            "minutes": minutes,
            "patience": patience,
            "patch_size": list(patch_size) if patch_size else None,
            "batch_size": batch_size,
            "base_filters": base_filters,
            "learning_rate": learning_rate,
            "augment": augment,
            "ignore_label": ignore_label,
            "device": device,
            "class_names": names,
            "unlabelled": _pool_names(unlabelled),
            "semi": semi,
            "semi_weight": semi_weight if semi or unlabelled else None,
        },
        seed,
    )
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
        class_names=names,
        recipe=made,
    )
    semi_cfg = _semi_config(semi, semi_weight, unlabelled)
    common = {
        "spacing": ims[0].geometry.spacing,
        "init": init,
        "stop": stop,
        "names": [_label(v, k) for k, v in enumerate(_as_list(images), 1)],
    }
    data = (
        [v.data for v in ims],  # stores larger than memory stay
        [v.data for v in lbs],  # on disk (read patch by patch)
        out,
        config,
    )
    if semi_cfg is not None and semi_cfg.method == "selftrain":
        from .core.methods.selftrain import iter_self_train

        return (
            yield from iter_self_train(
                *data,
                unlabelled=_pool_sources(unlabelled),
                threshold=semi_cfg.threshold,
                **common,
            )
        )
    return (
        yield from training.iter_train(
            *data,
            unlabelled=_pool_sources(unlabelled),
            semi=semi_cfg,
            **common,
        )
    )


def _pool_names(unlabelled: Any) -> list[str] | None:
    """The unlabelled pool as a recipe names it: paths as they are, an
    array as ``<array>``."""
    if unlabelled is None:
        return None
    many = isinstance(unlabelled, list | tuple)
    items = unlabelled if many else [unlabelled]
    return [
        str(v) if isinstance(v, str | os.PathLike) else "<array>"
        for v in items
    ]


def _pool_sources(unlabelled: Any) -> Any:
    """Unlabelled volumes as the pool takes them: paths as they are,
    arrays and Volumes as arrays; None or empty: no pool."""
    if unlabelled is None:
        return None
    items = _as_list(unlabelled)
    if not items:
        return None
    return [
        x
        if isinstance(x, str | os.PathLike)
        else np.asarray(as_volume(x).data)
        for x in items
    ]


def _semi_config(method: str | None, weight: float, unlabelled: Any) -> Any:
    """The semi-supervised settings, or None when there is no term."""
    if method is None and _pool_sources(unlabelled) is None:
        return None
    from .core.train.semi import SemiConfig

    cfg = SemiConfig(method=method or defaults.SEMI_METHOD, weight=weight)
    cfg.check()
    return cfg


train = _blocking(iter_train)


def load_model(path: PathLike, device: str = "auto") -> tuple[Any, Any]:
    """``(torch module, ModelConfig)`` from a model file; never runs code."""
    from .core.base.device import resolve_device
    from .core.nn.models import load_model as _load

    return _load(path, resolve_device(device))


def class_names(model: PathLike | tuple[Any, Any]) -> list[str]:
    """The names of a model's classes, background first (``["background",
    "head", "body"]``); files without names give ``class 1``, ``class
    2``...  ``model``: a model file, a bioimage.io package exported by
    napari-weakseg, or ``(module, config)``."""
    from .core.base import classes
    from .core.nn.models import read_model_file

    if isinstance(model, tuple):
        return classes.of(model[1])
    return classes.of(read_model_file(model)[1])


#: formats :func:`export_model` writes
EXPORT_FORMATS = ("bioimageio",)


def export_model(
    model: PathLike,
    out: PathLike,
    *,
    format: str = "bioimageio",
    sample: VolumeLike | None = None,
    name: str | None = None,
    description: str | None = None,
    authors: Sequence[str] = (),
    license: str = "CC-BY-4.0",
    check: bool = True,
) -> Path:
    """Write segmentation model ``model`` as a bioimage.io model package
    ``out`` (``.zip``) that opens in the bioimage.io ecosystem.

    The package holds TorchScript and PyTorch state-dict weights (MONAI's
    network as the architecture), the percentile clip and z-score as the
    spec's preprocessing, softmax as postprocessing, the class names, the
    patch size and halo, test tensors and a README.  ``sample``: an image
    whose middle patch becomes the test input (default: a phantom).  With
    ``check``, ``bioimageio.core``'s model test must pass before the file
    appears.  ``predict`` reads such a package back like a model file.
    Needs the ``[export]`` extra (``bioimageio.core``).
    """
    from .core.data.outputs import PACKAGE
    from .core.nn import bmz

    if format not in EXPORT_FORMATS:
        raise WeaksegError(
            f"Unknown export format '{format}' (known: "
            f"{', '.join(EXPORT_FORMATS)})."
        )
    check_outputs({"out": (out, PACKAGE)}, [model, sample])
    image = None
    if sample is not None:  # only its middle patch is read
        image = as_volume(sample, lazy=True, name="sample").data
        require_3d(image, _label(sample, what="sample"))
    return bmz.export(
        model,
        out,
        sample=image,
        name=name,
        description=description,
        authors=list(authors),
        license=license,
        check=check,
    )


def _drift(
    config: Any, image: VolumeLike, vol: Volume, name: str | None = None
) -> Events:
    """A :class:`~.core.events.Notice` when ``image`` is unlike the
    model's training data (spacing only when the image has a geometry of
    its own: a file or a Volume)."""
    from .core.base.events import Notice
    from .core.data.drift import differences

    spacing = (
        vol.geometry.spacing
        if isinstance(image, str | os.PathLike | Volume)
        else config.spacing
    )
    found = differences(config, vol.data, spacing)
    if found:
        yield Notice(
            f"{name or _label(image)} is unlike the model's training data: "
            + "; ".join(found)
            + "; check the result."
        )


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


@_checked
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
    name: str | None = None,
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
    ``name`` names the image in messages (a layer name; default: its
    file name).  ``scheduler``: ``"local"`` (a dask LocalCluster), the
    address of a
    dask.distributed scheduler whose workers see the model file and the
    outputs, or a :class:`distributed.Client`.
    """
    from .core.base.device import resolve_device
    from .core.predict import sliding as inference
    from .core.predict import tiled

    check_outputs(
        {"out": (out, VOLUME), "probabilities": (probabilities, VOLUME)},
        [image, model],
    )
    dev = resolve_device(device)
    net, config = _segmentation_model(model, dev)
    vol = as_volume(image, lazy=True)
    require_3d(vol.data, _label(image))
    _finite(vol, _label(image))
    yield from _drift(config, image, vol, name)
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
    from .core.data.volumes import is_collection, volume_files

    paths: list[Path] = []
    for item in _as_list(images):
        p = Path(item)
        paths += volume_files(p) if is_collection(p) else [p]
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise WeaksegError("No volume to predict (the folder is empty).")
    return unique


@_checked
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
    from .core.base.device import resolve_device
    from .core.predict import tiled

    inputs = batch_inputs(images)
    outs = [Path(out_dir)] + (
        [Path(probabilities_dir)] if probabilities_dir else []
    )
    if len(outs) == 2 and outs[0].resolve() == outs[1].resolve():
        raise WeaksegError(
            f"The labels and the probabilities would both go to {outs[0]}; "
            "give two folders."
        )
    everything = [*inputs]
    if isinstance(model, str | os.PathLike):
        everything.append(Path(model))
    for folder in outs:
        for target in batch_targets(inputs, folder):
            check_outputs({"out": (target, VOLUME)}, everything)
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
    from .core.base.errors import Cancelled
    from .core.base.events import Skipped

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


@_checked
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
    from .core.data.normalise import apply_normalisation, intensity_stats
    from .core.predict.sliding import predict_slice as _slice

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
    from .core.base.metrics import entropy

    probs = np.asarray(as_volume(probabilities).data)
    if probs.ndim != 4:
        raise WeaksegError(
            f"Probabilities need 4 dimensions (classes, Z, Y, X); got "
            f"{probs.ndim}."
        )
    return entropy(probs)


def _require_sparse_labels(data: np.ndarray, name: str) -> None:
    """Refuse what is no label volume (an image given by mistake): whole
    numbers, at most :data:`MAX_CLASSES` distinct values."""
    from .core.data.validate import require_integer_labels

    require_integer_labels(data, name)
    values = np.unique(data)
    if len(values) > MAX_CLASSES or values.min() < 0:
        raise WeaksegError(
            f"{name} holds {len(values)} distinct values from "
            f"{values.min()} to {values.max()}; it is not a label volume "
            "(0 background, 1..254 classes, 255 unlabelled)."
        )


#: more distinct values than this: an image, not a label volume
MAX_CLASSES = 64


@_checked
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
    from .core.data.sparse import AXES, from_sparse_labels, suggest_next_slice

    sparse = np.asarray(as_volume(labels, name="labels").data)
    require_3d(sparse, _label(labels, what="labels"))
    _require_sparse_labels(sparse, _label(labels, what="labels"))
    a = -1
    if isinstance(axis, str | numbers.Integral) and not isinstance(axis, bool):
        a = {"z": 0, "y": 1, "x": 2, 0: 0, 1: 1, 2: 2}.get(axis, -1)
    if a not in (0, 1, 2):
        raise WeaksegError(f"Axis must be z, y, x or 0, 1, 2 (got {axis!r}).")
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

    from .core.base import recipe
    from .core.data.boxes import read_boxes
    from .core.methods import box2mask

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
    config = box2mask.round_config(
        steps=steps_per_round,
        base_filters=base_filters,
        device=device,
        seed=seed,
        recipe=made,
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
    from .core.base.device import resolve_device
    from .core.methods.crf import crf_refine

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
    from .core.base import recipe
    from .core.data.normalise import normalise
    from .core.methods import classifier
    from .core.train.unet import TrainConfig

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
    config = TrainConfig(
        steps=steps,
        minutes=minutes,
        base_filters=base_filters,
        batch_size=batch_size,
        device=device,
        seed=seed,
        val_every=max(1, min(50, steps)),
        recipe=made,
    )
    return (
        yield from classifier.iter_train_classifier(
            arrays, classes, out, config, spacing, init, stop, pooling, margin
        )
    )


train_classifier = _blocking(iter_train_classifier)


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
    from .core.base import recipe

    made = recipe.make(
        "segment-from-map",
        {"image": image, "map": cam_map, "crops": _crops_input(crops)},
        {
            "class_index": class_index,
            "rounds": rounds,
            "steps_per_round": steps_per_round,
            "crf": crf,
            "expand": expand,
            "base_filters": base_filters,
            "device": device,
        },
        seed,
    )
    return (
        yield from _segment_from_map(
            image,
            cam_map,
            out=out,
            crops=crops,
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
            made=made,
        )
    )


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
    from .core.methods import box2mask, cam2seg

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
    config = box2mask.round_config(
        steps=steps_per_round,
        base_filters=base_filters,
        device=device,
        seed=seed,
        recipe=made,
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
    from .core.methods.classifier import read_crops

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
    seed: int = 0,
    stop: threading.Event | None = None,
) -> Events:
    """Image-level labels to a segmentation: the map of ``image`` by the
    classifier ``model`` (any model :func:`class_activation_map` reads),
    then :func:`iter_segment_from_map` with the other parameters.  Yields
    the map's progress, training events and each round's labels; returns
    the label volume.
    """
    from .core.base import recipe

    check_outputs(
        {"out": (out, VOLUME), "model_out": (model_out, MODEL)},
        [model, image, crops],
    )
    made = recipe.make(
        "cam2seg",
        {"model": model, "image": image, "crops": _crops_input(crops)},
        {
            "class_index": class_index,
            "method": method,
            "rounds": rounds,
            "steps_per_round": steps_per_round,
            "crf": crf,
            "expand": expand,
            "base_filters": base_filters,
            "device": device,
        },
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
            made=made,
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
    from .core.base.device import resolve_device
    from .core.data.normalise import normalise
    from .core.methods.cam import iter_map_volume

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
    from .core.methods.cam import default_layer, list_layers

    net, config = load_model(model, "cpu")
    names = list_layers(net)
    if not names:
        raise WeaksegError(
            f"{os.fspath(model)} has no spatial layer a CAM could read."
        )
    return names, default_layer(net), config


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`model_info` reads from a model file."""

    path: Path
    config: Any  # core.models.ModelConfig
    #: how it was made (see :mod:`.core.recipe`; empty for older files)
    recipe: dict
    #: the ``weakseg`` command that makes it again into another file
    #: (None when its inputs were arrays, not files, or it has no recipe)
    command: str | None

    def lines(self) -> list[str]:
        from .core.base import recipe

        c = self.config
        text = [
            f"{self.path.name}: {c.kind} ({c.network}), "
            f"{c.num_classes} classes: {', '.join(c.class_names) or '-'}",
            f"patch {c.patch_size}, spacing {c.spacing}, filters "
            f"{c.filters}, napari-weakseg {c.weakseg_version}",
        ]
        if not self.recipe:
            return [*text, "made by: unknown (no recipe in the file)"]
        return text + recipe.lines(self.recipe, self.path)

    def __str__(self) -> str:
        return "\n".join(self.lines())


def model_info(model: PathLike) -> ModelInfo:
    """The config and recipe of a model file, and the ``weakseg``
    command that makes it again (one sentence for a file that is no
    napari-weakseg model)."""
    from .core.base import recipe
    from .core.nn.models import read_model_file

    path = Path(model)
    _, config = read_model_file(path)
    made = dict(config.recipe)
    command = None
    if recipe.runnable(made):
        command = recipe.command_line(made, recipe.other_out(path))
    return ModelInfo(path, config, made, command)


@_checked
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
    from .core.methods.cam import pseudo_labels as _seeds

    m = np.asarray(as_volume(cam_map).data)
    require_3d(m, "map")
    return _seeds(m, class_index, threshold, band, ignore_label)


@_checked
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
    network: str = defaults.NETWORK,
    device: str = "auto",
    seed: int = 0,
    cache: int = defaults.POOL_CACHE,
    stop: threading.Event | None = None,
) -> Events:
    """Self-supervised pretraining of the shared encoder; writes ``out``.

    The encoder file initialises :func:`train`, :func:`train_classifier`
    and :func:`boxes_to_masks` (``init=``) when their ``base_filters``
    match and the network is the same: ``network`` is ``"resunet"`` (what
    :func:`train` builds, the default) or ``"dynunet"`` (what
    :func:`train_classifier` with ``pooling="gap"`` builds).  Yields
    steps and per-task pretext events; returns
    :class:`~.core.events.Finished` with the best validation loss.

    ``images`` given as paths (files, folders, glob patterns) are a pool
    that is streamed: at most ``cache`` normalised volumes are in memory
    at once, a new one read every few draws; unreadable files are
    yielded as skipped and counted.  Tasks: ``rotation``,
    ``contrastive``, ``inpainting``, ``masked`` (masked image modelling
    by the whole U-Net); the last two pretrain the decoder too, and the
    file then holds the whole U-Net but its output block.
    """
    from .core.base import recipe
    from .core.methods import pretraining
    from .core.methods.ssl import parse_tasks

    check_outputs({"out": (out, MODEL)}, _as_list(images))
    items = _as_list(images)
    made = recipe.make(
        "pretrain",
        {"image": items},
        {
            "tasks": ",".join(parse_tasks(tasks)),
            "steps": steps,
            "minutes": minutes,
            "patch": patch,
            "batch_size": batch_size,
            "base_filters": base_filters,
            "network": network,
            "device": device,
            "cache": cache,
        },
        seed,
    )
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
        recipe=made,
    )
    if items and all(isinstance(v, str | os.PathLike) for v in items):
        from .core.data.pool import VolumePool

        # streamed: at most ``cache`` volumes in memory
        pool = VolumePool(items, [patch] * 3, cache, seed=seed)
        first = next(iter(pool.cache))  # a volume read: its spacing
        source, spacing = pool, as_volume(first).geometry.spacing
    else:
        vols = [as_volume(v) for v in items]
        if not vols:
            raise WeaksegError("Give at least one unlabelled volume.")
        source = [np.asarray(v.data) for v in vols]
        spacing = vols[0].geometry.spacing
    return (
        yield from pretraining.iter_pretrain(
            source, out, config, spacing, stop
        )
    )


pretrain = _blocking(iter_pretrain)


def _class_names(given: Any) -> list[str]:
    """Names of labels 0..K for a table: a model file's (``.safetensors``
    or a bioimage.io ``.zip``), or given names of labels 1..K (the
    background's may come first); none: ``[]`` (``class 1``...)."""
    from .core.base import classes

    if given is None:
        return []
    if isinstance(given, os.PathLike) or (
        isinstance(given, str)
        and given.lower().endswith((".safetensors", ".zip"))
    ):
        from .core.nn.models import read_model_file

        return classes.of(read_model_file(given)[1])
    names = classes.check(given)
    if names and names[0] != classes.BACKGROUND:
        names = [classes.BACKGROUND, *names]
    return names


def _evaluation_pairs(pred: Any, truth: Any) -> list[tuple[Any, Any, str]]:
    """(prediction, reference, case name): two folders pair their volumes
    by file name; otherwise the lists pair in order."""
    from .core.data.volumes import is_collection, volume_files

    def one(x: Any) -> bool:
        return isinstance(x, str | os.PathLike) and is_collection(x)

    if one(pred) and one(truth):
        refs = {p.name: p for p in volume_files(truth)}
        preds = volume_files(pred)
        lonely = [p.name for p in preds if p.name not in refs]
        if lonely or not preds:
            raise WeaksegError(
                f"{Path(truth)} has no reference named {lonely[0]}."
                if lonely
                else f"{Path(pred)} holds no volume to evaluate."
            )
        return [(p, refs[p.name], p.name) for p in preds]
    preds, truths = _as_list(pred), _as_list(truth)
    if len(preds) != len(truths):
        raise WeaksegError(
            f"Give one reference per prediction ({len(preds)} predictions, "
            f"{len(truths)} references)."
        )
    return [
        (p, t, _label(p, k, "prediction"))
        for k, (p, t) in enumerate(zip(preds, truths), start=1)
    ]


@_checked
def evaluate(
    pred: VolumeLike | Sequence[VolumeLike],
    truth: VolumeLike | Sequence[VolumeLike],
    *,
    ignore_label: int | None = None,
    out: PathLike | None = None,
    names: Sequence[str] | None = None,
    class_names: Sequence[str] | PathLike | None = None,
) -> list[Any]:
    """Score label volumes against references: Dice, IoU, HD95 (in the
    spacing's units) and volume per class (MONAI's metrics).

    ``pred`` and ``truth`` are volumes (paths, arrays, Volumes), lists of
    them paired in order, or two folders paired by file name.  Voxels
    whose reference is ``ignore_label`` count for neither; ``names``
    name the cases (default: file names); ``class_names`` name labels
    1..K in the table (a list, ``"head,body"``, or a model file whose
    names to use; default ``class 1``...).  With ``out``
    (``.csv``) the table is written too.  Returns one
    :class:`~.core.evaluation.Score` per case and class.
    """
    from .core.predict.evaluation import score, write_csv

    labels = _class_names(class_names)
    pairs = _evaluation_pairs(pred, truth)
    if names is not None:
        if len(names) != len(pairs):
            raise WeaksegError(
                f"Give one name per prediction ({len(pairs)} predictions, "
                f"{len(names)} names)."
            )
        pairs = [(p, t, str(n)) for (p, t, _), n in zip(pairs, names)]
    if out is not None:
        if Path(out).suffix.lower() != ".csv":
            raise WeaksegError(f"The table {out} must end in .csv.")
        ins = [x for pair in pairs for x in pair[:2]]
        check_outputs({"out": (out, TABLE)}, ins)
    rows = []
    for p, t, case in pairs:
        ref = as_volume(t, name="reference")
        pv = as_volume(p, like=ref, name=case)
        require_3d(pv.data, case)
        require_same_grid(
            ref.shape, pv.shape, ref.geometry, pv.geometry, ("reference", case)
        )
        rows += score(
            np.asarray(pv.data),
            np.asarray(ref.data),
            ref.geometry.spacing,
            ignore_label,
            case,
            labels,
        )
    if out is not None:
        write_csv(out, rows)
    return rows
