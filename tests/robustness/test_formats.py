"""Formats read with their own traps (issue #27, second round): DICOM
series with a lost slice, detached NRRD headers, data files outside the
header's folder, zarr stores that lack or damage chunks, and geometry,
colour or complex voxels that no volume can have."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.data.geometry import Geometry
from napari_weakseg.core.data.volumes import (
    Volume,
    companion_files,
    data_files,
    read_volume,
    write_volume,
)

# --- DICOM series ----------------------------------------------------------

SERIES = np.arange(15 * 8 * 9, dtype=np.int16).reshape(15, 8, 9)


def dicom_series(folder: Path, data: np.ndarray = SERIES) -> Path:
    """``data`` as one 2D DICOM file a slice (``slice000.dcm``...), 1 mm
    apart, 0.5 mm pixels, with the tags a scanner writes."""
    folder.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(data)
    img.SetSpacing((0.5, 0.5, 1.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.27"
    for k in range(img.GetDepth()):
        s = img[:, :, k]
        x, y, z = img.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "CT",
            "0008|0031": time.strftime("%H%M%S"),
            "0020|000d": uid + ".1",
            "0020|000e": uid + ".2",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0032": f"{x}\\{y}\\{z}",
            "0020|0013": str(k + 1),
            "0028|0030": "0.5\\0.5",
            "0018|0050": "1.0",
        }
        for key, value in tags.items():
            s.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(s)
    return folder


def test_an_intact_dicom_series_reads_with_its_spacing(tmp_path):
    vol = read_volume(dicom_series(tmp_path / "ct"))
    np.testing.assert_array_equal(vol.data, SERIES)
    assert vol.geometry.spacing == (1.0, 0.5, 0.5)


def test_a_dicom_series_missing_a_slice_is_refused(tmp_path):
    folder = dicom_series(tmp_path / "ct")
    (folder / "slice007.dcm").unlink()
    with pytest.raises(WeaksegError) as info:
        read_volume(folder)
    assert str(info.value) == (
        f"The DICOM series in {folder} has a gap or uneven slice spacing "
        "between slices 7 and 8 (slice006.dcm and slice008.dcm: 2 mm vs "
        "1 mm); a slice is missing or damaged (set WEAKSEG_DICOM_GAPS=allow "
        "to read it anyway)."
    )


@pytest.mark.parametrize("which", ["slice007.dcm", "slice014.dcm"])
@pytest.mark.parametrize("damage", ["truncated", "junk"])
def test_a_dicom_series_with_a_damaged_slice_is_refused(
    tmp_path, damage, which
):
    """GDCM leaves the damaged file out (a middle one: the series reads
    with a stretched spacing; the last one: one slice short)."""
    folder = dicom_series(tmp_path / "ct")
    f = folder / which
    raw = f.read_bytes()
    if damage == "truncated":
        f.write_bytes(raw[: len(raw) // 2])
    else:
        f.write_bytes(np.random.default_rng(0).bytes(len(raw)))
    with pytest.raises(WeaksegError, match="damaged") as info:
        read_volume(folder)
    assert f"leaves out {which}, which is damaged or not DICOM" in str(
        info.value
    )


def test_a_dicom_series_with_two_slices_at_one_place_is_refused(tmp_path):
    folder = dicom_series(tmp_path / "ct")
    s = sitk.ReadImage(str(folder / "slice005.dcm"))
    s.SetMetaData("0020|0032", "0\\0\\4")  # slice004's place
    s.SetMetaData("0008|0018", "1.2.826.0.1.3680043.2.1125.27.99")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(folder / "slice005.dcm"))
    writer.Execute(s)
    with pytest.raises(WeaksegError, match="at the same position"):
        read_volume(folder)


def test_other_series_and_notes_beside_a_series_are_no_damage(tmp_path):
    folder = dicom_series(tmp_path / "ct")
    other = dicom_series(tmp_path / "mr", SERIES[:5] + 1)
    for k, f in enumerate(sorted(other.iterdir())):  # a second series
        s = sitk.ReadImage(str(f))
        s.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.28.2")
        s.SetMetaData("0008|0018", f"1.2.826.0.1.3680043.2.1125.28.{k}")
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"mr_{f.name}"))
        writer.Execute(s)
    (folder / "notes.txt").write_text("scanned on Tuesday")
    (folder / ".DS_Store").write_bytes(b"junk")
    assert len(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))) == 2
    vol = read_volume(folder)
    assert vol.shape in (SERIES.shape, SERIES[:5].shape)


def test_a_dicom_series_with_a_gap_reads_when_allowed(tmp_path, monkeypatch):
    folder = dicom_series(tmp_path / "ct")
    (folder / "slice007.dcm").unlink()
    f = folder / "slice003.dcm"
    f.write_bytes(f.read_bytes()[:100])
    monkeypatch.setenv("WEAKSEG_DICOM_GAPS", "allow")
    vol = read_volume(folder)
    keep = [k for k in range(15) if k not in (3, 7)]
    np.testing.assert_array_equal(vol.data, SERIES[keep])
    assert vol.geometry.spacing == (1.0, 0.5, 0.5)  # the median step


# --- detached NRRD ---------------------------------------------------------


def test_a_nhdr_written_by_write_volume_reads_back(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    p = write_volume(
        tmp_path / "x.nhdr", Volume(data, Geometry(spacing=(2, 1, 1)))
    )
    back = read_volume(p)
    np.testing.assert_array_equal(back.data, data)
    assert back.geometry.spacing == (2.0, 1.0, 1.0)
    assert sorted(tmp_path.iterdir()) == sorted([p, *companion_files(p)])
    assert data_files(p) == [(tmp_path / "x.raw.gz").resolve()]


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_a_slicer_style_nhdr_reads(tmp_path, encoding):
    data = np.arange(3 * 4 * 5, dtype="<i2").reshape(3, 4, 5)
    raw = data.tobytes()
    name = "x.raw" if encoding == "raw" else "x.raw.gz"
    (tmp_path / name).write_bytes(
        raw if encoding == "raw" else gzip.compress(raw)
    )
    (tmp_path / "x.nhdr").write_text(
        "NRRD0004\n"
        "# Complete NRRD file format specification at:\n"
        "# http://teem.sourceforge.net/nrrd/format.html\n"
        "type: short\n"
        "dimension: 3\n"
        "space: left-posterior-superior\n"
        "sizes: 5 4 3\n"
        "space directions: (0.5,0,0) (0,0.5,0) (0,0,2.5)\n"
        "kinds: domain domain domain\n"
        f"encoding: {encoding}\n"
        "endian: little\n"
        "space origin: (-10,20,30)\n"
        f"data file: {name}\n"
    )
    vol = read_volume(tmp_path / "x.nhdr")
    np.testing.assert_array_equal(vol.data, data)
    assert vol.geometry.spacing == (2.5, 0.5, 0.5)
    assert vol.geometry.origin == (30.0, 20.0, -10.0)


# --- data files outside the header's folder --------------------------------

MHD = (
    "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\n"
    "ElementType = MET_UCHAR\nElementDataFile = {}\n"
)
NHDR = (
    "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 5 4 3\nencoding: raw\n"
    "data file: {}\n"
)
VOXELS = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)


@pytest.fixture
def outside(tmp_path) -> Path:
    """60 voxels in a folder beside the one holding the headers."""
    (tmp_path / "other").mkdir()
    (tmp_path / "head").mkdir()
    f = tmp_path / "other" / "secret.raw"
    f.write_bytes(VOXELS.tobytes())
    return f


def _refusal(header: Path, shown: str) -> str:
    return (
        f"Could not read {header.name}: its data file {shown} lies outside "
        "its folder (set WEAKSEG_ALLOW_EXTERNAL_DATA=1 to allow it)."
    )


@pytest.mark.parametrize("kind", ["mhd", "nhdr", "mha", "nrrd"])
@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_a_data_file_outside_the_header_folder_is_refused(
    outside, kind, how, monkeypatch
):
    shown = "../other/secret.raw" if how == "relative" else str(outside)
    text = (MHD if kind in ("mhd", "mha") else NHDR).format(shown)
    header = outside.parent.parent / "head" / f"x.{kind}"
    header.write_text(text)
    with pytest.raises(WeaksegError) as info:
        read_volume(header)
    assert str(info.value) == _refusal(header, shown)
    assert data_files(header) == [outside.resolve()]
    monkeypatch.setenv("WEAKSEG_ALLOW_EXTERNAL_DATA", "1")
    np.testing.assert_array_equal(read_volume(header).data, VOXELS)


def test_a_symlinked_data_file_pointing_outside_is_refused(outside):
    head = outside.parent.parent / "head"
    (head / "x.raw").symlink_to(outside)
    (head / "x.mhd").write_text(MHD.format("x.raw"))
    with pytest.raises(WeaksegError) as info:
        read_volume(head / "x.mhd")
    assert str(info.value) == _refusal(head / "x.mhd", "x.raw")
    assert data_files(head / "x.mhd") == [outside.resolve()]


@pytest.mark.parametrize(
    ("template", "spec", "shown"),
    [
        (MHD, "LIST 2D\na.raw\n../other/secret.raw\nb.raw", "../other/"),
        (MHD, "../other/s%d.raw 1 3 1", "../other/s1.raw"),
        (NHDR, "LIST\na.raw\n../other/secret.raw\nb.raw", "../other/"),
        (NHDR, "../other/s%d.raw 1 3 1", "../other/s1.raw"),
    ],
)
def test_file_lists_and_patterns_stay_in_the_header_folder(
    outside, template, spec, shown
):
    header = outside.parent.parent / "head" / "x.txt"
    header = header.with_suffix(".mhd" if template is MHD else ".nhdr")
    header.write_text(template.format(spec))
    with pytest.raises(WeaksegError, match="lies outside its folder") as e:
        read_volume(header)
    assert shown in str(e.value)


def test_file_lists_and_patterns_inside_read(tmp_path):
    (tmp_path / "sub").mkdir()
    for k in range(3):
        VOXELS[k].tofile(tmp_path / "sub" / f"s{k + 1}.raw")
    names = "\n".join(f"sub/s{k + 1}.raw" for k in range(3))
    for name, text in {
        "list.mhd": MHD.format("LIST 2D\n" + names),
        "pattern.mhd": MHD.format("sub/s%d.raw 1 3 1"),
        "list.nhdr": NHDR.format("LIST\n" + names),
        "pattern.nhdr": NHDR.format("sub/s%d.raw 1 3 1"),
    }.items():
        (tmp_path / name).write_text(text)
        np.testing.assert_array_equal(
            read_volume(tmp_path / name).data, VOXELS, err_msg=name
        )
        assert data_files(tmp_path / name) == [
            (tmp_path / "sub" / f"s{k + 1}.raw").resolve() for k in range(3)
        ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        # MetaIO divides by zero (the process dies) on these two
        ("sub/s%d.raw 1 3", "needs a first, last and step number"),
        ("sub/s%d.raw 1 3 0", "do not count up or down"),
        # ... and crashes on a %s field
        ("sub/s%s.raw 1 3 1", "is not a file name with one %d field"),
        # ... and reads what memory held for a missing or empty slice
        ("sub/s%d.raw 1 2 1", "its 2 data files hold 40 of the 60 bytes"),
        ("LIST 2D\nsub/s1.raw\nsub/s2.raw", "2 data files hold 40 of"),
        ("LIST 2D\nsub/s1.raw\nsub/s2.raw\nsub/s3.raw", "hold 40 of"),
        ("LIST 2D\nsub/big.raw\nsub/s2.raw\nsub/s3.raw", "s3.raw is trun"),
    ],
)
def test_metaimage_file_patterns_that_crash_itk_are_refused(
    tmp_path, spec, message
):
    (tmp_path / "sub").mkdir()
    for k in range(3):
        VOXELS[k].tofile(tmp_path / "sub" / f"s{k + 1}.raw")
    (tmp_path / "sub" / "s3.raw").write_bytes(b"")
    (tmp_path / "sub" / "big.raw").write_bytes(bytes(40))
    (tmp_path / "x.mhd").write_text(MHD.format(spec))
    with pytest.raises(WeaksegError, match=message):
        read_volume(tmp_path / "x.mhd")


def test_data_files_and_companion_files(tmp_path):
    data = np.zeros((2, 3, 4), np.uint8)
    for name in ("a.mhd", "b.nhdr", "c.mha", "d.nrrd", "e.nii.gz"):
        write_volume(tmp_path / name, Volume(data))
    assert data_files(tmp_path / "a.mhd") == [(tmp_path / "a.zraw").resolve()]
    assert data_files(tmp_path / "b.nhdr") == [
        (tmp_path / "b.raw.gz").resolve()
    ]
    for name in ("c.mha", "d.nrrd", "e.nii.gz", "missing.mhd", "f.zarr"):
        assert data_files(tmp_path / name) == [], name
    assert companion_files(tmp_path / "a.mhd") == [tmp_path / "a.zraw"]
    assert companion_files(tmp_path / "y.b.nhdr") == [tmp_path / "y.b.raw.gz"]
    for name in ("c.mha", "d.nrrd", "e.nii.gz", "f.zarr", "g.tif"):
        assert companion_files(tmp_path / name) == [], name
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.mhd", "a.zraw", "b.nhdr", "b.raw.gz", "c.mha", "d.nrrd",
        "e.nii.gz",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["UP.MHD", "UP.NHDR"])
def test_upper_case_header_pairs_are_written_under_their_name(tmp_path, name):
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = write_volume(tmp_path / name, Volume(data))
    assert sorted(tmp_path.iterdir()) == sorted([p, *companion_files(p)])
    np.testing.assert_array_equal(read_volume(p).data, data)


# --- zarr chunks ------------------------------------------------------------

IMAGE = np.arange(70**3, dtype=np.int16).reshape(70, 70, 70)


def _chunk_files(store: Path) -> list[Path]:
    meta = {".zarray", ".zattrs", ".zgroup", "zarr.json"}
    return sorted(
        f for f in store.rglob("*") if f.is_file() and f.name not in meta
    )


@pytest.mark.parametrize("suffix", [".zarr", ".ome.zarr"])
def test_a_store_lacking_a_chunk_is_refused(tmp_path, suffix):
    p = write_volume(tmp_path / f"x{suffix}", Volume(IMAGE))
    level0 = p / "0" if suffix == ".ome.zarr" else p
    chunks = _chunk_files(level0)
    assert len(chunks) == 8
    chunks[-1].unlink()
    with pytest.raises(WeaksegError) as info:
        read_volume(p)
    assert str(info.value).startswith(
        f"x{suffix} lacks 1 of 8 chunks (they would read as 0); "
    )
    back = read_volume(p, allow_missing_chunks=True).data
    assert not back[64:, 64:, 64:].any()
    np.testing.assert_array_equal(back[:64], IMAGE[:64])


@pytest.mark.parametrize("suffix", [".zarr", ".ome.zarr"])
def test_the_product_writes_every_chunk_even_empty_ones(tmp_path, suffix):
    p = write_volume(
        tmp_path / f"zeros{suffix}", Volume(np.zeros((70, 70, 70), np.uint8))
    )
    level0 = p / "0" if suffix == ".ome.zarr" else p
    assert len(_chunk_files(level0)) == 8
    assert not read_volume(p).data.any()


@pytest.mark.parametrize("suffix", [".zarr", ".ome.zarr"])
def test_a_damaged_chunk_is_one_sentence_eager_and_lazy(tmp_path, suffix):
    import dask.array as da

    p = write_volume(tmp_path / f"x{suffix}", Volume(IMAGE))
    level0 = p / "0" if suffix == ".ome.zarr" else p
    bad = _chunk_files(level0)[0]  # the chunk at (0, 0, 0)
    bad.write_bytes(np.random.default_rng(0).bytes(bad.stat().st_size))
    expected = f"x{suffix} has a damaged chunk ("
    with pytest.raises(WeaksegError, match="restore the store") as info:
        read_volume(p)
    assert str(info.value).startswith(expected)
    lazy = read_volume(p, lazy=True).data
    np.testing.assert_array_equal(lazy[64:, 64:, 64:], IMAGE[64:, 64:, 64:])
    with pytest.raises(WeaksegError) as info:
        lazy[:10, :10, :10]
    assert str(info.value).startswith(expected)
    with pytest.raises(WeaksegError):
        np.asarray(lazy)
    with pytest.raises(WeaksegError):  # as the block-wise code reads it
        da.from_array(lazy, chunks=32, asarray=False).sum().compute()
    with pytest.raises(WeaksegError):
        da.from_zarr(lazy).sum().compute()  # as the docks read outputs
    again = pickle.loads(pickle.dumps(lazy))  # as dask workers get it
    with pytest.raises(WeaksegError):
        again[:10, :10, :10]


# --- geometry, colour and complex voxels -------------------------------------


def test_a_geometry_with_no_place_is_refused():
    with pytest.raises(WeaksegError, match="The origin must be finite"):
        Geometry(origin=(float("nan"), 0, 0))
    with pytest.raises(WeaksegError, match="finite and invertible"):
        Geometry(direction=(0,) * 9)
    with pytest.raises(WeaksegError, match="finite and invertible"):
        Geometry(direction=(1, 0, 0, 0, 1, 0, 0, 0, float("inf")))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("direction", [0.0] * 9, "the direction matrix must be finite and"),
        ("origin", [float("nan"), 0.0, 0.0], "the origin must be finite"),
    ],
)
def test_a_zarr_store_with_an_impossible_geometry_is_refused(
    tmp_path, field, value, message
):
    import zarr

    p = write_volume(tmp_path / "g.zarr", Volume(np.zeros((4, 4, 4))))
    arr = zarr.open(str(p), mode="r+")
    geometry = dict(arr.attrs["weakseg_geometry"])
    geometry[field] = value
    arr.attrs["weakseg_geometry"] = geometry
    with pytest.raises(WeaksegError) as info:
        read_volume(p)
    assert str(info.value).startswith(f"Could not read g.zarr: {message}")


def test_an_ome_zarr_with_a_nan_translation_is_refused(tmp_path):
    p = write_volume(tmp_path / "t.ome.zarr", Volume(np.zeros((4, 4, 4))))
    attrs = json.loads((p / ".zattrs").read_text())
    shift = attrs["multiscales"][0]["datasets"][0]
    shift["coordinateTransformations"][1]["translation"][0] = float("nan")
    (p / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(WeaksegError) as info:
        read_volume(p)
    assert str(info.value).startswith(
        "Could not read t.ome.zarr: the origin must be finite"
    )


def test_a_tiff_with_a_nan_origin_is_refused(tmp_path):
    import tifffile

    p = tmp_path / "nan.tif"
    tifffile.imwrite(
        p,
        np.zeros((4, 5, 6), np.uint8),
        metadata={"axes": "ZYX", **Geometry().to_dict(), "origin": [
            float("nan"), 0, 0
        ]},
    )  # fmt: skip
    with pytest.raises(WeaksegError) as info:
        read_volume(p)
    assert str(info.value) == (
        "Could not read nan.tif: the origin must be finite, got (nan, 0.0, "
        "0.0)."
    )


@pytest.mark.parametrize("lazy", [False, True])
def test_a_colour_tiff_is_refused(tmp_path, lazy):
    import tifffile

    p = tmp_path / "rgb.tif"
    tifffile.imwrite(p, np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    with pytest.raises(WeaksegError) as info:
        read_volume(p, lazy=lazy)
    assert str(info.value) == (
        "rgb.tif is a colour (RGB) image with 3 samples per pixel (axes "
        "YXS); napari-weakseg reads single-channel volumes (convert it to "
        "greyscale or split the channels first)."
    )


@pytest.mark.parametrize("suffix", [".nii", ".nrrd", ".tif", ".zarr"])
def test_complex_voxels_are_refused(tmp_path, suffix):
    import tifffile
    import zarr

    data = (np.ones((4, 5, 6)) * (1 + 2j)).astype(np.complex64)
    p = tmp_path / f"c{suffix}"
    if suffix == ".zarr":
        zarr.open(str(p), mode="w", shape=data.shape, dtype=data.dtype)[
            ...
        ] = data
    elif suffix == ".tif":
        tifffile.imwrite(p, data, photometric="minisblack")
    else:
        sitk.WriteImage(sitk.GetImageFromArray(data), str(p))
    with pytest.raises(WeaksegError) as info:
        read_volume(p)
    assert str(info.value) == (
        f"Could not read c{suffix}: its voxels are complex numbers "
        "(complex64); napari-weakseg reads real-valued images (save the "
        "magnitude instead)."
    )


def test_a_nifti_with_a_negative_pixdim_reads_with_its_absolute_spacing(
    tmp_path,
):
    img = sitk.GetImageFromArray(np.zeros((4, 5, 6), np.float32))
    img.SetSpacing((1.5, 1.0, 2.0))
    p = tmp_path / "neg.nii"
    sitk.WriteImage(img, str(p))
    raw = bytearray(p.read_bytes())
    struct.pack_into("<f", raw, 80, -1.5)  # pixdim[1]
    struct.pack_into("<h", raw, 254, 0)  # sform_code: the qform rules
    p.write_bytes(bytes(raw))
    assert read_volume(p).geometry.spacing == (2.0, 1.0, 1.5)


def test_a_three_slice_volume_is_written_as_grey_not_rgb(tmp_path):
    """tifffile takes 3 or 4 planes for colour unless told otherwise."""
    import tifffile

    data = np.arange(3 * 5 * 6, dtype=np.uint8).reshape(3, 5, 6)
    p = write_volume(tmp_path / "three.tif", Volume(data))
    with tifffile.TiffFile(p) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
    np.testing.assert_array_equal(read_volume(p).data, data)
