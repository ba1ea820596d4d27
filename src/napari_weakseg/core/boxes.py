"""3D boxes: file I/O, checks and the initial targets they define.

A box is ``z0, y0, x0, z1, y1, x1`` in voxel indices (end exclusive) and a
class ``1..K``.  Files are CSV with that header row plus ``class``, or JSON
(a list of objects with the same fields).

Box^i (Khoreva et al.): an inner core is foreground, the rest of the box is
ignored, everything outside every box is background.  Objects are roundish,
so the core is the ellipsoid centred in the box holding ``core_fraction`` of
its volume (20 % by default): corners and edges, which hold the fewest
object voxels, are never called foreground.

Overlapping boxes of different classes: their overlap is *ignore* in the
initial targets, and either class is allowed there during suppression.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .defaults import IGNORE
from .errors import WeaksegError

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


def core_mask(box: Box, core_fraction: float = 0.2) -> np.ndarray:
    """Ellipsoid centred in ``box`` holding ``core_fraction`` of its volume."""
    r = (core_fraction * 6.0 / np.pi) ** (1.0 / 3.0)
    axes = [(np.arange(n) + 0.5) / n * 2.0 - 1.0 for n in box.shape]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return (zz**2 + yy**2 + xx**2) <= r * r


def box_targets(
    boxes: Sequence[Box], shape: Sequence[int], core_fraction: float = 0.2
) -> np.ndarray:
    """Box^i sparse targets: core = class, rest of box = ignore, else 0."""
    target = np.zeros(tuple(shape), np.uint8)
    owner = np.zeros(tuple(shape), np.int32)  # class of the core, -1 clash
    for b in boxes:
        target[b.slices] = IGNORE
    for b in boxes:
        region = owner[b.slices]
        core = core_mask(b, core_fraction)
        clash = core & (region > 0) & (region != b.cls)
        region[core & (region == 0)] = b.cls
        region[clash] = -1
    target[owner > 0] = owner[owner > 0]
    return target


def allowed_classes(boxes: Sequence[Box], shape: Sequence[int]) -> np.ndarray:
    """Bit mask per voxel of the classes its covering boxes allow."""
    allowed = np.zeros(tuple(shape), np.int64)
    for b in boxes:
        allowed[b.slices] |= 1 << b.cls
    return allowed


def grabcut_targets(
    image: np.ndarray,
    boxes: Sequence[Box],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    core_fraction: float = 0.2,
    confidence: float = 0.8,
    bins: int = 32,
) -> np.ndarray:
    """GrabCut-like initial targets: intensity model + CRF inside boxes.

    Nothing assumes where in its box the object lies (a C-shaped ventricle
    misses the centre).  The box's intensity histogram is a mixture of the
    surroundings' (a shell around the box) and the object's; the object's
    share ``w`` is the total-variation distance of the two histograms, and
    ``p(object | intensity) = max(0, h_box - (1 - w) h_shell) / h_box``.
    The dense CRF smooths those probabilities along intensity edges; voxels
    above ``confidence`` become the box's class, below ``1 - confidence``
    background, the rest ignore.  A box whose inside looks like its
    surroundings (``w`` under 2 %), or where no voxel is surely the object,
    keeps its Box^i target.
    """
    from .crf import crf_refine

    target = box_targets(boxes, image.shape, core_fraction)
    allowed = allowed_classes(boxes, image.shape)
    contested = (allowed & (allowed - 1)) != 0  # boxes of 2+ classes
    img = np.asarray(image, np.float32)
    for b in boxes:
        margin = [max(2, s // 4) for s in b.shape]
        outer = tuple(
            slice(max(0, s.start - m), min(n, s.stop + m))
            for s, m, n in zip(b.slices, margin, img.shape)
        )
        patch = img[outer]
        rel = tuple(
            slice(s.start - o.start, s.stop - o.start)
            for s, o in zip(b.slices, outer)
        )
        inner = np.zeros(patch.shape, bool)
        inner[rel] = True
        if (~inner).sum() < 2:
            continue  # the box is the whole image: no surroundings
        edges = np.histogram_bin_edges(patch, bins)
        which = np.clip(np.digitize(patch, edges[1:-1]), 0, bins - 1)
        h_box = np.bincount(which[inner], minlength=bins) / inner.sum()
        h_out = np.bincount(which[~inner], minlength=bins) / (~inner).sum()
        w = 0.5 * float(np.abs(h_box - h_out).sum())
        if w < 0.02:
            continue
        obj = np.maximum(h_box - (1.0 - w) * h_out, 0.0)
        p_bin = np.divide(obj, h_box, out=np.zeros(bins), where=h_box > 0)
        p_fg = p_bin[which].astype(np.float32)
        p_fg[~inner] = 0.0
        probs = np.stack([1.0 - p_fg, p_fg])
        q = crf_refine(patch, probs, spacing)[1][rel]
        region = target[b.slices]
        free = ~contested[b.slices] & (region != 0)
        if not ((q >= confidence) & free).any():
            continue  # no voxel is surely the object: keep Box^i
        region[free] = IGNORE
        region[(q >= confidence) & free] = b.cls
        region[(q <= 1 - confidence) & free] = 0
    return target
