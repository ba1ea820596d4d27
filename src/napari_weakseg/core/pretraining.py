"""Pretraining the shared encoder on unlabelled volumes, as events.

:func:`iter_pretrain` yields :class:`~.events.Step` and
:class:`~.events.Pretext` events (per-task losses, rotation accuracy,
contrastive top-1) and writes an *encoder file*: a model file of kind
``encoder`` holding only the U-Net encoder tensors, which ``--init`` of
the U-Net, the classifier and the box trainer transfer.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .device import autocast_dtype, resolve_device
from .errors import WeaksegError
from .events import Finished, Pretext, Saved, Started, Step
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
from .training import last_path, optimiser_step
from .validate import require_3d, require_finite

#: steps over which the reported pretext accuracies are averaged
ACCURACY_WINDOW = 50


def _mean(values: deque) -> float:
    return float(np.mean(values)) if values else float("nan")


@dataclass
class PretrainConfig:
    steps: int = 300
    minutes: float | None = None
    tasks: tuple[str, ...] = ("rotation", "contrastive")
    weights: dict[str, float] = field(default_factory=dict)
    batch_size: int = 4
    patch: int = 32
    base_filters: int = 16
    depth: int = 4
    temperature: float = 0.5
    learning_rate: float = 1e-3
    save_every: int = 50
    device: str = "auto"
    seed: int = 0


def iter_pretrain(
    images: Sequence[np.ndarray],
    out: str | Path,
    config: PretrainConfig | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    stop: threading.Event | None = None,
) -> Generator[Any, None, Finished]:
    """Pretrain on unlabelled volumes; returns :class:`Finished`."""
    from monai.losses import ContrastiveLoss

    cfg = config or PretrainConfig()
    tasks = parse_tasks(cfg.tasks)
    if not images:
        raise WeaksegError("Give at least one unlabelled volume.")
    norm = []
    for k, img in enumerate(images, start=1):
        require_3d(img, f"image {k}")
        img = np.asarray(img, np.float32)
        require_finite(img, f"image {k}")
        require_structure(img, f"image {k}")
        norm.append(normalise(img))
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    structured_patches(norm[0], cfg.patch, 1, rng)  # size check up front
    patch = [cfg.patch] * 3
    kernels, strides = plan_network(patch, spacing, cfg.depth)
    filters = filter_widths(cfg.base_filters, cfg.depth)
    unet_conf = ModelConfig(
        num_classes=1,
        filters=filters,
        kernel_sizes=kernels,
        strides=strides,
        patch_size=patch,
        spacing=list(spacing),
    )
    enc_conf = ModelConfig(
        kind="encoder",
        num_classes=0,
        filters=filters,
        kernel_sizes=kernels,
        strides=strides,
        patch_size=patch,
        spacing=list(spacing),
    )
    model = PretextModel(build_network(unet_conf)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    nt_xent = ContrastiveLoss(temperature=cfg.temperature)
    amp = autocast_dtype(device)
    out, last = Path(out), last_path(out)
    yield Started(cfg.steps, str(device), tuple(patch), 0, 0, False)
    step, t0, best = 0, time.perf_counter(), math.inf
    rot_hits: deque = deque(maxlen=ACCURACY_WINDOW)
    top1_hits: deque = deque(maxlen=ACCURACY_WINDOW)
    deadline = t0 + cfg.minutes * 60 if cfg.minutes else math.inf
    while step < cfg.steps and time.perf_counter() < deadline:
        if stop is not None and stop.is_set():
            break
        img = norm[int(rng.integers(len(norm)))]
        p = torch.as_tensor(
            np.stack(structured_patches(img, cfg.patch, cfg.batch_size, rng))
        )[:, None]
        losses: dict[str, torch.Tensor] = {}
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            if "rotation" in tasks:
                labels = torch.randint(0, 10, (p.shape[0],), generator=gen)
                x = torch.stack(
                    [rotate(p[i], int(labels[i])) for i in range(len(p))]
                )
                logits = model.rotation_logits(x.to(device)).float()
                losses["rotation"] = F.cross_entropy(logits, labels.to(device))
                rot_hits.append(
                    float((logits.argmax(1).cpu() == labels).float().mean())
                )
            if "contrastive" in tasks:
                v1, v2 = augment(p, gen), augment(p, gen)
                z1 = model.projection(v1.to(device)).float()
                z2 = model.projection(v2.to(device)).float()
                losses["contrastive"] = nt_xent(z1, z2)
                top1_hits.append(
                    contrastive_top1(z1.detach().cpu(), z2.detach().cpu())
                )
            if "inpainting" in tasks:
                xm, mask = blank_blocks(p, gen)
                rec = model.unet(xm.to(device)).float()
                losses["inpainting"] = F.l1_loss(
                    rec[mask.to(device)], p.to(device)[mask.to(device)]
                )
        total = sum(cfg.weights.get(k, 1.0) * v for k, v in losses.items())
        optimiser_step(opt, total)
        step += 1
        yield Step.timed(step, cfg.steps, total.detach(), t0, deadline)
        yield Pretext(
            step,
            tuple((k, float(v.detach())) for k, v in losses.items()),
            _mean(rot_hits),
            _mean(top1_hits),
        )
        if step % cfg.save_every == 0 or step == cfg.steps:
            save_tensors(last, model.encoder_state(), enc_conf)
            yield Saved(str(last), "last", step)
            if float(total.detach()) < best:
                best = float(total.detach())
                save_tensors(out, model.encoder_state(), enc_conf)
                yield Saved(str(out), "best", step)
    if best == math.inf:
        save_tensors(out, model.encoder_state(), enc_conf)
        save_tensors(last, model.encoder_state(), enc_conf)
    stopped = stop is not None and stop.is_set()
    return Finished(step, stopped, best, str(out), str(last))
