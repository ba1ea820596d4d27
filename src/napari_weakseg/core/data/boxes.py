"""3D boxes: the :class:`Box` type, its files and checks (the initial
training targets boxes define are :mod:`..methods.box_targets`).

A box is ``z0, y0, x0, z1, y1, x1`` in voxel indices (end exclusive) and a
class ``1..K``.  Files are CSV with that header row plus ``class``, or JSON
(a list of objects with the same fields).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..base.defaults import IGNORE
from ..base.errors import WeaksegError

FIELDS = ("z0", "y0", "x0", "z1", "y1", "x1", "class")


@dataclass(frozen=True)
class Box:
    z0: int
    y0: int
    x0: int
    z1: int
    y1: int
    x1: int
    cls: int = 1

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return (
            slice(self.z0, self.z1),
            slice(self.y0, self.y1),
            slice(self.x0, self.x1),
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z1 - self.z0, self.y1 - self.y0, self.x1 - self.x0)

    @property
    def volume(self) -> int:
        return int(np.prod(self.shape))

    def as_row(self) -> dict[str, int]:
        d = asdict(self)
        d["class"] = d.pop("cls")
        return d


def _box_from(row: dict, where: str) -> Box:
    try:
        values = [int(float(row[k])) for k in FIELDS]
    except KeyError as exc:
        raise WeaksegError(
            f"{where} has no '{exc.args[0]}' field; boxes need "
            f"{', '.join(FIELDS)}."
        ) from None
    except (TypeError, ValueError, OverflowError):
        raise WeaksegError(
            f"{where} holds a value that is not a finite number: {row}."
        ) from None
    return Box(*values)


def read_boxes(path: str | os.PathLike) -> list[Box]:
    """Boxes from a CSV (header ``z0,y0,x0,z1,y1,x1,class``) or JSON file."""
    p = Path(path)
    if not p.is_file():
        raise WeaksegError(f"No boxes file at {p}.")
    try:
        if p.suffix.lower() == ".json":
            try:
                rows = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise WeaksegError(
                    f"{p.name} is not valid JSON ({exc.msg})."
                ) from None
            if isinstance(rows, dict):
                rows = rows.get("boxes", [])
        else:
            with open(p, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
    except UnicodeDecodeError:
        raise WeaksegError(f"{p.name} is not UTF-8 text.") from None
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) for r in rows
    ):
        raise WeaksegError(
            f"{p.name} must hold a list of boxes (objects with "
            f"{', '.join(FIELDS)})."
        )
    if not rows:
        raise WeaksegError(f"{p.name} holds no boxes.")
    return [
        _box_from(r, f"Box {i + 1} of {p.name}") for i, r in enumerate(rows)
    ]


def write_boxes(path: str | os.PathLike, boxes: Sequence[Box]) -> Path:
    """Write boxes as CSV, or JSON when ``path`` ends with ``.json``."""
    p = Path(path)
    rows = [b.as_row() for b in boxes]
    if p.suffix.lower() == ".json":
        p.write_text(json.dumps(rows, indent=1))
    else:
        with open(p, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    return p


def check_boxes(
    boxes: Sequence[Box], shape: Sequence[int], num_classes: int | None = None
) -> list[Box]:
    """Refuse impossible boxes; clip boxes that stick out of the image.

    Inverted or empty boxes, boxes entirely outside the image and classes
    outside ``1..num_classes-1`` are one clear sentence each.
    """
    if not boxes:
        raise WeaksegError("Draw at least one box.")
    out = []
    for i, b in enumerate(boxes, start=1):
        lo, hi = (b.z0, b.y0, b.x0), (b.z1, b.y1, b.x1)
        for a, name in enumerate("zyx"):
            if hi[a] <= lo[a]:
                raise WeaksegError(
                    f"Box {i} has {name}1={hi[a]} <= {name}0={lo[a]}; the end "
                    "must be after the start (end exclusive)."
                )
        if any(h <= 0 for h in hi) or any(lo[a] >= shape[a] for a in range(3)):
            raise WeaksegError(
                f"Box {i} {lo}-{hi} lies outside the image of shape "
                f"{tuple(shape)}."
            )
        if b.cls < 1 or b.cls >= IGNORE:
            raise WeaksegError(
                f"Box {i} has class {b.cls}; classes are 1..254 (0 is "
                "background)."
            )
        if num_classes is not None and b.cls >= num_classes:
            raise WeaksegError(
                f"Box {i} has class {b.cls} but the model knows only classes "
                f"1..{num_classes - 1}."
            )
        clip_lo = [max(0, v) for v in lo]
        clip_hi = [min(int(s), v) for s, v in zip(shape, hi)]
        out.append(Box(*clip_lo, *clip_hi, b.cls))
    return out
