"""The plugin in a real viewer: sample data, docks, a real screenshot."""

import numpy as np
import pytest


def declared_docks():
    """Display names of every widget the installed manifest declares."""
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest("napari-weakseg")
    return [w.display_name for w in manifest.contributions.widgets]


def test_sample_data_docks_and_screenshot(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-weakseg", "mni152")
    names = [layer.name for layer in viewer.layers]
    assert names == ["MNI152 T1", "tissue (reference)", "annotations"]
    t1 = viewer.layers["MNI152 T1"]
    np.testing.assert_allclose(t1.scale, (2.0, 2.0, 2.0))
    assert viewer.layers["annotations"].metadata["weakseg_done"][0]
    widgets = []
    for name in declared_docks():
        dock, widget = viewer.window.add_plugin_dock_widget(
            "napari-weakseg", name
        )
        assert dock.widget() is not None
        widgets.append(type(widget).__name__)
    assert widgets == [
        "WeakSegWidget",
        "AnnotationWidget",
        "TrainWidget",
        "ApplyWidget",
        "BoxesWidget",
        "CamWidget",
        "PretrainWidget",
    ]
    shot = viewer.screenshot(canvas_only=True)
    assert shot.ndim == 3 and shot.shape[2] == 4
    rgb = shot[..., :3].astype(int)
    assert rgb.std() > 10, "the canvas rendered blank"


def test_reader_opens_volume_with_geometry(
    make_napari_viewer, tmp_path, oblique
):
    from napari_weakseg.core.data.volumes import Volume, write_volume

    write_volume(
        tmp_path / "ct.nii.gz", Volume(np.ones((4, 5, 6), np.float32), oblique)
    )
    write_volume(
        tmp_path / "ct_labels.nii.gz",
        Volume(np.ones((4, 5, 6), np.uint8), oblique),
    )
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "ct.nii.gz"), plugin="napari-weakseg")
    layers += viewer.open(
        str(tmp_path / "ct_labels.nii.gz"), plugin="napari-weakseg"
    )
    assert [type(x).__name__ for x in layers] == ["Image", "Labels"]
    np.testing.assert_allclose(layers[0].scale, oblique.spacing)
    np.testing.assert_allclose(layers[0].translate, oblique.origin)


def test_writer_round_trips_geometry(make_napari_viewer, tmp_path, oblique):
    from napari_weakseg.core.data.volumes import (
        Volume,
        read_volume,
        write_volume,
    )

    write_volume(
        tmp_path / "a.nrrd",
        Volume(np.arange(120, dtype=np.uint8).reshape(4, 5, 6), oblique),
    )
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "a.nrrd"), plugin="napari-weakseg")
    out = tmp_path / "b.nii.gz"
    layer.save(str(out), plugin="napari-weakseg")
    back = read_volume(out)
    np.testing.assert_array_equal(back.data, layer.data)
    assert back.geometry.allclose(oblique)


def test_unreadable_file_is_refused_with_one_sentence(
    make_napari_viewer, tmp_path
):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not an image")
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="Could not read broken.nii.gz"):
        viewer.open(str(bad), plugin="napari-weakseg")
    assert len(viewer.layers) == 0


def test_direction_flipped_copy_overlays_the_original(
    make_napari_viewer, tmp_path
):
    """Same voxels stored with another direction land on the same world
    coordinates (the reader carries the direction as napari's affine)."""
    from napari_weakseg.core.data.geometry import Geometry
    from napari_weakseg.core.data.volumes import Volume, write_volume

    rng = np.random.default_rng(0)
    data = rng.integers(0, 200, (6, 7, 8)).astype(np.uint8)
    spacing, origin = (2.0, 0.8, 0.5), (-10.0, 5.0, 3.0)
    c, s = np.cos(0.4), np.sin(0.4)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    flip = np.diag([-1.0, 1.0, 1.0])
    d2 = rot @ flip  # z runs the other way in the copy
    end = np.asarray(origin) + rot @ (np.array([5, 0, 0]) * spacing)
    write_volume(
        tmp_path / "a.nrrd",
        Volume(data, Geometry(spacing, origin, tuple(rot.ravel()))),
    )
    write_volume(
        tmp_path / "b.nii.gz",
        Volume(
            data[::-1].copy(), Geometry(spacing, tuple(end), tuple(d2.ravel()))
        ),
    )
    viewer = make_napari_viewer()
    (a,) = viewer.open(str(tmp_path / "a.nrrd"), plugin="napari-weakseg")
    (b,) = viewer.open(str(tmp_path / "b.nii.gz"), plugin="napari-weakseg")
    for idx in [(0, 0, 0), (5, 6, 7), (2, 3, 4)]:
        flipped = (5 - idx[0], idx[1], idx[2])
        assert data[idx] == b.data[flipped]
        np.testing.assert_allclose(
            a.data_to_world(idx), b.data_to_world(flipped), atol=1e-4
        )
        physical = np.asarray(origin) + rot @ (np.asarray(idx) * spacing)
        np.testing.assert_allclose(a.data_to_world(idx), physical, atol=1e-4)
    from napari_weakseg._qt.layers import upsert_layer

    out = upsert_layer(
        viewer, "a prediction", np.zeros(data.shape, np.uint8), a, "prediction"
    )
    np.testing.assert_allclose(
        out.data_to_world((2, 3, 4)), a.data_to_world((2, 3, 4)), atol=1e-6
    )
    assert out.metadata["weakseg_geometry"] == a.metadata["weakseg_geometry"]


def test_an_ome_zarr_pyramid_opens_lazily_in_the_viewer(
    make_napari_viewer, tmp_path
):
    from napari_weakseg.core.data.geometry import Geometry
    from napari_weakseg.core.data.volumes import Volume, write_volume

    image = np.random.default_rng(0).random((16, 32, 32)).astype(np.float32)
    geo = Geometry((2.0, 1.0, 1.0), (5.0, -3.0, 0.0))
    path = write_volume(tmp_path / "big.ome.zarr", Volume(image, geo))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-weakseg")
    assert layer.multiscale and len(layer.data) == 3
    np.testing.assert_allclose(layer.scale, (2.0, 1.0, 1.0))
    np.testing.assert_allclose(layer.translate, (5.0, -3.0, 0.0))
