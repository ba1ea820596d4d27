"""Masked segmentation losses: unlabelled voxels weigh exactly zero.

Cross-entropy is PyTorch's own with ``ignore_index`` (mean over labelled
voxels, the reference semantics of Çiçek et al. and nnU-Net's ignore
label); the Dice term is MONAI's :class:`~monai.losses.MaskedDiceLoss` with
``mask = target != ignore``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import MaskedDiceLoss
from torch import nn

from ..base.defaults import IGNORE


def masked_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = IGNORE,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """CE averaged over labelled voxels; 0 (with a graph) if there are none.

    ``logits`` is ``(B, C, Z, Y, X)``; ``target`` is ``(B, Z, Y, X)`` or
    ``(B, 1, Z, Y, X)`` integer classes with ``ignore_index`` unlabelled.
    """
    if target.ndim == logits.ndim:
        target = target[:, 0]
    target = target.long()
    if not bool((target != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(
        logits, target, weight=weight, ignore_index=ignore_index
    )


class MaskedDiceCELoss(nn.Module):
    """``ce_weight * masked CE + dice_weight * masked Dice``."""

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE,
        class_weights: Sequence[float] | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        w = (
            None
            if class_weights is None
            else torch.tensor(list(class_weights), dtype=torch.float32)
        )
        self.register_buffer("class_weights", w)
        self.dice = MaskedDiceLoss(
            include_background=False,
            to_onehot_y=True,
            softmax=True,
            batch=True,
        )

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        if target.ndim == logits.ndim - 1:
            target = target[:, None]
        target = target.long()
        labelled = target != self.ignore_index
        loss = self.ce_weight * masked_cross_entropy(
            logits.float(), target, self.ignore_index, self.class_weights
        )
        if self.dice_weight and bool(labelled.any()):
            clean = torch.where(labelled, target, torch.zeros_like(target))
            loss = loss + self.dice_weight * self.dice(
                logits.float(), clean, labelled.float()
            )
        return loss
