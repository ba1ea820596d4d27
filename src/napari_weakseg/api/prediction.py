"""Prediction: one volume, a batch, one slice; uncertainty and the next
slice to annotate."""

from __future__ import annotations

import numbers
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.base import defaults
from ..core.base.errors import WeaksegError
from ..core.base.events import Progress
from ..core.data.outputs import (
    VOLUME,
    batch_targets,
    check_outputs,
)
from ..core.data.validate import require_3d
from ..core.data.volumes import Volume, write_volume
from ._common import (
    Events,
    PathLike,
    VolumeLike,
    _as_list,
    _blocking,
    _checked,
    _finite,
    _label,
    _require_sparse_labels,
    as_volume,
)
from .models import load_model


def _tta(config: Any, tta: bool) -> Events:
    """Test-time flips along the axes the model was trained mirrored on
    (every axis for a file that does not say); a Notice when it was
    mirrored along none."""
    from ..core.base.events import Notice

    if not tta or config.mirrored is None:
        return bool(tta)
    if not config.mirrored:
        yield Notice(
            "Test-time flips skipped: the model was trained without "
            "mirroring, so a flipped image is not what it learnt."
        )
    return tuple(config.mirrored)


def _drift(
    config: Any, image: VolumeLike, vol: Volume, name: str | None = None
) -> Events:
    """A :class:`~.core.events.Notice` when ``image`` is unlike the
    model's training data (spacing only when the image has a geometry of
    its own: a file or a Volume)."""
    from ..core.base.events import Notice
    from ..core.data.drift import differences

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
    overlap: float = defaults.OVERLAP,
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
    from ..core.base.device import resolve_device
    from ..core.predict import sliding as inference
    from ..core.predict import tiled

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
    tta = yield from _tta(config, tta)
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
    from ..core.data.volumes import is_collection, volume_files

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
    overlap: float = defaults.OVERLAP,
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
    from ..core.base.device import resolve_device
    from ..core.predict import tiled

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
    from ..core.base.errors import Cancelled
    from ..core.base.events import Skipped

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
    from ..core.data.normalise import apply_normalisation, intensity_stats
    from ..core.predict.sliding import predict_slice as _slice

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
    from ..core.base.metrics import entropy

    probs = np.asarray(as_volume(probabilities).data)
    if probs.ndim != 4:
        raise WeaksegError(
            f"Probabilities need 4 dimensions (classes, Z, Y, X); got "
            f"{probs.ndim}."
        )
    return entropy(probs)


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
    from ..core.data.sparse import AXES, from_sparse_labels, suggest_next_slice

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
