"""A small live plot of training loss and validation Dice."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class LossPlot(FigureCanvasQTAgg):
    """Loss (left axis) and validation Dice (right axis) against step."""

    def __init__(self, right_label: str = "val. Dice") -> None:
        self.right_label = right_label
        fig = Figure(figsize=(3.5, 2.2), tight_layout=True)
        super().__init__(fig)
        self.setMinimumHeight(170)
        self.ax = fig.add_subplot(111)
        self.ax2 = self.ax.twinx()
        self.clear()

    def clear(self) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.dice: list[float] = []
        self.extra: list[tuple[int, float]] = []
        self.redraw()

    def add_loss(self, step: int, loss: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)

    def add_dice(self, step: int, dice: float) -> None:
        self.val_steps.append(step)
        self.dice.append(dice)

    def add_extra(self, step: int, value: float) -> None:
        """A second right-axis series (e.g. contrastive top-1)."""
        self.extra.append((step, value))

    def redraw(self) -> None:
        self.ax.cla()
        self.ax2.cla()
        self.ax.plot(self.steps, self.losses, color="tab:blue", lw=1)
        self.ax2.plot(
            self.val_steps, self.dice, "o-", color="tab:orange", ms=3
        )
        self.ax.set_xlabel("step", fontsize=7)
        self.ax.set_ylabel("loss", color="tab:blue", fontsize=7)
        self.ax2.set_ylabel(self.right_label, color="tab:orange", fontsize=7)
        self.ax2.set_ylim(0, 1)
        self.ax.tick_params(labelsize=6)
        self.ax2.tick_params(labelsize=6)
        self.draw_idle()
