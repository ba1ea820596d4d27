"""CAM dock: model -> layers dropdown -> map overlay -> seeds layer."""

import numpy as np

from napari_weakseg._qt.cam_widget import CamWidget
from napari_weakseg.core.nn.models import save_model
from napari_weakseg.core.nn.networks import ModelConfig, build_network


def test_map_overlay_lines_up_and_becomes_seeds(
    make_napari_viewer, qtbot, tmp_path
):
    cfg = ModelConfig(
        kind="classifier",
        num_classes=2,
        filters=[4, 8, 8],
        patch_size=[8, 16, 16],
        spacing=[3.0, 1.0, 1.0],
    )
    save_model(tmp_path / "c.safetensors", build_network(cfg), cfg)
    viewer = make_napari_viewer()
    img = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
    image = viewer.add_image(
        img, name="aniso", scale=(3.0, 1.0, 1.0), translate=(5.0, -2.0, 0.5)
    )
    w = CamWidget(viewer)
    w.reset_choices()
    w.image.value = image
    w.model.value = str(tmp_path / "c.safetensors")
    assert w.layer.choices == ("input_block", "downsamples.0", "bottleneck")
    assert w.layer.value == "bottleneck"
    w.method.value = "gradcam"
    with qtbot.waitSignal(w.start_map().finished, timeout=60_000):
        pass
    layer = viewer.layers["aniso gradcam class 1"]
    assert layer.data.shape == img.shape
    np.testing.assert_allclose(layer.scale, image.scale)
    np.testing.assert_allclose(layer.translate, image.translate)
    assert layer.blending == "additive"
    w.opacity.value = 0.3
    assert layer.opacity == 0.3
    seeds = w.map_to_pseudo_labels()
    assert seeds.data.shape == img.shape
    assert set(np.unique(seeds.data)) <= {0, 1, 255}


def test_foreign_model_file_is_a_notification(
    make_napari_viewer, tmp_path, monkeypatch
):
    import napari_weakseg._qt.workers as common

    said = []
    monkeypatch.setattr(common, "show_error", said.append)
    (tmp_path / "x.safetensors").write_bytes(b"not a model")
    w = CamWidget(make_napari_viewer())
    w.model.value = str(tmp_path / "x.safetensors")
    assert said == [
        "x.safetensors is not a napari-weakseg model file (expected "
        "a .safetensors file written by napari-weakseg)."
    ]
    assert w.layer.choices == ()


def test_segment_from_map_adds_a_new_labels_layer(
    make_napari_viewer, qtbot, monkeypatch
):
    import functools

    from napari_weakseg import api
    from napari_weakseg.core.data.phantom import make_phantom

    short = functools.partial(api.iter_segment_from_map, steps_per_round=2)
    monkeypatch.setattr(api, "iter_segment_from_map", short)
    img, truth = make_phantom((16, 24, 24))
    viewer = make_napari_viewer()
    image = viewer.add_image(img, name="phantom", scale=(2.0, 1.0, 1.0))
    w = CamWidget(viewer)
    assert w.start_segment() is None  # no map yet: a notification
    w._image = image
    w._map_layer = viewer.add_image((truth == 1).astype(np.float32))
    with qtbot.waitSignal(w.start_segment().finished, timeout=120_000):
        pass
    layer = viewer.layers["phantom segmentation from map"]
    assert layer.data.shape == img.shape
    assert set(np.unique(layer.data)) <= {0, 1}
    assert (layer.data == 1).any()
    np.testing.assert_allclose(layer.scale, image.scale)
    assert w.status.value == "round 3 of 3"
    assert w.segment.enabled and w.compute.enabled
    assert not w.stop_button.enabled
