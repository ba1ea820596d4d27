"""Planning a U-Net for a patch and a voxel spacing, nnU-Net style.

Pure arithmetic on sizes and spacings (no torch): the channels per level,
the per-axis kernel sizes and strides that pool only axes fine enough
(how anisotropic volumes are handled), and a patch of a given voxel
budget with balanced physical extent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..base.defaults import DEPTH


def filter_widths(base_filters: int, depth: int) -> list[int]:
    """Channels per level: doubling from ``base_filters``, capped at 320.

    One rule for the U-Net, the classifier and the pretrained encoder, so
    encoders transfer whenever ``base_filters`` and depth agree.
    """
    return [min(320, base_filters * 2**i) for i in range(depth)]


def plan_network(
    patch_size: Sequence[int],
    spacing: Sequence[float],
    depth: int = DEPTH,
) -> tuple[list[list[int]], list[list[int]]]:
    """nnU-Net-style kernel sizes and strides for one patch size/spacing.

    An axis is pooled only while its current spacing is at most twice the
    finest one and the feature map stays at least 8 voxels long; kernels
    are 1 along axes still more than twice as coarse as the finest.
    """
    size = [int(s) for s in patch_size]
    sp = [float(s) for s in spacing]
    kernels: list[list[int]] = []
    strides: list[list[int]] = [[1, 1, 1]]
    for level in range(depth):
        finest = min(sp)
        kernels.append([3 if s <= 2 * finest else 1 for s in sp])
        if level == depth - 1:
            break
        stride = [
            2 if (sp[a] <= 2 * finest and size[a] >= 8) else 1
            for a in range(3)
        ]
        strides.append(stride)
        size = [math.ceil(s / st) for s, st in zip(size, stride)]
        sp = [s * st for s, st in zip(sp, stride)]
    return kernels, strides


def plan_patch_size(
    shape: Sequence[int],
    spacing: Sequence[float],
    budget_voxels: int = 48**3,
    depth: int = DEPTH,
) -> list[int]:
    """A patch of about ``budget_voxels`` with balanced physical extent.

    The patch covers a similar physical length on each axis, never exceeds
    the image, and is a multiple of the pooling factor on each axis.
    """
    sp = [float(s) for s in spacing]
    inv = [1.0 / s for s in sp]
    scale = (budget_voxels / math.prod(inv)) ** (1.0 / 3.0)
    patch = [max(8, min(int(n), round(scale * v))) for n, v in zip(shape, inv)]
    # Redistribute the budget lost to the cap on short axes.
    for _ in range(3):
        free = [a for a in range(3) if patch[a] < shape[a]]
        if not free or math.prod(patch) >= budget_voxels:
            break
        grow = (budget_voxels / math.prod(patch)) ** (1.0 / len(free))
        for a in free:
            patch[a] = min(int(shape[a]), round(patch[a] * grow))
    _, strides = plan_network(patch, sp, depth)
    factor = [math.prod(s[a] for s in strides) for a in range(3)]
    return [max(f, (p // f) * f) for p, f in zip(patch, factor)]
