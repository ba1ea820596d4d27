"""Self-training with unlabelled volumes (pseudo-labels, two rounds).

Round 1 trains on the sparse labels alone (the teacher).  Its prediction
then labels every unlabelled volume of the pool and the unannotated
voxels of the annotated volumes wherever it is confident (softmax
probability at least ``threshold``; the rest stays unlabelled).  Round 2
(the student) starts from the teacher's weights and trains for the same
budget on the labels and the pseudo-labels together, under the run's
augmentation: the "noisy student" of Xie et al. (2020), the offline
pseudo-labelling that Bai et al. (2017) and nnU-Net users apply to
unlabelled scans.  Unlike a consistency term it never pulls the student
towards an untrained teacher, which is why it pays at a few hundred
steps where mean teacher loses (``benchmarks/bench_unlabelled.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..base import defaults
from ..base.errors import WeaksegError
from ..base.events import Finished, Notice, Progress
from ..data.lazy import is_lazy

#: confidence a voxel needs to become a pseudo-label
THRESHOLD = 0.9


def _arrays(unlabelled: Any) -> bool:
    items = unlabelled if isinstance(unlabelled, list | tuple) else []
    return bool(items) and not isinstance(items[0], str | Path)


def pool_volumes(unlabelled: Any, patch: Sequence[int]):
    """``(count, iterator of raw float32 volumes, pool or None)``; the
    pool (files) reports skipped files through ``drain``."""
    from ..data.pool import VolumePool

    if unlabelled is None:
        return 0, iter(()), None
    if _arrays(unlabelled):
        vols = [
            VolumePool._check(np.asarray(a), str(k))
            for k, a in enumerate(unlabelled, 1)
        ]
        return len(vols), iter(vols), None
    pool = VolumePool(unlabelled, patch, cache=1)
    return len(pool.paths), pool.raw(), pool


def pseudo_label(
    model, mconf, image: np.ndarray, device, threshold: float, ignore: int
) -> tuple[np.ndarray, float]:
    """The teacher's confident labels of ``image`` (``ignore`` elsewhere)
    and the share of voxels kept."""
    from ..predict.sliding import iter_predict

    gen = iter_predict(
        model,
        image,
        mconf.patch_size,
        mconf.normalisation,
        device,
        on_progress=lambda _p: None,
    )
    try:
        while True:
            next(gen)
    except StopIteration as done:
        labels, probs = done.value
    keep = probs.max(0) >= threshold
    out = np.where(keep, labels, ignore).astype(np.uint8)
    return out, float(keep.mean())


def iter_self_train(
    images: Sequence[Any],
    labels: Sequence[Any],
    out: str | Path,
    config,
    *,
    unlabelled: Any,
    threshold: float = THRESHOLD,
    stop: threading.Event | None = None,
    **train_kw: Any,
) -> Generator[Any, None, Finished]:
    """Teacher, pseudo-labels, student; yields the events of both rounds
    and the pseudo-labelling progress; returns the student's
    :class:`~.events.Finished` (the teacher's when stopped in round 1).
    ``out`` holds the teacher after round 1 and the student at the end."""
    from ..nn.models import load_model
    from ..train.unet import iter_train

    ignore = config.ignore_label
    init = train_kw.pop("init", None)
    teacher = yield from iter_train(
        images, labels, out, config, init=init, stop=stop, **train_kw
    )
    if teacher.stopped:
        return teacher
    model, mconf = load_model(out, "cpu")
    from ..base.device import resolve_device

    device = resolve_device(config.budget.device)
    model = model.to(device)
    count, volumes, pool = pool_volumes(unlabelled, mconf.patch_size)
    own = [
        k
        for k, im in enumerate(images)
        if not is_lazy(im, defaults.LARGE_VOXELS)
    ]
    total = len(own) + count
    new_images, new_labels = list(images), list(labels)
    kept, done, budget = [], 0, defaults.SELFTRAIN_VOXELS
    for k in own:  # unannotated voxels of the annotated volumes
        lab = np.asarray(labels[k])
        guess, _ = pseudo_label(
            model, mconf, np.asarray(images[k]), device, threshold, ignore
        )
        new_labels[k] = np.where(lab == ignore, guess, lab).astype(np.uint8)
        kept.append(float((new_labels[k] != ignore).mean()))
        done += 1
        yield Progress(done, total, "pseudo-labelling")
    used = 0
    for vol in volumes:
        if stop is not None and stop.is_set():
            return teacher
        if used + vol.size > budget:
            yield Notice(
                f"Self-training used {len(new_images) - len(images)} of "
                f"{count} unlabelled volumes: the rest would pass "
                f"{budget:,} voxels in memory."
            )
            break
        guess, share = pseudo_label(
            model, mconf, vol, device, threshold, ignore
        )
        used += vol.size
        new_images.append(vol)
        new_labels.append(guess)
        kept.append(share)
        done += 1
        yield Progress(done, total, "pseudo-labelling")
        if pool is not None:
            yield from pool.drain()
    if pool is not None:
        yield from pool.drain()
    yield Progress(total, total, "pseudo-labelling")
    if len(new_images) == len(images) and count:
        raise WeaksegError("No unlabelled volume could be pseudo-labelled.")
    del model
    names = train_kw.pop("names", None)
    if names:
        names = list(names) + [
            f"unlabelled volume {k}"
            for k in range(1, len(new_images) - len(images) + 1)
        ]
    student = yield from iter_train(
        new_images,
        new_labels,
        out,
        config,
        init=out,
        stop=stop,
        names=names,
        **train_kw,
    )
    return student


__all__ = ["THRESHOLD", "iter_self_train", "pseudo_label", "pool_volumes"]
