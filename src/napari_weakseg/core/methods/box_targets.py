"""Initial training targets from 3D boxes.

Box^i (Khoreva et al.): an inner core is foreground, the rest of the box is
ignored, everything outside every box is background.  Objects are roundish,
so the core is the ellipsoid centred in the box holding ``core_fraction`` of
its volume (20 % by default): corners and edges, which hold the fewest
object voxels, are never called foreground.

Overlapping boxes of different classes: their overlap is *ignore* in the
initial targets, and either class is allowed there during suppression.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..base.defaults import CORE_FRACTION, IGNORE
from ..data.boxes import Box


def core_mask(box: Box, core_fraction: float = CORE_FRACTION) -> np.ndarray:
    """Ellipsoid centred in ``box`` holding ``core_fraction`` of its volume."""
    r = (core_fraction * 6.0 / np.pi) ** (1.0 / 3.0)
    axes = [(np.arange(n) + 0.5) / n * 2.0 - 1.0 for n in box.shape]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return (zz**2 + yy**2 + xx**2) <= r * r


def box_targets(
    boxes: Sequence[Box],
    shape: Sequence[int],
    core_fraction: float = CORE_FRACTION,
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
    core_fraction: float = CORE_FRACTION,
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
