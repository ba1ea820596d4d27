"""Pickers never pair an image with another image's layers (issue #28).

Two images with their annotation layers, opened in either order: the
docks' pickers pair them, follow each other, refuse a forced mismatch in
one sentence naming both layers, and the Apply dock defaults to the image
the model was trained on.  Also: the Train dock names each model after its
image and time, the Apply dock adds its layer before predicting and
compares a prediction with a reference, and opening the first dock says
that the engine is loading.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from napari_weakseg._qt.apply_widget import ApplyWidget
from napari_weakseg._qt.boxes_widget import BoxesWidget
from napari_weakseg._qt.train_widget import (
    AUTO_NAME,
    TrainWidget,
    model_file,
)
from napari_weakseg.core.base.defaults import (
    DONE_KEY,
    IMAGE_KEY,
    ROLE_ANNOTATION,
    ROLE_KEY,
    ROLE_PREDICTION,
    ROLE_REFERENCE,
)
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.data.sparse import from_sparse_labels

SHAPES = {"phantom": (16, 24, 24), "second": (12, 20, 28)}


def _add_pair(viewer, name):
    """An image and its annotation layer (its middle z slice done)."""
    shape = SHAPES[name]
    image, truth = make_phantom(shape, seed=len(name))
    sparse = np.full(shape, 255, np.uint8)
    sparse[shape[0] // 2] = truth[shape[0] // 2]
    painted, done = from_sparse_labels(sparse)
    img = viewer.add_image(image, name=name)
    ann = viewer.add_labels(
        painted,
        name=f"{name} annotations",
        metadata={
            DONE_KEY: done,
            ROLE_KEY: ROLE_ANNOTATION,
            IMAGE_KEY: name,
        },
    )
    return img, ann


@pytest.fixture
def said(monkeypatch):
    """The error notifications shown (one sentence each)."""
    import napari_weakseg._qt.workers as common

    shown: list[str] = []
    monkeypatch.setattr(common, "show_error", shown.append)
    return shown


@pytest.fixture(params=["phantom first", "second first"])
def two_pairs(request, make_napari_viewer):
    viewer = make_napari_viewer()
    order = ["phantom", "second"]
    if request.param == "second first":
        order.reverse()
    pairs = {name: _add_pair(viewer, name) for name in order}
    return viewer, pairs, order


def _dock(cls, viewer):
    dock = cls(viewer)
    dock.reset_choices()
    return dock


def test_train_pickers_pair_and_follow_each_other(two_pairs):
    viewer, pairs, order = two_pairs
    train = _dock(TrainWidget, viewer)
    first, other = order
    assert train.image.value is pairs[first][0]
    assert train.annotations.value is pairs[first][1]
    # picking the other image re-picks its annotation layer...
    train.image.value = pairs[other][0]
    assert train.annotations.value is pairs[other][1]
    # ...and picking the first annotation layer picks its image
    train.annotations.value = pairs[first][1]
    assert train.image.value is pairs[first][0]
    assert train.annotations.value is pairs[first][1]
    # an image with no annotation layer: none, never another image's
    lone = viewer.add_image(np.zeros((8, 8, 8), np.float32), name="lone")
    train.reset_choices()
    train.image.value = lone
    assert train.annotations.value is None


def test_a_renamed_image_keeps_its_annotation_layer(two_pairs, said):
    viewer, pairs, _ = two_pairs
    image, ann = pairs["second"]
    train = _dock(TrainWidget, viewer)
    image.name = "second, renamed"
    assert ann.metadata[IMAGE_KEY] == "second, renamed"
    train.reset_choices()
    train.image.value = image
    assert train.annotations.value is ann
    assert train.refuse_mismatch(ann, "annotation") is False and not said


def test_a_dock_opened_before_the_second_sample_never_mismatches(
    make_napari_viewer,
):
    """The issue: phantom open, Train dock open, then the MNI sample."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-weakseg", "phantom")
    _, train = viewer.window.add_plugin_dock_widget(
        "napari-weakseg", "Train (sparse slices)"
    )
    phantom = viewer.layers["phantom"]
    assert train.image.value is phantom and train.annotations.value is None
    viewer.open_sample("napari-weakseg", "mni152")  # napari resets choices
    t1, ann = viewer.layers["MNI152 T1"], viewer.layers["annotations"]
    assert train.image.value is phantom
    assert train.annotations.value is None  # not the MNI annotations
    train.annotations.value = ann  # the user picks them: the image follows
    assert train.image.value is t1
    # a dock opened now pairs the annotated image
    _, annotate = viewer.window.add_plugin_dock_widget(
        "napari-weakseg", "Sparse slice annotation"
    )
    assert annotate.image.value is t1 and annotate.annotations.value is ann


def test_start_refuses_a_mismatched_pair_in_one_sentence(two_pairs, said):
    viewer, pairs, _ = two_pairs
    phantom, phantom_ann = pairs["phantom"]
    second, second_ann = pairs["second"]
    train = _dock(TrainWidget, viewer)
    with train.following():  # bypass the follow: a forced mismatch
        train.image.value, train.annotations.value = phantom, second_ann
    train.start_button.native.click()  # Start
    assert train.worker is None
    # a layer naming no image, on another grid
    stray = viewer.add_labels(np.ones(SHAPES["second"], np.uint8))
    stray.metadata[ROLE_KEY] = ROLE_ANNOTATION
    train.reset_choices()
    assert train.annotations.value is not stray  # never a default
    train.image.value, train.annotations.value = phantom, stray
    train.start_button.native.click()  # Start
    assert train.worker is None
    assert said == [
        "'second annotations' belongs to 'second', not 'phantom'; pick its "
        "image or another annotation layer.",
        f"'{stray.name}' has shape (12, 20, 28) but 'phantom' has shape "
        "(16, 24, 24); pick an annotation layer drawn on 'phantom'.",
    ]


def test_boxes_and_accept_refuse_layers_of_another_image(two_pairs, said):
    from napari_weakseg._qt.layers import upsert_layer

    viewer, pairs, _ = two_pairs
    phantom, _ = pairs["phantom"]
    second, second_ann = pairs["second"]
    boxes = _dock(BoxesWidget, viewer)
    boxes.image.value = phantom
    layer = boxes.create_boxes_layer(
        [np.array([[8, 2, 2], [8, 2, 9], [8, 9, 9], [8, 9, 2]], float)],
        {"class": [1], "depth": [3]},
    )
    assert layer.metadata[IMAGE_KEY] == "phantom"
    with boxes.following():
        boxes.image.value = second
    boxes.start_button.native.click()
    assert boxes.worker is None

    apply = _dock(ApplyWidget, viewer)
    pred = upsert_layer(
        viewer,
        "phantom prediction",
        np.zeros(SHAPES["phantom"], np.uint8),
        phantom,
        ROLE_PREDICTION,
    )
    apply.reset_choices()
    with apply.following():
        apply.prediction.value, apply.annotations.value = pred, second_ann
    before = np.asarray(second_ann.data).copy()
    apply.accept_current_slice()
    assert np.array_equal(second_ann.data, before)
    assert said == [
        f"'{layer.name}' belongs to 'phantom', not 'second'; pick its image "
        "or another boxes layer.",
        "'phantom prediction' belongs to 'phantom' but 'second annotations' "
        "to 'second'; pick two layers of one image.",
    ]


def test_apply_follows_the_image_the_model_was_trained_on(
    two_pairs, qtbot, tmp_path
):
    """A tiny run on the second image with the untouched model field: a
    new file named after the image and time; the Apply dock (open before
    and opened after) defaults to that image and adds its prediction layer
    when Apply is pressed, filling it when the result arrives."""
    viewer, pairs, _ = two_pairs
    phantom, second = pairs["phantom"][0], pairs["second"][0]
    apply = _dock(ApplyWidget, viewer)
    apply.image.value = phantom
    train = _dock(TrainWidget, viewer)
    assert Path(str(train.out.value)).name == AUTO_NAME
    train.image.value = second
    assert train.annotations.value is pairs["second"][1]
    train.steps.value, train.base_filters.value = 2, 4
    train.device.value = "cpu"
    with qtbot.waitSignal(train.start_training().finished, timeout=120_000):
        pass
    models = tmp_path / "weakseg-home" / "models"
    (path,) = [p for p in models.iterdir() if ".last." not in p.name]
    assert re.fullmatch(
        r"second \d{4}-\d\d-\d\d \d{6}\.safetensors", path.name
    )
    assert train.status.value == f"model: {path.name}\nin {models}"
    assert apply.image.value is second  # followed the model
    assert Path(str(apply.model.value)) == path
    assert _dock(ApplyWidget, viewer).image.value is second  # a new dock
    # another image is allowed, with a word in the status line
    apply.image.value = phantom
    assert apply.status.value == (
        "The model was trained on 'second', not 'phantom'."
    )
    apply.image.value = second
    assert apply.status.value == ""

    inserted = []
    apply.start_apply()
    layer = viewer.layers["second prediction"]  # added at the press
    assert layer.metadata[ROLE_KEY] == ROLE_PREDICTION
    assert layer.data.shape == SHAPES["second"] and not layer.data.any()
    assert apply.prediction.value is layer
    viewer.layers.events.inserted.connect(inserted.append)
    _until_applied(qtbot, apply)
    assert apply._session.uncertainty is not None  # a result arrived
    assert inserted == []  # and filled the layer in place
    assert viewer.layers["second prediction"] is layer
    assert apply.status.value == "prediction in layer 'second prediction'"
    # a second run into the same layer: nothing added at all
    apply.start_apply()
    _until_applied(qtbot, apply)
    assert inserted == [] and "second prediction [2]" not in viewer.layers


def test_apply_without_a_model_defaults_to_the_selected_image(two_pairs):
    """No model yet: the selected image, or the image of the selected
    layer; never an unrelated one."""
    viewer, pairs, order = two_pairs
    first, last = order
    assert viewer.layers.selection.active is pairs[last][1]
    assert _dock(ApplyWidget, viewer).image.value is pairs[last][0]
    viewer.layers.selection.active = pairs[first][0]
    assert _dock(ApplyWidget, viewer).image.value is pairs[first][0]


def _until_applied(qtbot, apply):
    """Until the run has ended on the GUI thread (waiting on the worker's
    finished signal could connect after a quick run fired it)."""
    assert not apply.apply_button.enabled
    qtbot.waitUntil(lambda: apply.apply_button.enabled, timeout=120_000)


def test_a_run_without_a_result_leaves_no_empty_layer(
    make_napari_viewer, qtbot, tmp_path, said
):
    viewer = make_napari_viewer()
    image, _ = _add_pair(viewer, "phantom")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"no model")
    apply = _dock(ApplyWidget, viewer)
    apply.image.value, apply.model.value = image, str(bad)
    apply.start_apply()  # fails at once: wait on what the GUI thread does
    assert "phantom prediction" in viewer.layers
    qtbot.waitUntil(
        lambda: "phantom prediction" not in viewer.layers, timeout=60_000
    )
    assert len(said) == 1 and apply.apply_button.enabled


def test_model_file_is_named_after_the_image_and_time(tmp_path):
    field = tmp_path / "models" / AUTO_NAME
    at = datetime(2025, 5, 4, 15, 30, 0)
    path = model_file(field, "MNI152 T1", at)
    assert (
        path == tmp_path / "models" / "MNI152 T1 2025-05-04 153000.safetensors"
    )
    assert model_file(field, "a/b:c", at).name == (
        "a_b_c 2025-05-04 153000.safetensors"
    )
    path.parent.mkdir()
    path.touch()  # two runs in one second: never the same file
    assert model_file(field, "MNI152 T1", at).name == (
        "MNI152 T1 2025-05-04 153000 [2].safetensors"
    )
    chosen = tmp_path / "mine.safetensors"  # the user's file is kept
    assert model_file(chosen, "MNI152 T1", at) == chosen


def _wait_for(qtbot, apply, worker):
    """Until a (quick) scoring run has ended on the GUI thread; its
    finished signal may fire before a waitSignal could connect."""
    assert worker is not None and not apply.compare.enabled
    qtbot.waitUntil(lambda: apply.compare.enabled, timeout=60_000)


def _cube_pair(viewer, shift=1):
    """A 4³ cube and the same cube shifted ``shift`` voxels in x."""
    from napari_weakseg._qt.layers import upsert_layer

    image = viewer.add_image(np.zeros((12, 12, 12), np.float32), name="cube")
    pred = np.zeros((12, 12, 12), np.uint8)
    pred[4:8, 4:8, 4:8] = 1
    ref = np.roll(pred, shift, axis=2)
    layer = upsert_layer(viewer, "cube prediction", pred, image, "prediction")
    truth = viewer.add_labels(
        ref, name="cube truth", metadata={ROLE_KEY: ROLE_REFERENCE}
    )
    return layer, truth


def test_compare_with_a_reference_shows_and_saves_the_scores(
    make_napari_viewer, qtbot, tmp_path, said
):
    import csv

    viewer = make_napari_viewer()
    pred, truth = _cube_pair(viewer)
    apply = _dock(ApplyWidget, viewer)
    assert apply.prediction.value is pred
    assert apply.reference.value is truth  # the reference of this grid
    box = apply.scores.native
    assert not box.isVisibleTo(apply.native)  # no empty table
    _wait_for(qtbot, apply, apply.start_compare())
    assert box.isVisibleTo(apply.native)
    lines = apply.scores.value.splitlines()
    assert lines[0] == "'cube prediction' against 'cube truth':"
    assert lines[1].split() == [
        "label",
        "name",
        "dice",
        "iou",
        "hd95",
        "volume_pred",
        "volume_truth",
    ]
    # Dice 2·48/128, IoU 48/80, HD95 one voxel
    assert lines[2].split() == [
        "1",
        "class",
        "1",
        "0.7500",
        "0.6000",
        "1",
        "64",
        "64",
    ]
    assert len(lines) == 3
    out = tmp_path / "scores.csv"
    apply.table_file.value = str(out)
    _wait_for(qtbot, apply, apply.save_scores())
    (row,) = csv.DictReader(out.open())
    assert row["label"] == "1"
    assert float(row["dice"]) == pytest.approx(0.75)
    assert float(row["iou"]) == pytest.approx(0.6)
    assert float(row["hd95"]) == pytest.approx(1.0)
    assert apply.status.value == f"table saved to {out}"
    # another grid: one sentence, no worker
    apply.worker = None
    other = viewer.add_labels(
        np.zeros((8, 12, 12), np.uint8),
        name="other truth",
        metadata={ROLE_KEY: ROLE_REFERENCE},
    )
    apply.reset_choices()
    assert apply.reference.value is truth  # another grid: no default
    apply.reference.value = other
    assert apply.start_compare() is None and apply.worker is None
    assert said == [
        "'cube prediction' has shape (12, 12, 12) but 'other truth' has "
        "shape (8, 12, 12); pick two layers on the same voxel grid."
    ]


def test_the_first_dock_says_the_engine_is_loading(
    make_napari_viewer, monkeypatch, tmp_path
):
    """The import runs on the GUI thread: while it runs the status bar
    says so and the cursor is busy; afterwards the status is restored."""
    import sys

    import napari_weakseg._qt.loading as common

    (tmp_path / "slow_engine.py").write_text(
        "import napari\n"
        "from qtpy.QtWidgets import QApplication\n"
        "STATUS = napari.current_viewer().status\n"
        "CURSOR = QApplication.overrideCursor().shape()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(common, "ENGINE", (*common.ENGINE, "slow_engine"))
    viewer = make_napari_viewer()
    viewer.status = "Ready"
    TrainWidget(viewer)
    engine = sys.modules.pop("slow_engine")
    assert engine.STATUS == common.LOADING
    assert engine.CURSOR.name == "WaitCursor"
    assert viewer.status == "Ready"
    from qtpy.QtWidgets import QApplication

    assert QApplication.overrideCursor() is None


def test_apply_to_an_image_unlike_the_training_data_warns(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """The model stores its training intensities: an image 1000x brighter
    gets one warning naming the layer and what differs."""
    import napari_weakseg._qt.apply_widget as apply_module
    from napari_weakseg import api

    warned: list[str] = []
    monkeypatch.setattr(apply_module, "show_warning", warned.append)
    image, truth = make_phantom((16, 24, 24))
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[8] = truth[8]
    model = tmp_path / "m.safetensors"
    api.train(
        image,
        sparse,
        model,
        steps=1,
        base_filters=4,
        device="cpu",
        patch_size=(16, 16, 16),
    )
    viewer = make_napari_viewer()
    viewer.add_image(image * 1000.0, name="bright")
    apply = _dock(ApplyWidget, viewer)
    apply.model.value = str(model)
    apply.start_apply()
    _until_applied(qtbot, apply)
    assert len(warned) == 1
    assert warned[0].startswith("'bright' is unlike the model's training")
    assert "its intensities span" in warned[0]


def test_the_unlabelled_pool_folder_reaches_training(
    two_pairs, qtbot, tmp_path, monkeypatch
):
    import napari_weakseg.api as api
    from napari_weakseg.core.base.events import Finished

    seen = {}

    def fake(images, labels, out, **settings):
        seen.update(settings)
        yield from ()
        return Finished(0, False, float("nan"), "", "")

    monkeypatch.setattr(api, "iter_train", fake)
    viewer, pairs, _ = two_pairs
    train = _dock(TrainWidget, viewer)
    assert train.unlabelled.value is None  # opt-in
    train.unlabelled.value = str(tmp_path)
    train.start_training()
    qtbot.waitUntil(lambda: train.start_button.enabled, timeout=60_000)
    assert seen["unlabelled"] == [str(tmp_path)]
