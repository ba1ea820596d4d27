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
import warnings
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import defaults
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

    steps: int = defaults.STEPS
    minutes: float | None = None
    batch_size: int = defaults.BATCH_SIZE
    patch_size: list[int] | None = None
    learning_rate: float = defaults.LEARNING_RATE
    #: ``poly`` (decay to 0 over ``steps``) or ``constant``
    schedule: str = "poly"
    depth: int = 4
    base_filters: int = defaults.BASE_FILTERS
    norm: str = "instance"
    #: segmentation network, see :data:`~.models.NETWORKS`
    network: str = "resunet"
    #: validations per run (``val_every`` overrides the spacing)
    validations: int = 10
    val_every: int | None = None
    class_weights: list[float] | None = None
    dice_weight: float = 1.0
    #: ``flips`` (mirror every axis), ``none`` (better when classes are
    #: told apart by position), ``full`` (+ 90° turns, intensity, noise);
    #: ``True``/``False`` mean ``flips``/``none``
    augment: str | bool = defaults.AUGMENT
    #: share of the budget trained at the end with the held-back slices
    #: back in; the final weights are then the model (0: keep the best)
    final_phase: float = 0.25
    seed: int = 0
    device: str = "auto"
    ignore_label: int = defaults.IGNORE
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
        network=cfg.network,
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
    with warnings.catch_warnings():  # a class absent from the held-out
        warnings.simplefilter("ignore", RuntimeWarning)  # slices: NaN
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
    # Pretrained encoders are DynUNet encoders: the U-Net they seed is one.
    config.network = "dynunet"
    encoder = ("input_block.", "downsamples.", "bottleneck.")
    return config, {k: v for k, v in tensors.items() if k.startswith(encoder)}


def _check_budget(cfg: TrainConfig) -> None:
    if not isinstance(cfg.steps, int) or cfg.steps < 1:
        raise WeaksegError(
            f"The step budget must be a whole number of at least 1 "
            f"(got {cfg.steps})."
        )
    if cfg.minutes is not None and not cfg.minutes > 0:
        raise WeaksegError(
            f"The time budget must be more than 0 minutes (got {cfg.minutes})."
        )
    if not 0 <= cfg.final_phase < 1:
        raise WeaksegError(
            f"The final phase must be a share in [0, 1) of the budget "
            f"(got {cfg.final_phase})."
        )


def iter_train(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    out: str | Path,
    config: TrainConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    init: str | Path | None = None,
    stop: threading.Event | None = None,
) -> Generator[Any, None, Finished]:
    """Train on sparse labels; yield events; return :class:`Finished`.

    Two phases when slices are held back for validation: first train
    without them, validating about ``validations`` times (the "best" is
    judged on a moving average of three validations, so an early lucky
    one is not kept); then, for the last ``final_phase`` of the budget,
    the held-back slices go back in and the final weights are the model.
    A run stopped in the first phase keeps its best checkpoint; a run that
    completed no step writes nothing; a run stopped early never replaces a
    model that was already at ``out`` (its weights go to the ``.last``
    file only).
    """
    cfg = config or TrainConfig()
    _check_budget(cfg)
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

    def sampler_for(targets: Sequence[np.ndarray], seed: int) -> PatchSampler:
        return PatchSampler(
            trainset.images,
            targets,
            mconf.patch_size,
            trainset.num_classes,
            spacing,
            cfg.ignore_label,
            cfg.augment,
            seed,
        )

    sampler = sampler_for(trainset.targets, cfg.seed)
    loss_fn = MaskedDiceCELoss(
        trainset.num_classes,
        cfg.ignore_label,
        cfg.class_weights,
        dice_weight=cfg.dice_weight,
    ).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.learning_rate, weight_decay=1e-4
    )
    if cfg.schedule == "poly":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (1 - min(s, cfg.steps - 1) / cfg.steps) ** 0.9
        )
    elif cfg.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    else:
        raise WeaksegError(
            f"Unknown schedule '{cfg.schedule}' (poly or constant)."
        )
    amp = autocast_dtype(device)
    out, last = Path(out), last_path(out)
    protect = out.exists()  # replaced only by a run that finishes
    yield Started(
        cfg.steps,
        str(device),
        tuple(mconf.patch_size),
        trainset.train_voxels,
        trainset.val_voxels,
        trainset.held_out,
        transferred,
    )
    keep_best = trainset.held_out and cfg.final_phase == 0
    final_from = (
        cfg.steps - round(cfg.steps * cfg.final_phase)
        if trainset.held_out and not keep_best
        else cfg.steps
    )
    val_every = cfg.val_every or max(1, final_from // max(1, cfg.validations))
    track = _Tracker()

    def checkpoint(at: int, keep: bool) -> Generator[Any, None, None]:
        return _checkpoint(
            model, mconf, trainset, device, out, last, at, track, keep
        )

    step, t0 = 0, time.perf_counter()
    budget_s = cfg.minutes * 60 if cfg.minutes else math.inf
    deadline = t0 + budget_s
    final_at = (
        t0 + budget_s * (1 - cfg.final_phase)
        if final_from < cfg.steps
        else math.inf
    )
    in_final = False
    stopped = False
    try:
        while step < cfg.steps:
            if (
                stop is not None and stop.is_set()
            ) or time.perf_counter() > deadline:
                stopped = stop is not None and stop.is_set()
                break
            if not in_final and (
                step >= final_from or time.perf_counter() > final_at
            ):
                if step % val_every:
                    yield from checkpoint(step, not protect)
                in_final = True  # held-back slices go back in
                sampler = sampler_for(trainset.truths, cfg.seed + 1)
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
            if not in_final and step % val_every == 0:
                yield from checkpoint(step, not protect)
    except torch.OutOfMemoryError:
        if step:
            save_model(last, model, mconf)
        raise WeaksegError(
            f"Out of memory with patch {mconf.patch_size} and batch "
            f"{cfg.batch_size}; try a smaller patch size or batch size"
            + (
                f" (the last weights are saved in {last.name})."
                if step
                else "."
            )
        ) from None
    if step == 0:  # nothing learnt: leave every file as it was
        return Finished(0, stopped, float("nan"), "", "")
    if stopped and protect:
        save_model(last, model, mconf)
        best = track.best if track.best is not None else float("nan")
        return Finished(
            step,
            stopped,
            float(best),
            str(out),
            str(last),
            f"Stopped early: {out.name} was kept as it was; the new "
            f"weights are in {last.name}.",
        )
    if in_final or not trainset.held_out:
        # Trained on every annotated voxel: the final weights are the model.
        if not in_final and step % val_every:
            yield from checkpoint(step, False)
        save_model(last, model, mconf)
        save_model(out, model, mconf)
        yield Saved(str(out), "final", step)
    else:
        if step % val_every:
            yield from checkpoint(step, not protect)
        if track.best_step is None or protect:  # finished: replace it
            save_model(out, model, mconf)
    best = track.best if track.best is not None else float("nan")
    return Finished(step, stopped, float(best), str(out), str(last))


class _Tracker:
    """Validation means and the best moving average of the last three."""

    def __init__(self, window: int = 3) -> None:
        self.window = window
        self.means: list[float] = []
        self.best: float | None = None
        self.best_step: int | None = None

    def add(self, mean: float, step: int) -> bool:
        """Record one validation; True when its moving average is best."""
        if math.isnan(mean):
            return False
        self.means.append(mean)
        smooth = float(np.mean(self.means[-self.window :]))
        if self.best is None or smooth > self.best:
            self.best, self.best_step = smooth, step
            return True
        return False


def _checkpoint(
    model: torch.nn.Module,
    mconf: ModelConfig,
    trainset: TrainSet,
    device: torch.device,
    out: Path,
    last: Path,
    step: int,
    track: _Tracker,
    keep: bool,
) -> Generator[Any, None, None]:
    """Validate, save the last weights, and the best ones when ``keep``."""
    dice = validate(model, trainset, mconf.patch_size, device)
    with warnings.catch_warnings():  # every class absent: NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = float(np.nanmean(dice)) if dice else float("nan")
    yield Validation(step, tuple(dice), mean, trainset.held_out)
    save_model(last, model, mconf)
    yield Saved(str(last), "last", step)
    if track.add(mean, step) and keep:
        save_model(out, model, mconf)
        yield Saved(str(out), "best", step)
