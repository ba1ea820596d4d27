"""Self-supervised pretext tasks on unlabelled 3D patches.

* **Rotation** (Gidaris et al.): a cubic patch turned by 90°, 180° or 270°
  in one of the three planes, or not at all: 10 classes (chance 0.1).
* **Contrastive** (SimCLR): two augmented views of each patch; MONAI's
  :class:`~monai.losses.ContrastiveLoss` is the NT-Xent loss over the other
  ``2(N-1)`` views as negatives.
* **Inpainting**: random blocks are blanked and reconstructed (L1 on them)
  by the whole U-Net.
* **Masked** image modelling (SimMIM / MAE style for a 3D CNN, Wald et
  al. 2024): the patch is cut into small cubes, most of them (60 %) are
  set to 0 (the mean of a normalised image) and the whole U-Net
  reconstructs the masked voxels (L1 on them only).

Patches are drawn where the image has structure (local std above a share
of the global one), so rotation has no trivial answer on flat background.
The model is the segmentation U-Net (1 output channel for the
reconstructions) plus small heads on its bottleneck.  Tasks that train
the decoder (inpainting, masked) save the whole U-Net but its output
block; the others the encoder only.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base.defaults import MASK_CUBE, MASK_RATIO
from ..base.defaults import PRETEXT_TASKS as TASKS
from ..base.errors import WeaksegError

#: tasks that train the decoder too: the whole U-Net transfers
DECODER_TASKS = ("inpainting", "masked")
PLANES = ((0, 1), (0, 2), (1, 2))
#: label 0 = no turn; then (plane, quarter turns k) for k = 1, 2, 3
ROTATIONS = [(None, 0)] + [(p, k) for p, k in product(PLANES, (1, 2, 3))]


def rotate(x: torch.Tensor, label: int, inverse: bool = False) -> torch.Tensor:
    """Turn a ``(..., Z, Y, X)`` patch by rotation class ``label``."""
    plane, k = ROTATIONS[label]
    if plane is None:
        return x
    dims = tuple(x.ndim - 3 + a for a in plane)
    return torch.rot90(x, -k if inverse else k, dims)


def structured_patches(
    image: np.ndarray,
    size: int,
    count: int,
    rng: np.random.Generator,
    min_std: float = 0.5,
    tries: int = 50,
) -> list[np.ndarray]:
    """Cubic patches of a normalised image where there is structure."""
    if any(s < size for s in image.shape):
        raise WeaksegError(
            f"The volume {image.shape} is smaller than a {size}^3 pretraining "
            "patch; use a smaller patch size or a larger volume."
        )
    out = []
    for _ in range(count):
        best, best_std = None, -1.0
        for _ in range(tries):
            start = [int(rng.integers(0, s - size + 1)) for s in image.shape]
            p = image[tuple(slice(a, a + size) for a in start)]
            std = float(p.std())
            if std > best_std:
                best, best_std = p, std
            if std >= min_std:
                break
        out.append(np.ascontiguousarray(best))
    return out


def require_structure(image: np.ndarray, name: str = "image") -> None:
    """Refuse flat volumes: no pretext task can be learnt from them."""
    if float(np.std(image)) < 1e-6:
        raise WeaksegError(
            f"'{name}' is flat (constant intensity); pretraining needs "
            "volumes with structure."
        )


def augment(p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One SimCLR view of ``(B, 1, S, S, S)`` patches (crop, flip, intensity,
    noise, blur)."""
    from monai.transforms import GaussianSmooth

    b, _, s, _, _ = p.shape
    views = []
    for i in range(b):
        v = p[i]
        c = int(torch.randint(s * 3 // 4, s + 1, (1,), generator=gen))
        o = [
            int(torch.randint(0, s - c + 1, (1,), generator=gen))
            for _ in range(3)
        ]
        v = v[:, o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c]
        v = F.interpolate(
            v[None], size=(s, s, s), mode="trilinear", align_corners=False
        )[0]
        for axis in (1, 2, 3):
            if torch.rand(1, generator=gen) < 0.5:
                v = torch.flip(v, (axis,))
        scale = 1 + 0.2 * (torch.rand(1, generator=gen) - 0.5)
        shift = 0.2 * (torch.rand(1, generator=gen) - 0.5)
        v = v * scale + shift
        v = v + 0.1 * torch.randn(v.shape, generator=gen)
        if torch.rand(1, generator=gen) < 0.5:
            v = GaussianSmooth(sigma=0.8)(v)
        views.append(torch.as_tensor(v))
    return torch.stack(views)


def blank_blocks(
    p: torch.Tensor, gen: torch.Generator, blocks: int = 4, frac: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches with random cubes set to 0, and the mask of those cubes."""
    mask = torch.zeros_like(p, dtype=torch.bool)
    s = p.shape[-1]
    c = max(2, int(s * frac))
    for i in range(p.shape[0]):
        for _ in range(blocks):
            o = [
                int(torch.randint(0, s - c + 1, (1,), generator=gen))
                for _ in range(3)
            ]
            mask[i, :, o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c] = (
                True
            )
    return p.masked_fill(mask, 0.0), mask


def mask_cubes(
    p: torch.Tensor,
    gen: torch.Generator,
    cube: int = MASK_CUBE,
    ratio: float = MASK_RATIO,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked image modelling input: ``(B, 1, Z, Y, X)`` patches cut into
    cubes of side ``cube``; each is masked (set to 0) with probability
    ``ratio``.  Returns the masked patches and the boolean voxel mask."""
    b, c = p.shape[:2]
    grid = [-(-s // cube) for s in p.shape[2:]]
    m = torch.rand((b, 1, *grid), generator=gen) < ratio
    for axis in (2, 3, 4):
        m = m.repeat_interleave(cube, dim=axis)
    m = m[..., : p.shape[2], : p.shape[3], : p.shape[4]].expand(
        b, c, *p.shape[2:]
    )
    return p.masked_fill(m, 0.0), m


def masked_l1(
    rec: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean absolute error over the masked voxels only (0 without any)."""
    n = mask.sum()
    if int(n) == 0:
        return (rec * 0).sum()
    return ((rec - target).abs() * mask).sum() / n


class PretextModel(nn.Module):
    """A U-Net (1 output channel) with rotation and projection heads.

    The U-Net's blocks end in instance norm, so a plain global average of
    the bottleneck is almost constant (every channel has zero mean).  The
    rotation head therefore reads the bottleneck averaged onto a 2x2x2 grid
    (where things are tells the orientation), and the projection head reads
    its global mean and maximum (invariant to the views' flips and crops).
    """

    def __init__(
        self, unet: nn.Module, width: int, projection: int = 64
    ) -> None:
        super().__init__()
        self.unet = unet
        self.rotation_head = nn.Sequential(
            nn.Flatten(), nn.Linear(8 * width, len(ROTATIONS))
        )
        self.projection_head = nn.Sequential(
            nn.Linear(2 * width, width),
            nn.ReLU(),
            nn.Linear(width, projection),
        )

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The deepest encoder block's features (``width`` channels)."""
        from ..nn.networks import encode

        return encode(self.unet, x)

    def rotation_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.rotation_head(F.adaptive_avg_pool3d(self.bottleneck(x), 2))

    def projection(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bottleneck(x)
        pooled = torch.cat(
            [F.adaptive_avg_pool3d(b, 1), F.adaptive_max_pool3d(b, 1)], 1
        )
        return self.projection_head(pooled.flatten(1))

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The tensors that transfer: encoder blocks only, U-Net names."""
        from ..nn.networks import canonical_state, encoder_prefixes

        prefixes = encoder_prefixes(self.unet)
        return {
            k: v
            for k, v in canonical_state(self.unet).items()
            if k.startswith(prefixes)
        }

    def unet_state(self, other: nn.Module) -> dict[str, torch.Tensor]:
        """The whole U-Net but its output block: every tensor whose shape
        is the same in ``other``, the same network built with another
        number of classes (the output block depends on it)."""
        from ..nn.networks import canonical_state

        theirs = other.state_dict()
        return {
            k: v
            for k, v in canonical_state(self.unet).items()
            if k in theirs and tuple(theirs[k].shape) == tuple(v.shape)
        }


def contrastive_top1(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """Share of views whose most similar other view is their partner."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-torch.inf)
    n = z1.shape[0]
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return float((sim.argmax(1) == partner).float().mean())


def parse_tasks(tasks: str | Sequence[str]) -> tuple[str, ...]:
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    names = [t.strip() for t in names if t.strip()]
    bad = [t for t in names if t not in TASKS]
    if bad or not names:
        raise WeaksegError(
            f"Unknown pretext task '{bad[0] if bad else ''}'; choose from "
            f"{', '.join(TASKS)}."
        )
    return tuple(names)
