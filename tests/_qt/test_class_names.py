"""Class names from training to the prediction layer (its features,
status bar and colours), the probability layers and the scores."""

import numpy as np

from napari_weakseg import api
from napari_weakseg._qt.apply_widget import ApplyWidget
from napari_weakseg._qt.layers import annotation_colormap, label_names
from napari_weakseg._qt.train_widget import TrainWidget
from napari_weakseg.core.data.phantom import make_phantom


def _model(folder, image, truth, names):
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[8] = truth[8]
    model = folder / "m.safetensors"
    api.train(
        image,
        sparse,
        model,
        steps=2,
        base_filters=4,
        device="cpu",
        class_names=names,
    )
    return model


def test_class_names_reach_the_prediction_layer(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    image, truth = make_phantom((16, 24, 24))
    layer = viewer.add_image(image, name="phantom", scale=(3.0, 1.0, 1.0))
    reference = viewer.add_labels(truth, name="truth", scale=(3, 1, 1))
    model = _model(tmp_path, image, truth, ["head", "body"])

    apply_w = ApplyWidget(viewer)
    apply_w.reset_choices()
    apply_w.model.value = str(model)
    apply_w.image.value = layer
    apply_w.show_probabilities.value = True
    with qtbot.waitSignal(apply_w.start_apply().finished, timeout=120_000):
        pass
    pred = viewer.layers["phantom prediction"]
    assert list(pred.features["class"]) == ["background", "head", "body"]
    assert list(pred.features["index"]) == [0, 1, 2]
    # the status bar names the class under the cursor
    pred.data = truth.copy()  # a known class at a known voxel
    z, y, x = np.argwhere(truth == 2)[0]
    status = pred.get_status((3.0 * z, y, x), world=True)
    text = status["coordinates"] if isinstance(status, dict) else status
    assert "class: body" in text
    # classes keep their annotation colours; the background is clear
    painted = annotation_colormap().color_dict
    for c in (1, 2):
        np.testing.assert_allclose(pred.colormap.color_dict[c], painted[c])
    assert pred.colormap.color_dict[0][3] == 0
    assert "phantom p(head)" in viewer.layers
    assert "phantom p(body)" in viewer.layers

    # the scores name the classes too
    apply_w.reset_choices()
    apply_w.prediction.value, apply_w.reference.value = pred, reference
    with qtbot.waitSignal(apply_w.start_compare().finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: "head" in apply_w.scores.value, timeout=10_000)
    assert "body" in apply_w.scores.value


def test_train_dock_takes_names_from_the_field_or_the_layer(
    make_napari_viewer,
):
    viewer = make_napari_viewer()
    image, truth = make_phantom((16, 24, 24))
    layer = viewer.add_image(image, name="phantom")
    ann = viewer.add_labels(np.zeros(truth.shape, np.uint8), name="ann")
    train_w = TrainWidget(viewer)
    train_w.reset_choices()
    train_w.image.value, train_w.annotations.value = layer, ann
    assert not train_w.api_settings()["class_names"]  # class 1, 2...
    # napari Labels carry names in features: index -> name
    ann.features = {"index": [0, 1, 2], "name": ["bg", "head", "body"]}
    assert label_names(ann) == ["head", "body"]
    assert train_w.api_settings()["class_names"] == "head,body"
    train_w.class_names.value = "left, right"  # the field wins
    assert train_w.api_settings()["class_names"] == "left, right"
    assert train_w.class_names.tooltip
