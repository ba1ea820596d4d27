"""Image-level labels to a segmentation: seed, expand, constrain.

After Kolesnikov & Lampert (SEC, 2016), in rounds like the box trainer's:

* **seed**: a class map's confident voxels -- at or above its Otsu
  threshold the class, at or below ``band`` x that background, the rest
  ignored (:func:`~.cam.pseudo_labels`);
* **constrain to the image labels**: voxels of crops labelled absent
  (class 0) are background in every round, whatever the map says;
* **expand**: a U-Net trains on those labels with the masked loss (it
  fills the ignored band from what the seeds look like) plus, when crops
  labelled present are given, SEC's expansion loss: global weighted rank
  pooling of the class probability over each present crop
  (:mod:`~.expansion`), which asks the network to cover the object in
  every crop that holds it, not only where the map was confident; its
  probabilities are refined by the dense CRF along intensity edges, and
  the refined labels -- kept only where the CRF is confident, the rest
  ignored again, the seeds' object voxels always kept (SEC's seeding loss
  holds in every round, so the object cannot vanish) -- are the next
  round's targets (warm start).

Rounds stop after ``rounds`` or when the labels change in less than
``tolerance`` of the voxels.  The result is dense: ignore becomes
background.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.defaults import BOX_ROUNDS, CAM_BAND, IGNORE
from ..base.device import resolve_device
from ..base.errors import WeaksegError
from ..base.events import Round
from ..nn.expansion import DECAY, Expansion
from ..train.unet import TrainConfig
from .box2mask import round_config, train_round
from .cam import pseudo_labels

Box = tuple[int, int, int, int, int, int]


def absent_mask(shape: Sequence[int], absent: Sequence[Box]) -> np.ndarray:
    """Voxels inside any crop labelled absent (boxes clipped to ``shape``)."""
    out = np.zeros(tuple(shape), bool)
    for b in absent:
        lo = [max(0, int(a)) for a in b[:3]]
        hi = [min(int(s), int(h)) for s, h in zip(shape, b[3:])]
        if any(h <= a for a, h in zip(lo, hi)):
            raise WeaksegError(
                f"Crop {tuple(b)} lies outside the image of shape "
                f"{tuple(shape)}."
            )
        out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return out


def seeds(
    cam_map: np.ndarray,
    class_index: int = 1,
    band: float = CAM_BAND,
    absent: np.ndarray | None = None,
) -> np.ndarray:
    """Round-0 targets: the map's confident voxels, absent crops as 0."""
    if cam_map.ndim != 3:
        raise WeaksegError(
            f"The map must be a 3D volume, got shape {cam_map.shape}."
        )
    out = pseudo_labels(cam_map, class_index, "otsu", band, IGNORE)
    if absent is not None:
        out[absent] = 0
    if not (out == class_index).any():
        raise WeaksegError(
            f"The map marks no voxel as class {class_index} outside the "
            "absent crops; there is nothing to grow a segmentation from."
        )
    return out


def iter_cam_to_masks(
    image: np.ndarray,
    cam_map: np.ndarray,
    out: str | Path,
    class_index: int = 1,
    rounds: int = BOX_ROUNDS,
    config: TrainConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    absent: Sequence[Box] = (),
    band: float = CAM_BAND,
    crf: bool = True,
    confidence: float = 0.8,
    tolerance: float = 0.002,
    stop: threading.Event | None = None,
    present: Sequence[Box] = (),
    decay: float = DECAY,
    **settings: Any,
) -> Generator[Any, None, np.ndarray]:
    """Yield training/progress/:class:`Round` events; return the labels.

    ``cam_map`` is a raw class map on the image's grid (any scale);
    ``absent`` the boxes of crops labelled absent, ``present`` those
    labelled as holding the class (the expansion loss, GWRP with
    ``decay``, covers them; none: no expansion term).  Round 0 trains on
    the seeds; each later round trains (warm) on the previous round's
    CRF-refined, constrained labels.  Every round trains with
    :func:`~.box2mask.round_config` of ``config`` and ``settings``
    (:class:`~.unet.TrainConfig` fields: ``budget``, ``base_filters``,
    ``recipe``, ...).
    """
    if cam_map.shape != image.shape:
        raise WeaksegError(
            f"The map's shape {cam_map.shape} differs from the image's "
            f"{image.shape}; compute the map on this image."
        )
    if rounds < 1:
        raise WeaksegError("Give at least one round.")
    outside = absent_mask(image.shape, absent) if len(absent) else None
    grow = (
        Expansion(tuple(present), class_index, decay) if len(present) else None
    )
    first = seeds(np.asarray(cam_map, np.float32), class_index, band, outside)
    targets = first
    cfg = round_config(config, **settings)
    device = resolve_device(cfg.budget.device)
    previous: str | Path | None = None
    for r in range(rounds):
        fin, labels, probs = yield from train_round(
            image, targets, out, cfg, spacing, previous, crf, stop, grow
        )
        previous = out
        if outside is not None:
            labels[outside] = 0
        nxt = np.where(probs.max(axis=0) >= confidence, labels, IGNORE)
        nxt[first == class_index] = class_index
        if outside is not None:
            nxt[outside] = 0
        nxt = nxt.astype(np.uint8)
        changed = float(np.mean(nxt != targets))
        yield Round(r + 1, rounds, labels, changed)
        targets = nxt
        if fin.stopped or changed < tolerance:
            break
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return labels.astype(np.uint8)
