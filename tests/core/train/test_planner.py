"""The augmentation planner: which axes look-alike classes lie apart on."""

import numpy as np
import pytest

from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.train.planner import (
    class_pairs,
    class_voxels,
    plan_augmentation,
)


def _two_classes(axis: int) -> np.ndarray:
    """Class 1 then class 2 along ``axis`` (slabs 10 voxels apart)."""
    lbl = np.zeros((20, 20, 20), np.uint8)
    first = [slice(5, 15)] * 3
    second = [slice(5, 15)] * 3
    first[axis], second[axis] = slice(2, 8), slice(12, 18)
    lbl[tuple(first)] = 1
    lbl[tuple(second)] = 2
    return lbl


def _plan(image, labels, ignore=255):
    return plan_augmentation([class_voxels(image, labels, ignore)])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_look_alike_classes_apart_along_an_axis_block_that_axis(axis):
    lbl = _two_classes(axis)
    plan = _plan(np.ones(lbl.shape, np.float32), lbl)
    assert plan.mirrored == tuple(a for a in range(3) if a != axis)
    assert plan.affine is True  # turns make up for the axis not mirrored
    assert plan.reason == (
        "look-alike classes told apart by position along " + "zyx"[axis]
    )


def test_classes_that_look_different_mirror_whatever_their_position():
    lbl = _two_classes(0)
    image = np.where(lbl == 1, 1.0, 0.4).astype(np.float32)
    image += np.random.default_rng(0).normal(0, 0.1, lbl.shape)
    plan = _plan(image, lbl)
    assert plan.mirrored == (0, 1, 2)
    assert plan.affine is False
    assert plan.reason == "classes told apart by how they look"


def test_the_phantoms_blobs_and_shells_are_mirrored():
    # two objects per class, centres apart by accident: told apart by
    # intensity, so mirroring stays (it is what the phantom needs)
    for seed in range(3):
        image, labels = make_phantom(seed=seed)
        assert _plan(image, labels).mirrored == (0, 1, 2)


def test_pair_measures_are_exact_on_slabs():
    lbl = _two_classes(0)
    image = np.where(lbl == 2, 3.0, 1.0) + np.where(
        np.indices(lbl.shape)[2] % 2 == 0, 1.0, -1.0
    )
    ((pair, (apart, looks)),) = class_pairs(
        class_voxels(image, lbl, 255)
    ).items()
    assert pair == (1, 2)
    z = np.argwhere(lbl > 0)[:, 0]
    np.testing.assert_allclose(apart, [10.0 / z.std(), 0, 0], atol=1e-5)
    assert looks == pytest.approx(2.0, rel=1e-5)  # means 1 and 3, std 1


def test_nested_classes_and_one_class_mirror_every_axis():
    nested = np.zeros((20, 20, 20), np.uint8)
    nested[4:16, 4:16, 4:16] = 1
    nested[8:12, 8:12, 8:12] = 2  # a core inside a region: same centre
    flat = np.ones(nested.shape, np.float32)
    plan = _plan(flat, nested)
    assert plan.mirrored == (0, 1, 2)
    assert plan.reason == "look-alike classes not told apart by position"
    plan = _plan(flat, (nested > 0).astype(np.uint8))
    assert plan.mirrored == (0, 1, 2)
    assert plan.reason == "one foreground class"


def test_ignore_and_background_do_not_count_and_volumes_average():
    lbl = _two_classes(1)
    lbl[lbl == 0] = 255
    flat = np.ones(lbl.shape, np.float32)
    voxels = class_voxels(flat, lbl, 255)
    assert [(v.label, len(v.coords)) for v in voxels] == [(1, 600), (2, 600)]
    single = class_voxels(flat, (lbl == 1).astype(np.uint8), 255)
    assert plan_augmentation([voxels, single]).mirrored == (0, 2)
    assert plan_augmentation([single, single]).reason == "one foreground class"
