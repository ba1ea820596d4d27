"""Training a 3D U-Net from sparse labels, as a generator of events.

:func:`iter_train` yields :mod:`~.events` (Started, Step, Validation,
Saved) and returns :class:`~.events.Finished`.  A ``threading.Event`` stop
flag is checked every step; stopping, finishing or running out of memory
all leave a loadable last checkpoint, written atomically.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .device import autocast_dtype, resolve_device
from .errors import WeaksegError
from .events import Finished, Saved, Started, Step, Validation
from .inference import predict_probabilities
from .losses import MaskedDiceCELoss
from .metrics import dice_per_class
from .models import (
    ModelConfig,
    build_network,
    filter_widths,
    plan_network,
    plan_patch_size,
    read_model_file,
    save_model,
    transfer_weights,
)
from .sampling import PatchSampler
from .trainset import TrainSet, prepare


@dataclass
class TrainConfig:
    """Settings of one training run; defaults suit a laptop CPU."""

    steps: int = 300
    minutes: float | None = None
    batch_size: int = 2
    patch_size: list[int] | None = None
    learning_rate: float = 1e-2
    depth: int = 4
    base_filters: int = 16
    norm: str = "instance"
    val_every: int = 50
    class_weights: list[float] | None = None
    dice_weight: float = 1.0
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    ignore_label: int = 255
    hold_out: bool = True
    class_names: list[str] = field(default_factory=list)


def optimiser_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Zero the gradients, back-propagate ``loss`` and step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def last_path(out: str | Path) -> Path:
    """Where the last (not best) checkpoint of ``out`` goes."""
    p = Path(out)
    stem = p.name.removesuffix(".safetensors")
    return p.with_name(f"{stem}.last.safetensors")


def model_config_for(
    trainset: TrainSet,
    shape: Sequence[int],
    spacing: Sequence[float],
    cfg: TrainConfig,
    device: torch.device,
) -> ModelConfig:
    depth = cfg.depth
    budget = 96**3 if device.type == "cuda" else 48**3
    patch = cfg.patch_size or plan_patch_size(shape, spacing, budget, depth)
    kernels, strides = plan_network(patch, spacing, depth)
    filters = filter_widths(cfg.base_filters, depth)
    names = cfg.class_names or ["background"] + [
        f"class {c}" for c in range(1, trainset.num_classes)
    ]
    return ModelConfig(
        num_classes=trainset.num_classes,
        class_names=list(names),
        filters=filters,
        kernel_sizes=kernels,
        strides=strides,
        norm=cfg.norm,
        patch_size=[int(p) for p in patch],
        spacing=[float(s) for s in spacing],
        ignore_label=cfg.ignore_label,
    )


def validate(
    model: torch.nn.Module,
    trainset: TrainSet,
    patch: Sequence[int],
    device: torch.device,
) -> list[float]:
    """Per-class Dice on the validation voxels (their bounding box only)."""
    scores = []
    for img, truth, mask in zip(
        trainset.images, trainset.truths, trainset.val_masks
    ):
        if not mask.any():
            continue
        nz = np.nonzero(mask)
        box = tuple(
            slice(max(0, int(i.min()) - p // 2), int(i.max()) + 1 + p // 2)
            for i, p in zip(nz, patch)
        )
        probs = predict_probabilities(
            model, img[box], patch, device, overlap=0.25
        )
        pred = np.argmax(probs, axis=0)
        scores.append(
            dice_per_class(pred, truth[box], trainset.num_classes, mask[box])
        )
    model.train()
    return list(np.nanmean(np.asarray(scores, float), axis=0))


def _init_model(
    init: str | Path | None, config: ModelConfig
) -> tuple[ModelConfig, dict | None]:
    """Warm start: a full model keeps its architecture; an encoder fits in."""
    if init is None:
        return config, None
    tensors, src = read_model_file(init)
    if src.kind == "unet":
        if src.num_classes != config.num_classes:
            raise WeaksegError(
                f"{Path(init).name} predicts {src.num_classes - 1} classes "
                f"but the labels have {config.num_classes - 1}."
            )
        src.class_names = config.class_names or src.class_names
        return src, tensors
    encoder = ("input_block.", "downsamples.", "bottleneck.")
    return config, {k: v for k, v in tensors.items() if k.startswith(encoder)}


def iter_train(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    out: str | Path,
    config: TrainConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    init: str | Path | None = None,
    stop: threading.Event | None = None,
) -> Generator[Any, None, Finished]:
    """Train on sparse labels; yield events; return :class:`Finished`."""
    cfg = config or TrainConfig()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    trainset = prepare(images, labels, cfg.ignore_label, hold_out=cfg.hold_out)
    mconf = model_config_for(trainset, images[0].shape, spacing, cfg, device)
    mconf, init_tensors = _init_model(init, mconf)
    model = build_network(mconf)
    transferred = 0
    if init_tensors is not None:
        transferred = transfer_weights(model, init_tensors, Path(init).name)
    model.to(device).train()
    sampler = PatchSampler(
        trainset.images,
        trainset.targets,
        mconf.patch_size,
        trainset.num_classes,
        spacing,
        cfg.ignore_label,
        cfg.augment,
        cfg.seed,
    )
    loss_fn = MaskedDiceCELoss(
        trainset.num_classes,
        cfg.ignore_label,
        cfg.class_weights,
        dice_weight=cfg.dice_weight,
    ).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.learning_rate, weight_decay=1e-4
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (1 - min(s, cfg.steps - 1) / cfg.steps) ** 0.9
    )
    amp = autocast_dtype(device)
    out, last = Path(out), last_path(out)
    yield Started(
        cfg.steps,
        str(device),
        tuple(mconf.patch_size),
        trainset.train_voxels,
        trainset.val_voxels,
        trainset.held_out,
        transferred,
    )
    best, step, t0 = -math.inf, 0, time.perf_counter()
    deadline = t0 + cfg.minutes * 60 if cfg.minutes else math.inf
    stopped = False
    try:
        while step < cfg.steps:
            if (
                stop is not None and stop.is_set()
            ) or time.perf_counter() > deadline:
                stopped = stop is not None and stop.is_set()
                break
            batch = sampler.batch(cfg.batch_size)
            x = batch["image"].to(device, non_blocking=True)
            y = batch["label"].to(device, non_blocking=True)
            with torch.autocast(
                device.type, dtype=amp, enabled=amp is not None
            ):
                loss = loss_fn(model(x), y)
            optimiser_step(opt, loss)
            sched.step()
            step += 1
            yield Step.timed(step, cfg.steps, loss.detach(), t0, deadline)
            if step % cfg.val_every == 0:
                best = yield from _checkpoint(
                    model, mconf, trainset, device, out, last, step, best
                )
    except torch.OutOfMemoryError:
        save_model(last, model, mconf)
        raise WeaksegError(
            f"Out of memory with patch {mconf.patch_size} and batch "
            f"{cfg.batch_size}; try a smaller patch size or batch size "
            f"(the last weights are saved in {last.name})."
        ) from None
    if step % cfg.val_every:
        best = yield from _checkpoint(
            model, mconf, trainset, device, out, last, step, best
        )
    if best == -math.inf:  # stopped before any validation, or NaN Dice
        save_model(out, model, mconf)
        save_model(last, model, mconf)
    return Finished(step, stopped, float(best), str(out), str(last))


def _checkpoint(
    model: torch.nn.Module,
    mconf: ModelConfig,
    trainset: TrainSet,
    device: torch.device,
    out: Path,
    last: Path,
    step: int,
    best: float,
) -> Generator[Any, None, float]:
    dice = validate(model, trainset, mconf.patch_size, device)
    mean = float(np.nanmean(dice)) if dice else float("nan")
    yield Validation(step, tuple(dice), mean, trainset.held_out)
    save_model(last, model, mconf)
    yield Saved(str(last), "last", step)
    if not math.isnan(mean) and mean > best:
        save_model(out, model, mconf)
        yield Saved(str(out), "best", step)
        return mean
    return best
