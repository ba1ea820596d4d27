import numpy as np
import pytest

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.data.volumes import Volume, read_volume, write_volume

FORMATS = [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".tif", ".zarr"]


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16])
def test_round_trip_keeps_array_and_geometry(tmp_path, oblique, suffix, dtype):
    rng = np.random.default_rng(0)
    data = (rng.random((5, 6, 7)) * 100).astype(dtype)
    path = write_volume(tmp_path / f"v{suffix}", Volume(data, oblique))
    back = read_volume(path)
    np.testing.assert_array_equal(np.asarray(back.data), data)
    assert np.asarray(back.data).dtype == dtype
    np.testing.assert_allclose(
        back.geometry.spacing, oblique.spacing, rtol=1e-6
    )
    np.testing.assert_allclose(back.geometry.origin, oblique.origin, atol=1e-5)
    np.testing.assert_allclose(
        back.geometry.direction, oblique.direction, atol=1e-6
    )


def test_channel_first_stack_round_trips(tmp_path, oblique):
    probs = np.random.default_rng(1).random((3, 4, 5, 6)).astype(np.float32)
    back = read_volume(
        write_volume(tmp_path / "p.nii.gz", Volume(probs, oblique))
    )
    np.testing.assert_array_equal(back.data, probs)
    assert back.geometry.allclose(oblique)


def test_dicom_series_folder(tmp_path):
    import SimpleITK as sitk

    data = np.arange(4 * 8 * 9, dtype=np.int16).reshape(4, 8, 9)
    img = sitk.GetImageFromArray(data)
    img.SetSpacing((0.7, 0.8, 3.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(data.shape[0]):
        sl = img[:, :, z]
        for tag, value in [
            ("0020|000e", "1.2.826.0.1.3680043.2.1125.1"),
            (
                "0020|0032",
                "\\".join(
                    map(str, img.TransformIndexToPhysicalPoint((0, 0, z)))
                ),
            ),
            ("0020|0013", str(z)),
            ("0008|0060", "MR"),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
        ]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(tmp_path / f"s{z:03d}.dcm"))
        writer.Execute(sl)
    vol = read_volume(tmp_path)
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(
        vol.geometry.spacing, (3.0, 0.8, 0.7), rtol=1e-5
    )
    np.testing.assert_allclose(vol.geometry.origin, (3.0, 2.0, 1.0), atol=1e-5)


def test_tiff_imagej_spacing(tmp_path):
    import tifffile

    data = np.zeros((3, 4, 5), np.uint16)
    tifffile.imwrite(
        tmp_path / "ij.tif",
        data,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.5),
        metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"},
    )
    vol = read_volume(tmp_path / "ij.tif")
    np.testing.assert_allclose(vol.geometry.spacing, (2.0, 0.5, 0.5))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.nii.gz", None, "No file or folder"),
        ("notes.txt", b"hello", "Unsupported file type"),
        ("broken.nii.gz", b"\x1f\x8b\x08\x00garbage", "Could not read"),
        (
            "truncated.nrrd",
            b"NRRD0004\ntype: float\ndimension: 3\n",
            "Could not read",
        ),
    ],
)
def test_bad_files_give_one_sentence(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeaksegError, match=message) as info:
        read_volume(path)
    assert "\n" not in str(info.value)


def test_write_refuses_2d_and_leaves_nothing(tmp_path):
    with pytest.raises(WeaksegError, match="Only 3D volumes"):
        write_volume(tmp_path / "x.nii.gz", Volume(np.zeros((4, 4))))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file(tmp_path, oblique):
    path = write_volume(
        tmp_path / "v.nii.gz", Volume(np.ones((2, 3, 4), np.uint8), oblique)
    )
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_volume(path, Volume(np.zeros((2, 3, 4), dtype=object), oblique))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.nii.gz"]
