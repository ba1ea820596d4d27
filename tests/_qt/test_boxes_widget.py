"""Boxes dock: rectangles with depth and class -> boxes -> masks."""

import numpy as np

from napari_weakseg._qt.boxes_widget import BoxesWidget
from napari_weakseg._qt.layer_data import shapes_to_boxes
from napari_weakseg.core.data.boxes import Box, read_boxes
from napari_weakseg.core.data.phantom import boxes_of, make_blobs


def test_rectangles_on_a_slice_become_boxes_with_depth(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(
        np.zeros((20, 30, 30), np.float32), scale=(2.0, 1.0, 1.0)
    )
    widget = BoxesWidget(viewer)
    widget.reset_choices()
    widget.image.value = image
    widget.depth.value = 5
    layer = widget.create_boxes_layer()
    np.testing.assert_allclose(layer.scale, image.scale)
    layer.add_rectangles(
        np.array([[10, 4, 6], [10, 4, 16], [10, 12, 16], [10, 12, 6]])
    )
    layer.features.loc[0, "class"] = 2
    assert shapes_to_boxes(layer, image) == [Box(8, 4, 6, 13, 13, 17, 2)]


def test_load_save_and_run_one_round(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    img, truth = make_blobs((12, 24, 24))
    image = viewer.add_image(img, name="blobs")
    boxes = [Box(*b) for b in boxes_of(truth)]
    from napari_weakseg.core.data.boxes import write_boxes

    write_boxes(tmp_path / "in.csv", boxes)
    widget = BoxesWidget(viewer)
    widget.reset_choices()
    widget.image.value = image
    widget.file.value = str(tmp_path / "in.csv")
    widget.load_boxes()
    widget.file.value = str(tmp_path / "out.csv")
    widget.save_boxes()
    assert read_boxes(tmp_path / "out.csv") == boxes
    widget.rounds.value, widget.steps.value = 1, 2
    with qtbot.waitSignal(widget.start_run().finished, timeout=120_000):
        pass
    masks = viewer.layers["blobs box masks"]
    assert masks.data.shape == img.shape
    assert viewer.layers["blobs pseudo-labels"].data.shape == img.shape
    assert "round 1/1" in widget.status.value
