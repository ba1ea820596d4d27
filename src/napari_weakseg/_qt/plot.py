"""A small live plot of training loss and a score (Dice, accuracy)."""

from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class LossPlot(FigureCanvasQTAgg):
    """Loss (left axis) and up to two scores (right axis) against step.

    Lines are created once and only their data change; redraws are at
    most one a second with a fixed layout, so a live plot never stalls the
    viewer (a full re-layout costs ~150 ms per draw).
    """

    def __init__(self, right_label: str = "val. Dice") -> None:
        fig = Figure(figsize=(3.5, 2.2))
        fig.subplots_adjust(left=0.16, right=0.84, bottom=0.2, top=0.95)
        super().__init__(fig)
        self.setMinimumHeight(170)
        self.ax = fig.add_subplot(111)
        self.ax2 = self.ax.twinx()
        self.ax.set_xlabel("step", fontsize=7)
        self.ax.set_ylabel("loss", color="tab:blue", fontsize=7)
        self.ax2.set_ylabel(right_label, color="tab:orange", fontsize=7)
        self.ax2.set_ylim(0, 1)
        for a in (self.ax, self.ax2):
            a.tick_params(labelsize=6)
        (self._loss,) = self.ax.plot([], [], color="tab:blue", lw=1)
        (self._score,) = self.ax2.plot([], [], "o-", color="tab:orange", ms=3)
        (self._extra,) = self.ax2.plot([], [], "-", color="tab:green", lw=1)
        self._caption = fig.text(
            0.5,
            0.5,
            f"loss and {right_label} appear here\nonce a run starts",
            ha="center",
            va="center",
            fontsize=8,
            color="0.4",
        )
        self._last_draw = 0.0
        self.clear()

    def clear(self) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.dice: list[float] = []
        self.extra: list[tuple[int, float]] = []
        self.redraw(force=True)

    def add_loss(self, step: int, loss: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)

    def add_dice(self, step: int, dice: float) -> None:
        self.val_steps.append(step)
        self.dice.append(dice)

    def add_extra(self, step: int, value: float) -> None:
        """A second right-axis series (e.g. contrastive top-1)."""
        self.extra.append((step, value))

    def redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 1.0:
            return
        self._last_draw = now
        empty = not self.steps
        self._caption.set_visible(empty)  # no meaningless ±0.04 axes
        self.ax.set_visible(not empty)
        self.ax2.set_visible(not empty)
        self._loss.set_data(self.steps, self.losses)
        self._score.set_data(self.val_steps, self.dice)
        self._extra.set_data(*(zip(*self.extra) if self.extra else ([], [])))
        self.ax.relim()
        self.ax.autoscale_view()
        self.ax2.set_xlim(self.ax.get_xlim())
        self.draw_idle()
