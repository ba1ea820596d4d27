import numpy as np
import pytest

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.data.boxes import (
    Box,
    check_boxes,
    read_boxes,
    write_boxes,
)
from napari_weakseg.core.methods.box2mask import Rules, round_config, suppress
from napari_weakseg.core.methods.box_targets import (
    box_targets,
    core_mask,
    grabcut_targets,
)
from napari_weakseg.core.train.budget import Budget

SHAPE = (20, 30, 30)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_boxes_round_trip(tmp_path, suffix):
    boxes = [Box(1, 2, 3, 4, 5, 6, 1), Box(0, 0, 0, 9, 9, 9, 2)]
    assert read_boxes(write_boxes(tmp_path / f"b{suffix}", boxes)) == boxes


def test_csv_header_is_the_documented_one(tmp_path):
    path = write_boxes(tmp_path / "b.csv", [Box(1, 2, 3, 4, 5, 6, 1)])
    assert path.read_text().splitlines() == [
        "z0,y0,x0,z1,y1,x1,class",
        "1,2,3,4,5,6,1",
    ]


@pytest.mark.parametrize(
    ("box", "message"),
    [
        (Box(5, 0, 0, 5, 4, 4), "z1=5 <= z0=5"),
        (Box(0, 6, 0, 4, 2, 4), "y1=2 <= y0=6"),
        (Box(25, 0, 0, 30, 4, 4), "outside the image"),
        (Box(-9, 0, 0, -1, 4, 4), "outside the image"),
        (Box(0, 0, 0, 4, 4, 4, 0), "class 0"),
    ],
)
def test_impossible_boxes_are_one_sentence(box, message):
    with pytest.raises(WeaksegError, match=message):
        check_boxes([box], SHAPE)


def test_boxes_sticking_out_are_clipped_and_unknown_classes_refused():
    assert check_boxes([Box(-3, 25, 0, 4, 40, 5, 1)], SHAPE) == [
        Box(0, 25, 0, 4, 30, 5, 1)
    ]
    with pytest.raises(WeaksegError, match="only classes 1..1"):
        check_boxes([Box(0, 0, 0, 4, 4, 4, 2)], SHAPE, num_classes=2)
    with pytest.raises(WeaksegError, match="at least one box"):
        check_boxes([], SHAPE)


def test_box_i_core_is_a_fifth_of_the_box():
    b = Box(0, 0, 0, 20, 30, 30, 1)
    assert abs(core_mask(b).mean() - 0.2) < 0.01
    t = box_targets([Box(2, 3, 4, 12, 13, 14, 1)], SHAPE)
    assert set(np.unique(t)) == {0, 1, 255}
    assert np.all(t[2:12, 3:13, 4:14] != 0)  # nothing in the box is background
    assert t[7, 8, 9] == 1 and t[2, 3, 4] == 255  # centre core, corner ignore
    assert np.count_nonzero(t == 0) == np.prod(SHAPE) - 1000


def test_overlap_of_different_classes_is_ignore():
    a, b = Box(0, 0, 0, 10, 10, 10, 1), Box(0, 0, 4, 10, 10, 14, 2)
    t = box_targets([a, b], SHAPE)
    overlap_cores = core_mask(a)[:, :, 4:10] & core_mask(b)[:, :, 0:6]
    assert overlap_cores.any()
    assert np.all(t[:10, :10, 4:10][overlap_cores] == 255)


def test_suppression_rules_each_on_a_constructed_case():
    box = Box(5, 5, 5, 15, 15, 15, 1)
    initial = box_targets([box], SHAPE)
    pred = np.zeros(SHAPE, np.uint8)
    pred[8:12, 8:12, 8:12] = 1  # the object, on the core
    pred[0:2, 0:2, 0:2] = 1  # outside every box
    pred[9, 9, 13] = 2  # a class the box does not have
    pred[5, 5, 5] = 1  # an island in the corner, off the core
    out = suppress(pred, [box], initial, Rules(crf=False, min_fill=0))
    expected = np.zeros(SHAPE, np.uint8)
    expected[8:12, 8:12, 8:12] = 1
    np.testing.assert_array_equal(out, expected)

    # each rule off keeps what it would have removed
    def kept(rules, index, value):
        return suppress(pred, [box], initial, rules)[index] == value

    assert kept(
        Rules(outside_boxes=False, wrong_class=False, min_fill=0), (0, 0, 0), 1
    )
    assert not kept(
        Rules(outside_boxes=True, wrong_class=False, min_fill=0), (0, 0, 0), 1
    )
    assert kept(Rules(wrong_class=False, min_fill=0), (9, 9, 13), 2)
    assert kept(Rules(off_core=False, min_fill=0), (5, 5, 5), 1)


def test_too_small_objects_are_reset_to_their_initial_target():
    box = Box(5, 5, 5, 15, 15, 15, 1)
    initial = box_targets([box], SHAPE)
    core = int((initial == 1).sum())
    assert core == 208  # Box^i core: about 20 % of the 1000 box voxels
    pred = np.zeros(SHAPE, np.uint8)
    pred[10, 10, 10] = 1  # 1 voxel: under half the core
    resets = []
    out = suppress(pred, [box], initial, Rules(min_fill=0.5), resets=resets)
    np.testing.assert_array_equal(out[box.slices], initial[box.slices])
    assert not out[0].any()
    assert resets == [0]
    # the threshold is relative to the initial target: 105 voxels (10 % of
    # the box) stay; a thin object's small initial target lowers the bar
    pred = np.zeros(SHAPE, np.uint8)
    pred[5:10, 5:12, 5:8] = 1  # 105 voxels
    kept = suppress(pred, [box], initial, Rules(min_fill=0.5, off_core=False))
    assert (kept == 1).sum() == 105
    thin = np.zeros(SHAPE, np.uint8)
    thin[6:9, 6:9, 6:9] = 1  # a 27-voxel initial target
    pred3 = np.zeros(SHAPE, np.uint8)
    pred3[6:8, 6:9, 6:9] = 1  # 18 voxels: 2 % of the box, 2/3 of its target
    rules = Rules(min_fill=0.5, off_core=False)
    assert (suppress(pred3, [box], thin, rules) == 1).sum() == 18


def test_grabcut_targets_follow_the_intensity_inside_the_box():
    img = np.zeros(SHAPE, np.float32)
    zz, yy, xx = np.ogrid[:20, :30, :30]
    ball = (zz - 10) ** 2 + (yy - 15) ** 2 + (xx - 15) ** 2 <= 36
    img[ball] = 1.0
    img += np.random.default_rng(0).normal(0, 0.1, SHAPE).astype(np.float32)
    box = Box(3, 8, 8, 18, 23, 23, 1)
    t = grabcut_targets(img, [box])
    decided = t[box.slices] != 255
    assert decided.mean() > 0.8  # far more decided than Box^i's core
    agree = (t[box.slices] == 1) == ball[box.slices]
    assert agree[decided].mean() > 0.97


def test_grabcut_targets_find_an_object_that_misses_the_box_centre():
    """A dark C-shaped object (like a lateral ventricle) in bright tissue:
    Box^i calls the box centre foreground, which is mostly tissue; the
    GrabCut-like targets follow the intensity the box has more of than its
    surroundings, wherever in the box it lies."""
    img = np.ones(SHAPE, np.float32)
    shape_c = np.zeros(SHAPE, bool)
    shape_c[6:14, 8:22, 8:11] = True  # three arms of a C, open to +x
    shape_c[6:14, 8:11, 8:22] = True
    shape_c[6:14, 19:22, 8:22] = True
    img[shape_c] = 0.2
    img += np.random.default_rng(1).normal(0, 0.05, SHAPE).astype(np.float32)
    box = Box(6, 8, 8, 14, 22, 22, 1)
    boxi = box_targets([box], SHAPE)
    assert (~shape_c[boxi == 1]).mean() > 0.8  # the core is mostly tissue
    t = grabcut_targets(img, [box])[box.slices]
    truth = shape_c[box.slices]
    decided = t != 255
    assert decided.mean() > 0.8
    assert ((t == 1) == truth)[decided].mean() > 0.95
    assert (t == 1)[truth].mean() > 0.8


def test_grabcut_targets_fall_back_to_box_i_where_nothing_stands_out():
    noise = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    box = Box(4, 4, 4, 12, 20, 20, 1)
    np.testing.assert_array_equal(
        grabcut_targets(noise, [box]), box_targets([box], SHAPE)
    )


@pytest.mark.slow
def test_recursive_rounds_beat_the_initial_box_targets(tmp_path):
    from napari_weakseg.core.base.events import Round, run
    from napari_weakseg.core.base.metrics import dice_per_class
    from napari_weakseg.core.data.phantom import boxes_of, make_blobs
    from napari_weakseg.core.methods.box2mask import iter_boxes_to_masks

    image, truth = make_blobs()
    boxes = [Box(*b) for b in boxes_of(truth)]
    filled = np.zeros_like(truth)
    for b in boxes:
        filled[b.slices] = b.cls
    rounds = []
    cfg = round_config(budget=Budget(steps=60, device="cpu"), base_filters=8)
    labels = run(
        iter_boxes_to_masks(image, boxes, tmp_path / "m.safetensors", 2, cfg),
        lambda e: rounds.append(e) if isinstance(e, Round) else None,
    )
    assert [r.round for r in rounds] == [1, 2]
    box_dice = np.mean(dice_per_class(filled, truth, 3))
    final = np.mean(dice_per_class(labels, truth, 3))
    assert final > box_dice + 0.2, (box_dice, final)


def test_rounds_go_on_while_an_object_is_reset(tmp_path):
    """A reset object has not converged: its labels equal the previous
    targets (no change), yet the rounds continue, warm-started, until the
    round limit, instead of stopping after the first."""
    from napari_weakseg.core.base.events import Round, run
    from napari_weakseg.core.methods.box2mask import iter_boxes_to_masks
    from napari_weakseg.core.train.unet import TrainConfig

    image = np.random.default_rng(0).random((16, 24, 24)).astype(np.float32)
    box = Box(4, 4, 4, 12, 20, 20, 1)
    rounds = []
    run(
        iter_boxes_to_masks(
            image,
            [box],
            tmp_path / "m.safetensors",
            3,
            TrainConfig(budget=Budget(steps=1, device="cpu"), base_filters=4),
            rules=Rules(crf=False, min_fill=1e9),  # always under-filled
        ),
        lambda e: rounds.append(e) if isinstance(e, Round) else None,
    )
    assert [r.round for r in rounds] == [1, 2, 3]
    assert [r.changed for r in rounds[1:]] == [0.0, 0.0]


def test_shipped_ventricle_boxes_fit_the_sample():
    from napari_weakseg._sample_data import sample_path
    from napari_weakseg.core.data.boxes import check_boxes, read_boxes
    from napari_weakseg.core.data.volumes import read_volume

    image = read_volume(sample_path("mni152_t1_2mm.nii.gz"))
    boxes = read_boxes(sample_path("mni152_ventricle_boxes.csv"))
    assert check_boxes(boxes, image.data.shape) == boxes
    assert [(b.cls, b.shape) for b in boxes] == [(1, (16, 45, 17))] * 2
    # each box holds its ventricle: dark (CSF) voxels in white matter
    img = np.asarray(image.data)
    for b in boxes:
        assert (img[b.slices] < 0.5 * img.max()).mean() > 0.05
