"""Pretraining the shared encoder on unlabelled volumes, as events.

:func:`iter_pretrain` runs the pretext tasks on :func:`~.engine.run`
(budget, stop flag, OOM guard, checkpoints) and yields
:class:`~.events.Step` and :class:`~.events.Pretext` events (per-task
losses, rotation accuracy, contrastive top-1).  It writes an *encoder
file*: a model file of kind ``encoder`` holding the U-Net encoder
tensors (rotation, contrastive) or the whole U-Net but its output block
(when a task trains the decoder: inpainting, masked), which ``--init``
of the U-Net, the classifier and the box trainer transfer.

The volumes come from a :class:`~.pool.VolumePool`: arrays in memory, or
folders and files streamed a bounded cache at a time.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..base import defaults
from ..base.device import resolve_device, seeded
from ..base.errors import WeaksegError
from ..base.events import Finished, Notice, Pretext, Started
from ..data.normalise import normalise
from ..data.pool import VolumePool
from ..data.validate import require_3d, require_finite
from ..nn.models import save_tensors
from ..nn.networks import ModelConfig, build_network
from ..nn.planning import filter_widths, plan_network
from ..train import engine
from ..train.budget import Budget
from ..train.engine import LOSS, Task
from .ssl import (
    DECODER_TASKS,
    PretextModel,
    augment,
    blank_blocks,
    contrastive_top1,
    mask_cubes,
    masked_l1,
    parse_tasks,
    require_structure,
    rotate,
    structured_patches,
)

#: steps over which the reported pretext accuracies are averaged
ACCURACY_WINDOW = 50


def _mean(values: deque) -> float:
    return float(np.mean(values)) if values else float("nan")


#: steps between validations (and checkpoints) of the pretext losses,
#: unless the budget sets its own ``val_every``
SAVE_EVERY = 50


@dataclass
class PretrainConfig:
    """Settings of one pretraining run."""

    #: steps, minutes, validations (every :data:`SAVE_EVERY` steps unless
    #: it sets ``val_every``), seed and device
    budget: Budget = field(default_factory=Budget)
    tasks: tuple[str, ...] = defaults.PRETRAIN_TASKS
    weights: dict[str, float] = field(default_factory=dict)
    batch_size: int = 4
    patch: int = defaults.PRETRAIN_PATCH
    base_filters: int = defaults.BASE_FILTERS
    depth: int = defaults.DEPTH
    #: the network whose encoder is pretrained (:data:`~.networks.NETWORKS`);
    #: the U-Net trained from the file is that network
    network: str = defaults.NETWORK
    temperature: float = 0.5
    #: masked image modelling: side of the masked cubes, share masked
    mask_cube: int = defaults.MASK_CUBE
    mask_ratio: float = defaults.MASK_RATIO
    #: save the whole U-Net (but its output block) when a task trains
    #: the decoder; False: the encoder only
    whole: bool = True
    learning_rate: float = 1e-3
    #: stored in the encoder file (see :mod:`~.recipe`)
    recipe: dict[str, Any] = field(default_factory=dict)


#: patches in the fixed validation batch of the pretext losses
VALIDATION_PATCHES = 8


class PretextTask(Task):
    """The pretext losses (rotation, contrastive, inpainting, masked)
    summed with their weights; validation: that sum on a fixed batch
    (loss ↓)."""

    metric = LOSS

    def __init__(
        self,
        volumes: VolumePool,
        model: PretextModel,
        enc_conf: ModelConfig,
        tasks: Sequence[str],
        cfg: PretrainConfig,
        device: torch.device,
        whole: torch.nn.Module | None = None,
    ) -> None:
        from monai.losses import ContrastiveLoss

        #: the same U-Net with another number of classes: the tensors
        #: whose shape it shares are saved (None: the encoder only)
        self.whole = whole if cfg.whole else None

        self.volumes, self.tasks, self.cfg = volumes, tuple(tasks), cfg
        self.model, self.enc_conf, self.device = (
            model.to(device),
            enc_conf,
            device,
        )
        self.optimiser = torch.optim.AdamW(
            model.parameters(), lr=cfg.learning_rate
        )
        self.oom_hint = f"patch {cfg.patch}^3 and batch {cfg.batch_size}"
        self.nt_xent = ContrastiveLoss(temperature=cfg.temperature)
        self.rng = np.random.default_rng(cfg.budget.seed)
        self.gen = torch.Generator().manual_seed(cfg.budget.seed)
        self.rot_hits: deque = deque(maxlen=ACCURACY_WINDOW)
        self.top1_hits: deque = deque(maxlen=ACCURACY_WINDOW)
        self.last: dict[str, torch.Tensor] = {}
        # Drawn once from a generator of its own: every validation sees the
        # same patches, rotations and views, so its losses compare.
        vrng = np.random.default_rng(cfg.budget.seed + 7919)
        self.val_batch = self._patches(VALIDATION_PATCHES, vrng)

    def _patches(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        return torch.as_tensor(
            np.stack(
                [
                    structured_patches(
                        self.volumes.volume(), self.cfg.patch, 1, rng
                    )[0]
                    for _ in range(n)
                ]
            )
        )[:, None]

    def _losses(
        self, p: torch.Tensor, gen: torch.Generator, record: bool
    ) -> dict[str, torch.Tensor]:
        model, dev, losses = self.model, self.device, {}
        if "rotation" in self.tasks:
            labels = torch.randint(0, 10, (p.shape[0],), generator=gen)
            x = torch.stack(
                [rotate(p[i], int(labels[i])) for i in range(len(p))]
            )
            logits = model.rotation_logits(x.to(dev)).float()
            losses["rotation"] = F.cross_entropy(logits, labels.to(dev))
            if record:
                hit = (logits.argmax(1).cpu() == labels).float().mean()
                self.rot_hits.append(float(hit))
        if "contrastive" in self.tasks:
            v1, v2 = augment(p, gen), augment(p, gen)
            z1 = model.projection(v1.to(dev)).float()
            z2 = model.projection(v2.to(dev)).float()
            losses["contrastive"] = self.nt_xent(z1, z2)
            if record:
                self.top1_hits.append(
                    contrastive_top1(z1.detach().cpu(), z2.detach().cpu())
                )
        if "inpainting" in self.tasks:
            xm, mask = blank_blocks(p, gen)
            rec = model.unet(xm.to(dev)).float()
            mask = mask.to(dev)
            losses["inpainting"] = F.l1_loss(rec[mask], p.to(dev)[mask])
        if "masked" in self.tasks:
            xm, mask = mask_cubes(
                p, gen, self.cfg.mask_cube, self.cfg.mask_ratio
            )
            rec = model.unet(xm.to(dev)).float()
            losses["masked"] = masked_l1(rec, p.to(dev), mask.to(dev))
        return losses

    def _total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self.cfg.weights
        return sum(w.get(k, 1.0) * v for k, v in losses.items())

    def loss(self) -> torch.Tensor:
        volume = self.volumes.volume()
        p = torch.as_tensor(
            np.stack(
                structured_patches(
                    volume, self.cfg.patch, self.cfg.batch_size, self.rng
                )
            )
        )[:, None]
        self.last = self._losses(p, self.gen, record=True)
        return self._total(self.last)

    def after_step(self, step: int) -> Iterable[Pretext]:
        yield from self.volumes.drain()
        losses = tuple((k, float(v.detach())) for k, v in self.last.items())
        yield Pretext(
            step, losses, _mean(self.rot_hits), _mean(self.top1_hits)
        )

    def validate(self) -> tuple[float]:
        self.model.eval()
        gen = torch.Generator().manual_seed(self.cfg.budget.seed + 7919)
        with torch.no_grad():
            total = self._total(self._losses(self.val_batch, gen, False))
        self.model.train()
        return (float(total),)

    def save(self, path: Path) -> None:
        if self.whole and set(self.tasks) & set(DECODER_TASKS):
            state = self.model.unet_state(self.whole)
        else:
            state = self.model.encoder_state()
        save_tensors(path, state, self.enc_conf)


def _pad_short_axes(image: np.ndarray, patch: int) -> np.ndarray:
    """Pad (edge values) axes a little shorter than the patch; an axis of
    half the patch or less stays short and is refused when sampled."""
    pad = [
        (0, patch - s) if patch // 2 < s < patch else (0, 0)
        for s in image.shape
    ]
    return np.pad(image, pad, mode="edge") if any(p for _, p in pad) else image


def iter_pretrain(
    images: Sequence[np.ndarray] | VolumePool,
    out: str | Path,
    config: PretrainConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    stop: threading.Event | None = None,
) -> Generator[Any, None, Finished]:
    """Pretrain on unlabelled volumes; returns :class:`Finished`.

    ``images``: arrays in memory, or a :class:`~.pool.VolumePool` that
    streams files (unreadable ones are yielded as
    :class:`~.events.Skipped` and counted in a final
    :class:`~.events.Notice`).  Every :data:`SAVE_EVERY` steps (or the
    budget's ``val_every``) the summed pretext loss of a fixed validation
    batch is measured; ``out`` holds the weights with the lowest (see
    :mod:`~.engine` for the checkpoint rules).
    """
    cfg = config or PretrainConfig()
    plan = cfg.budget.plan(every=SAVE_EVERY)
    plan.check()
    tasks = parse_tasks(cfg.tasks)
    if isinstance(images, VolumePool):
        pool = images
    else:
        if not images:
            raise WeaksegError("Give at least one unlabelled volume.")
        norm = []
        for k, img in enumerate(images, start=1):
            require_3d(img, f"image {k}")
            img = np.asarray(img, np.float32)
            require_finite(img, f"image {k}")
            require_structure(img, f"image {k}")
            norm.append(_pad_short_axes(normalise(img), cfg.patch))
        for img in norm:  # size check up front
            structured_patches(img, cfg.patch, 1, np.random.default_rng(0))
        pool = VolumePool.prepared(norm, cfg.budget.seed)
    yield from pool.drain()
    device = resolve_device(cfg.budget.device)
    patch = [cfg.patch] * 3
    kernels, strides = plan_network(patch, spacing, cfg.depth)
    filters = filter_widths(cfg.base_filters, cfg.depth)
    shared = {
        "filters": filters,
        "kernel_sizes": kernels,
        "strides": strides,
        "patch_size": patch,
        "spacing": list(spacing),
    }
    unet_conf = ModelConfig(num_classes=1, network=cfg.network, **shared)
    enc_conf = ModelConfig(
        kind="encoder",
        num_classes=0,
        network=cfg.network,
        recipe=dict(cfg.recipe),
        **shared,
    )
    with seeded(cfg.budget.seed):
        model = PretextModel(build_network(unet_conf), filters[-1])
    other = build_network(
        ModelConfig(num_classes=2, network=cfg.network, **shared)
    )
    task = PretextTask(pool, model, enc_conf, tasks, cfg, device, other)
    started = Started(
        cfg.budget.steps,
        str(device),
        tuple(patch),
        0,
        0,
        False,
        network=cfg.network,
    )
    fin = yield from engine.run(task, plan, out, started, stop)
    yield from pool.drain()
    if pool.skipped:
        yield Notice(
            f"{len(pool.skipped)} of {len(pool)} pool volumes were skipped "
            "as unreadable."
        )
    return fin
