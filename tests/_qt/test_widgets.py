"""Drive the real docks in a real viewer: annotate, train, stop, apply."""

import numpy as np

from napari_weakseg._qt.annotation_widget import AnnotationWidget
from napari_weakseg._qt.apply_widget import ApplyWidget
from napari_weakseg._qt.layer_data import done_of, sparse_from_layer
from napari_weakseg._qt.train_widget import TrainWidget
from napari_weakseg.core.base.events import Step
from napari_weakseg.core.data.phantom import make_phantom


def _viewer_with_phantom(make_napari_viewer):
    viewer = make_napari_viewer()
    image, truth = make_phantom((16, 24, 24))
    layer = viewer.add_image(image, name="phantom", scale=(3.0, 1.0, 1.0))
    return viewer, layer, truth


def _annotate_three_slices(widget, truth):
    layer = widget.create_annotation_layer()
    for axis, index in [("z", 8), ("y", 12), ("x", 12)]:
        widget.axis.value = axis
        a = "zyx".index(axis)
        sl = [slice(None)] * 3
        sl[a] = index
        sl = tuple(sl)  # paint the classes, as a brush would
        layer.data[sl] = np.where(truth[sl] > 0, truth[sl], layer.data[sl])
        step = list(widget._viewer.dims.current_step)
        step[a] = index
        widget._viewer.dims.current_step = tuple(step)
        widget.mark_current_slice_done()
    return layer


def _train_dock(viewer, image, ann, steps, folder):
    """The Train dock set for a small CPU run into folder/m.safetensors."""
    train_w = TrainWidget(viewer)
    train_w.reset_choices()
    train_w.image.value, train_w.annotations.value = image, ann
    train_w.steps.value, train_w.base_filters.value = steps, 4
    train_w.device.value = "cpu"
    train_w.out.value = str(folder / "m.safetensors")
    return train_w


def test_annotate_train_stop_apply(make_napari_viewer, qtbot, tmp_path):
    viewer, image, truth = _viewer_with_phantom(make_napari_viewer)
    ann_w = AnnotationWidget(viewer)
    ann = _annotate_three_slices(ann_w, truth)
    assert done_of(ann) == {0: [8], 1: [12], 2: [12]}
    assert "labelled" in ann_w.info.value

    train_w = _train_dock(viewer, image, ann, 200, tmp_path)
    steps = []

    def stop_after_three(event):
        if isinstance(event, Step):
            steps.append(event.step)
            if event.step == 3:
                train_w.request_stop()

    with qtbot.waitSignal(
        train_w.start_training().finished, timeout=120_000
    ) as _:
        train_w.worker.yielded.connect(stop_after_three)
    assert steps[-1] < 200 and train_w.start_button.enabled
    assert (tmp_path / "m.safetensors").exists()

    apply_w = ApplyWidget(viewer)
    apply_w.reset_choices()
    assert apply_w.model.value.name == "m.safetensors"  # from the session
    apply_w.image.value = image
    apply_w.show_probabilities.value = True
    annotated = ann.data.copy()
    with qtbot.waitSignal(apply_w.start_apply().finished, timeout=120_000):
        pass
    pred = viewer.layers["phantom prediction"]
    assert pred.data.shape == image.data.shape == (16, 24, 24)
    np.testing.assert_allclose(pred.scale, image.scale)
    for c in (1, 2):
        p = viewer.layers[f"phantom p(class {c})"]
        assert p.data.shape == (16, 24, 24) and p.data.max() <= 1.0
    # the annotation layer is untouched by Apply
    assert np.array_equal(ann.data, annotated)

    # correction loop: accept slice z=4 of the prediction as annotation
    apply_w.reset_choices()
    apply_w.prediction.value, apply_w.annotations.value = pred, ann
    ann_w.axis.value = "z"
    step = list(viewer.dims.current_step)
    step[0] = 4
    viewer.dims.current_step = tuple(step)
    apply_w.accept_current_slice()
    assert 4 in done_of(ann)[0]
    assert np.all(ann.data[4] > 0)


def test_apply_again_never_overwrites_a_user_layer(make_napari_viewer):
    viewer, image, _ = _viewer_with_phantom(make_napari_viewer)
    user = viewer.add_labels(
        np.zeros((16, 24, 24), np.uint8), name="phantom prediction"
    )
    apply_w = ApplyWidget(viewer)
    apply_w._image = image
    probs = np.full((2, 16, 24, 24), 0.5, np.float32)
    apply_w._on_done((np.ones((16, 24, 24), np.uint8), probs, probs[0]))
    assert not user.data.any()
    assert viewer.layers["phantom prediction [2]"].data.all()
    apply_w._on_done(
        (np.zeros((16, 24, 24), np.uint8), probs, probs[0])
    )  # again
    assert viewer.layers["phantom prediction [2]"].data.sum() == 0
    assert "phantom prediction [3]" not in viewer.layers


def test_autosave_then_reopen_restores_annotations(make_napari_viewer):
    viewer, image, truth = _viewer_with_phantom(make_napari_viewer)
    widget = AnnotationWidget(viewer)
    ann = _annotate_three_slices(widget, truth)
    widget.autosave(wait=True)
    expected = np.asarray(ann.data).copy()
    viewer.layers.clear()

    viewer.add_image(image.data, name="phantom", scale=(3.0, 1.0, 1.0))
    again = AnnotationWidget(viewer)
    again.reset_choices()
    restored = again.create_annotation_layer()
    np.testing.assert_array_equal(restored.data, expected)
    assert done_of(restored) == {0: [8], 1: [12], 2: [12]}


def test_buttons_without_layers_notify_instead_of_raising(
    make_napari_viewer, monkeypatch
):
    import napari_weakseg._qt.workers as common

    said = []
    monkeypatch.setattr(common, "show_error", said.append)
    viewer = make_napari_viewer()
    AnnotationWidget(viewer).mark_current_slice_done()
    TrainWidget(viewer).start_training()
    ApplyWidget(viewer).start_apply()
    assert said == [
        "Create or pick an annotation layer first.",
        "Pick an image and an annotation layer (Annotate dock: New "
        "annotation layer).",
        "Pick an image to segment.",
    ]


def test_live_preview_fills_the_shown_slice(
    make_napari_viewer, qtbot, tmp_path
):
    viewer, image, truth = _viewer_with_phantom(make_napari_viewer)
    ann_w = AnnotationWidget(viewer)
    ann = _annotate_three_slices(ann_w, truth)
    train_w = TrainWidget(viewer)
    train_w.reset_choices()
    train_w.image.value, train_w.annotations.value = image, ann
    train_w.steps.value, train_w.base_filters.value = 4, 4
    train_w.device.value = "cpu"
    train_w.preview.value = True
    train_w.out.value = str(tmp_path / "m.safetensors")
    ann_w.axis.value = "z"
    step = list(viewer.dims.current_step)
    step[0] = 5
    viewer.dims.current_step = tuple(step)
    with qtbot.waitSignal(train_w.start_training().finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: train_w.preview_worker is None, timeout=60_000)
    preview = viewer.layers["phantom preview"]
    assert preview.data.shape == (16, 24, 24)
    others = np.delete(np.asarray(preview.data), 5, axis=0)
    assert not others.any()  # only the shown slice is predicted


def test_a_paint_stroke_is_autosaved_without_a_button(
    make_napari_viewer, qtbot
):
    from napari_weakseg._qt.annotation_widget import store_for

    viewer, image, _ = _viewer_with_phantom(make_napari_viewer)
    widget = AnnotationWidget(viewer)
    layer = widget.create_annotation_layer()
    path = store_for(image).path
    assert not path.exists()
    layer.paint((8, 5, 5), 2)
    qtbot.waitUntil(path.exists, timeout=10_000)
    widget._writer.join()
    saved, _ = store_for(image).load()
    assert saved[8, 5, 5] == 2


def test_train_on_every_annotated_image(make_napari_viewer, qtbot, tmp_path):
    from napari_weakseg.core.base.events import Started

    viewer, image, truth = _viewer_with_phantom(make_napari_viewer)
    second = viewer.add_image(
        image.data[:, ::-1].copy(), name="flipped", scale=(3.0, 1.0, 1.0)
    )
    ann_w = AnnotationWidget(viewer)
    ann_w.reset_choices()
    ann_w.image.value = image
    first = _annotate_three_slices(ann_w, truth)
    ann_w.image.value = second
    _annotate_three_slices(ann_w, truth[:, ::-1])
    ann_w.image.value = image
    empty = ann_w.create_annotation_layer()  # restores the autosave...
    empty.data = np.zeros_like(empty.data)  # ...emptied: skipped
    train_w = TrainWidget(viewer)
    train_w.reset_choices()
    train_w.image.value, train_w.annotations.value = image, first
    train_w.every_image.value = True
    train_w.steps.value, train_w.base_filters.value = 2, 4
    train_w.device.value = "cpu"
    train_w.out.value = str(tmp_path / "m.safetensors")
    started = []
    worker = train_w.start_training()
    worker.yielded.connect(
        lambda e: started.append(e) if isinstance(e, Started) else None
    )
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    one = int((sparse_from_layer(first) != 255).sum())
    assert started[0].train_voxels == 2 * one


def test_apply_on_a_large_lazy_image_streams_to_zarr(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """Above LARGE_VOXELS the dock predicts block by block into stores
    under WEAKSEG_HOME and the layers read them lazily."""
    from napari_weakseg import api
    from napari_weakseg.core.base import defaults
    from napari_weakseg.core.data.volumes import Volume, write_volume

    image, truth = make_phantom((40, 24, 24))
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[20] = truth[20]
    model = tmp_path / "m.safetensors"
    api.train(image, sparse, model, steps=2, base_filters=4, device="cpu",
              patch_size=[8, 8, 8])  # fmt: skip
    whole, _ = api.predict(model, image, device="cpu")
    store = write_volume(tmp_path / "img.zarr", Volume(image))
    viewer = make_napari_viewer()
    import zarr

    layer = viewer.add_image(zarr.open(str(store), mode="r"), name="big")
    monkeypatch.setattr(defaults, "LARGE_VOXELS", 16 * 24 * 24)
    apply_w = ApplyWidget(viewer)
    apply_w.reset_choices()
    apply_w.image.value, apply_w.model.value = layer, str(model)
    apply_w.show_probabilities.value = True
    with qtbot.waitSignal(apply_w.start_apply().finished, timeout=120_000):
        pass
    pred = viewer.layers["big prediction"]
    assert isinstance(pred.data, zarr.Array)  # core.io's checked subclass
    np.testing.assert_array_equal(np.asarray(pred.data), whole)
    assert type(viewer.layers["big p(class 1)"].data).__name__ == "Array"
    home = tmp_path / "weakseg-home" / "predictions"
    assert sorted(p.name for p in home.iterdir()) == [
        "big p.zarr",
        "big prediction.zarr",
    ]
    assert apply_w._session.uncertainty is None


def test_annotating_a_large_image_paints_into_a_store_on_disk(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """Above LARGE_VOXELS the annotation layer is a zarr store under
    WEAKSEG_HOME: strokes land on disk, done slices are recorded in it,
    a new layer reopens it, and training reads it lazily."""
    import zarr

    from napari_weakseg.core.base import defaults
    from napari_weakseg.core.data.lazy import SparseLabels
    from napari_weakseg.core.data.volumes import Volume, write_volume

    monkeypatch.setattr(defaults, "LARGE_VOXELS", 1000)
    image, truth = make_phantom((16, 24, 24))
    store = write_volume(tmp_path / "img.zarr", Volume(image))
    viewer = make_napari_viewer()
    big = viewer.add_image(zarr.open(str(store), mode="r"), name="big")
    widget = AnnotationWidget(viewer)
    widget.reset_choices()
    widget.image.value = big
    layer = _annotate_three_slices(widget, truth)
    assert type(layer.data).__module__.startswith("zarr")
    folder = tmp_path / "weakseg-home" / "annotations"
    (path,) = folder.iterdir()
    on_disk = zarr.open_array(str(path), mode="r")
    np.testing.assert_array_equal(on_disk[8] > 0, True)  # marked done
    assert done_of(layer) == {0: [8], 1: [12], 2: [12]}
    assert on_disk.attrs["weakseg_done"] == {"0": [8], "1": [12], "2": [12]}
    assert "(on disk)" in widget.info.value
    assert list((tmp_path / "weakseg-home").glob("autosave/*")) == []
    sparse = sparse_from_layer(layer)
    assert type(sparse).__module__.startswith("dask")
    expected = np.full(truth.shape, 255, np.uint8)
    for where in (np.s_[8], np.s_[:, 12], np.s_[:, :, 12]):
        expected[where] = truth[where]
    np.testing.assert_array_equal(np.asarray(sparse), expected)

    widget.unmark_current_slice()  # the shown slice: x = 12
    assert done_of(layer) == {0: [8], 1: [12], 2: []}
    viewer.layers.remove(layer)
    again = widget.create_annotation_layer()  # reopens the store
    assert done_of(again) == {0: [8], 1: [12], 2: []}
    np.testing.assert_array_equal(np.asarray(again.data), np.asarray(on_disk))

    from napari_weakseg.core.train.trainset import prepare

    trainset = prepare([big.data], [sparse_from_layer(again)])
    assert isinstance(trainset.targets[0], SparseLabels)
    train_w = _train_dock(viewer, big, again, 2, tmp_path)
    with qtbot.waitSignal(train_w.start_training().finished, timeout=120_000):
        pass
    assert (tmp_path / "m.safetensors").is_file()
