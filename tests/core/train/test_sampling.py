import numpy as np
import pytest

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.train.sampling import PatchSampler, rotation_planes


def _sparse(shape=(20, 24, 24)):
    labels = np.full(shape, 255, np.uint8)
    labels[10] = 0
    labels[10, 5:8, 5:8] = 1  # 9 voxels of class 1 among 576 labelled
    return labels


def test_every_patch_holds_labels_and_classes_are_balanced():
    labels = _sparse()
    image = np.random.default_rng(0).random(labels.shape).astype(np.float32)
    sampler = PatchSampler([image], [labels], (8, 8, 8), 2, seed=1)
    hits = 0
    for _ in range(200):
        lbl = sampler.sample()["label"]
        assert lbl.shape == (1, 8, 8, 8)
        assert int((lbl != 255).sum()) > 0
        hits += int((lbl == 1).any())
    # class 1 is 1.6 % of labelled voxels but centres half the patches
    assert hits >= 90


def test_small_volumes_are_padded_with_ignore():
    labels = np.zeros((4, 5, 6), np.uint8)
    labels[0, 0, 0] = 1
    sampler = PatchSampler(
        [np.ones((4, 5, 6), np.float32)], [labels], (8, 8, 8), 2
    )
    batch = sampler.batch(3)
    assert batch["image"].shape == (3, 1, 8, 8, 8)
    labelled = (batch["label"] != 255).sum(dim=(1, 2, 3, 4))
    assert ((labelled > 0) & (labelled <= 120)).all()


def test_a_sparse_slice_lands_anywhere_in_its_patch():
    """The labelled plane must not sit at one place in every patch (the
    network would learn where the loss is, not what it sees)."""
    labels = np.full((32, 32, 32), 255, np.uint8)
    labels[16] = 0
    labels[16, 10:20, 10:20] = 1
    sampler = PatchSampler(
        [np.ones((32, 32, 32), np.float32)],
        [labels],
        (24, 24, 24),
        2,
        augment="flips",  # turns would tilt the plane across the patch
    )
    where = set()
    for _ in range(100):
        lbl = sampler.sample()["label"][0]
        planes = np.flatnonzero((lbl != 255).any(axis=(1, 2)).numpy())
        assert len(planes) == 1  # the one labelled slice is in the patch
        where.add(int(planes[0]))
    assert len(where) >= 15  # of 24 possible places


def test_no_labels_is_one_sentence():
    with pytest.raises(WeaksegError, match="No labelled voxel"):
        PatchSampler(
            [np.zeros((8, 8, 8), np.float32)],
            [np.full((8, 8, 8), 255, np.uint8)],
            (8, 8, 8),
            2,
        )


def test_rotation_only_in_isotropic_square_planes():
    assert rotation_planes((8, 16, 16), (5.0, 1.0, 1.0)) == [(1, 2)]
    assert rotation_planes((8, 8, 8), (1.0, 1.0, 1.0)) == [
        (1, 2),
        (0, 2),
        (0, 1),
    ]


def test_augmentation_levels_choose_the_mirrored_axes():
    from napari_weakseg.core.base.errors import WeaksegError
    from napari_weakseg.core.train.sampling import PatchSampler

    lbl = np.full((20, 20, 20), 255, np.uint8)
    lbl[10] = 0
    lbl[10, 2:9, 5:15] = 1
    image = np.zeros(lbl.shape, np.float32)

    def sampler(augment):
        return PatchSampler([image], [lbl], (8, 8, 8), 2, augment=augment)

    assert sampler("flips").mirrored == [0, 1, 2]
    assert sampler(True).mirrored == [0, 1, 2]
    assert sampler("full").mirrored == [0, 1, 2]
    assert sampler("none").mirrored == []
    assert sampler("affine").mirrored == []
    assert sampler(False).mirrored == []
    # one foreground class: auto mirrors every axis, with affine changes
    assert sampler("auto").mirrored == [0, 1, 2]
    assert sampler("auto").plan.affine is False  # nothing to make up for
    assert sampler("flips").plan is None
    with pytest.raises(WeaksegError, match="Unknown augmentation 'flip'"):
        sampler("flip")


def test_auto_augmentation_keeps_position_defined_classes_unmirrored():
    from napari_weakseg.core.train.sampling import PatchSampler

    # class 1 above class 2 along z (a "head" anterior of a "body"), the
    # same across y and x: mirroring z would swap them, y and x would not
    lbl = np.zeros((24, 20, 20), np.uint8)
    lbl[4:10, 5:15, 5:15] = 1
    lbl[12:18, 5:15, 5:15] = 2
    image = np.zeros(lbl.shape, np.float32)
    sampler = PatchSampler([image], [lbl], (8, 8, 8), 3, augment="auto")
    assert sampler.mirrored == [1, 2]
    assert sampler.plan.describe() == (
        "mirror y, x + small turns, scaling, intensity "
        "(look-alike classes told apart by position along z)"
    )
    # sparse: only the middle slice of y and of x is labelled
    sparse = np.full(lbl.shape, 255, np.uint8)
    sparse[:, 10] = lbl[:, 10]
    sparse[:, :, 10] = lbl[:, :, 10]
    sampler = PatchSampler([image], [sparse], (8, 8, 8), 3, augment="auto")
    assert sampler.mirrored == [1, 2]


def test_affine_turns_bring_in_unlabelled_voxels_not_background():
    from napari_weakseg.core.train.sampling import PatchSampler

    # every voxel is class 1: a turned patch's corners come from outside
    # it and must be unlabelled, never background
    lbl = np.ones((24, 24, 24), np.uint8)
    image = np.random.default_rng(0).random(lbl.shape).astype(np.float32)
    s = PatchSampler([image], [lbl], (12, 12, 12), 2, augment="affine")
    labels = s.batch(16)["label"].numpy()
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) == {1, 255}
    turned = [(b == 255).any() for b in labels]
    assert 0 < sum(turned) < len(turned)  # half the patches, about


def test_patches_stay_float32_inside_an_autocast_region():
    import torch

    from napari_weakseg.core.train.sampling import PatchSampler

    # the engine draws batches inside its autocast region
    lbl = np.ones((24, 24, 24), np.uint8)
    image = np.random.default_rng(0).random(lbl.shape).astype(np.float32)
    s = PatchSampler([image], [lbl], (12, 12, 12), 2, augment="affine")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        batch = s.batch(4)
    assert batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.uint8
