"""The Apply dock's Compare section: its prediction layer scored against
a reference layer (Dice, IoU, HD95 in the reference's units, volumes),
shown in the dock and saved as CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, FileEdit, PushButton, TextEdit

from ..core.base.defaults import IGNORE, ROLE_REFERENCE
from ..core.base.errors import WeaksegError
from .layer_data import geometry_of, volume_of
from .layers import pair_mismatch
from .session import home
from .workers import report_error, start_worker


class CompareScores:
    """Compare, the table and Save table: a mixin of a
    :class:`.dock.Dock` with a ``prediction`` picker and a ``status``
    line (the Apply dock)."""

    def compare_controls(self) -> list[Any]:
        """The section's controls, in the order the dock shows them."""
        self.reference = self.layer_picker(
            "Labels", "compare with", ROLE_REFERENCE
        )
        self.ignore_unlabelled = CheckBox(
            text=f"ignore {IGNORE} (unlabelled) in the reference", value=False
        )
        self.compare = PushButton(text="Compare")
        self.scores = TextEdit(value="", label="scores")
        self.scores.gui_only = True  # a result, not a setting
        self.table_file = FileEdit(
            mode="w", label="table file", filter="*.csv"
        )
        self.save_table = PushButton(text="Save table…")
        self.compare.changed.connect(self.start_compare)
        self.save_table.changed.connect(self.save_scores)
        return [
            self.reference,
            self.ignore_unlabelled,
            self.compare,
            self.scores,
            self.table_file,
            self.save_table,
        ]

    def _style_scores(self) -> None:
        """A read-only monospace box, a few lines high, for the table;
        hidden until the first scores."""
        from qtpy.QtGui import QFontDatabase
        from qtpy.QtWidgets import QTextEdit

        box = self.scores.native
        box.setReadOnly(True)
        box.setFont(
            QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        )
        box.setLineWrapMode(QTextEdit.LineWrapMode.NoWrap)
        box.setFixedHeight(box.fontMetrics().lineSpacing() * 7)
        self.scores.visible = False  # until there are scores

    def _compare_inputs(self) -> tuple[Any, Any, int | None] | None:
        """The prediction and reference as volumes (with their spacing)
        and the ignored label, or None after one notification."""
        pred, ref = self.prediction.value, self.reference.value
        if pred is None or ref is None or pred is ref:
            report_error(
                WeaksegError(
                    "Pick a prediction layer and a reference layer to "
                    "compare it with."
                )
            )
            return None
        reason = pair_mismatch(pred, ref)
        if not reason and not geometry_of(pred).allclose(geometry_of(ref)):
            reason = (
                f"'{pred.name}' and '{ref.name}' have the same shape but "
                "different spacing, origin or direction; resample one onto "
                "the other first."
            )
        if reason:
            report_error(WeaksegError(reason))
            return None
        ignore = IGNORE if self.ignore_unlabelled.value else None
        # read in the worker (a prediction may be a zarr store on disk)
        return volume_of(pred, lazy=True), volume_of(ref, lazy=True), ignore

    def start_compare(self, out: Path | None = None) -> Any:
        """Score the prediction against the reference in a worker (Dice,
        IoU, HD95 in the reference's units, volumes); the table shows in
        the dock, and with ``out`` is written as CSV too."""
        inputs = self._compare_inputs()
        if inputs is None:
            return None
        pred, ref, ignore = inputs
        names = self.prediction.value.name, self.reference.value.name
        # a prediction layer names its classes (see style_classes)
        labels = self.prediction.value.metadata.get("weakseg_class_names")

        def job() -> Any:
            from ..api import evaluate

            yield
            return evaluate(
                pred,
                ref,
                ignore_label=ignore,
                out=out,
                names=[names[0]],
                class_names=labels,
            )

        def show(rows: Any) -> None:
            self._show_scores(*names, rows)
            if out is not None:
                self.status.value = f"table saved to {out}"

        def done() -> None:
            self.compare.enabled = self.save_table.enabled = True

        self.compare.enabled = self.save_table.enabled = False
        self.worker = start_worker(job, lambda _: None, show, done)
        return self.worker

    def _show_scores(self, pred: str, ref: str, rows: Any) -> None:
        """The table under a line naming both layers (its case column,
        the same on every row, left out: the dock is narrow)."""
        from dataclasses import replace

        from ..api import score_table as table

        if not rows:
            self.scores.value = ""
            self.status.value = "Neither layer holds a class: no scores."
            return
        lines = table([replace(r, case="") for r in rows]).splitlines()
        cut = len("case  ")
        self.scores.value = "\n".join(
            [f"'{pred}' against '{ref}':"] + [line[cut:] for line in lines]
        )
        self.scores.visible = True

    def save_scores(self) -> Any:
        """Score and write the table as CSV to the table file (asked for
        in a dialog when none is chosen)."""
        path = Path(str(self.table_file.value))
        if path.suffix.lower() != ".csv":
            from qtpy.QtWidgets import QFileDialog

            chosen, _ = QFileDialog.getSaveFileName(
                self.native, "Save the table", str(home()), "CSV (*.csv)"
            )
            if not chosen:
                return None
            path = Path(chosen).with_suffix(".csv")
            self.table_file.value = str(path)
        return self.start_compare(out=path)
