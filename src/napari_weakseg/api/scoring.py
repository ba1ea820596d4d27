"""Scores of predictions against truth."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.base.errors import WeaksegError
from ..core.data.outputs import (
    TABLE,
    check_outputs,
)
from ..core.data.validate import require_3d, require_same_grid
from ._common import (
    PathLike,
    VolumeLike,
    _as_list,
    _checked,
    _class_names,
    _label,
    as_volume,
)


def _evaluation_pairs(pred: Any, truth: Any) -> list[tuple[Any, Any, str]]:
    """(prediction, reference, case name): two folders pair their volumes
    by file name; otherwise the lists pair in order."""
    from ..core.data.volumes import is_collection, volume_files

    def one(x: Any) -> bool:
        return isinstance(x, str | os.PathLike) and is_collection(x)

    if one(pred) and one(truth):
        refs = {p.name: p for p in volume_files(truth)}
        preds = volume_files(pred)
        lonely = [p.name for p in preds if p.name not in refs]
        if lonely or not preds:
            raise WeaksegError(
                f"{Path(truth)} has no reference named {lonely[0]}."
                if lonely
                else f"{Path(pred)} holds no volume to evaluate."
            )
        return [(p, refs[p.name], p.name) for p in preds]
    preds, truths = _as_list(pred), _as_list(truth)
    if len(preds) != len(truths):
        raise WeaksegError(
            f"Give one reference per prediction ({len(preds)} predictions, "
            f"{len(truths)} references)."
        )
    return [
        (p, t, _label(p, k, "prediction"))
        for k, (p, t) in enumerate(zip(preds, truths), start=1)
    ]


@_checked
def evaluate(
    pred: VolumeLike | Sequence[VolumeLike],
    truth: VolumeLike | Sequence[VolumeLike],
    *,
    ignore_label: int | None = None,
    out: PathLike | None = None,
    names: Sequence[str] | None = None,
    class_names: Sequence[str] | PathLike | None = None,
) -> list[Any]:
    """Score label volumes against references: Dice, IoU, HD95 (in the
    spacing's units) and volume per class (MONAI's metrics).

    ``pred`` and ``truth`` are volumes (paths, arrays, Volumes), lists of
    them paired in order, or two folders paired by file name.  Voxels
    whose reference is ``ignore_label`` count for neither; ``names``
    name the cases (default: file names); ``class_names`` name labels
    1..K in the table (a list, ``"head,body"``, or a model file whose
    names to use; default ``class 1``...).  With ``out``
    (``.csv``) the table is written too.  Returns one
    :class:`~.core.evaluation.Score` per case and class.
    """
    from ..core.predict.evaluation import score, write_csv

    labels = _class_names(class_names)
    pairs = _evaluation_pairs(pred, truth)
    if names is not None:
        if len(names) != len(pairs):
            raise WeaksegError(
                f"Give one name per prediction ({len(pairs)} predictions, "
                f"{len(names)} names)."
            )
        pairs = [(p, t, str(n)) for (p, t, _), n in zip(pairs, names)]
    if out is not None:
        if Path(out).suffix.lower() != ".csv":
            raise WeaksegError(f"The table {out} must end in .csv.")
        ins = [x for pair in pairs for x in pair[:2]]
        check_outputs({"out": (out, TABLE)}, ins)
    rows = []
    for p, t, case in pairs:
        ref = as_volume(t, name="reference")
        pv = as_volume(p, like=ref, name=case)
        require_3d(pv.data, case)
        require_same_grid(
            ref.shape, pv.shape, ref.geometry, pv.geometry, ("reference", case)
        )
        rows += score(
            np.asarray(pv.data),
            np.asarray(ref.data),
            ref.geometry.spacing,
            ignore_label,
            case,
            labels,
        )
    if out is not None:
        write_csv(out, rows)
    return rows


def score_table(rows: Sequence[Any]) -> str:
    """The rows :func:`evaluate` returns as an aligned text table, with a
    mean row per class when there are several cases."""
    from ..core.predict.evaluation import table

    return table(rows)
