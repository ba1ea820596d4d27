"""A small live plot of training loss and a score (Dice, accuracy).

pyqtgraph draws with Qt itself: updating a few hundred points costs about a
millisecond on the GUI thread, where a Matplotlib Agg draw of the same plot
cost ~100 ms on a CPU-only machine and stalled the viewer once a second.
"""

from __future__ import annotations

import time

import pyqtgraph as pg
from qtpy.QtWidgets import QVBoxLayout, QWidget

BLUE, ORANGE, GREEN = "#1f77b4", "#ff7f0e", "#2ca02c"


class LossPlot(QWidget):
    """Loss (left axis) and up to two scores (right axis, 0-1) by step.

    Until a run starts the plot shows a caption, not empty axes.  (A
    ``pg.PlotWidget`` inside, not a subclass: it shadows methods such as
    ``clear`` with its plot item's.)
    """

    def __init__(self, right_label: str = "val. Dice") -> None:
        super().__init__()
        self.view = pg.PlotWidget(background="w")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.setMinimumHeight(170)
        self._caption = f"loss and {right_label} appear here once a run starts"
        item = self.view.getPlotItem()
        item.setLabel("bottom", "step")
        item.setLabel("left", "loss", color=BLUE)
        item.showAxis("right")
        item.setLabel("right", right_label, color=ORANGE)
        item.setMouseEnabled(x=False, y=False)
        self._right = pg.ViewBox()
        item.scene().addItem(self._right)
        item.getAxis("right").linkToView(self._right)
        self._right.setXLink(item)
        self._right.setYRange(0, 1, padding=0.02)
        self._right.setMouseEnabled(x=False, y=False)
        item.vb.sigResized.connect(self._align)
        self._loss = item.plot(pen=pg.mkPen(BLUE, width=1))
        self._score = pg.PlotDataItem(
            pen=pg.mkPen(ORANGE, width=1),
            symbol="o",
            symbolSize=5,
            symbolBrush=ORANGE,
            symbolPen=None,
        )
        self._extra = pg.PlotDataItem(pen=pg.mkPen(GREEN, width=1))
        self._right.addItem(self._score)
        self._right.addItem(self._extra)
        self._last_draw = 0.0
        self.clear()

    def _align(self) -> None:
        self._right.setGeometry(self.view.getPlotItem().vb.sceneBoundingRect())

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
        if not force and now - self._last_draw < 0.5:
            return
        self._last_draw = now
        item = self.view.getPlotItem()
        item.setTitle(None if self.steps else self._caption, size="8pt")
        for axis in ("left", "right", "bottom"):
            item.getAxis(axis).setStyle(showValues=bool(self.steps))
        self._loss.setData(self.steps, self.losses)
        self._score.setData(self.val_steps, self.dice)
        xs, ys = zip(*self.extra) if self.extra else ((), ())
        self._extra.setData(list(xs), list(ys))
