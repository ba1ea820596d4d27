"""Semi-supervised training with unlabelled volumes.

Next to the masked loss on the sparse labels, every step draws
unlabelled patches -- from a :class:`~.pool.VolumePool` and from the
annotated volumes themselves, whose unannotated voxels are unlabelled
too -- and adds an unsupervised term from a teacher that is the
exponential moving average (EMA) of the student's weights:

* ``meanteacher`` (Tarvainen & Valpola 2017; Yu et al. 2019 in 3D): the
  student sees the patch with noise and an intensity jitter, the teacher
  the clean patch; the term is the mean squared difference of their
  softmax outputs.
* ``pseudo`` (FixMatch style, Sohn et al. 2020): the teacher's confident
  voxels (probability above ``threshold``) become labels for the
  student's perturbed view (cross-entropy on them only).

The weight of the term ramps up as ``exp(-5 (1 - t)^2)`` over the first
``rampup`` share of the budget (Laine & Aila 2017), so the teacher is
heard only once it has learnt something from the labels.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..base import defaults
from ..base.errors import WeaksegError
from ..data.pool import VolumePool, pad_to

#: online terms of this module; ``selftrain`` (:mod:`~.selftrain`) runs
#: two rounds instead
ONLINE = ("meanteacher", "pseudo")
METHODS = defaults.SEMI_METHODS


@dataclass
class SemiConfig:
    """Settings of the unsupervised term."""

    method: str = defaults.SEMI_METHOD
    #: weight of the term once ramped up
    weight: float = defaults.SEMI_WEIGHT
    #: share of the budget over which the weight ramps up
    rampup: float = 0.4
    #: EMA decay of the teacher's weights
    ema: float = 0.99
    #: unlabelled patches per step
    batch_size: int = 2
    #: share of them drawn from the annotated volumes (when there is a
    #: pool; all of them without one)
    own_share: float = 0.5
    #: pseudo: teacher probability a voxel needs to become a label
    threshold: float = 0.9
    #: student view: Gaussian noise (std) and intensity scale / shift
    noise: float = 0.1
    jitter: float = 0.1

    def check(self) -> None:
        if self.method not in METHODS:
            raise WeaksegError(
                f"Unknown semi-supervised method '{self.method}'; choose "
                f"from {', '.join(METHODS)}."
            )


def rampup(step: int, total: int, share: float) -> float:
    """``exp(-5 (1 - t)^2)`` with ``t`` the progress through the first
    ``share`` of ``total`` steps, then 1."""
    length = max(1.0, share * total)
    t = min(1.0, step / length)
    return float(np.exp(-5.0 * (1.0 - t) ** 2))


@torch.no_grad()
def ema_update(
    teacher: torch.nn.Module,
    student: torch.nn.Module,
    decay: float,
    step: int | None = None,
) -> float:
    """``teacher = a * teacher + (1 - a) * student`` for every float
    tensor (buffers copied); ``a = min(decay, 1 - 1 / (step + 1))`` when
    ``step`` is given (the teacher follows closely at first).  Returns
    ``a``."""
    a = decay if step is None else min(decay, 1.0 - 1.0 / (step + 1))
    s_params = dict(student.named_parameters())
    for name, t in teacher.named_parameters():
        t.mul_(a).add_(s_params[name].detach(), alpha=1.0 - a)
    s_bufs = dict(student.named_buffers())
    for name, b in teacher.named_buffers():
        b.copy_(s_bufs[name])
    return a


class SemiSupervised:
    """The unsupervised term of one training run and its EMA teacher."""

    def __init__(
        self,
        student: torch.nn.Module | None,
        pool: VolumePool | None,
        images: Sequence[np.ndarray],
        patch: Sequence[int],
        steps: int,
        cfg: SemiConfig,
        device: torch.device,
        seed: int = 0,
    ) -> None:
        cfg.check()
        if cfg.method not in ONLINE:
            raise WeaksegError(
                f"'{cfg.method}' is not a term of one training run; "
                "run it through selftrain.iter_self_train."
            )
        self.cfg, self.pool, self.steps = cfg, pool, max(1, int(steps))
        self.patch = [int(p) for p in patch]
        self.device = device
        self.own = [
            np.ascontiguousarray(pad_to(np.asarray(im, np.float32), patch))
            for im in images
            if isinstance(im, np.ndarray)
        ]
        if pool is None and not self.own:
            raise WeaksegError(
                "Semi-supervised training needs unlabelled volumes."
            )
        self.teacher: torch.nn.Module | None = None
        if student is not None:
            self._copy(student)
        self.rng = np.random.default_rng(seed + 4242)
        self.gen = torch.Generator().manual_seed(seed + 4242)
        self.step = 0
        self.last: dict[str, float] = {}

    def _copy(self, student: torch.nn.Module) -> None:
        self.teacher = copy.deepcopy(student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()

    def _crop(self, image: np.ndarray) -> np.ndarray:
        start = [
            int(self.rng.integers(0, s - p + 1))
            for s, p in zip(image.shape, self.patch)
        ]
        return image[tuple(slice(a, a + p) for a, p in zip(start, self.patch))]

    def batch(self) -> torch.Tensor:
        """Unlabelled patches ``(B, 1, *patch)``: from the pool and from
        the annotated volumes (their unannotated voxels)."""
        out = []
        for _ in range(self.cfg.batch_size):
            own = self.pool is None or (
                self.own and self.rng.random() < self.cfg.own_share
            )
            if own:
                img = self.own[int(self.rng.integers(len(self.own)))]
            else:
                img = pad_to(self.pool.volume(), self.patch)
            out.append(np.ascontiguousarray(self._crop(img)))
        return torch.as_tensor(np.stack(out))[:, None]

    def perturb(self, x: torch.Tensor) -> torch.Tensor:
        """The student's view: intensity scale and shift, Gaussian noise."""
        b = x.shape[0]
        shape = (b,) + (1,) * (x.ndim - 1)
        j = self.cfg.jitter
        scale = 1 + j * (2 * torch.rand(shape, generator=self.gen) - 1)
        shift = j * (2 * torch.rand(shape, generator=self.gen) - 1)
        noise = self.cfg.noise * torch.randn(x.shape, generator=self.gen)
        return x * scale + shift + noise

    def weight(self) -> float:
        return self.cfg.weight * rampup(self.step, self.steps, self.cfg.rampup)

    def loss(
        self, student: torch.nn.Module, layout=torch.contiguous_format
    ) -> torch.Tensor:
        """The weighted unsupervised term of one step (the teacher starts
        as a copy of the student, on its device, at the first step)."""
        if self.teacher is None:
            self._copy(student)
        x = self.batch()
        xs = self.perturb(x).to(self.device).contiguous(memory_format=layout)
        xt = x.to(self.device).contiguous(memory_format=layout)
        with torch.no_grad():
            teacher = torch.softmax(self.teacher(xt).float(), 1)
        logits = student(xs).float()
        if self.cfg.method == "meanteacher":
            term = F.mse_loss(torch.softmax(logits, 1), teacher)
            share = 1.0
        else:
            conf, target = teacher.max(1)
            keep = conf >= self.cfg.threshold
            ce = F.cross_entropy(logits, target, reduction="none")
            term = (ce * keep).sum() / keep.numel()
            share = float(keep.float().mean())
        w = self.weight()
        self.last = {"term": float(term.detach()), "weight": w, "kept": share}
        return w * term

    def update(self, student: torch.nn.Module) -> None:
        """EMA step of the teacher after the optimiser's step."""
        ema_update(self.teacher, student, self.cfg.ema, self.step)
        self.step += 1

    def drain(self) -> Iterable:
        return self.pool.drain() if self.pool is not None else []


def semi_term(
    unlabelled,
    cfg: SemiConfig | None,
    trainset,
    mconf,
    train_cfg,
    device: torch.device,
) -> SemiSupervised:
    """The term of :func:`~.training.iter_train` for ``unlabelled``
    (sources, arrays or a pool; None: the annotated volumes only); its
    teacher is copied from the student at the first step."""
    cfg = cfg or SemiConfig()
    cfg.check()
    patch = mconf.patch_size
    if unlabelled is None or isinstance(unlabelled, VolumePool):
        pool = unlabelled
    else:
        pool = VolumePool(
            unlabelled,
            patch,
            defaults.POOL_CACHE,
            seed=train_cfg.budget.seed,
        )
    return SemiSupervised(
        None,
        pool,
        trainset.images,
        patch,
        train_cfg.budget.steps,
        cfg,
        device,
        train_cfg.budget.seed,
    )
