"""SEC's expansion loss: global weighted rank pooling over present crops.

Kolesnikov & Lampert (2016) ask a segmentation network to *cover* every
object an image-level label says is there: the class's scores in the image
are sorted, weighted by ``decay ** rank`` and averaged (global weighted rank
pooling, GWRP), and ``-log`` of that is the loss.  ``decay = 0`` is max
pooling (one voxel suffices), ``decay = 1`` the mean (everything must be
the class).  SEC uses 0.996 for objects on 41x41 maps, weighing about the
top ``1 / (1 - decay)`` = 250 pixels most; :data:`DECAY` = 0.975 weighs
about 40 voxels: 0.996 pushed about 250 voxels of every present 24^3 crop
to the class and wrecked the small MNI ventricles (Dice 0.20 vs 0.79 with
0.975, bench_cam's setting, 3 rounds; hippocampus 0.74 vs 0.80).

Here the "images" are the crops the user labelled *present*: each step, a
few windows of the U-Net's patch size around present crops are scored and
the GWRP of the class probability over each crop's own voxels is pushed
towards 1.  Absent crops need no term: their voxels are background labels
in the masked loss already.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..base.errors import WeaksegError

Box = tuple[int, int, int, int, int, int]

#: GWRP's decay for present crops (see the module's text)
DECAY = 0.975


def gwrp(scores: torch.Tensor, decay: float) -> torch.Tensor:
    """Global weighted rank pooling of each row of ``scores`` ``(B, N)``:
    the scores sorted high to low, weighted by ``decay ** rank``,
    normalised by the weights' sum."""
    if not 0.0 <= decay <= 1.0:
        raise WeaksegError(f"The GWRP decay must be in [0, 1], got {decay}.")
    ranked = torch.sort(scores, dim=1, descending=True).values
    n = ranked.shape[1]
    w = torch.pow(
        torch.tensor(decay, dtype=torch.float64, device=scores.device),
        torch.arange(n, device=scores.device, dtype=torch.float64),
    ).to(ranked.dtype)
    return (ranked * w).sum(dim=1) / w.sum()


@dataclass(frozen=True)
class Expansion:
    """The expansion term's settings: the present crops (boxes on the
    training image), the class they hold, GWRP's decay, the term's weight
    and the crops scored per step."""

    boxes: Sequence[Box]
    class_index: int = 1
    decay: float = DECAY
    weight: float = 1.0
    batch: int = 2


class ExpansionLoss:
    """Windows of the patch size around the present crops of one image;
    :meth:`__call__` scores ``batch`` of them and returns the loss."""

    def __init__(
        self,
        image: np.ndarray,
        spec: Expansion,
        patch: Sequence[int],
        seed: int = 0,
    ) -> None:
        if not isinstance(image, np.ndarray):
            raise WeaksegError(
                "The expansion loss needs the image in memory, not read "
                "patch by patch from disk."
            )
        if not len(spec.boxes):
            raise WeaksegError(
                "The expansion loss needs at least one crop labelled present."
            )
        self.spec, self.image, self.patch = spec, image, patch
        for box in spec.boxes:  # a bad crop fails here, before training
            _window(image, box, patch)
        self.rng = np.random.default_rng(seed)

    def __call__(
        self, model: torch.nn.Module, device: torch.device
    ) -> torch.Tensor:
        boxes = self.spec.boxes
        n = min(self.spec.batch, len(boxes))
        pick = self.rng.choice(len(boxes), n, replace=False)
        # windows are cut when drawn: thousands of crops would otherwise
        # hold thousands of patches in memory
        cuts = [_window(self.image, boxes[i], self.patch) for i in pick]
        x = torch.from_numpy(np.stack([w for w, _ in cuts]))
        probs = torch.softmax(model(x[:, None].to(device)).float(), dim=1)
        pooled = torch.stack(
            [
                gwrp(
                    probs[j, self.spec.class_index][region].reshape(1, -1),
                    self.spec.decay,
                )[0]
                for j, (_, region) in enumerate(cuts)
            ]
        )
        return -torch.log(pooled.clamp_min(1e-6)).mean() * self.spec.weight


def _window(
    image: np.ndarray, box: Sequence[int], patch: Sequence[int]
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """A ``patch``-sized window of ``image`` centred on ``box`` (kept
    inside the image, edge-padded where the image is smaller) and the
    box's voxels within it."""
    lo, hi = [int(v) for v in box[:3]], [int(v) for v in box[3:]]
    if any(h <= a for a, h in zip(lo, hi)) or any(
        a < 0 or h > s for a, h, s in zip(lo, hi, image.shape)
    ):
        raise WeaksegError(
            f"Crop {tuple(box)} is empty or outside the image of shape "
            f"{image.shape}."
        )
    start = [
        min(max(0, (a + h - p) // 2), max(0, s - p))
        for a, h, p, s in zip(lo, hi, patch, image.shape)
    ]
    cut = image[tuple(slice(a, a + p) for a, p in zip(start, patch))]
    pad = [(0, p - c) for p, c in zip(patch, cut.shape)]
    window = np.pad(cut, pad, mode="edge").astype(np.float32)
    region = tuple(
        slice(max(0, a - s), min(p, h - s))
        for a, h, s, p in zip(lo, hi, start, patch)
    )
    return window, region
