"""A classifier whose class map localises: local evidence, top-k pooled.

A CAM localises only if the score of a voxel can come from that voxel's
neighbourhood alone.  The encoder classifier (U-Net encoder + GAP) breaks
this three ways, all measured on the MNI ventricles (``bench_cam.py``):
its receptive field spans the whole crop, instance normalisation hands
every voxel the crop's global statistics, and zero padding tells a voxel
where the crop's faces are -- so the network learns to write "an object
is somewhere in here" on one face of the crop (pointing game 0.04-0.28
with any pooling on top of a U-Net).

:class:`LocalClassifier` removes all three: unpadded dilated convolutions
(receptive field ``2 * context + 1`` voxels), no normalisation layer, and
its input padded by ``context`` (reflection) so the map covers the input
voxel for voxel -- or, for a crop cut from a larger volume, given with
``context`` voxels of its real surroundings (``padded=True``), so that a
voxel on the crop's face is judged on its true neighbours rather than a
mirror image (the crop's faces held the map's maximum in two thirds of
the hippocampus crops with reflection).  Every voxel gets a per-class
log-odds score against class 0 ("absent"); a crop's class logits are
the mean of the top ``topk`` fraction of those scores (multiple-instance
pooling: present means *some* voxels say so, absent means *none* does).
The map that is pooled is the CAM: no gradients, no upsampling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: dilations of the 3x3x3 convolutions: a receptive field of 9 voxels,
#: about the object's size (23 voxels pointed 0.45 on the ventricles, a
#: plateau wider than the object; 7 voxels find a 4^3 cube every time)
DILATIONS = (1, 1, 1, 1)
TOPK = 0.002


class LocalClassifier(nn.Module):
    """Unpadded dilated convolutions, per-voxel scores, top-k pooling."""

    def __init__(
        self,
        width: int,
        num_classes: int,
        dilations: tuple[int, ...] | list[int] = DILATIONS,
        topk: float = TOPK,
    ) -> None:
        super().__init__()
        self.topk = float(topk)
        self.context = int(sum(dilations))
        chans = [1] + [int(width)] * len(dilations)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv3d(a, b, 3, dilation=int(d)), nn.LeakyReLU(0.01)
            )
            for a, b, d in zip(chans, chans[1:], dilations)
        )
        # one score per class; column 0 is the reference ("absent")
        self.head = nn.Conv3d(chans[-1], num_classes, 1)

    def score_map(self, x: torch.Tensor, padded: bool = False) -> torch.Tensor:
        """Log-odds of each class against class 0, ``(B, C, Z, Y, X)`` on
        the input's grid (class 0's map is zeros); ``padded``: the input
        carries ``context`` voxels of surroundings on every side, and the
        map covers what lies inside them."""
        c = self.context
        if padded:
            h = x
        else:
            mode = "reflect" if min(x.shape[2:]) > c else "replicate"
            h = F.pad(x, (c, c, c, c, c, c), mode=mode)
        for block in self.blocks:
            h = block(h)
        s = self.head(h)
        return s - s[:, :1]

    def pool(self, s: torch.Tensor) -> torch.Tensor:
        """Mean of the top ``topk`` fraction of each class map."""
        flat = s.flatten(2)
        k = max(1, round(self.topk * flat.shape[2]))
        return flat.topk(k, dim=2).values.mean(dim=2)

    def forward(self, x: torch.Tensor, padded: bool = False) -> torch.Tensor:
        return self.pool(self.score_map(x, padded))
