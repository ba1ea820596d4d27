"""Small frozen events that every long task yields.

The same generator runs synchronously in tests and the API, and in a
worker thread in napari, where each event updates a progress bar, a plot or
a layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Started:
    total_steps: int
    device: str
    patch_size: tuple[int, ...]
    train_voxels: int
    val_voxels: int
    held_out: bool
    transferred: int = 0
    #: training processes (torchrun), 1 without DDP
    world_size: int = 1
    #: the network that trains (``resunet``, ``dynunet``, ...)
    network: str = ""
    #: the augmentation ``auto`` planned from the labels, in words
    augmentation: str = ""


@dataclass(frozen=True)
class Step:
    step: int
    total: int
    loss: float
    elapsed_s: float
    eta_s: float

    @classmethod
    def timed(
        cls,
        step: int,
        total: int,
        loss: float,
        t0: float,
        deadline: float = float("inf"),
        now: float | None = None,
    ) -> Step:
        """The event after ``step`` steps begun at ``perf_counter`` t0."""
        now = time.perf_counter() if now is None else now
        elapsed = now - t0
        eta = min(elapsed / step * (total - step), max(0.0, deadline - now))
        return cls(step, total, float(loss), elapsed, eta)


@dataclass(frozen=True)
class Validation:
    step: int
    dice: tuple[float, ...]
    mean_dice: float
    held_out: bool
    metric: str = "Dice"


@dataclass(frozen=True)
class Plateau:
    """Validation has not improved since ``best_step``: the run ends early
    (after its final phase, when it has one)."""

    step: int
    best_step: int


@dataclass(frozen=True)
class Saved:
    path: str
    kind: str
    step: int


@dataclass(frozen=True)
class Finished:
    """How a run ended: ``best`` is the best validation value of
    ``metric`` (Dice ↑, accuracy ↑ or loss ↓)."""

    steps: int
    stopped: bool
    best: float
    best_path: str
    last_path: str
    message: str = ""
    metric: str = "Dice"

    @property
    def best_dice(self) -> float:
        """``best`` under its old name (kept for scripts)."""
        return self.best

    def summary(self) -> str:
        """ "best validation Dice 0.912" and the like."""
        return f"best validation {self.metric} {self.best:.3f}"


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    message: str = ""


@dataclass(frozen=True, eq=False)
class Round:
    """One recursive round of boxes-to-masks: its post-processed labels."""

    round: int
    rounds: int
    labels: object
    changed: float


@dataclass(frozen=True)
class Pretext:
    """Per-task losses of one pretraining step and the pretext accuracies
    averaged over the last :data:`~.pretraining.ACCURACY_WINDOW` steps (one
    batch of 4 is too few to read an accuracy from)."""

    step: int
    losses: tuple[tuple[str, float], ...]
    rotation_accuracy: float
    contrastive_top1: float

    def summary(self) -> str:
        """Each task's loss, then the accuracies of the tasks that run."""
        parts = [f"{k} {v:.3f}" for k, v in self.losses]
        if self.rotation_accuracy == self.rotation_accuracy:  # not NaN
            parts.append(f"rotation acc {self.rotation_accuracy:.2f}")
        if self.contrastive_top1 == self.contrastive_top1:
            parts.append(f"top-1 {self.contrastive_top1:.2f}")
        return "  ".join(parts)


def run(
    gen: Generator[Any, None, Any],
    callback: Callable[[Any], None] | None = None,
) -> Any:
    """Drain an event generator synchronously and return its result."""
    while True:
        try:
            event = next(gen)
        except StopIteration as fin:
            return fin.value
        if callback is not None:
            callback(event)


@dataclass(frozen=True)
class Notice:
    """Something the user should know that is no error (e.g. an image
    unlike the model's training data): a notification, a CLI warning."""

    message: str


@dataclass(frozen=True)
class Skipped:
    """An input of a batch that could not be used, and why (one sentence)."""

    path: str
    reason: str
