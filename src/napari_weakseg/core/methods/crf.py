"""Dense CRF by mean-field inference with local (convolutional) kernels.

Krähenbühl & Koltun's fully connected CRF with a spatial Gaussian kernel
and a bilateral (position + intensity) kernel, truncated to a local window
as in Teichmann & Cipolla's ConvCRF (here 26 directions at a few
distances rather than a dense window).  Plain torch tensor ops, so it runs on
CPU and GPU without the compiled extension MONAI's ``CRF`` block needs.

The pairwise weights of each window offset depend on the image only, so
they are computed once; each mean-field iteration is then a weighted sum of
shifted copies of Q with a Potts compatibility.  Distances are in physical
units (``spacing``), so anisotropic volumes get fewer neighbours along the
coarse axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch
import torch.nn.functional as F

from ..base.errors import WeaksegError


@dataclass(frozen=True)
class CRFParams:
    """Kernel widths in mm (spatial) and image std units (intensity)."""

    bilateral_weight: float = 5.0
    bilateral_spatial: float = 4.0
    bilateral_intensity: float = 0.25
    spatial_weight: float = 1.0
    spatial_sigma: float = 1.0
    iterations: int = 5
    distances: tuple[int, ...] = (1, 3)


def _offsets(
    spacing: Sequence[float], distances: Sequence[int]
) -> list[tuple[int, ...]]:
    """26 directions at each distance (in voxels of the finest axis).

    Sparse long-range neighbours let the bilateral term see same-intensity
    voxels beyond a blurred boundary at the cost of a few shifts.
    """
    finest = min(spacing)
    out = set()
    for d in distances:
        for u in product((-1, 0, 1), repeat=3):
            if any(u):
                out.add(
                    tuple(
                        c * max(1, round(d * finest / s))
                        for c, s in zip(u, spacing)
                    )
                )
    return sorted(out)


def _shift(
    t: torch.Tensor, o: Sequence[int], pad: Sequence[int]
) -> torch.Tensor:
    """``t`` (C, Z+2p, ...) padded; view of the neighbour at offset ``o``."""
    z, y, x = (
        t.shape[-3] - 2 * pad[0],
        t.shape[-2] - 2 * pad[1],
        t.shape[-1] - 2 * pad[2],
    )
    return t[
        ...,
        pad[0] + o[0] : pad[0] + o[0] + z,
        pad[1] + o[1] : pad[1] + o[1] + y,
        pad[2] + o[2] : pad[2] + o[2] + x,
    ]


def crf_refine(
    image: np.ndarray | torch.Tensor,
    probabilities: np.ndarray | torch.Tensor,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    params: CRFParams | None = None,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Refined class probabilities ``(C, Z, Y, X)`` (float32).

    ``image`` is any 3D intensity volume (normalised here by its std);
    ``probabilities`` the unary softmax ``(C, Z, Y, X)``.
    """
    p = params or CRFParams()
    img = torch.as_tensor(
        np.asarray(image), dtype=torch.float32, device=device
    )
    prob = torch.as_tensor(
        np.asarray(probabilities), dtype=torch.float32, device=device
    )
    if img.ndim != 3 or prob.ndim != 4 or prob.shape[1:] != img.shape:
        raise WeaksegError(
            f"The CRF needs a 3D image and (C, Z, Y, X) probabilities on its "
            f"grid, got {tuple(img.shape)} and {tuple(prob.shape)}."
        )
    img = (img - img.mean()) / img.std().clamp_min(1e-6)
    offsets = _offsets(spacing, p.distances)
    pad = [max(abs(o[a]) for o in offsets) for a in range(3)]
    padding = (pad[2], pad[2], pad[1], pad[1], pad[0], pad[0])
    img_pad = F.pad(img[None], padding, mode="replicate")[0]
    inside = F.pad(torch.ones_like(img)[None], padding)[0]
    d2 = [
        float(sum((c * s) ** 2 for c, s in zip(o, spacing))) for o in offsets
    ]
    # Each kernel sums to its weight over a uniform neighbourhood, so the
    # pairwise term stays comparable to the unary whatever the offsets.
    g_bil = np.exp(-np.asarray(d2) / (2 * p.bilateral_spatial**2))
    g_sp = np.exp(-np.asarray(d2) / (2 * p.spatial_sigma**2))
    g_bil *= p.bilateral_weight / g_bil.sum()
    g_sp *= p.spatial_weight / g_sp.sum()
    weights = []
    for o, gb, gs in zip(offsets, g_bil, g_sp):
        di = _shift(img_pad, o, pad) - img
        w = float(gb) * torch.exp(-di * di / (2 * p.bilateral_intensity**2))
        weights.append((w + float(gs)) * _shift(inside, o, pad))
    unary = torch.log(prob.clamp_min(1e-6))
    q = prob.clone()
    for _ in range(p.iterations):
        q_pad = F.pad(q, padding)
        msg = torch.zeros_like(q)
        for o, w in zip(offsets, weights):
            msg.add_(_shift(q_pad, o, pad) * w)
        q = torch.softmax(unary + msg, dim=0)
    return q.cpu().numpy()
