"""Training a 3D U-Net from sparse labels, as a generator of events.

:func:`iter_train` describes the U-Net as an :class:`~.engine.Task` and
runs it on :func:`~.engine.run`, which yields :mod:`~.events` (Started,
Step, Validation, Saved), returns :class:`~.events.Finished`, checks the
stop flag every step and writes every checkpoint atomically.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base import classes, defaults
from ..base.device import check_training_memory, resolve_device, seeded
from ..base.errors import WeaksegError
from ..base.events import Finished, Started
from ..base.files import last_path
from ..data.drift import training_intensity
from ..nn.expansion import Expansion, ExpansionLoss
from ..nn.losses import MaskedDiceCELoss
from ..nn.models import read_model_file, save_model, transfer_weights
from ..nn.networks import ModelConfig, build_network
from ..nn.planning import filter_widths, plan_network, plan_patch_size
from . import ddp, engine
from .budget import Budget
from .engine import DICE, Task, optimiser_step
from .sampling import PatchSampler
from .trainset import TrainSet, prepare
from .validation import validate


@dataclass
class TrainConfig:
    """Settings of one training run; defaults suit a laptop CPU."""

    #: steps, minutes, patience, validations, seed and device
    budget: Budget = field(default_factory=Budget)
    batch_size: int = defaults.BATCH_SIZE
    patch_size: list[int] | None = None
    learning_rate: float = defaults.LEARNING_RATE
    #: ``poly`` (decay to 0 over ``steps``) or ``constant``
    schedule: str = "poly"
    depth: int = defaults.DEPTH
    base_filters: int = defaults.BASE_FILTERS
    norm: str = "instance"
    #: segmentation network, see :data:`~.networks.NETWORKS`
    network: str = defaults.NETWORK
    class_weights: list[float] | None = None
    dice_weight: float = 1.0
    #: weight of the masked cross-entropy next to the Dice term
    ce_weight: float = defaults.CE_WEIGHT
    #: ``auto`` (planned from the labels, see :mod:`~.planner`), ``flips``
    #: (mirror every axis), ``none`` (better when classes are told apart
    #: by position), ``affine``, ``full`` (+ 90° turns, intensity, noise);
    #: ``True``/``False`` mean ``flips``/``none``
    augment: str | bool = defaults.AUGMENT
    #: share of the budget trained at the end with the held-back slices
    #: back in; the final weights are then the model (0: keep the best)
    final_phase: float = 0.25
    ignore_label: int = defaults.IGNORE
    hold_out: bool = True
    class_names: list[str] = field(default_factory=list)
    #: stored in the model file (see :mod:`~.recipe`)
    recipe: dict[str, Any] = field(default_factory=dict)


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
    names = classes.full(cfg.class_names, trainset.num_classes)
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
        # names given for this training win; else the model's own
        if config.class_names != classes.default(config.num_classes):
            src.class_names = config.class_names
        src.class_names = classes.of(src)
        return src, tensors
    # An encoder file holds one network's encoder: it seeds only that
    # network (files from before the network field: DynUNet).
    if src.network != config.network:
        raise WeaksegError(
            f"{Path(init).name} holds a pretrained {src.network} encoder but "
            f"this training builds a {config.network}; pretrain with "
            f"network={config.network} (weakseg pretrain --network "
            f"{config.network})."
        )
    # Its weights were shaped by the pooling planned for the pretraining
    # patch: the U-Net takes that plan (the strides and kernels), which
    # the training patch must divide into.
    if src.strides and (
        src.strides != config.strides
        or src.kernel_sizes != config.kernel_sizes
    ):
        steps = [math.prod(s[a] for s in src.strides) for a in range(3)]
        if any(int(p) % k for p, k in zip(config.patch_size, steps)):
            raise WeaksegError(
                f"{Path(init).name} was pretrained with pooling "
                f"{steps} per axis, which the patch {config.patch_size} "
                "does not divide into; give a patch size of multiples of it."
            )
        config.strides = [list(s) for s in src.strides]
        config.kernel_sizes = [list(k) for k in src.kernel_sizes]
    return config, tensors


class UNetTask(Task):
    """The U-Net on sparse labels: masked Dice + CE, per-class Dice."""

    metric = DICE
    cpu_bf16 = True

    def __init__(
        self,
        trainset: TrainSet,
        mconf: ModelConfig,
        model: torch.nn.Module,
        cfg: TrainConfig,
        spacing: Sequence[float],
        device: torch.device,
        expansion: Expansion | None = None,
        semi: Any = None,
    ) -> None:
        self.trainset, self.mconf, self.cfg = trainset, mconf, cfg
        #: the unsupervised term (:class:`~.semi.SemiSupervised`) or None
        self.semi = semi
        self.spacing, self.device = spacing, device
        # channels-last 3D: 1.2x faster CPU steps (bench_cpu_steps.py)
        self.layout = (
            torch.channels_last_3d
            if device.type == "cpu"
            else torch.contiguous_format
        )
        self.model = model.to(device, memory_format=self.layout)
        self.held_out = trainset.held_out
        self.oom_hint = f"patch {mconf.patch_size} and batch {cfg.batch_size}"
        # each DDP rank draws its own patches
        self.rank = ddp.world().rank
        self.sampler = self._sampler(
            trainset.targets, cfg.budget.seed + 1000 * self.rank
        )
        self.loss_fn = MaskedDiceCELoss(
            trainset.num_classes,
            cfg.ignore_label,
            cfg.class_weights,
            ce_weight=cfg.ce_weight,
            dice_weight=cfg.dice_weight,
        ).to(device)
        # SEC's expansion term on the first image's present crops
        self.expand = (
            None
            if expansion is None
            else ExpansionLoss(
                trainset.images[0],
                expansion,
                mconf.patch_size,
                cfg.budget.seed + 1000 * self.rank,
            )
        )
        self.optimiser = torch.optim.AdamW(
            model.parameters(), lr=cfg.learning_rate, weight_decay=1e-4
        )
        steps = cfg.budget.steps

        def poly(s: int) -> float:
            # progress through the budget: steps, or time when a minutes
            # budget runs out first (the engine sets time_share)
            done = min(max(s / steps, self.time_share), (steps - 1) / steps)
            return (1 - done) ** 0.9

        if cfg.schedule == "poly":
            factor = poly
        elif cfg.schedule == "constant":
            factor = lambda s: 1.0  # noqa: E731
        else:
            raise WeaksegError(
                f"Unknown schedule '{cfg.schedule}' (poly or constant)."
            )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, factor
        )

    def _sampler(
        self, targets: Sequence[np.ndarray], seed: int
    ) -> PatchSampler:
        return PatchSampler(
            self.trainset.images,
            targets,
            self.mconf.patch_size,
            self.trainset.num_classes,
            self.spacing,
            self.cfg.ignore_label,
            self.cfg.augment,
            seed,
        )

    def augmentation(self) -> str:
        """What ``augment="auto"`` planned, in words ("" otherwise)."""
        plan = getattr(self.sampler, "plan", None)
        return plan.describe() if plan is not None else ""

    def loss(self) -> torch.Tensor:
        batch = self.sampler.batch(self.cfg.batch_size)
        x = batch["image"].to(self.device, non_blocking=True)
        x = x.contiguous(memory_format=self.layout)
        y = batch["label"].to(self.device, non_blocking=True)
        loss = self.loss_fn(self.model(x), y)
        if self.expand is not None:
            loss = loss + self.expand(self.model, self.device)
        if self.semi is not None:
            loss = loss + self.semi.loss(self.model, self.layout)
        return loss

    def after_step(self, step: int):
        if self.semi is not None:  # the EMA teacher follows the student
            self.semi.update(self.model)
            yield from self.semi.drain()

    def validate(self) -> list[float]:
        return validate(
            self.model, self.trainset, self.mconf.patch_size, self.device
        )

    def save(self, path: Path) -> None:
        save_model(path, self.model, self.mconf)

    def enter_final(self) -> None:  # held-back slices go back in
        self.sampler = self._sampler(
            self.trainset.truths, self.cfg.budget.seed + 1 + 1000 * self.rank
        )


def iter_train(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    out: str | Path,
    config: TrainConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    init: str | Path | None = None,
    stop: threading.Event | None = None,
    expansion: Expansion | None = None,
    names: Sequence[str] | None = None,
    unlabelled: Any = None,
    semi: Any = None,
) -> Generator[Any, None, Finished]:
    """Train on sparse labels; yield events; return :class:`Finished`.

    ``names`` (file or layer names) name the images in messages.

    ``expansion`` adds SEC's expansion loss (:mod:`~.expansion`) over
    crops of the first image labelled present.

    ``unlabelled`` (folders, files, arrays or a :class:`~.pool.
    VolumePool`) and/or ``semi`` (a :class:`~.semi.SemiConfig`) add the
    semi-supervised term of :mod:`~.semi` (the unannotated voxels of the
    annotated volumes count as unlabelled too).

    Two phases when slices are held back for validation: first train
    without them, validating about ``validations`` times (the "best" is
    judged on a moving average of three validations, so an early lucky
    one is not kept); then, for the last ``final_phase`` of the budget,
    the held-back slices go back in and the final weights are the model.
    Checkpoints follow :mod:`~.engine`'s rules.
    """
    cfg = config or TrainConfig()
    plan = cfg.budget.plan(final_phase=cfg.final_phase, window=3)
    plan.check()
    device = ddp.device_for(resolve_device(cfg.budget.device), ddp.world())
    trainset = prepare(
        images, labels, cfg.ignore_label, hold_out=cfg.hold_out, names=names
    )
    mconf = model_config_for(trainset, images[0].shape, spacing, cfg, device)
    mconf, init_tensors = _init_model(init, mconf)
    mconf.intensity = training_intensity(images)
    mconf.recipe = dict(cfg.recipe)  # this run's, not an init model's
    check_training_memory(
        mconf.patch_size, cfg.batch_size, mconf.filters[0], device
    )
    with seeded(cfg.budget.seed):
        model = build_network(mconf)
    transferred = 0
    if init_tensors is not None:
        transferred = transfer_weights(model, init_tensors, Path(init).name)
    term = None
    if unlabelled is not None or semi is not None:
        from .semi import semi_term

        term = semi_term(unlabelled, semi, trainset, mconf, cfg, device)
        yield from term.drain()
    task = UNetTask(
        trainset, mconf, model, cfg, spacing, device, expansion, term
    )
    mconf.mirrored = list(task.sampler.mirrored)  # test-time flips: these
    # Without held-back slices the final weights are the model; with them
    # the best validated ones, until a final phase puts the slices back.
    plan.keep_best = trainset.held_out
    if not trainset.held_out:
        plan.final_phase = 0.0
    started = Started(
        cfg.budget.steps,
        str(device),
        tuple(mconf.patch_size),
        trainset.train_voxels,
        trainset.val_voxels,
        trainset.held_out,
        transferred,
        network=mconf.network,
        augmentation=task.augmentation(),
    )
    return (yield from engine.run(task, plan, out, started, stop))


__all__ = [
    "TrainConfig",
    "UNetTask",
    "iter_train",
    "last_path",
    "model_config_for",
    "optimiser_step",
    "validate",
]
