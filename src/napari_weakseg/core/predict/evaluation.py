"""Score a segmentation against a reference: Dice, IoU, HD95, volumes.

The overlap and distance metrics are MONAI's (``compute_dice``,
``compute_iou``, ``compute_hausdorff_distance`` at the 95th percentile,
in the physical units of the voxel spacing); only the table around them
is written here.  Voxels whose reference is ``ignore_label`` (unlabelled
in a sparse reference) count for neither.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..base.errors import WeaksegError
from ..data.validate import require_integer_labels, require_same_grid


@dataclass(frozen=True)
class Score:
    """One class of one prediction against its reference."""

    case: str
    label: int
    name: str
    dice: float
    iou: float
    hd95: float  # in the spacing's units (mm for medical images)
    volume_pred: float  # in cubic spacing units
    volume_truth: float

    def cells(self) -> list[str]:
        def num(x: float) -> str:
            return "nan" if math.isnan(x) else f"{x:.4g}"

        return [
            self.case,
            str(self.label),
            self.name,
            f"{self.dice:.4f}",
            f"{self.iou:.4f}",
            num(self.hd95),
            num(self.volume_pred),
            num(self.volume_truth),
        ]


HEADER = [f.name for f in fields(Score)]


def score(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    ignore_label: int | None = None,
    case: str = "",
    class_names: Sequence[str] = (),
) -> list[Score]:
    """Per-class scores of label volume ``pred`` against ``truth`` (every
    class present in either, background excluded)."""
    import torch
    from monai.metrics import (
        compute_dice,
        compute_hausdorff_distance,
        compute_iou,
    )

    pred, truth = np.asarray(pred), np.asarray(truth)
    require_same_grid(truth.shape, pred.shape, names=("reference", case))
    for arr, what in ((pred, case or "prediction"), (truth, "reference")):
        require_integer_labels(arr, what)
    pred, truth = pred.astype(np.int64), truth.astype(np.int64)
    if ignore_label is not None:
        ignored = truth == ignore_label
        truth = np.where(ignored, 0, truth)
        pred = np.where(ignored, 0, pred)
        pred[pred == ignore_label] = 0
    classes = sorted((set(np.unique(pred)) | set(np.unique(truth))) - {0})
    if any(c < 0 for c in classes):
        raise WeaksegError(
            f"{case or 'The prediction'} holds negative labels."
        )
    if not classes:
        return []
    voxel = float(np.prod(spacing))
    rows = []
    for c in classes:
        p = torch.from_numpy(pred == c)[None, None].float()
        t = torch.from_numpy(truth == c)[None, None].float()
        both = (torch.cat([1 - p, p], 1), torch.cat([1 - t, t], 1))
        dice = float(
            compute_dice(*both, include_background=False, ignore_empty=False)
        )
        iou = float(
            compute_iou(*both, include_background=False, ignore_empty=False)
        )
        if p.any() and t.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hd = float(
                    compute_hausdorff_distance(
                        *both, percentile=95, spacing=list(spacing)
                    )
                )
        else:
            hd = float("nan")  # no surface to measure from
        name = class_names[c] if c < len(class_names) else f"class {c}"
        rows.append(
            Score(
                case,
                int(c),
                name,
                dice,
                iou,
                hd,
                float(p.sum()) * voxel,
                float(t.sum()) * voxel,
            )
        )
    return rows


def table(rows: Sequence[Score]) -> str:
    """The scores as an aligned text table, with a mean row per class."""
    lines = [HEADER] + [r.cells() for r in rows]
    cases = {r.case for r in rows}
    if len(cases) > 1:
        for label in sorted({r.label for r in rows}):
            of = [r for r in rows if r.label == label]
            lines.append(
                [
                    f"mean of {len(of)}",
                    str(label),
                    of[0].name,
                    f"{np.mean([r.dice for r in of]):.4f}",
                    f"{np.mean([r.iou for r in of]):.4f}",
                    _mean_hd(of),
                    "",
                    "",
                ]
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
        for line in lines
    )


def _mean_hd(rows: Sequence[Score]) -> str:
    """Mean HD95 of the rows that have one ('nan' when none has)."""
    values = [r.hd95 for r in rows if not math.isnan(r.hd95)]
    return f"{np.mean(values):.4g}" if values else "nan"


def write_csv(path: str | os.PathLike, rows: Sequence[Score]) -> Path:
    """The scores as CSV (one row per case and class), atomically."""
    from ..base.files import discard, temporary_sibling

    p = Path(path)
    tmp = temporary_sibling(p)
    try:
        with open(tmp, "x", newline="") as f:
            w = csv.DictWriter(f, HEADER)
            w.writeheader()
            for r in rows:
                w.writerow(asdict(r))
        os.replace(tmp, p)
    finally:
        discard(tmp)
    return p
