"""SEC's expansion loss: global weighted rank pooling over present crops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.base.events import run
from napari_weakseg.core.base.metrics import dice_per_class
from napari_weakseg.core.methods.box2mask import round_config
from napari_weakseg.core.methods.cam2seg import iter_cam_to_masks
from napari_weakseg.core.nn.expansion import (
    Expansion,
    ExpansionLoss,
    _window,
    gwrp,
)
from napari_weakseg.core.train.budget import Budget


def test_gwrp_runs_from_max_to_mean():
    x = torch.tensor([[1.0, 0.0, 3.0], [2.0, 2.0, 2.0]])
    assert torch.equal(gwrp(x, 0.0), torch.tensor([3.0, 2.0]))
    assert torch.allclose(gwrp(x, 1.0), torch.tensor([4 / 3, 2.0]))
    # sorted 3, 1, 0 weighted 1, 1/2, 1/4: 3.5 / 1.75
    assert torch.allclose(gwrp(x, 0.5), torch.tensor([2.0, 2.0]))
    with pytest.raises(WeaksegError, match="decay must be in"):
        gwrp(x, 1.5)


def test_window_centres_the_crop_and_finds_its_voxels():
    img = np.arange(10 * 12 * 14, dtype=np.float32).reshape(10, 12, 14)
    for box in [
        (3, 4, 5, 6, 8, 9),
        (0, 0, 0, 2, 2, 2),
        (8, 9, 10, 10, 12, 14),
    ]:
        win, region = _window(img, box, (6, 6, 6))
        assert win.shape == (6, 6, 6)
        crop = img[box[0] : box[3], box[1] : box[4], box[2] : box[5]]
        assert np.array_equal(win[region], crop)
    # a box larger than the window: the window's share of it
    win, region = _window(img, (0, 0, 0, 10, 12, 14), (4, 4, 4))
    assert win[region].shape == (4, 4, 4)
    # an image smaller than the patch is edge-padded
    win, region = _window(img[:3], (0, 0, 0, 3, 12, 14), (6, 12, 14))
    assert np.array_equal(win[region], img[:3])
    assert np.array_equal(win[5], img[2])
    with pytest.raises(WeaksegError, match="outside the image"):
        _window(img, (8, 0, 0, 12, 4, 4), (6, 6, 6))


class Flat(torch.nn.Module):
    """Two classes at equal logits: every probability is 1/2."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 2, *x.shape[2:])


def test_expansion_loss_is_minus_log_of_the_pooled_probability():
    img = np.zeros((12, 12, 12), np.float32)
    spec = Expansion([(0, 0, 0, 4, 4, 4), (6, 6, 6, 12, 12, 12)], batch=5)
    loss = ExpansionLoss(img, spec, (8, 8, 8))(Flat(), torch.device("cpu"))
    assert loss.item() == pytest.approx(math.log(2))
    with pytest.raises(WeaksegError, match="at least one crop labelled"):
        ExpansionLoss(img, Expansion([]), (8, 8, 8))
    with pytest.raises(WeaksegError, match="needs the image in memory"):
        ExpansionLoss(torch.zeros(12, 12, 12), spec, (8, 8, 8))


def test_expansion_covers_the_object_the_seeds_miss(tmp_path):
    from scipy import ndimage

    from napari_weakseg.core.data.phantom import make_phantom

    image, truth = make_phantom()
    obj = (truth == 1).astype(np.uint8)
    # a map that finds only a corner of the object: the seeds call the
    # rest of it background
    m = np.zeros(image.shape, np.float32)
    nz = np.nonzero(obj)
    z, y, x = (int(a[0]) for a in nz)
    m[z : z + 3, y : y + 3, x : x + 3] = 1.0
    m = ndimage.gaussian_filter(m, 1.0)
    box = tuple(int(a.min()) for a in nz) + tuple(int(a.max()) + 1 for a in nz)
    cfg = round_config(
        budget=Budget(steps=60, seed=0, device="cpu"), base_filters=4
    )

    def dice(present):
        labels = run(
            iter_cam_to_masks(
                image,
                m,
                tmp_path / "u.safetensors",
                1,
                1,
                cfg,
                crf=False,
                present=present,
            )
        )
        return dice_per_class(labels, obj, 2)[0]

    without, grown = dice(()), dice([box])
    assert grown > without + 0.2
