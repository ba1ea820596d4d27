"""A 3D classifier from image-level labels (crops with a class).

The network is :class:`~.models.EncoderClassifier` (U-Net encoder + GAP +
linear), trained with the same events, stop flag and atomic checkpoints as
the U-Net.  Crops come from a CSV with the header
``image,z0,y0,x0,z1,y1,x1,class`` (box columns empty = the whole image;
voxel indices, end exclusive) or from napari layers and shapes.
"""

from __future__ import annotations

import csv
import math
import os
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .device import autocast_dtype, resolve_device
from .errors import WeaksegError
from .events import Finished, Saved, Started, Step, Validation
from .models import (
    ModelConfig,
    build_network,
    filter_widths,
    plan_network,
    read_model_file,
    save_model,
    transfer_weights,
)
from .training import TrainConfig, last_path, optimiser_step

CROP_FIELDS = ("image", "z0", "y0", "x0", "z1", "y1", "x1", "class")


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


def cut(image: np.ndarray, box: Sequence[int] | None) -> np.ndarray:
    """The crop of ``image``; a box must lie inside and be non-empty."""
    if box is None:
        return image
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
    return image[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]


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


def iter_train_classifier(
    crops: Sequence[np.ndarray],
    classes: Sequence[int],
    out: str | Path,
    config: TrainConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    init: str | Path | None = None,
    stop: threading.Event | None = None,
) -> Generator[Any, None, Finished]:
    """Train on normalised crops; yields events, returns :class:`Finished`.

    Validation reports the accuracy on centre patches of the crops.
    """
    cfg = config or TrainConfig()
    present = sorted({int(c) for c in classes})
    if len(crops) != len(classes) or not crops:
        raise WeaksegError("Give one class per crop.")
    if len(present) < 2:
        raise WeaksegError(
            f"Every crop has class {present[0]}; a classifier needs crops of "
            "at least two classes."
        )
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    median = [int(np.median([c.shape[a] for c in crops])) for a in range(3)]
    patch = cfg.patch_size or [min(48, max(8, m)) for m in median]
    kernels, strides = plan_network(patch, spacing, cfg.depth)
    factor = [math.prod(s[a] for s in strides) for a in range(3)]
    # At least two voxels per axis reach the deepest block (instance norm
    # needs more than one); smaller crops are padded to the patch.
    patch = [max(2 * f, (p // f) * f) for p, f in zip(patch, factor)]
    mconf = ModelConfig(
        kind="classifier",
        num_classes=max(present) + 1,
        class_names=[f"class {c}" for c in range(max(present) + 1)],
        filters=filter_widths(cfg.base_filters, cfg.depth),
        kernel_sizes=kernels,
        strides=strides,
        patch_size=patch,
        spacing=list(spacing),
    )
    model = build_network(mconf)
    if init is not None:
        tensors, src = read_model_file(init)
        enc = {
            k: v
            for k, v in tensors.items()
            if not k.startswith(("upsamples", "output_block", "fc"))
        }
        transfer_weights(
            model,
            enc if src.kind != "classifier" else tensors,
            Path(init).name,
        )
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate / 10)
    by_class = {
        c: [i for i, k in enumerate(classes) if k == c] for c in present
    }
    labels = torch.as_tensor(list(classes))
    amp = autocast_dtype(device)
    out, last = Path(out), last_path(out)
    yield Started(
        cfg.steps, str(device), tuple(patch), len(crops), len(crops), False
    )
    best, step, t0 = -1.0, 0, time.perf_counter()
    while step < cfg.steps and not (stop is not None and stop.is_set()):
        idx = [
            int(rng.choice(by_class[present[int(rng.integers(len(present)))]]))
            for _ in range(cfg.batch_size)
        ]
        x = torch.as_tensor(
            np.stack([_random_patch(crops[i], patch, rng) for i in idx])
        )
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = F.cross_entropy(
                model(x[:, None].to(device)).float(), labels[idx].to(device)
            )
        optimiser_step(opt, loss)
        step += 1
        yield Step.timed(step, cfg.steps, loss.detach(), t0)
        if step % cfg.val_every == 0 or step == cfg.steps:
            acc = _accuracy(model, crops, classes, patch, device)
            yield Validation(step, (acc,), acc, False, "accuracy")
            save_model(last, model, mconf)
            yield Saved(str(last), "last", step)
            if acc >= best:
                best = acc
                save_model(out, model, mconf)
                yield Saved(str(out), "best", step)
    if best < 0:
        save_model(out, model, mconf)
        save_model(last, model, mconf)
    stopped = stop is not None and stop.is_set()
    return Finished(step, stopped, best, str(out), str(last))


def _accuracy(model, crops, classes, patch, device) -> float:
    model.eval()
    hits = 0
    with torch.no_grad():
        for crop, c in zip(crops, classes):
            crop = _pad_to(crop, patch)
            start = [max(0, (s - p) // 2) for s, p in zip(crop.shape, patch)]
            centre = crop[tuple(slice(a, a + p) for a, p in zip(start, patch))]
            x = torch.as_tensor(np.ascontiguousarray(centre))[None, None].to(
                device
            )
            hits += int(model(x).argmax(1).item() == c)
    model.train()
    return hits / len(crops)
