"""A 3D classifier from image-level labels (crops with a class).

The network is :class:`~.milnet.LocalClassifier` (local evidence, top-k
pooled: its map localises; ``pooling="topk"``, the default) or
:class:`~.networks.EncoderClassifier` (U-Net encoder + GAP + linear, whose
weights transfer from U-Nets and pretrained encoders; ``pooling="gap"``),
trained on :func:`~.engine.run` like the U-Net (same events, stop
flag, budget, OOM guard and atomic checkpoints).  Crops come from a CSV
with the header ``image,z0,y0,x0,z1,y1,x1,class`` (box columns empty = the
whole image; voxel indices, end exclusive) or from napari layers and
shapes.
"""

from __future__ import annotations

import csv
import math
import os
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..base import defaults
from ..base.device import resolve_device, seeded
from ..base.errors import WeaksegError
from ..base.events import Finished, Started
from ..nn.models import read_model_file, save_model, transfer_weights
from ..nn.networks import ModelConfig, build_network, encoder_prefixes
from ..nn.planning import filter_widths, plan_network
from ..train import engine
from ..train.budget import Budget
from ..train.engine import ACCURACY, Task

CROP_FIELDS = ("image", "z0", "y0", "x0", "z1", "y1", "x1", "class")


@dataclass
class ClassifierConfig:
    """Settings of one classifier run (its pooling, crops and initial
    weights are :func:`iter_train_classifier`'s arguments)."""

    #: steps, minutes, patience, validations, seed and device
    budget: Budget = field(default_factory=Budget)
    batch_size: int = defaults.BATCH_SIZE
    #: the patch drawn from a crop (None: the crops' median size, 8..48)
    patch_size: list[int] | None = None
    #: the U-Net's rate; the classifier takes a third of it (top-k) or a
    #: tenth (the encoder classifier, whose blocks may be pretrained)
    learning_rate: float = defaults.LEARNING_RATE
    depth: int = defaults.DEPTH
    base_filters: int = defaults.BASE_FILTERS
    #: stored in the model file (see :mod:`~.recipe`)
    recipe: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Crop:
    """A region of an image (``box`` None = all of it) and its class."""

    image: str
    box: tuple[int, int, int, int, int, int] | None
    cls: int


def read_crops(path: str | os.PathLike) -> list[Crop]:
    """Crops from a CSV; relative image paths are relative to the CSV."""
    p = Path(path)
    if not p.is_file():
        raise WeaksegError(f"No crops file at {p}.")
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [
                f for f in CROP_FIELDS if f not in (reader.fieldnames or [])
            ]
            if missing:
                raise WeaksegError(
                    f"{p.name} lacks the column '{missing[0]}'; the header "
                    f"is {','.join(CROP_FIELDS)}."
                )
            rows = list(reader)
    except UnicodeDecodeError:
        raise WeaksegError(f"{p.name} is not UTF-8 text (a CSV).") from None
    crops = []
    for i, r in enumerate(rows, start=2):
        if any(r.get(k) is None for k in ("image", "class")):
            raise WeaksegError(
                f"Line {i} of {p.name} is short; it needs "
                f"{','.join(CROP_FIELDS)}."
            )
        coords = [(r.get(k) or "").strip() for k in CROP_FIELDS[1:7]]
        try:
            box = None if not any(coords) else tuple(int(c) for c in coords)
            cls = int(r["class"])
        except ValueError:
            raise WeaksegError(
                f"Line {i} of {p.name} has a box or class that is not an "
                "integer (leave all six box columns empty for a whole image)."
            ) from None
        if not 0 <= cls <= 254:
            raise WeaksegError(
                f"Line {i} of {p.name} has class {cls}; classes are 0..254."
            )
        img = Path(r["image"])
        crops.append(
            Crop(str(img if img.is_absolute() else p.parent / img), box, cls)
        )
    if not crops:
        raise WeaksegError(f"{p.name} holds no crops.")
    return crops


def cut(
    image: np.ndarray, box: Sequence[int] | None, margin: int = 0
) -> np.ndarray:
    """The crop of ``image`` with ``margin`` voxels of its surroundings on
    every side (mirrored where they would leave the image); a box must lie
    inside and be non-empty."""
    if box is None:
        return _reflect(image, [(margin, margin)] * 3)
    lo, hi = box[:3], box[3:]
    if (
        any(h <= a for a, h in zip(lo, hi))
        or any(a < 0 for a in lo)
        or any(h > s for h, s in zip(hi, image.shape))
    ):
        raise WeaksegError(
            f"Crop {tuple(box)} is empty or outside the image of shape "
            f"{image.shape}."
        )
    a = [max(0, v - margin) for v in lo]
    b = [min(n, v + margin) for v, n in zip(hi, image.shape)]
    out = image[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
    pad = [
        (margin - (v - x), margin - (y - w))
        for v, x, w, y in zip(lo, a, hi, b)
    ]
    return _reflect(out, pad)


def crop_margin(pooling: str) -> int:
    """Voxels of surroundings a crop needs for this classifier: the local
    classifier's context (its map at a crop's face reads real
    neighbours); none for the encoder classifier, which sees only the
    crop."""
    from ..nn.milnet import DILATIONS

    return int(sum(DILATIONS)) if pooling == "topk" else 0


def _reflect(a: np.ndarray, pad: Sequence[tuple[int, int]]) -> np.ndarray:
    if not any(x or y for x, y in pad):
        return a
    small = any(n <= max(p) for n, p in zip(a.shape, pad))
    return np.pad(a, pad, mode="edge" if small else "reflect")


def _reframe(crop: np.ndarray, have: int, want: int) -> np.ndarray:
    """``crop`` carrying ``have`` voxels of margin, re-cut or mirrored to
    carry ``want``."""
    if have > want:
        d = have - want
        return crop[d:-d, d:-d, d:-d]
    return _reflect(crop, [(want - have, want - have)] * 3)


def _pad_to(crop: np.ndarray, patch: Sequence[int]) -> np.ndarray:
    """``crop`` padded (edge values) to at least ``patch`` on every axis."""
    pad = [(0, max(0, p - s)) for p, s in zip(patch, crop.shape)]
    return np.pad(crop, pad, mode="edge") if any(a for _, a in pad) else crop


def _random_patch(
    crop: np.ndarray, patch: Sequence[int], rng: np.random.Generator
) -> np.ndarray:
    crop = _pad_to(crop, patch)
    start = [
        int(rng.integers(0, s - p + 1)) for s, p in zip(crop.shape, patch)
    ]
    out = crop[tuple(slice(a, a + p) for a, p in zip(start, patch))]
    for axis in range(3):
        if rng.random() < 0.5:
            out = np.flip(out, axis)
    return np.ascontiguousarray(out)


class ClassifierTask(Task):
    """Cross-entropy on class-balanced random patches; accuracy ↑ on the
    centre patch of every crop.  Crops carry ``margin`` voxels of
    surroundings; the local classifier reads exactly its context of them
    around each patch, the encoder classifier none."""

    metric = ACCURACY

    def __init__(
        self,
        crops: Sequence[np.ndarray],
        classes: Sequence[int],
        model: torch.nn.Module,
        mconf: ModelConfig,
        cfg: ClassifierConfig,
        device: torch.device,
        margin: int = 0,
    ) -> None:
        local = mconf.pooling == "topk"
        self.context = model.context if local else 0
        self.crops = [_reframe(c, margin, self.context) for c in crops]
        self.classes, self.mconf = list(classes), mconf
        self.patch = [p + 2 * self.context for p in mconf.patch_size]
        self.cfg, self.device = cfg, device
        self.model = model.to(device)
        # the encoder classifier fine-tunes pretrained blocks: a tenth of
        # the U-Net's rate; the small local one learns from scratch
        self.optimiser = torch.optim.AdamW(
            model.parameters(), lr=cfg.learning_rate / (3 if local else 10)
        )
        self.oom_hint = f"patch {self.patch} and batch {cfg.batch_size}"
        self.rng = np.random.default_rng(cfg.budget.seed)
        self.present = sorted(set(self.classes))
        self.by_class = {
            c: [i for i, k in enumerate(self.classes) if k == c]
            for c in self.present
        }
        self.labels = torch.as_tensor(self.classes)

    def loss(self) -> torch.Tensor:
        rng, present = self.rng, self.present
        idx = [
            int(rng.choice(self.by_class[present[rng.integers(len(present))]]))
            for _ in range(self.cfg.batch_size)
        ]
        x = torch.as_tensor(
            np.stack(
                [_random_patch(self.crops[i], self.patch, rng) for i in idx]
            )
        )
        logits = self.logits(x[:, None].to(self.device)).float()
        return F.cross_entropy(logits, self.labels[idx].to(self.device))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.context:
            return self.model(x, padded=True)
        return self.model(x)

    def validate(self) -> tuple[float]:
        self.model.eval()
        with torch.no_grad():
            hits = sum(
                int(self.logits(self._centre(crop)).argmax(1).item() == c)
                for crop, c in zip(self.crops, self.classes)
            )
        self.model.train()
        return (hits / len(self.crops),)

    def _centre(self, crop: np.ndarray) -> torch.Tensor:
        crop = _pad_to(crop, self.patch)
        start = [(s - p) // 2 for s, p in zip(crop.shape, self.patch)]
        centre = crop[
            tuple(slice(a, a + p) for a, p in zip(start, self.patch))
        ]
        return torch.as_tensor(np.ascontiguousarray(centre))[None, None].to(
            self.device
        )

    def save(self, path: Path) -> None:
        save_model(path, self.model, self.mconf)


def iter_train_classifier(
    crops: Sequence[np.ndarray],
    classes: Sequence[int],
    out: str | Path,
    config: ClassifierConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    init: str | Path | None = None,
    stop: threading.Event | None = None,
    pooling: str = defaults.POOLINGS[0],
    margin: int = 0,
) -> Generator[Any, None, Finished]:
    """Train on normalised crops; yields events, returns :class:`Finished`.

    Each crop carries ``margin`` voxels of its surroundings on every side
    (:func:`cut` with :func:`crop_margin`); without them the local
    classifier mirrors the crop at its faces.

    Validation reports the accuracy on centre patches of the crops; ``out``
    holds the most accurate weights (see :mod:`~.engine` for the rules).
    """
    cfg = config or ClassifierConfig()
    plan = cfg.budget.plan()
    plan.check()
    present = sorted({int(c) for c in classes})
    if len(crops) != len(classes) or not crops:
        raise WeaksegError("Give one class per crop.")
    if len(present) < 2:
        raise WeaksegError(
            f"Every crop has class {present[0]}; a classifier needs crops of "
            "at least two classes."
        )
    if pooling not in defaults.POOLINGS:
        raise WeaksegError(
            f"Unknown pooling '{pooling}'; use topk (maps that localise) "
            "or gap (U-Net encoder, transfers pretrained weights)."
        )
    device = resolve_device(cfg.budget.device)
    median = [
        int(np.median([c.shape[a] - 2 * margin for c in crops]))
        for a in range(3)
    ]
    patch = cfg.patch_size or [min(48, max(8, m)) for m in median]
    if pooling == "topk":
        mconf = _local_config(patch, spacing, present, cfg.base_filters)
    else:
        mconf = _encoder_config(patch, spacing, present, cfg)
    mconf.recipe = dict(cfg.recipe)
    with seeded(cfg.budget.seed):
        model = build_network(mconf)
    transferred = 0
    if init is not None:
        tensors, src = read_model_file(init)
        if pooling == "topk" and src.pooling != "topk":
            raise WeaksegError(
                f"{Path(init).name} is not a top-k classifier; only one "
                "can initialise it (use --pooling gap to start from a "
                "U-Net or a pretrained encoder)."
            )
        if src.kind != "classifier":
            prefixes = encoder_prefixes(model)
            tensors = {
                k: v for k, v in tensors.items() if k.startswith(prefixes)
            }
        transferred = transfer_weights(model, tensors, Path(init).name)
    task = ClassifierTask(crops, classes, model, mconf, cfg, device, margin)
    started = Started(
        cfg.budget.steps,
        str(device),
        tuple(mconf.patch_size),
        len(crops),
        len(crops),
        False,
        transferred,
    )
    return (yield from engine.run(task, plan, out, started, stop))


def _class_names(present: Sequence[int]) -> list[str]:
    return [f"class {c}" for c in range(max(present) + 1)]


def _local_config(
    patch: list[int],
    spacing: Sequence[float],
    present: Sequence[int],
    base_filters: int,
) -> ModelConfig:
    from ..nn.milnet import DILATIONS, TOPK

    return ModelConfig(
        kind="classifier",
        pooling="topk",
        num_classes=max(present) + 1,
        class_names=_class_names(present),
        filters=[base_filters] * len(DILATIONS),
        dilations=list(DILATIONS),
        topk=TOPK,
        patch_size=[max(2, p) for p in patch],
        spacing=list(spacing),
    )


def _encoder_config(
    patch: list[int],
    spacing: Sequence[float],
    present: Sequence[int],
    cfg: ClassifierConfig,
) -> ModelConfig:
    kernels, strides = plan_network(patch, spacing, cfg.depth)
    factor = [math.prod(s[a] for s in strides) for a in range(3)]
    # At least two voxels per axis reach the deepest block (instance norm
    # needs more than one); smaller crops are padded to the patch.
    patch = [max(2 * f, (p // f) * f) for p, f in zip(patch, factor)]
    return ModelConfig(
        kind="classifier",
        num_classes=max(present) + 1,
        class_names=_class_names(present),
        filters=filter_widths(cfg.base_filters, cfg.depth),
        kernel_sizes=kernels,
        strides=strides,
        patch_size=patch,
        spacing=list(spacing),
    )
