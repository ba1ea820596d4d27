"""Test-time flips: only along the axes a model was trained mirrored on."""

import numpy as np
import pytest
import torch

from napari_weakseg.core.predict.sliding import _flips, predict_probabilities


def test_flips_follow_the_mirrored_axes():
    assert _flips(False) == [()]
    assert _flips(True) == [(), (2,), (3,), (4,)]
    assert _flips((1, 2)) == [(), (3,), (4,)]
    assert _flips(()) == [()]


class _Ramp(torch.nn.Module):
    """Two-class logits that grow with z: not mirror-symmetric."""

    def forward(self, x):
        z = torch.arange(x.shape[2], dtype=x.dtype).view(1, 1, -1, 1, 1)
        z = z.expand_as(x)
        return torch.cat([-z, z], dim=1)


@pytest.mark.parametrize(
    ("tta", "same"), [((), True), ((1, 2), True), ((0,), False)]
)
def test_flipping_an_axis_the_model_was_not_mirrored_on_changes_it(tta, same):
    image = np.zeros((8, 8, 8), np.float32)
    plain = predict_probabilities(
        _Ramp(), image, (8, 8, 8), torch.device("cpu")
    )
    flipped = predict_probabilities(
        _Ramp(), image, (8, 8, 8), torch.device("cpu"), tta=tta
    )
    assert np.allclose(plain, flipped, atol=1e-6) is same
