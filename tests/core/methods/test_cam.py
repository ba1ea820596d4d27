import numpy as np
import pytest
import torch

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.base.events import run
from napari_weakseg.core.methods.cam import (
    cam,
    default_layer,
    grad_cam,
    iter_map_volume,
    list_layers,
    map_volume,
    normalise_map,
    pseudo_labels,
    upsample,
)
from napari_weakseg.core.nn.networks import ModelConfig, build_network


def _model(kind, seed=0, classes=2):
    torch.manual_seed(seed)
    cfg = ModelConfig(
        kind=kind,
        num_classes=classes,
        filters=[4, 8, 8],
        patch_size=[16, 16, 16],
    )
    return build_network(cfg).eval()


def _x(seed=0, shape=(16, 16, 16)):
    return torch.randn(
        1, 1, *shape, generator=torch.Generator().manual_seed(seed)
    )


def test_layers_are_the_top_level_blocks():
    assert list_layers(_model("unet")) == [
        "input_block",
        "downsamples.0",
        "bottleneck",
        "upsamples.0",
        "upsamples.1",
        "output_block",
    ]
    assert list_layers(_model("classifier")) == [
        "input_block",
        "downsamples.0",
        "bottleneck",
    ]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
@pytest.mark.parametrize(
    ("kind", "layer"),
    [
        ("classifier", "bottleneck"),
        ("classifier", "downsamples.0"),
        ("unet", "bottleneck"),
    ],
)
def test_raw_map_equals_monai_with_identity_postprocessing(
    kind, layer, method
):
    from monai.visualize import GradCAM, GradCAMpp

    from napari_weakseg.core.methods.cam import RegionScore

    model, x = _model(kind, seed=1), _x(1)
    ours = grad_cam(model, x, layer, 1, method=method)
    net, name = (
        (model, layer)
        if kind == "classifier"
        else (RegionScore(model), f"model.{layer}")
    )
    ref_cls = GradCAM if method == "gradcam" else GradCAMpp
    ref = ref_cls(
        nn_module=net, target_layers=name, postprocessing=lambda m: m
    )(x, class_idx=1)
    assert ours.shape == (1, 1, 16, 16, 16)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert float(ours.min()) >= 0.0  # ReLU'd, not normalised
    assert float(ours.max()) != 1.0


@pytest.mark.parametrize(
    ("kind", "layer"),
    [("classifier", "bottleneck"), ("unet", "downsamples.0")],
)
def test_raw_map_equals_captum_layer_gradcam(kind, layer):
    from captum.attr import LayerAttribution, LayerGradCam

    from napari_weakseg.core.methods.cam import RegionScore

    model, x = _model(kind, seed=2), _x(2)
    ours = grad_cam(model, x, layer, 1)
    net = model if kind == "classifier" else RegionScore(model)
    target = dict(
        (model if kind == "classifier" else net.model).named_modules()
    )[layer]
    attr = LayerGradCam(net, target).attribute(
        x, target=1, relu_attributions=True
    )
    ref = LayerAttribution.interpolate(attr, x.shape[2:], "trilinear")
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_gap_linear_gradcam_equals_relu_cam_after_normalising():
    model, x = _model("classifier", seed=3, classes=3), _x(3)
    for c in range(3):
        g = normalise_map(grad_cam(model, x, "bottleneck", c))
        m = normalise_map(cam(model, x, c))
        np.testing.assert_allclose(g, m, atol=1e-5)


def test_region_restricts_the_segmentation_score():
    model, x = _model("unet", seed=4), _x(4)
    region = torch.zeros(1, 1, 16, 16, 16)
    region[..., :8, :, :] = 1
    a = grad_cam(model, x, "bottleneck", 1, region=region)
    b = grad_cam(model, x, "bottleneck", 1)
    assert not torch.allclose(a, b)


def test_upsampling_is_trilinear_without_corner_alignment():
    m = torch.arange(8.0).reshape(1, 1, 2, 2, 2)
    up = upsample(m, (4, 4, 4))
    assert float(up[0, 0, 0, 0, 0]) == 0.0  # edge clamped, not extrapolated
    assert float(up[0, 0, 1, 1, 1]) == pytest.approx(1.75)


def test_bad_requests_are_one_sentence():
    model, x = _model("unet"), _x()
    with pytest.raises(WeaksegError, match="No layer 'nope'.*bottleneck"):
        grad_cam(model, x, "nope", 1)
    with pytest.raises(WeaksegError, match="Class 5 is out of range"):
        grad_cam(model, x, "bottleneck", 5)
    with pytest.raises(WeaksegError, match="no 3D convolutional layer"):
        list_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    with pytest.raises(WeaksegError, match="CAM needs a classifier"):
        cam(model, x, 1)


def test_whole_volume_by_windows_matches_one_pass_in_the_middle():
    model = _model("classifier", seed=5)
    img = (
        np.random.default_rng(5)
        .standard_normal((16, 16, 16))
        .astype(np.float32)
    )
    one = map_volume(model, img, 1, "cam")
    np.testing.assert_allclose(
        one,
        cam(model, torch.as_tensor(img)[None, None], 1)[0, 0].numpy(),
        atol=1e-6,
    )
    calls = []
    win = run(
        iter_map_volume(model, img, 1, "cam", window=(8, 16, 16)),
        lambda e: calls.append((e.done, e.total)),
    )
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert win.shape == img.shape


def test_pseudo_labels_have_seeds_band_and_background():
    m = np.zeros((4, 10, 10), np.float32)
    m[:, 3:7, 3:7] = 1.0
    m[:, 2, 2:8] = 0.6
    out = pseudo_labels(m, class_index=2, threshold=0.8, band=0.5)
    assert set(np.unique(out)) == {0, 2, 255}
    assert np.all(out[m >= 0.8] == 2) and np.all(out[m == 0] == 0)
    assert np.all(out[:, 2, 2:3] == 255)
    with pytest.raises(WeaksegError, match="constant"):
        pseudo_labels(np.ones((2, 2, 2)))


def test_layers_of_the_default_network_are_its_unet_blocks():
    """The default segmentation network (MONAI UNet) lists its nested
    down blocks, deepest last, then its up blocks; maps come from them."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        network="resunet",
        num_classes=2,
        filters=[4, 8, 8],
        patch_size=[16, 16, 16],
    )
    model = build_network(cfg).eval()
    layers = list_layers(model)
    assert layers == [
        "model.0",
        "model.1.submodule.0",
        "model.1.submodule.1.submodule",
        "model.1.submodule.2",
        "model.2",
    ]
    assert default_layer(model) == "model.1.submodule.1.submodule"
    m = grad_cam(model, _x(), default_layer(model), 1)
    assert m.shape[-3:] == (16, 16, 16) and torch.isfinite(m).all()


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_a_map_leaves_no_hooked_copy_of_the_model_alive(method):
    import gc

    from monai.visualize.class_activation_maps import ModelWithHooks

    def alive():
        gc.collect()
        return sum(isinstance(o, ModelWithHooks) for o in gc.get_objects())

    # (MONAI's own CAM objects in the parity tests above do leak)
    before = alive()
    model, x = _model("classifier"), _x()
    for _ in range(3):
        grad_cam(model, x, "bottleneck", 1, method=method)
    assert alive() == before
