"""The local top-k classifier and seed -> expand -> constrain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.base.events import Round, run
from napari_weakseg.core.base.metrics import dice_per_class
from napari_weakseg.core.methods.box2mask import round_config
from napari_weakseg.core.methods.cam import cam, map_volume
from napari_weakseg.core.methods.cam2seg import (
    absent_mask,
    iter_cam_to_masks,
    seeds,
)
from napari_weakseg.core.methods.classifier import (
    ClassifierConfig,
    crop_margin,
    cut,
    iter_train_classifier,
)
from napari_weakseg.core.nn.milnet import LocalClassifier
from napari_weakseg.core.nn.models import load_model
from napari_weakseg.core.train.budget import Budget
from napari_weakseg.core.train.unet import TrainConfig


def cube_crops(n: int, seed: int):
    """Noise crops; odd ones hold a bright 4^3 cube (class 1), even ones
    a bright 4-voxel line (class 0): intensity alone does not decide."""
    rng = np.random.default_rng(seed)
    crops, classes, masks = [], [], []
    for i in range(n):
        a = rng.normal(0, 0.3, (16, 16, 16)).astype(np.float32)
        m = np.zeros(a.shape, bool)
        z, y, x = rng.integers(0, 12, 3)
        if i % 2:
            m[z : z + 4, y : y + 4, x : x + 4] = True
        else:
            a[z : z + 4, y, x] += 2
        a[m] += 2
        crops.append(a)
        classes.append(i % 2)
        masks.append(m)
    return crops, classes, masks


def test_local_classifier_is_local_and_pools_its_own_map():
    torch.manual_seed(0)
    net = LocalClassifier(4, 3, (1, 2), topk=0.01).eval()
    assert net.context == 3
    x = torch.randn(1, 1, 20, 20, 20)
    with torch.no_grad():
        s = net.score_map(x)
        assert s.shape == (1, 3, 20, 20, 20)
        assert torch.equal(s[:, 0], torch.zeros_like(s[:, 0]))
        k = round(0.01 * 20**3)
        top = s.flatten(2).topk(k, dim=2).values.mean(2)
        assert torch.allclose(net(x), top)
        # a voxel farther than the context from (10, 10, 10) changes
        # nothing there; one inside it does
        far = x.clone()
        far[0, 0, 10, 10, 14] += 5
        near = x.clone()
        near[0, 0, 10, 10, 13] += 5
        at = (slice(None), slice(None), 10, 10, 10)
        assert torch.equal(net.score_map(far)[at], s[at])
        assert not torch.equal(net.score_map(near)[at], s[at])


def test_cam_of_local_classifier_is_relu_of_its_class_map():
    torch.manual_seed(0)
    net = LocalClassifier(4, 2).eval()
    x = torch.randn(1, 1, 12, 12, 12)
    with torch.no_grad():
        want = torch.relu(net.score_map(x)[:, 1:2])
    assert torch.equal(cam(net, x, 1), want)
    with pytest.raises(WeaksegError, match="Class 2 is out of range"):
        cam(net, x, 2)


def test_topk_classifier_points_at_the_object(tmp_path):
    crops, classes, _ = cube_crops(40, 0)
    out = tmp_path / "clf.safetensors"
    cfg = ClassifierConfig(
        budget=Budget(steps=60, val_every=60, device="cpu"),
        base_filters=8,
        batch_size=8,
    )
    fin = run(iter_train_classifier(crops, classes, out, cfg))
    assert fin.best == 1.0
    model, conf = load_model(out)
    assert conf.pooling == "topk"
    test, test_cls, masks = cube_crops(20, 1)
    hits = []
    for a, c, m in zip(test, test_cls, masks):
        x = torch.as_tensor(a)[None, None]
        assert int(model(x).argmax(1)) == c
        if c:
            peak = int(np.argmax(cam(model, x, 1)[0, 0].numpy()))
            hits.append(bool(m.flat[peak]))
    assert np.mean(hits) == 1.0


def test_a_topk_classifier_starts_only_from_another(tmp_path):
    crops, classes, _ = cube_crops(4, 0)
    cfg = ClassifierConfig(
        budget=Budget(steps=1, device="cpu"), base_filters=4, batch_size=2
    )
    gap = tmp_path / "gap.safetensors"
    run(iter_train_classifier(crops, classes, gap, cfg, pooling="gap"))
    with pytest.raises(WeaksegError, match="not a top-k classifier"):
        run(
            iter_train_classifier(
                crops, classes, tmp_path / "b.safetensors", cfg, init=gap
            )
        )
    with pytest.raises(WeaksegError, match="Unknown pooling 'max'"):
        run(
            iter_train_classifier(
                crops, classes, tmp_path / "c.safetensors", cfg, pooling="max"
            )
        )


def test_seeds_are_confident_voxels_and_absent_crops_background():
    m = np.zeros((8, 8, 8), np.float32)
    m[2:4, 2:4, 2:4] = 1.0
    m[6, 6, 6] = 1.0
    m[5, 5, 5] = 0.4  # between band and threshold: ignored
    absent = absent_mask(m.shape, [(6, 6, 6, 8, 8, 8)])
    s = seeds(m, 1, 0.5, absent)
    assert (s[2:4, 2:4, 2:4] == 1).all()
    assert s[6, 6, 6] == 0  # in an absent crop
    assert s[5, 5, 5] == 255
    assert (s == 1).sum() == 8
    with pytest.raises(WeaksegError, match="nothing to grow"):
        seeds(m, 1, 0.5, np.ones(m.shape, bool))
    with pytest.raises(WeaksegError, match="outside the image"):
        absent_mask(m.shape, [(9, 0, 0, 12, 4, 4)])
    with pytest.raises(WeaksegError, match="constant"):
        seeds(np.zeros((4, 4, 4), np.float32))


def test_cam_to_masks_grows_seeds_and_keeps_absent_crops_empty(tmp_path):
    from scipy import ndimage

    from napari_weakseg.core.data.phantom import make_phantom

    image, truth = make_phantom()
    obj = (truth == 1).astype(np.uint8)
    # a map that only finds the object's core: eroded, blurred
    core = ndimage.binary_erosion(obj, iterations=2)
    m = ndimage.gaussian_filter(core.astype(np.float32), 1.0)
    # a crop labelled absent over part of the object (and of its core)
    z = np.flatnonzero(core.any(axis=(1, 2)))
    box = (int(z[0]), 0, 0, int(z[len(z) // 2]), *image.shape[1:])
    inside = absent_mask(image.shape, [box])
    assert (obj[inside] == 1).any() and (core & ~inside).any()
    cfg = round_config(
        budget=Budget(steps=40, seed=0, device="cpu"), base_filters=4
    )
    events = []
    gen = iter_cam_to_masks(
        image, m, tmp_path / "u.safetensors", 1, 2, cfg, absent=[box]
    )
    labels = run(gen, events.append)
    assert [e.round for e in events if isinstance(e, Round)][:1] == [1]
    assert set(np.unique(labels)) <= {0, 1}
    assert not labels[inside].any()  # constrained by the image label
    # outside the absent crop the seeds (the core) grow into the object
    out = ~inside
    seeded = (seeds(m, absent=inside) == 1).astype(np.uint8)
    core_dice = dice_per_class(seeded[out], obj[out], 2)[0]
    assert dice_per_class(labels[out], obj[out], 2)[0] > core_dice
    with pytest.raises(WeaksegError, match="differs from the image"):
        run(iter_cam_to_masks(image, m[1:], tmp_path / "v.safetensors"))


def test_cut_carries_the_surroundings_and_mirrors_at_the_border():
    img = np.arange(6 * 7 * 8, dtype=np.float32).reshape(6, 7, 8)
    inner = cut(img, (2, 2, 2, 4, 5, 6), 2)
    assert inner.shape == (6, 7, 8)
    assert np.array_equal(inner, img[0:6, 0:7, 0:8])
    edge = cut(img, (0, 1, 3, 2, 3, 5), 1)
    assert edge.shape == (4, 4, 4)
    # the missing plane before z=0 is the reflection of z=1
    assert np.array_equal(edge[0], img[1, 0:4, 2:6])
    assert np.array_equal(edge[1:], img[0:3, 0:4, 2:6])
    whole = cut(img, None, 1)
    assert whole.shape == (8, 9, 10)
    assert np.array_equal(whole[1:-1, 1:-1, 1:-1], img)
    assert cut(img, None) is img
    assert crop_margin("topk") == LocalClassifier(4, 2).context
    assert crop_margin("gap") == 0


def test_a_crop_with_its_context_maps_as_the_volume_does():
    torch.manual_seed(0)
    net = LocalClassifier(4, 2).eval()
    vol = torch.randn(20, 22, 24).numpy()
    box = (5, 6, 7, 13, 15, 17)
    with torch.no_grad():
        whole = net.score_map(torch.as_tensor(vol)[None, None])[0, 1]
        part = net.score_map(
            torch.as_tensor(cut(vol, box, net.context))[None, None],
            padded=True,
        )[0, 1]
    assert part.shape == (8, 9, 10)
    assert torch.allclose(part, whole[5:13, 6:15, 7:17], atol=1e-6)
    # windows carry the context: the tiled map is the one-pass map
    one = map_volume(net, vol, 1, "cam")
    tiled = map_volume(net, vol, 1, "cam", window=(8, 8, 8))
    assert np.allclose(tiled, one, atol=1e-5)
    assert np.allclose(one, torch.relu(whole).numpy(), atol=1e-6)


def test_crops_with_margin_train_on_their_inside(tmp_path):
    crops, classes, _ = cube_crops(8, 0)
    m = crop_margin("topk")
    framed = [np.pad(c, m, mode="reflect") for c in crops]
    cfg = ClassifierConfig(
        budget=Budget(steps=2, device="cpu"), base_filters=4, batch_size=2
    )
    out = tmp_path / "clf.safetensors"
    run(iter_train_classifier(framed, classes, out, cfg, margin=m))
    _, conf = load_model(out)
    assert conf.patch_size == [16, 16, 16]
    gap = tmp_path / "gap.safetensors"
    run(
        iter_train_classifier(
            framed, classes, gap, cfg, pooling="gap", margin=m
        )
    )
    assert load_model(gap)[1].patch_size == [16, 16, 16]


def test_rounds_train_with_their_own_ce_weight_unless_told():
    from napari_weakseg.core.base import defaults

    cfg = round_config(budget=Budget(steps=7, seed=3))
    assert (cfg.budget.steps, cfg.budget.seed, cfg.hold_out) == (7, 3, False)
    assert cfg.ce_weight == defaults.ROUND_CE_WEIGHT == 1.0
    assert TrainConfig().ce_weight == defaults.CE_WEIGHT == 0.1
    mine = round_config(TrainConfig(ce_weight=0.5), budget=Budget(steps=9))
    assert (mine.ce_weight, mine.budget.steps, mine.hold_out) == (
        0.5,
        9,
        False,
    )
