"""The budget of a training run, shared by every trainer's config.

The U-Net's :class:`~.unet.TrainConfig`, the classifier's
:class:`~.classifier.ClassifierConfig` and pretraining's
:class:`~.pretraining.PretrainConfig` each hold one :class:`Budget`:
how long the run trains (steps, minutes, patience), how often it
validates, its seed and its device.  :meth:`Budget.plan` is the one
place a budget becomes the engine's :class:`~.schedule.Plan`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base import defaults
from .schedule import VALIDATIONS, Plan


@dataclass(frozen=True)
class Budget:
    """How long a run trains, how often it validates, where and from
    which seed."""

    steps: int = defaults.STEPS
    minutes: float | None = None
    #: validations per run (``val_every`` overrides the spacing)
    validations: int = VALIDATIONS
    val_every: int | None = None
    #: end early when validation has not improved for this many steps
    #: (the automatic budget: set ``steps``/``minutes`` as a ceiling)
    patience: int | None = None
    seed: int = defaults.SEED
    device: str = "auto"

    def plan(
        self,
        *,
        final_phase: float = 0.0,
        window: int = 1,
        every: int | None = None,
    ) -> Plan:
        """The engine's plan of this budget, with the trainer's final
        phase and moving-average ``window``; ``every`` is the trainer's
        own validation spacing, used when the budget sets none."""
        return Plan(
            self.steps,
            self.minutes,
            validations=self.validations,
            val_every=self.val_every or every,
            final_phase=final_phase,
            window=window,
            patience=self.patience,
        )
