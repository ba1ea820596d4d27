"""Pretraining the shared encoder on unlabelled volumes, as events.

:func:`iter_pretrain` runs the pretext tasks on :func:`~.engine.run`
(budget, stop flag, OOM guard, checkpoints) and yields
:class:`~.events.Step` and :class:`~.events.Pretext` events (per-task
losses, rotation accuracy, contrastive top-1).  It writes an *encoder
file*: a model file of kind ``encoder`` holding only the U-Net encoder
tensors, which ``--init`` of the U-Net, the classifier and the box
trainer transfer.
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

from . import defaults, engine
from .device import resolve_device
from .engine import LOSS, Plan, Task
from .errors import WeaksegError
from .events import Finished, Pretext, Started
from .models import (
    ModelConfig,
    build_network,
    filter_widths,
    plan_network,
    save_tensors,
)
from .normalise import normalise
from .ssl import (
    PretextModel,
    augment,
    blank_blocks,
    contrastive_top1,
    parse_tasks,
    require_structure,
    rotate,
    structured_patches,
)
from .validate import require_3d, require_finite

#: steps over which the reported pretext accuracies are averaged
ACCURACY_WINDOW = 50


def _mean(values: deque) -> float:
    return float(np.mean(values)) if values else float("nan")


@dataclass
class PretrainConfig:
    steps: int = defaults.STEPS
    minutes: float | None = None
    tasks: tuple[str, ...] = defaults.PRETRAIN_TASKS
    weights: dict[str, float] = field(default_factory=dict)
    batch_size: int = 4
    patch: int = defaults.PRETRAIN_PATCH
    base_filters: int = defaults.BASE_FILTERS
    depth: int = 4
    #: the network whose encoder is pretrained (:data:`~.models.NETWORKS`);
    #: the U-Net trained from the file is that network
    network: str = "dynunet"
    temperature: float = 0.5
    learning_rate: float = 1e-3
    save_every: int = 50
    device: str = "auto"
    seed: int = 0


#: patches in the fixed validation batch of the pretext losses
VALIDATION_PATCHES = 8


class PretextTask(Task):
    """The pretext losses (rotation, contrastive, inpainting) summed with
    their weights; validation: that sum on a fixed batch (loss ↓)."""

    metric = LOSS

    def __init__(
        self,
        volumes: Sequence[np.ndarray],
        model: PretextModel,
        enc_conf: ModelConfig,
        tasks: Sequence[str],
        cfg: PretrainConfig,
        device: torch.device,
    ) -> None:
        from monai.losses import ContrastiveLoss

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
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.rot_hits: deque = deque(maxlen=ACCURACY_WINDOW)
        self.top1_hits: deque = deque(maxlen=ACCURACY_WINDOW)
        self.last: dict[str, torch.Tensor] = {}
        # Drawn once from a generator of its own: every validation sees the
        # same patches, rotations and views, so its losses compare.
        vrng = np.random.default_rng(cfg.seed + 7919)
        self.val_batch = self._patches(VALIDATION_PATCHES, vrng)

    def _patches(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        per = [int(rng.integers(len(self.volumes))) for _ in range(n)]
        return torch.as_tensor(
            np.stack(
                [
                    structured_patches(
                        self.volumes[i], self.cfg.patch, 1, rng
                    )[0]
                    for i in per
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
        return losses

    def _total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self.cfg.weights
        return sum(w.get(k, 1.0) * v for k, v in losses.items())

    def loss(self) -> torch.Tensor:
        volume = self.volumes[int(self.rng.integers(len(self.volumes)))]
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
        losses = tuple((k, float(v.detach())) for k, v in self.last.items())
        yield Pretext(
            step, losses, _mean(self.rot_hits), _mean(self.top1_hits)
        )

    def validate(self) -> tuple[float]:
        self.model.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed + 7919)
        with torch.no_grad():
            total = self._total(self._losses(self.val_batch, gen, False))
        self.model.train()
        return (float(total),)

    def save(self, path: Path) -> None:
        save_tensors(path, self.model.encoder_state(), self.enc_conf)


def _pad_short_axes(image: np.ndarray, patch: int) -> np.ndarray:
    """Pad (edge values) axes a little shorter than the patch; an axis of
    half the patch or less stays short and is refused when sampled."""
    pad = [
        (0, patch - s) if patch // 2 < s < patch else (0, 0)
        for s in image.shape
    ]
    return np.pad(image, pad, mode="edge") if any(p for _, p in pad) else image


def iter_pretrain(
    images: Sequence[np.ndarray],
    out: str | Path,
    config: PretrainConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    stop: threading.Event | None = None,
) -> Generator[Any, None, Finished]:
    """Pretrain on unlabelled volumes; returns :class:`Finished`.

    Every ``save_every`` steps the summed pretext loss of a fixed
    validation batch is measured; ``out`` holds the encoder with the
    lowest (see :mod:`~.engine` for the checkpoint rules).
    """
    cfg = config or PretrainConfig()
    plan = Plan(cfg.steps, cfg.minutes, val_every=cfg.save_every)
    plan.check()
    tasks = parse_tasks(cfg.tasks)
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
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
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
        kind="encoder", num_classes=0, network=cfg.network, **shared
    )
    model = PretextModel(build_network(unet_conf), filters[-1])
    task = PretextTask(norm, model, enc_conf, tasks, cfg, device)
    started = Started(cfg.steps, str(device), tuple(patch), 0, 0, False)
    return (yield from engine.run(task, plan, out, started, stop))
