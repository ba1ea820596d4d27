"""Boxes to masks by recursive training with suppression ("Simple Does It").

Round 0 trains on Box^i (or GrabCut-like) targets with the masked loss;
each later round trains on the previous prediction after suppression:

* ``outside_boxes``: voxels outside every box become background;
* ``wrong_class``: a class no covering box has becomes background;
* ``off_core``: connected components that miss their box's core go;
* ``min_fill``: an object whose mask holds less than this fraction of its
  initial target's object voxels is reset to that target (relative, so a
  thin object filling 9 % of its box is judged against what its GrabCut-like
  target found, and a Box^i object against its core: 0.5 x 20 % of the box);
* ``crf``: dense-CRF refinement of the probabilities along intensity edges.

Each rule can be switched off for ablations.  Rounds stop when the labels
change in less than ``tolerance`` of the box voxels and no object was
reset, or after ``rounds``.
The returned masks are dense: an object still reset to its initial target
after the last round keeps that target's object voxels (ignore becomes
background).
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..base import defaults
from ..base.defaults import IGNORE
from ..base.device import resolve_device
from ..base.errors import Cancelled
from ..base.events import Round
from ..data.boxes import Box, check_boxes
from ..data.normalise import normalise
from ..nn.expansion import Expansion
from ..nn.models import load_model
from ..predict.sliding import iter_predict
from ..train.unet import TrainConfig, iter_train
from .box_targets import (
    allowed_classes,
    box_targets,
    core_mask,
    grabcut_targets,
)
from .crf import crf_refine


@dataclass(frozen=True)
class Rules:
    outside_boxes: bool = True
    wrong_class: bool = True
    off_core: bool = True
    min_fill: float = defaults.MIN_FILL
    crf: bool = True


def suppress(
    labels: np.ndarray,
    boxes: Sequence[Box],
    initial: np.ndarray,
    rules: Rules = Rules(),
    core_fraction: float = defaults.CORE_FRACTION,
    resets: list[int] | None = None,
) -> np.ndarray:
    """Apply the suppression rules to a label volume (returns a copy).

    The indices of boxes reset to their initial target are appended to
    ``resets`` when a list is given.
    """
    out = np.array(labels, np.uint8, copy=True)
    if rules.outside_boxes:
        inside = np.zeros(out.shape, bool)
        for b in boxes:
            inside[b.slices] = True
        out[~inside] = 0
    if rules.wrong_class:
        allowed = allowed_classes(boxes, out.shape)
        fg = out > 0
        ok = (allowed[fg] >> out[fg].astype(np.int64)) & 1
        vals = out[fg]
        vals[ok == 0] = 0
        out[fg] = vals
    for i, b in enumerate(boxes):
        region = out[b.slices]
        obj = region == b.cls
        if rules.off_core and obj.any():
            comp, n = ndimage.label(obj)
            hit = np.unique(comp[core_mask(b, core_fraction) & obj])
            region[obj & ~np.isin(comp, hit[hit > 0])] = 0
        expected = int((initial[b.slices] == b.cls).sum())
        if (
            rules.min_fill
            and (region == b.cls).sum() < rules.min_fill * expected
        ):
            region[...] = initial[b.slices]
            if resets is not None:
                resets.append(i)
    return out


def train_round(
    image: np.ndarray,
    targets: np.ndarray,
    out: str | Path,
    cfg: TrainConfig,
    spacing: Sequence[float],
    init: str | Path | None,
    crf: bool,
    stop: threading.Event | None,
    expansion: Expansion | None = None,
) -> Generator[Any, None, tuple[Any, np.ndarray, np.ndarray]]:
    """One round of the recursive trainers: train on ``targets`` (warm
    from ``init``, with ``expansion``'s loss when given), predict the
    image, CRF-refine; returns ``(Finished, labels, probabilities)``."""
    device = resolve_device(cfg.budget.device)
    fin = yield from iter_train(
        [image], [targets], out, cfg, spacing, init, stop, expansion
    )
    if fin.steps == 0:  # stopped before its first step: no model to use
        raise Cancelled("stopped before the round's first step")
    model, mconf = load_model(out, device)
    labels, probs = yield from iter_predict(
        model,
        image,
        mconf.patch_size,
        mconf.normalisation,
        device,
        stop=stop,
    )
    if crf:
        probs = crf_refine(image, probs, spacing, device=device)
        labels = np.argmax(probs, axis=0).astype(np.uint8)
    return fin, labels, probs


def round_config(
    config: TrainConfig | None = None, **settings: Any
) -> TrainConfig:
    """The training settings of recursive rounds (boxes to masks, CAM to
    segmentation): ``config`` (or the defaults with the cross-entropy
    weight of :data:`~.defaults.ROUND_CE_WEIGHT`) with ``settings`` on
    top and nothing held back."""
    base = config or TrainConfig(ce_weight=defaults.ROUND_CE_WEIGHT)
    return replace(base, **settings, hold_out=False)


def iter_boxes_to_masks(
    image: np.ndarray,
    boxes: Sequence[Box],
    out: str | Path,
    rounds: int = defaults.BOX_ROUNDS,
    config: TrainConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    rules: Rules = Rules(),
    initial: str = defaults.BOX_INITIALS[0],
    core_fraction: float = defaults.CORE_FRACTION,
    tolerance: float = 0.01,
    init: str | Path | None = None,
    stop: threading.Event | None = None,
    **settings: Any,
) -> Generator[Any, None, np.ndarray]:
    """Yield training/progress/:class:`Round` events; return final labels.

    Every round trains with :func:`round_config` of ``config`` and
    ``settings`` (:class:`~.unet.TrainConfig` fields: ``budget``,
    ``base_filters``, ``recipe``, ...).
    """
    boxes = check_boxes(boxes, image.shape)
    cfg = round_config(config, **settings)
    device = resolve_device(cfg.budget.device)
    if initial == "grabcut":
        first = grabcut_targets(
            normalise(image), boxes, spacing, core_fraction
        )
    else:
        first = box_targets(boxes, image.shape, core_fraction)
    in_boxes = np.zeros(image.shape, bool)
    for b in boxes:
        in_boxes[b.slices] = True
    targets, labels = first, first
    previous: str | Path | None = init
    for r in range(rounds):
        fin, labels, _ = yield from train_round(
            image, targets, out, cfg, spacing, previous, rules.crf, stop
        )
        previous = out
        reset: list[int] = []
        labels = suppress(labels, boxes, first, rules, core_fraction, reset)
        changed = float(np.mean(labels[in_boxes] != targets[in_boxes]))
        yield Round(r + 1, rounds, labels, changed)
        targets = labels
        # a reset object has not converged: its next round trains further
        # (warm start) on the same target instead of stopping here
        if fin.stopped or (changed < tolerance and not reset):
            break
    if device.type == "cuda":
        torch.cuda.empty_cache()
    # Final masks are dense: an object still reset to its initial target
    # keeps that target's object voxels; ignore becomes background.
    return np.where(labels == IGNORE, 0, labels).astype(np.uint8)
