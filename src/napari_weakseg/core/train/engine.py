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


@dataclass(frozen=True)
class Metric:
    """What validation reports: its name and whether higher is better."""

    name: str = "Dice"
    higher_is_better: bool = True


DICE = Metric("Dice")
ACCURACY = Metric("accuracy")
LOSS = Metric("loss", higher_is_better=False)


@dataclass
class Plan:
    """The budget and validation plan of one run."""

    steps: int
    minutes: float | None = None
    #: validations in the validated part of the run (``val_every`` wins)
    validations: int = 10
    val_every: int | None = None
    #: share of the budget trained at the end without validation; the
    #: task's :meth:`Task.enter_final` is called when it begins and the
    #: final weights are then the model
    final_phase: float = 0.0
    #: ``out`` holds the best validated weights (else the final ones)
    keep_best: bool = True
    #: the best is judged on a moving average of this many validations
    window: int = 1
    #: end early when the best has not improved for this many steps (then
    #: run the final phase, in proportion to the steps done); None: off
    patience: int | None = None

    def check(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise WeaksegError(
                f"The step budget must be a whole number of at least 1 "
                f"(got {self.steps})."
            )
        if self.minutes is not None and not self.minutes > 0:
            raise WeaksegError(
                f"The time budget must be more than 0 minutes "
                f"(got {self.minutes})."
            )
        if not 0 <= self.final_phase < 1:
            raise WeaksegError(
                f"The final phase must be a share in [0, 1) of the budget "
                f"(got {self.final_phase})."
            )
        if self.patience is not None and (
            not isinstance(self.patience, int) or self.patience < 1
        ):
            raise WeaksegError(
                f"Patience must be a whole number of steps, at least 1 "
                f"(got {self.patience})."
            )


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


def _out_of_patience(plan: Plan, track: Tracker, step: int) -> bool:
    return (
        plan.patience is not None
        and track.best_step is not None
        and step - track.best_step >= plan.patience
    )


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
    out, last = Path(out), last_path(out)
    protect = out.exists()  # replaced only by a run that finishes
    track = Tracker(task.metric, plan.window)
    final_from = plan.steps - round(plan.steps * plan.final_phase)
    val_every = plan.val_every or max(
        1, final_from // max(1, plan.validations)
    )
    if plan.patience and not plan.val_every:  # several checks per patience
        val_every = min(val_every, max(1, plan.patience // 4))
    stopping: Callable[[], bool] = (
        (lambda: False) if stop is None else stop.is_set
    )

    w = ddp.world()
    ddp.join(task.device, w)
    raw = task.model
    if w.distributed:
        task.model = ddp.wrap(raw, task.device)
        started = dataclasses.replace(started, world_size=w.size)

    wrote: list[Path] = []

    def save(path: Path) -> None:  # rank 0 only; the module, not DDP's
        if w.main:
            if not _finite(raw):
                raise _diverged(step, out, wrote, protect)
            with _unwrapped(task, raw):
                task.save(path)
            wrote.append(path)

    def checkpoint(at: int, keep: bool) -> Generator[Any, None, None]:
        with _unwrapped(task, raw):  # every rank: the same weights, data
            scores = tuple(float(s) for s in task.validate())
        value = nanmean(scores)
        yield Validation(at, scores, value, task.held_out, task.metric.name)
        save(last)
        yield Saved(str(last), "last", at)
        if track.add(value, at) and keep:
            save(out)
            yield Saved(str(out), "best", at)

    amp = autocast_dtype(task.device)
    try:
        yield started
        step, t0 = 0, clock()
        budget_s = plan.minutes * 60 if plan.minutes else math.inf
        deadline = t0 + budget_s
        final_at = (
            t0 + budget_s * (1 - plan.final_phase)
            if final_from < plan.steps
            else math.inf
        )
        in_final = stopped = False
        end = plan.steps  # moved forward when patience runs out
        task.model.train()
        try:
            while step < end:
                stopped = stopping()
                if ddp.any_rank(stopped or clock() > deadline, w, task.device):
                    break
                if (
                    final_from < plan.steps
                    and not in_final
                    and (step >= final_from or clock() > final_at)
                ):
                    if step % val_every:
                        yield from checkpoint(step, not protect)
                    in_final = True
                    task.enter_final()
                with torch.autocast(
                    task.device.type, dtype=amp, enabled=amp is not None
                ):
                    loss = task.loss()
                if not bool(torch.isfinite(loss.detach()).all()):
                    raise _diverged(step + 1, out, wrote, protect)
                optimiser_step(task.optimiser, loss)
                if task.scheduler is not None:
                    task.time_share = min(1.0, (clock() - t0) / budget_s)
                    task.scheduler.step()
                step += 1
                yield Step.timed(
                    step, end, loss.detach(), t0, deadline, clock()
                )
                yield from task.after_step(step)
                if not in_final and step % val_every == 0:
                    yield from checkpoint(step, not protect)
                    if _out_of_patience(plan, track, step):
                        yield Plateau(step, track.best_step or 0)
                        if plan.final_phase == 0:
                            break
                        share = plan.final_phase / (1 - plan.final_phase)
                        end = min(
                            plan.steps, step + max(1, round(step * share))
                        )
                        final_at = math.inf
                        in_final = True
                        task.enter_final()
        except torch.OutOfMemoryError:
            if step:
                save(last)
            raise WeaksegError(
                f"Out of memory with {task.oom_hint}; try a smaller patch "
                "size or batch size"
                + (
                    f" (the last weights are saved in {last.name})."
                    if step
                    else "."
                )
            ) from None
        name = task.metric.name
        if step == 0:  # nothing learnt: leave every file as it was
            return Finished(0, stopped, float("nan"), "", "", metric=name)
        best = track.best if track.best is not None else float("nan")
        if stopped and protect:
            save(last)
            return Finished(
                step,
                stopped,
                float(best),
                str(out),
                str(last),
                f"Stopped early: {out.name} was kept as it was; the new "
                f"weights are in {last.name}.",
                metric=name,
            )
        if in_final or not plan.keep_best:
            # Trained on every annotated voxel: the final weights are
            # the model.
            if not in_final and step % val_every:
                yield from checkpoint(step, False)
            save(last)
            save(out)
            yield Saved(str(out), "final", step)
        else:
            if step % val_every:
                yield from checkpoint(step, not protect)
            if track.best_step is None or protect:  # finished: replace it
                save(out)
        best = track.best if track.best is not None else float("nan")
        return Finished(
            step, stopped, float(best), str(out), str(last), metric=name
        )
    except RuntimeError as exc:
        if w.distributed and ddp.is_group_error(exc):
            raise ddp.lost(w, exc) from None
        raise
    finally:
        task.model = raw
