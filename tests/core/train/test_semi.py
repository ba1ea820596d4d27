"""Semi-supervised term: EMA teacher math, ramp-up, consistency."""

import numpy as np
import pytest
import torch

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.train.semi import (
    SemiConfig,
    SemiSupervised,
    ema_update,
    rampup,
)


def test_ema_update_is_the_moving_average():
    torch.manual_seed(0)
    student, teacher = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    t0 = {k: v.clone() for k, v in teacher.state_dict().items()}
    s0 = {k: v.clone() for k, v in student.state_dict().items()}
    assert ema_update(teacher, student, 0.9) == 0.9
    for k in t0:
        assert torch.allclose(
            teacher.state_dict()[k], 0.9 * t0[k] + 0.1 * s0[k]
        )
    # with a step count the teacher follows closely at first:
    # a = min(decay, 1 - 1/(step + 1)); step 0 copies the student
    assert ema_update(teacher, student, 0.99, step=0) == 0.0
    for k in s0:
        assert torch.equal(teacher.state_dict()[k], s0[k])
    assert ema_update(teacher, student, 0.99, step=3) == 0.75
    assert ema_update(teacher, student, 0.99, step=10**6) == 0.99


def test_rampup_goes_from_exp_minus_5_to_one():
    assert rampup(0, 100, 0.4) == pytest.approx(np.exp(-5))
    assert rampup(20, 100, 0.4) == pytest.approx(np.exp(-5 * 0.25))
    assert rampup(40, 100, 0.4) == 1.0 == rampup(99, 100, 0.4)


def _term(method, **kw):
    torch.manual_seed(0)
    net = torch.nn.Conv3d(1, 3, 3, padding=1)
    image = np.random.default_rng(0).normal(size=(12, 12, 12))
    cfg = SemiConfig(method=method, rampup=0.0, **kw)
    term = SemiSupervised(
        net,
        None,
        [image.astype(np.float32)],
        [8, 8, 8],
        10,
        cfg,
        torch.device("cpu"),
    )
    return net, term


def test_consistency_is_zero_between_equal_nets_on_the_same_view():
    net, term = _term("meanteacher", noise=0.0, jitter=0.0)
    assert float(term.loss(net).detach()) == 0.0
    assert term.batch().shape == (2, 1, 8, 8, 8)
    net2, term2 = _term("meanteacher", noise=0.5)
    assert float(term2.loss(net2).detach()) > 0.0


def test_pseudo_labels_keep_only_confident_voxels():
    net, term = _term("pseudo", threshold=1.01)
    assert float(term.loss(net).detach()) == 0.0 and term.last["kept"] == 0.0
    net, term = _term("pseudo", threshold=0.0)
    assert float(term.loss(net).detach()) > 0.0 and term.last["kept"] == 1.0


def test_unknown_method_is_one_sentence():
    with pytest.raises(WeaksegError, match="Unknown semi-supervised method"):
        SemiConfig(method="cps").check()
