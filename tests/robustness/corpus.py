"""Crafted files that lie, are cut short or carry garbage, made in tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import SimpleITK as sitk

#: a 10 x 12 x 14 float32 volume, written by SimpleITK in each format
SHAPE = (10, 12, 14)


def good(folder: Path, ext: str, compress: bool = False) -> Path:
    a = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    p = folder / f"good.{ext}"
    sitk.WriteImage(sitk.GetImageFromArray(a), str(p), useCompression=compress)
    return p


def _mha_text(ndims: str, dims: str, etype: str = "MET_UCHAR") -> bytes:
    return (
        f"ObjectType = Image\nNDims = {ndims}\nDimSize = {dims}\n"
        f"ElementType = {etype}\nElementDataFile = LOCAL\n"
    ).encode()


def corpus(folder: Path) -> dict[str, Path]:
    """name -> crafted file; every one must be refused with one sentence."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        out[name] = folder / name
        out[name].write_bytes(data)

    nii = good(folder, "nii").read_bytes()
    niigz = good(folder, "nii.gz").read_bytes()
    mha = good(folder, "mha", compress=True).read_bytes()
    put("truncated_half.nii.gz", niigz[: len(niigz) // 2])
    put("200_bytes.nii.gz", niigz[:200])
    put("header_only.nii", nii[:352])
    put("truncated.nii", nii[: len(nii) // 2])
    lying = bytearray(nii)
    struct.pack_into("<h", lying, 42, 200)  # dim[1]: 14 -> 200
    put("lying_dims.nii", bytes(lying))
    zero = bytearray(nii)
    struct.pack_into("<f", zero, 80, 0.0)  # pixdim[1] = 0
    put("zero_spacing.nii", bytes(zero))
    nan = bytearray(nii)
    struct.pack_into("<f", nan, 84, float("nan"))  # pixdim[2] = NaN
    put("nan_spacing.nii.gz", gzip.compress(bytes(nan)))
    put("huge_ndims.mha", _mha_text("10000000000", "2 2 2") + bytes(8))
    put("huge_dimsize.mha", _mha_text("3", "100000 100000 100000"))
    at = mha.index(b"ElementDataFile = LOCAL\n") + 24
    rng = np.random.default_rng(0)
    put("compressed_garbage.mha", mha[:at] + rng.bytes(len(mha) - at))
    put("not_an_image.nii.gz", b"hello, I am not a volume\n")
    put(
        "huge_sizes.nrrd",
        b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 99999 99999 99999\n"
        b"encoding: raw\n\n" + bytes(16),
    )
    put(
        "truncated_raw.nrrd",
        b"NRRD0004\ntype: float\ndimension: 3\nsizes: 10 10 10\n"
        b"encoding: raw\n\n" + bytes(100),
    )
    return out


def nan_image(folder: Path) -> Path:
    """A readable volume holding one NaN voxel (the reader keeps it)."""
    a = np.ones(SHAPE, np.float32)
    a[3, 4, 5] = np.nan
    p = folder / "nan.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(a), str(p))
    return p


def run_main(argv, capsys):
    """``weakseg argv``: (exit status, stderr lines)."""
    from napari_weakseg.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    return code, err
