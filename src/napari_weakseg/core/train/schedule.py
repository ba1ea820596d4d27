"""The plan of a training run and the schedule worked out from it.

A :class:`Plan` is what a trainer asks for (steps, minutes, validations,
final phase, patience); its :class:`Schedule` answers the engine's
questions at each step: does this step validate, has the final phase
begun, has the run run out of time or of patience, and where does a run
that ran out of patience end.  Both are plain arithmetic (no clock read,
no task), so every rule is tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..base.errors import WeaksegError

#: validations in the validated part of a run, by default
VALIDATIONS = 10


@dataclass
class Plan:
    """The budget and validation plan of one run."""

    steps: int
    minutes: float | None = None
    #: validations in the validated part of the run (``val_every`` wins)
    validations: int = VALIDATIONS
    val_every: int | None = None
    #: share of the budget trained at the end without validation; the
    #: task's :meth:`~.engine.Task.enter_final` is called when it begins
    #: and the final weights are then the model
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


@dataclass(frozen=True)
class Schedule:
    """When a run validates, begins its final phase and ends."""

    steps: int
    #: steps between validations (a step validates when it divides it)
    val_every: int
    #: the step that begins the final phase (``steps``: there is none)
    final_from: int
    final_phase: float
    #: the time budget in seconds (infinite without one)
    seconds: float
    patience: int | None = None

    @classmethod
    def of(cls, plan: Plan) -> Schedule:
        """The schedule of ``plan``: ``validations`` spread over the part
        before the final phase (``val_every`` wins), and with patience
        several validations per patience."""
        final_from = plan.steps - round(plan.steps * plan.final_phase)
        val_every = plan.val_every or max(
            1, final_from // max(1, plan.validations)
        )
        if plan.patience and not plan.val_every:
            val_every = min(val_every, max(1, plan.patience // 4))
        seconds = plan.minutes * 60 if plan.minutes else math.inf
        return cls(
            plan.steps,
            val_every,
            final_from,
            plan.final_phase,
            seconds,
            plan.patience,
        )

    @property
    def has_final(self) -> bool:
        """Whether the plan ends with a final phase."""
        return self.final_from < self.steps

    def validates(self, step: int) -> bool:
        """Whether the engine validates after ``step``."""
        return step % self.val_every == 0

    def deadline(self, t0: float) -> float:
        """The clock reading past which a run started at ``t0`` stops."""
        return t0 + self.seconds

    def final_at(self, t0: float) -> float:
        """The clock reading past which the final phase begins, whatever
        the step (infinite without a final phase or a time budget)."""
        if not self.has_final:
            return math.inf
        return t0 + self.seconds * (1 - self.final_phase)

    def enters_final(
        self, step: int, clock: Callable[[], float], final_at: float
    ) -> bool:
        """Whether the final phase begins before step ``step + 1``: its
        first step is reached, or by ``clock`` its share of the time
        budget is (``final_at``); the clock is read only when the step
        does not decide."""
        return self.has_final and (
            step >= self.final_from or clock() > final_at
        )

    def time_share(self, elapsed: float) -> float:
        """The share of the time budget spent (0 without one)."""
        return min(1.0, elapsed / self.seconds)

    def out_of_patience(self, step: int, best_step: int | None) -> bool:
        """Whether ``step`` is ``patience`` steps past the best one."""
        return (
            self.patience is not None
            and best_step is not None
            and step - best_step >= self.patience
        )

    def end_after_plateau(self, step: int) -> int | None:
        """The step a run that ran out of patience at ``step`` ends at: its
        final phase in proportion to the steps done; None: at once (the
        plan has no final phase)."""
        if self.final_phase == 0:
            return None
        share = self.final_phase / (1 - self.final_phase)
        return min(self.steps, step + max(1, round(step * share)))
