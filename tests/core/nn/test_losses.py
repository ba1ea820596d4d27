import pytest
import torch
import torch.nn.functional as F

from napari_weakseg.core.nn.losses import (
    MaskedDiceCELoss,
    masked_cross_entropy,
)


def _case(seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 4, 5, 6, generator=g, requires_grad=True)
    target = torch.randint(0, classes, (2, 4, 5, 6), generator=g)
    unlabelled = torch.rand(2, 4, 5, 6, generator=g) < 0.7
    target[unlabelled] = 255
    return logits, target, unlabelled


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_ce_equals_torch_ignore_index(seed):
    logits, target, _ = _case(seed)
    ours = masked_cross_entropy(logits, target, 255)
    ref = F.cross_entropy(logits, target, ignore_index=255)
    assert torch.allclose(ours, ref, atol=0, rtol=0)


def test_masked_ce_with_class_weights_matches_torch():
    logits, target, _ = _case(3)
    w = torch.tensor([0.2, 1.0, 3.0])
    ours = masked_cross_entropy(logits, target, 255, w)
    assert torch.allclose(
        ours, F.cross_entropy(logits, target, w, ignore_index=255)
    )


@pytest.mark.parametrize("dice_weight", [0.0, 1.0])
def test_unlabelled_voxels_get_exactly_zero_gradient(dice_weight):
    logits, target, unlabelled = _case(4)
    loss = MaskedDiceCELoss(3, 255, dice_weight=dice_weight)(logits, target)
    loss.backward()
    grad = logits.grad.permute(1, 0, 2, 3, 4)  # (C, B, Z, Y, X)
    assert torch.count_nonzero(grad[:, unlabelled]) == 0
    assert torch.count_nonzero(grad[:, ~unlabelled]) > 0


def test_unlabelled_voxel_values_do_not_change_the_loss():
    logits, target, unlabelled = _case(5)
    loss = MaskedDiceCELoss(3, 255)
    a = loss(logits, target)
    other = logits.detach().clone()
    other.permute(1, 0, 2, 3, 4)[:, unlabelled] = 100.0
    assert torch.allclose(a, loss(other, target))


def test_no_labelled_voxel_gives_zero_loss_with_graph():
    logits = torch.randn(1, 2, 3, 3, 3, requires_grad=True)
    target = torch.full((1, 3, 3, 3), 255)
    loss = MaskedDiceCELoss(2, 255)(logits, target)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize("ce_weight", [0.1, 1.0])
def test_loss_is_the_weighted_sum_of_masked_ce_and_masked_dice(ce_weight):
    logits, target, _ = _case(6)
    both = MaskedDiceCELoss(3, 255, ce_weight=ce_weight)(logits, target)
    dice = MaskedDiceCELoss(3, 255, ce_weight=0.0)(logits, target)
    ce = masked_cross_entropy(logits, target, 255)
    assert torch.allclose(both, ce_weight * ce + dice, atol=1e-6)
