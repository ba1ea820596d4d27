"""OME-Zarr (NGFF) volumes: multiscale write, read, geometry, bad stores."""

import json

import numpy as np
import pytest

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.data import ngff
from napari_weakseg.core.data.geometry import Geometry
from napari_weakseg.core.data.volumes import Volume, read_volume, write_volume

GEO = Geometry((2.0, 0.5, 0.5), (-10.0, 4.0, 7.5))


def test_round_trip_keeps_data_scales_and_translations(tmp_path):
    image = np.random.default_rng(0).random((16, 20, 24)).astype(np.float32)
    path = write_volume(tmp_path / "img.ome.zarr", Volume(image, GEO))
    back = read_volume(path)
    np.testing.assert_array_equal(back.data, image)
    assert back.geometry.allclose(GEO)
    levels, geoms = ngff.read_levels(path)
    assert [lv.shape for lv in levels] == [
        (16, 20, 24),
        (8, 10, 12),
        (4, 5, 6),
    ]
    assert [g.spacing for g in geoms] == [
        (2.0, 0.5, 0.5),
        (4.0, 1.0, 1.0),
        (8.0, 2.0, 2.0),
    ]
    # a level-1 voxel is the mean of 2x2x2 and sits at their centre
    np.testing.assert_allclose(
        levels[1][0, 0, 0], image[:2, :2, :2].mean(), rtol=1e-6
    )
    np.testing.assert_allclose(geoms[1].origin, (-9.0, 4.25, 7.75))
    meta = ngff.multiscales(path)
    assert meta["version"] == "0.4"
    assert [a["name"] for a in meta["axes"]] == ["z", "y", "x"]


def test_labels_are_subsampled_so_classes_stay_classes(tmp_path):
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[1::2] = 2
    labels[::2] = 1
    path = write_volume(tmp_path / "seg.ome.zarr", Volume(labels, GEO))
    levels, geoms = ngff.read_levels(path)
    assert set(np.unique(levels[1][...])) == {1}  # never a mean like 1.5
    np.testing.assert_allclose(geoms[1].origin, GEO.origin)


def test_probabilities_keep_a_channel_axis(tmp_path):
    probs = np.random.default_rng(1).random((3, 8, 8, 8)).astype(np.float32)
    path = write_volume(tmp_path / "p.ome.zarr", Volume(probs, GEO))
    meta = ngff.multiscales(path)
    assert [a["name"] for a in meta["axes"]] == ["c", "z", "y", "x"]
    group_level = __import__("zarr").open(str(path / "1"), mode="r")
    assert group_level.shape == (3, 4, 4, 4)


def test_an_oblique_volume_is_refused(tmp_path, oblique):
    with pytest.raises(WeaksegError, match="OME-Zarr has no rotation"):
        write_volume(
            tmp_path / "o.ome.zarr", Volume(np.zeros((4, 4, 4)), oblique)
        )
    assert not (tmp_path / "o.ome.zarr").exists()


def _group(tmp_path, attrs, arrays=("0",)):
    import zarr

    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=2)
    for name in arrays:
        g.create_array(name, shape=(4, 4, 4), dtype="uint8")
    g.attrs.update(attrs)
    return tmp_path / "g.zarr"


def _ms(datasets, axes=("z", "y", "x")):
    return {
        "multiscales": [
            {
                "version": "0.4",
                "axes": [{"name": a} for a in axes],
                "datasets": datasets,
            }
        ]
    }


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({}, "without OME-Zarr \\(NGFF\\) multiscales metadata"),
        (_ms([{"path": "1"}]), "lists the level '1' but holds no such"),
        (_ms([]), "lists no resolution level"),
        (_ms([{"path": "0"}], ("t", "c", "x")), "last three axes are z, y, x"),
    ],
)
def test_bad_stores_are_one_sentence(tmp_path, attrs, message):
    path = _group(tmp_path, attrs)
    with pytest.raises(WeaksegError, match=message):
        read_volume(path)


def test_ngff_0_5_metadata_under_ome_is_read(tmp_path):
    import zarr

    path = tmp_path / "v05.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("s0", shape=(4, 6, 8), dtype="float32")[...] = 1.5
    g.attrs["ome"] = {
        "version": "0.5",
        **_ms(
            [
                {
                    "path": "s0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [3.0, 2.0, 1.0]}
                    ],
                }
            ]
        ),
    }
    vol = read_volume(path)
    assert vol.shape == (4, 6, 8) and float(vol.data[0, 0, 0]) == 1.5
    assert vol.geometry.spacing == (3.0, 2.0, 1.0)
    assert json.loads(vol.metadata["zarr_attrs"]) is not None


def test_the_napari_reader_opens_a_pyramid_as_a_multiscale_layer(tmp_path):
    from napari_weakseg._reader import napari_get_reader

    image = np.ones((16, 16, 16), np.float32)
    path = write_volume(tmp_path / "img.ome.zarr", Volume(image, GEO))
    reader = napari_get_reader(str(path))
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "image" and kwargs["multiscale"] is True
    assert kwargs["name"] == "img"
    assert [d.shape for d in data] == [(16, 16, 16), (8, 8, 8), (4, 4, 4)]
    np.testing.assert_allclose(kwargs["scale"], GEO.spacing)
