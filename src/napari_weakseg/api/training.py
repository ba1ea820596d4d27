"""Training the U-Net from sparse labels (optionally with an unlabelled
pool) and self-supervised pretraining."""

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
    check_outputs,
)
from ._common import (
    Events,
    PathLike,
    VolumeLike,
    _as_list,
    _blocking,
    _checked,
    _label,
    _pairs,
    as_volume,
)


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
    seed: int = defaults.SEED,
    class_names: Sequence[str] | str = (),
    unlabelled: PathLike | Sequence[Any] | None = None,
    semi: str | None = None,
    semi_weight: float = defaults.SEMI_WEIGHT,
    stop: threading.Event | None = None,
) -> Events:
    """Train a 3D U-Net on sparse labels and write the model to ``out``.

    ``labels`` hold 0 = background, 1..K = classes and ``ignore_label``
    for unlabelled voxels.  ``augment``: ``"auto"`` (the default) plans
    it from the labels: it mirrors only the axes along which no two
    look-alike classes are told apart by where they lie, and where that
    leaves an axis unmirrored adds small turns, scaling and intensity
    jitter (the ``Started`` event says what it chose); ``"flips"``
    mirrors patches on every axis; ``"none"`` mirrors nothing;
    ``"affine"`` mirrors nothing but turns (up to 15°), scales and
    jitters the intensity of patches; ``"full"`` adds 90° turns,
    intensity and noise.  ``patience``: end when validation has not
    improved for that many steps (an automatic budget; ``steps`` and
    ``minutes`` are then ceilings).  Yields steps, validations and
    checkpoints; returns :class:`~.core.events.Finished`.
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
    from ..core.base import classes, recipe
    from ..core.train import unet as training
    from ..core.train.budget import Budget

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
        budget=Budget(
            steps=steps,
            minutes=minutes,
            patience=patience,
            seed=seed,
            device=device,
        ),
        batch_size=batch_size,
        patch_size=list(patch_size) if patch_size else None,
        base_filters=base_filters,
        learning_rate=learning_rate,
        augment=augment,
        ignore_label=ignore_label,
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
        from ..core.methods.selftrain import iter_self_train

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
    from ..core.train.semi import SemiConfig

    cfg = SemiConfig(method=method or defaults.SEMI_METHOD, weight=weight)
    cfg.check()
    return cfg


train = _blocking(iter_train)


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
    seed: int = defaults.SEED,
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
    from ..core.base import recipe
    from ..core.methods import pretraining
    from ..core.methods.ssl import parse_tasks
    from ..core.train.budget import Budget

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
        budget=Budget(steps=steps, minutes=minutes, seed=seed, device=device),
        tasks=parse_tasks(tasks),
        patch=patch,
        batch_size=batch_size,
        base_filters=base_filters,
        network=network,
        recipe=made,
    )
    if items and all(isinstance(v, str | os.PathLike) for v in items):
        from ..core.data.pool import VolumePool

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
