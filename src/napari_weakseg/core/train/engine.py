"""The one training loop: budget, stop flag, autocast, OOM guard,
periodic validation and atomic last/best checkpoints.

Every trainer in core (the U-Net, the classifier, pretraining and, through
the U-Net, the box rounds) describes itself as a :class:`Task`: how to
compute the loss of one batch, how to validate (a metric with a name and a
direction), and how to save.  :func:`run` does the rest and yields the
same :mod:`~.events` for all of them, so the CLI, the API and the docks
show every run alike.

Checkpoint rules, shared by all tasks:

* ``<out>.last.safetensors`` holds the weights of the latest validation;
* ``out`` holds the best validated weights (``keep_best``) or the final
  weights (a run that trained on every labelled voxel at the end);
* a run that completes no step writes nothing;
* a run stopped early never replaces a model that was already at ``out``
  (its weights go to the ``.last`` file only);
* running out of memory saves the last weights and raises one sentence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.device import autocast_dtype
from ..base.errors import WeaksegError
from ..base.events import Finished, Plateau, Saved, Started, Step, Validation
from ..base.files import last_path
from . import ddp
from .schedule import Plan, Schedule


@dataclass(frozen=True)
class Metric:
    """What validation reports: its name and whether higher is better."""

    name: str = "Dice"
    higher_is_better: bool = True


DICE = Metric("Dice")


ACCURACY = Metric("accuracy")


LOSS = Metric("loss", higher_is_better=False)


class Task(ABC):
    """One trainer: subclasses set the attributes, implement ``loss``,
    ``validate`` and ``save``, and may override the two hooks."""

    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    device: torch.device
    metric: Metric = DICE
    #: validation reads voxels that training does not see
    held_out: bool = False
    #: completes "Out of memory with ..." (e.g. "patch [..] and batch 2")
    oom_hint: str = "this patch and batch size"
    #: share of the time budget spent, set by the engine before each
    #: scheduler step (0 without a time budget): schedules may decay by it
    time_share: float = 0.0
    #: steps in bf16 on a CPU that computes it natively (measured for the
    #: U-Net only: its Dice holds; other trainers stay in float32 there)
    cpu_bf16: bool = False

    @abstractmethod
    def loss(self) -> torch.Tensor:
        """The loss of one batch (run under autocast by the engine)."""

    @abstractmethod
    def validate(self) -> Sequence[float]:
        """Per-class (or single) scores; their NaN-mean is the metric."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the weights to ``path`` atomically."""

    def after_step(self, step: int) -> Iterable[Any]:
        """Extra events after a step (e.g. pretext accuracies)."""
        return ()

    def enter_final(self) -> None:  # noqa: B027 (optional hook)
        """Start the final phase (e.g. held-back slices go back in); by
        default nothing changes."""
        return None


def optimiser_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Zero the gradients, back-propagate ``loss`` and step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@contextlib.contextmanager
def _unwrapped(task: Task, raw: torch.nn.Module) -> Generator[None]:
    """``task.model`` is the bare module inside the block (DDP's wrapper
    only wraps the training step)."""
    wrapped, task.model = task.model, raw
    try:
        yield
    finally:
        task.model = wrapped


class Tracker:
    """Validation values and the best moving average of the last few."""

    def __init__(self, metric: Metric = DICE, window: int = 1) -> None:
        self.metric = metric
        self.window = max(1, window)
        self.values: list[float] = []
        self.best: float | None = None
        self.best_step: int | None = None

    def add(self, value: float, step: int) -> bool:
        """Record one validation; True when its moving average is best."""
        if math.isnan(value):
            return False
        self.values.append(value)
        smooth = float(np.mean(self.values[-self.window :]))
        sign = 1 if self.metric.higher_is_better else -1
        if self.best is None or sign * (smooth - self.best) > 0:
            self.best, self.best_step = smooth, step
            return True
        return False


def nanmean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN (NaN when none is)."""
    with warnings.catch_warnings():  # every value NaN: NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if len(values) else float("nan")


def _finite(model: torch.nn.Module) -> bool:
    """Whether every weight of ``model`` is a finite number."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _diverged(
    step: int, out: Path, wrote: list[Path], protect: bool
) -> WeaksegError:
    """The sentence for a run whose loss or weights stopped being finite:
    what was kept.  Non-finite weights are never written."""
    if out in wrote:
        kept = f"{out.name} holds the best weights from before it"
    elif protect:
        kept = f"{out.name} was kept as it was"
    else:
        kept = f"{out.name} was not written"
    return WeaksegError(
        f"Training diverged at step {step} (the loss or the weights became "
        f"NaN or infinite); {kept}. Try a lower learning rate."
    )


class _Run:
    """One run of a task: its state (step, phase, files written) and the
    steps :func:`run` is made of."""

    def __init__(
        self,
        task: Task,
        plan: Plan,
        out: str | Path,
        clock: Callable[[], float],
    ) -> None:
        self.task, self.clock = task, clock
        self.schedule = Schedule.of(plan)
        self.keep_best = plan.keep_best
        self.out, self.last = Path(out), last_path(out)
        self.protect = self.out.exists()  # replaced only by a run that ends
        self.track = Tracker(task.metric, plan.window)
        self.world = ddp.world()
        self.raw = task.model  # the module; DDP's wrapper only trains
        self.wrote: list[Path] = []
        self.step, self.end = 0, plan.steps  # end moves with patience
        self.in_final = self.stopped = False
        self.t0 = self.deadline = self.final_at = 0.0

    def start(self) -> None:
        """Start the clock of the time budget."""
        self.t0 = self.clock()
        self.deadline = self.schedule.deadline(self.t0)
        self.final_at = self.schedule.final_at(self.t0)

    def save(self, path: Path) -> None:
        """Write the weights to ``path`` (rank 0 only; never non-finite
        weights: that is a diverged run)."""
        if self.world.main:
            if not _finite(self.raw):
                raise _diverged(self.step, self.out, self.wrote, self.protect)
            with _unwrapped(self.task, self.raw):
                self.task.save(path)
            self.wrote.append(path)

    def checkpoint(self, at: int, keep: bool) -> Generator[Any, None, None]:
        """Validate; save the last weights, and as the best ones when
        they are and ``keep``."""
        with _unwrapped(self.task, self.raw):  # every rank: the same data
            scores = tuple(float(s) for s in self.task.validate())
        value = nanmean(scores)
        task = self.task
        yield Validation(at, scores, value, task.held_out, task.metric.name)
        self.save(self.last)
        yield Saved(str(self.last), "last", at)
        if self.track.add(value, at) and keep:
            self.save(self.out)
            yield Saved(str(self.out), "best", at)

    def settle(self, keep: bool) -> Generator[Any, None, None]:
        """Validate the current step unless it just was: what ends the
        validated part of a run (the final phase begins, or the run
        ends)."""
        if not self.schedule.validates(self.step):
            yield from self.checkpoint(self.step, keep)

    def enter_final(self) -> None:
        self.in_final = True
        self.task.enter_final()

    def final_due(self) -> bool:
        """Whether the final phase begins before this step."""
        return not self.in_final and self.schedule.enters_final(
            self.step, self.clock, self.final_at
        )

    def train_step(self, amp: Any) -> torch.Tensor:
        """One optimiser step; returns its loss (detached)."""
        task = self.task
        with torch.autocast(
            task.device.type, dtype=amp, enabled=amp is not None
        ):
            loss = task.loss()
        if not bool(torch.isfinite(loss.detach()).all()):
            raise _diverged(self.step + 1, self.out, self.wrote, self.protect)
        optimiser_step(task.optimiser, loss)
        if task.scheduler is not None:
            elapsed = self.clock() - self.t0
            task.time_share = self.schedule.time_share(elapsed)
            task.scheduler.step()
        self.step += 1
        return loss.detach()

    def validate(self) -> Generator[Any, None, bool]:
        """The validation after a step, when the schedule has one there
        (the final phase has none); returns whether the run ends here
        (out of patience, no final phase)."""
        if self.in_final or not self.schedule.validates(self.step):
            return False
        yield from self.checkpoint(self.step, not self.protect)
        best = self.track.best_step
        if not self.schedule.out_of_patience(self.step, best):
            return False
        yield Plateau(self.step, best or 0)
        end = self.schedule.end_after_plateau(self.step)
        if end is None:
            return True
        self.end = end
        self.enter_final()
        return False

    def out_of_memory(self) -> WeaksegError:
        """The sentence for running out of memory, the last weights saved
        (when a step was done)."""
        if self.step:
            self.save(self.last)
        return WeaksegError(
            f"Out of memory with {self.task.oom_hint}; try a smaller patch "
            "size or batch size"
            + (
                f" (the last weights are saved in {self.last.name})."
                if self.step
                else "."
            )
        )

    def finish(self) -> Generator[Any, None, Finished]:
        """The checkpoints that end the run (see the module's rules)."""
        name = self.task.metric.name
        if self.step == 0:  # nothing learnt: leave every file as it was
            return Finished(0, self.stopped, math.nan, "", "", metric=name)
        message = ""
        if self.stopped and self.protect:
            self.save(self.last)
            message = (
                f"Stopped early: {self.out.name} was kept as it was; the "
                f"new weights are in {self.last.name}."
            )
        else:
            # final: trained on every annotated voxel at the end, the
            # final weights are the model
            final = self.in_final or not self.keep_best
            if not self.in_final:
                yield from self.settle(not self.protect and not final)
            if final:
                self.save(self.last)
                self.save(self.out)
                yield Saved(str(self.out), "final", self.step)
            elif self.track.best_step is None or self.protect:
                self.save(self.out)  # finished: it replaces the old one
        best = self.track.best if self.track.best is not None else math.nan
        return Finished(
            self.step,
            self.stopped,
            float(best),
            str(self.out),
            str(self.last),
            message,
            metric=name,
        )


def run(
    task: Task,
    plan: Plan,
    out: str | Path,
    started: Started,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Generator[Any, None, Finished]:
    """Train ``task`` under ``plan``; yield events; return Finished.

    ``clock`` (seconds) measures the time budget; tests pass a fake one.
    """
    plan.check()
    state = _Run(task, plan, out, clock)
    stopping: Callable[[], bool] = (
        (lambda: False) if stop is None else stop.is_set
    )
    w = state.world
    ddp.join(task.device, w)
    if w.distributed:
        task.model = ddp.wrap(state.raw, task.device)
        started = dataclasses.replace(started, world_size=w.size)
    amp = autocast_dtype(task.device, training=task.cpu_bf16)
    try:
        yield started
        state.start()
        task.model.train()
        try:
            while state.step < state.end:
                state.stopped = stopping()
                ending = state.stopped or clock() > state.deadline
                if ddp.any_rank(ending, w, task.device):
                    break
                if state.final_due():
                    yield from state.settle(not state.protect)
                    state.enter_final()
                loss = state.train_step(amp)
                yield Step.timed(
                    state.step,
                    state.end,
                    loss,
                    state.t0,
                    state.deadline,
                    clock(),
                )
                yield from task.after_step(state.step)
                if (yield from state.validate()):
                    break
        except torch.OutOfMemoryError:
            raise state.out_of_memory() from None
        return (yield from state.finish())
    except RuntimeError as exc:
        if w.distributed and ddp.is_group_error(exc):
            raise ddp.lost(w, exc) from None
        raise
    finally:
        task.model = state.raw
