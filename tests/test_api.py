"""The API facade: generators and their blocking twins, slice
suggestions, previews and CAM helpers (the CLI's tests are in
test_cli.py)."""

import inspect

import numpy as np
import pytest

from napari_weakseg import api
from napari_weakseg.core.base.events import (
    Finished,
    Progress,
    Saved,
    Started,
    Step,
    Validation,
)
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.data.volumes import Volume, read_volume, write_volume


def _sparse(truth):
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[8] = truth[8]
    return sparse


@pytest.mark.parametrize(
    "name",
    [
        "train",
        "predict",
        "predict_batch",
        "boxes_to_masks",
        "train_classifier",
        "class_activation_map",
        "pretrain",
    ],
)
def test_every_long_task_is_a_generator_with_a_blocking_twin(name):
    gen_fn, fn = getattr(api, f"iter_{name}"), getattr(api, name)
    assert inspect.isgeneratorfunction(gen_fn)
    gen_params = inspect.signature(gen_fn).parameters
    params = inspect.signature(fn).parameters
    assert "callback" in params and "callback" not in gen_params
    # the same names and defaults, in the same order (+ callback)
    shared = [p for p in params if p != "callback"]
    assert shared == [p for p in gen_params if p != "on_progress"]
    for p in shared:
        assert params[p].default == gen_params[p].default, p
    assert fn.__name__ == name


def test_iter_train_yields_events_and_returns_finished(tmp_path):
    image, truth = make_phantom((16, 24, 24))
    out = tmp_path / "m.safetensors"
    gen = api.iter_train(
        image, _sparse(truth), out, steps=4, base_filters=4, device="cpu"
    )
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as fin:
            result = fin.value
            break
    assert isinstance(events[0], Started)
    assert [e.step for e in events if isinstance(e, Step)] == [1, 2, 3, 4]
    assert all(e.metric == "Dice" for e in events if isinstance(e, Validation))
    assert isinstance(result, Finished) and result.metric == "Dice"
    assert result.steps == 4 and out.is_file()
    assert result.best_dice == result.best  # the old name still reads


def test_blocking_twin_passes_every_event_to_the_callback(tmp_path):
    image, truth = make_phantom((16, 24, 24))
    seen = []
    result = api.train(
        image,
        _sparse(truth),
        tmp_path / "m.safetensors",
        steps=2,
        base_filters=4,
        device="cpu",
        callback=seen.append,
    )
    assert [type(e) for e in seen][:3] == [Started, Step, Validation]
    assert any(isinstance(e, Saved) and e.kind == "final" for e in seen)
    assert result.steps == 2


def test_train_refuses_count_mismatch_before_reading_files(tmp_path):
    with pytest.raises(api.WeaksegError, match="1 images, 2 label volumes"):
        api.train(
            "missing.nii", ["a.nii", "b.nii"], tmp_path / "m.safetensors"
        )


def test_api_label_arrays_take_the_image_geometry(files, tmp_path):
    from napari_weakseg import api

    img, lbl = files
    result = api.train(
        img,
        read_volume(lbl).data,
        tmp_path / "m.safetensors",
        steps=1,
        base_filters=4,
        device="cpu",
    )
    assert result.steps == 1


def test_large_volumes_stream_blocks_into_zarr(tmp_path, monkeypatch):
    """Above LARGE_VOXELS: blocks with a halo, streamed into the stores;
    the same labels as in memory; lazy zarr arrays come back."""
    import zarr

    from napari_weakseg import api
    from napari_weakseg.core.base import defaults
    from napari_weakseg.core.predict import tiled

    image, truth = make_phantom((40, 24, 24))
    model = tmp_path / "m.safetensors"
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[12] = truth[12]
    api.train(
        image,
        sparse,
        model,
        steps=2,
        base_filters=4,
        patch_size=[8, 8, 8],
        device="cpu",
    )
    zimg = write_volume(tmp_path / "img.zarr", Volume(image))
    whole, whole_p = api.predict(model, zimg, device="cpu")
    monkeypatch.setattr(defaults, "LARGE_VOXELS", 16 * 24 * 24)
    monkeypatch.setattr(tiled, "BLOCK_EDGE", 8)
    events = []
    out = tmp_path / "seg.ome.zarr"
    labels, probs = api.predict(
        model,
        zimg,
        out=out,
        device="cpu",
        probabilities=tmp_path / "p.zarr",
        block=16,
        callback=events.append,
    )
    progress = [e for e in events if type(e).__name__ == "Progress"]
    # blocks of 16 voxels on the 4-voxel window grid: z 16+16+8, y/x whole
    assert [e.done for e in progress] == [0, 1, 2, 3]
    assert isinstance(labels, zarr.Array)
    back = read_volume(out, lazy=True)
    assert back.data.shape == (40, 24, 24)
    np.testing.assert_array_equal(np.asarray(back.data), whole)
    np.testing.assert_allclose(np.asarray(probs), whole_p, atol=1e-5)
    assert read_volume(tmp_path / "p.zarr").data.shape == (3, 40, 24, 24)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "img.zarr",
        "m.last.safetensors",
        "m.safetensors",
        "p.zarr",
        "seg.ome.zarr",
    ]


def test_volume_smaller_than_a_patch_is_padded(tmp_path):
    from napari_weakseg import api

    image, truth = make_phantom((4, 6, 7))
    result = api.train(
        image,
        truth,
        tmp_path / "m.safetensors",
        steps=2,
        base_filters=4,
        device="cpu",
        patch_size=(8, 8, 8),
    )
    assert result.steps == 2
    labels, probs = api.predict(
        tmp_path / "m.safetensors", image, device="cpu"
    )
    assert labels.shape == (4, 6, 7) and probs.shape == (3, 4, 6, 7)


@pytest.fixture(scope="module")
def model_and_image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    image, truth = make_phantom((16, 24, 24))
    model = tmp / "m.safetensors"
    api.train(
        image, _sparse(truth), model, steps=3, base_filters=4, device="cpu"
    )
    return model, image


def test_predict_slice_equals_that_slice_of_a_whole_prediction(
    model_and_image,
):
    model, image = model_and_image
    labels, _ = api.predict(model, image, device="cpu")
    _, config = api.load_model(model, "cpu")
    assert image.shape[0] <= config.patch_size[0]  # one slab = whole depth
    where, plane = api.predict_slice(model, image, 0, 5)
    assert where == (5, slice(None), slice(None))
    np.testing.assert_array_equal(plane, labels[5])
    with pytest.raises(api.WeaksegError, match="outside the image"):
        api.predict_slice(model, image, 0, 16)


def test_test_time_flips_only_along_the_axes_trained_mirrored(
    model_and_image, tmp_path
):
    from napari_weakseg.core.base.events import Notice

    model, image = model_and_image
    _, config = api.load_model(model, "cpu")
    assert config.mirrored == [0, 1, 2]  # phantom: planned, every axis
    _, plain = api.predict(model, image, device="cpu")
    _, flipped = api.predict(model, image, device="cpu", tta=True)
    assert not np.allclose(plain, flipped, atol=1e-4)
    unmirrored = tmp_path / "none.safetensors"
    api.train(
        image,
        _sparse(make_phantom((16, 24, 24))[1]),
        unmirrored,
        steps=3,
        base_filters=4,
        device="cpu",
        augment="none",
    )
    events = []
    _, same = api.predict(
        unmirrored, image, device="cpu", tta=True, callback=events.append
    )
    _, base = api.predict(unmirrored, image, device="cpu")
    np.testing.assert_array_equal(same, base)
    assert [e.message for e in events if isinstance(e, Notice)] == [
        "Test-time flips skipped: the model was trained without mirroring, "
        "so a flipped image is not what it learnt."
    ]


def test_uncertainty_is_entropy_of_the_probabilities():
    p = np.zeros((2, 2, 3, 3), np.float32)
    p[0, 0], p[1, 0] = 0.5, 0.5  # unsure on slice 0
    p[0, 1] = 1.0  # sure on slice 1
    u = api.uncertainty(p)
    np.testing.assert_allclose(u[0], np.log(2), atol=1e-5)
    np.testing.assert_allclose(u[1], 0.0, atol=1e-5)
    with pytest.raises(api.WeaksegError, match="4 dimensions"):
        api.uncertainty(np.zeros((2, 3, 3), np.float32))


def test_suggest_slice_spreads_out_without_a_model():
    labels = np.full((17, 5, 5), 255, np.uint8)
    assert api.suggest_slice(labels) == [8]  # nothing done: the middle
    labels[8] = 0
    # farthest from the ends (-1, 17) and slice 8; ties to the lower index
    assert api.suggest_slice(labels, count=2) == [3, 12]
    assert api.suggest_slice(labels, axis="y") == [2]


def test_suggest_slice_ranks_by_entropy_with_probabilities():
    labels = np.full((6, 4, 4), 255, np.uint8)
    labels[2] = 1  # done
    probs = np.zeros((2, 6, 4, 4), np.float32)
    probs[0] = 1.0
    probs[:, 2] = 0.5  # most uncertain, but done: skipped
    probs[:, 4] = 0.5
    probs[0, 1], probs[1, 1] = 0.8, 0.2
    assert api.suggest_slice(labels, probabilities=probs, count=2) == [4, 1]


def test_suggest_slice_bad_requests():
    full = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(api.WeaksegError, match="Every slice on axis z"):
        api.suggest_slice(full)
    with pytest.raises(api.WeaksegError, match="do not fit"):
        api.suggest_slice(
            np.full((3, 4, 4), 255, np.uint8),
            probabilities=np.zeros((2, 3, 4, 5), np.float32),
        )
    with pytest.raises(api.WeaksegError, match="Axis must be"):
        api.suggest_slice(np.full((3, 4, 4), 255, np.uint8), axis=3)


def test_cam_generator_reports_windows_and_checks_the_class(
    model_and_image,
):
    model, image = model_and_image
    names, default, config = api.cam_layers(model)
    assert default in names and config.num_classes == 3
    events = []
    m = api.class_activation_map(
        model, image, layer=default, device="cpu", callback=events.append
    )
    assert m.shape == image.shape
    assert all(isinstance(e, Progress) for e in events)
    assert events[-1].done == events[-1].total >= 1
    with pytest.raises(api.WeaksegError, match="Class 3 is out of range"):
        api.class_activation_map(model, image, class_index=3, device="cpu")
    seeds = api.pseudo_labels(m, 1)
    assert set(np.unique(seeds)) <= {0, 1, 255}


def test_patience_is_an_automatic_budget(tmp_path):
    from napari_weakseg.core.base.events import Plateau

    image, truth = make_phantom((16, 24, 24))
    events = []
    result = api.train(
        image,
        _sparse(truth),
        tmp_path / "m.safetensors",
        steps=300,
        patience=4,
        base_filters=4,
        device="cpu",
        callback=events.append,
    )
    plateau = [e for e in events if isinstance(e, Plateau)]
    assert len(plateau) == 1 and result.steps < 300
    assert plateau[0].step - plateau[0].best_step >= 4


def test_batch_prediction_never_writes_over_its_inputs(
    model_and_image, tmp_path
):
    model, image = model_and_image
    folder = tmp_path / "in"
    folder.mkdir()
    write_volume(folder / "a.nii.gz", Volume(image))
    with pytest.raises(api.WeaksegError, match="would replace the input"):
        api.predict_batch(model, folder / "a.nii.gz", folder, device="cpu")
    batch = api.predict_batch(model, [folder], tmp_path / "out", device="cpu")
    assert batch.written == [str(tmp_path / "out" / "a.nii.gz")]
    assert batch.skipped == []
    labels, _ = api.predict(model, image, device="cpu")
    np.testing.assert_array_equal(
        read_volume(tmp_path / "out" / "a.nii.gz").data, labels
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(api.WeaksegError, match="folder is empty"):
        api.predict_batch(model, tmp_path / "empty", tmp_path / "o")


def test_one_pair_without_labels_among_several_is_one_sentence(tmp_path):
    image, truth = make_phantom((16, 24, 24))
    empty = np.full(truth.shape, 255, np.uint8)
    with pytest.raises(
        api.WeaksegError, match="The labels of image 2 have no labelled"
    ):
        api.train(
            [image, image], [_sparse(truth), empty], tmp_path / "m.safetensors"
        )


def test_segment_from_map_needs_the_crops_of_one_image():
    from napari_weakseg.core.methods.classifier import Crop

    img = np.zeros((8, 8, 8), np.float32)
    crops = [Crop("a.nii.gz", None, 0), Crop("b.nii.gz", None, 1)]
    with pytest.raises(api.WeaksegError, match="name several images"):
        api.segment_from_map(img, img, crops=crops)


def test_crops_that_name_no_row_for_the_image_are_one_sentence(tmp_path):
    from napari_weakseg.core.methods.classifier import Crop

    img = tmp_path / "a.nii.gz"
    write_volume(img, Volume(np.zeros((8, 8, 8), np.float32)))
    other = [Crop(str(tmp_path / "b.nii.gz"), None, 1)]
    with pytest.raises(
        api.WeaksegError, match=r"None of the 1 crops names a\.nii\.gz "
    ):
        api.cam_to_segmentation("model.safetensors", img, crops=other)
    own = [Crop(str(img), None, 0)] + other
    assert api._crops_of(own, img) == own[:1]


@pytest.mark.parametrize("expand", [True, False])
def test_segment_from_map_expands_over_the_crops_of_its_class(
    monkeypatch, expand
):
    from napari_weakseg.core.methods import cam2seg
    from napari_weakseg.core.methods.box2mask import round_config
    from napari_weakseg.core.methods.classifier import Crop

    seen = {}

    def fake(image, cam_map, out, class_index, *args, **kw):
        seen.update(kw, args=args)
        return np.zeros(image.shape, np.uint8)
        yield  # a generator, like the real one

    monkeypatch.setattr(cam2seg, "iter_cam_to_masks", fake)
    img = np.zeros((8, 8, 8), np.float32)
    crops = [
        Crop("a.nii.gz", (0, 0, 0, 4, 4, 4), 0),
        Crop("a.nii.gz", (4, 4, 4, 8, 8, 8), 1),
        Crop("a.nii.gz", (0, 4, 0, 4, 8, 4), 2),
        Crop("a.nii.gz", None, 2),
    ]
    api.segment_from_map(img, img, crops=crops, class_index=2, expand=expand)
    rounds, config = seen["args"][:2]
    settings = {k: seen[k] for k in ("budget", "base_filters", "recipe")}
    made = round_config(config, **settings)  # what each round trains with
    assert (rounds, made.ce_weight) == (3, 1.0)  # the rounds' CE weight
    assert seen["args"][3] == [(0, 0, 0, 4, 4, 4)]  # absent
    want = [(0, 4, 0, 4, 8, 4), (0, 0, 0, 8, 8, 8)] if expand else []
    assert seen["present"] == want


@pytest.mark.parametrize("pooling", ["topk", "gap"])
def test_classifier_crops_carry_the_classifiers_context(
    tmp_path, monkeypatch, pooling
):
    from napari_weakseg.core.data.normalise import normalise
    from napari_weakseg.core.methods import classifier

    img = np.random.default_rng(0).random((20, 20, 20), np.float32)
    path = tmp_path / "img.nii.gz"
    write_volume(path, Volume(img))
    seen = {}

    def fake(arrays, classes, out, config, spacing, init, stop, pool, margin):
        seen.update(arrays=arrays, margin=margin)
        return None
        yield

    monkeypatch.setattr(classifier, "iter_train_classifier", fake)
    crops = [
        classifier.Crop(str(path), (4, 5, 6, 12, 13, 14), 1),
        classifier.Crop(str(path), (0, 0, 0, 8, 8, 8), 0),
    ]
    api.train_classifier(crops, tmp_path / "c.safetensors", pooling=pooling)
    m = classifier.crop_margin(pooling)
    assert seen["margin"] == m == (4 if pooling == "topk" else 0)
    whole = normalise(np.asarray(read_volume(path).data))
    inside = seen["arrays"][0]
    assert inside.shape == (8 + 2 * m,) * 3
    assert np.array_equal(
        inside, whole[4 - m : 12 + m, 5 - m : 13 + m, 6 - m : 14 + m]
    )
    assert seen["arrays"][1].shape == (8 + 2 * m,) * 3


def test_boxes_to_masks_trains_its_rounds_with_the_rounds_settings(
    monkeypatch,
):
    from napari_weakseg.core.base import defaults
    from napari_weakseg.core.data.boxes import Box
    from napari_weakseg.core.methods import box2mask

    seen = {}

    def fake(image, boxes, out, rounds, config, *args, **kw):
        settings = {k: kw[k] for k in ("budget", "base_filters", "recipe")}
        # what each round trains with (core applies the rounds' settings)
        made = box2mask.round_config(config, **settings)
        seen.update(rounds=rounds, config=made)
        return np.zeros(image.shape, np.uint8)
        yield  # a generator, like the real one

    monkeypatch.setattr(box2mask, "iter_boxes_to_masks", fake)
    img = np.zeros((8, 8, 8), np.float32)
    api.boxes_to_masks(img, [Box(0, 0, 0, 4, 4, 4, 1)], steps_per_round=7)
    cfg = seen["config"]
    assert (seen["rounds"], cfg.budget.steps, cfg.hold_out) == (3, 7, False)
    assert cfg.ce_weight == defaults.ROUND_CE_WEIGHT != defaults.CE_WEIGHT


def test_init_from_another_networks_encoder_is_one_sentence(files, tmp_path):
    """The documented pretrain -> init flow silently trained the encoder's
    network (a DynUNet) instead of the U-Net that training builds."""
    from napari_weakseg.core.base.errors import WeaksegError

    img, lbl = files
    small = {"steps": 2, "base_filters": 4, "device": "cpu"}
    other = api.pretrain(
        [img],
        tmp_path / "dyn.safetensors",
        network="dynunet",
        patch=16,
        **small,
    )
    with pytest.raises(WeaksegError, match="pretrained dynunet encoder but"):
        api.train(
            img,
            lbl,
            tmp_path / "m.safetensors",
            init=other.best_path,
            patch_size=(16, 16, 16),
            **small,
        )
    own = api.pretrain([img], tmp_path / "res.safetensors", patch=16, **small)
    events = []
    api.train(
        img,
        lbl,
        tmp_path / "m.safetensors",
        init=own.best_path,
        patch_size=(16, 16, 16),
        callback=events.append,
        **small,
    )
    started = events[0]
    assert started.network == "resunet" and started.transferred > 0


def test_an_image_unlike_the_training_data_gets_a_notice(files, tmp_path):
    from napari_weakseg.core.base.events import Notice
    from napari_weakseg.core.data.volumes import Volume, read_volume

    img, lbl = files
    model = tmp_path / "m.safetensors"
    api.train(
        img,
        lbl,
        model,
        steps=1,
        base_filters=4,
        device="cpu",
        patch_size=(16, 16, 16),
    )
    vol = read_volume(img)

    def notices(image):
        events = []
        api.predict(model, image, device="cpu", callback=events.append)
        return [e.message for e in events if isinstance(e, Notice)]

    assert notices(img) == []
    far = Volume(np.asarray(vol.data) * 1000.0, vol.geometry)
    (text,) = notices(far)
    assert text.startswith("image is unlike the model's training data: ")
    assert "its intensities span" in text
    from napari_weakseg.core.data.geometry import Geometry

    g = vol.geometry
    coarse = Volume(
        vol.data,
        Geometry((g.spacing[0] * 2, *g.spacing[1:]), g.origin, g.direction),
    )
    (text,) = notices(coarse)
    assert "differs from the training data's" in text and "2.0x" in text
