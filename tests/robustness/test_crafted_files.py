"""Crafted and damaged files: one sentence and exit 2, never a crash.

Each file goes through ``read_volume`` in this process and through the
``weakseg`` CLI in a subprocess with a memory ceiling and a timeout, so a
segfault, a runaway allocation or a spin shows as a failure, not a hang.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import numpy as np
import pytest
from corpus import corpus, good, nan_image

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.data.volumes import read_volume

MEMORY = 3 * 1024**3


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def weakseg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_weakseg.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit,
    )


def one_sentence(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("weakseg: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return corpus(tmp_path_factory.mktemp("corpus"))


def test_good_files_still_read(tmp_path):
    for ext, packed in (
        ("nii", 0),
        ("nii.gz", 0),
        ("mha", 1),
        ("mhd", 0),
        ("nrrd", 1),
        ("nrrd", 0),
    ):
        folder = tmp_path / f"{ext}{packed}"
        folder.mkdir()
        vol = read_volume(good(folder, ext, bool(packed)))
        assert vol.shape == (10, 12, 14)
        assert float(vol.data[9, 11, 13]) == 10 * 12 * 14 - 1


WHY = {
    "truncated_half.nii.gz": "damaged",
    "200_bytes.nii.gz": "damaged",
    "header_only.nii": "truncated",
    "truncated.nii": "truncated",
    "lying_dims.nii": "truncated",
    "zero_spacing.nii": "spacing",
    "nan_spacing.nii.gz": "spacing",
    "huge_ndims.mha": "NDims",
    "huge_dimsize.mha": "voxels",
    "compressed_garbage.mha": "damaged",
    "not_an_image.nii.gz": "damaged",
    "huge_sizes.nrrd": "voxels",
    "truncated_raw.nrrd": "truncated",
}


@pytest.mark.parametrize("name", sorted(WHY))
def test_reader_refuses_with_a_reason(files, name):
    with pytest.raises(WeaksegError) as err:
        read_volume(files[name])
    msg = str(err.value)
    assert "\n" not in msg and name in msg and WHY[name] in msg, msg


def test_corpus_is_covered(files):
    assert set(files) == set(WHY)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WHY))
def test_cli_refuses_before_training(files, name, tmp_path):
    out = tmp_path / "m.safetensors"
    line = one_sentence(
        weakseg(
            "train",
            "--image",
            files[name],
            "--labels",
            files[name],
            "--out",
            out,
        )
    )
    assert name in line
    assert list(tmp_path.iterdir()) == []


def test_nan_is_kept_by_the_reader_and_refused_by_use(tmp_path):
    path = nan_image(tmp_path)
    assert np.isnan(read_volume(path).data).sum() == 1
    from napari_weakseg.core.data.normalise import apply_normalisation

    with pytest.raises(WeaksegError, match="NaN or infinite"):
        apply_normalisation(
            read_volume(path).data,
            {"lo": 0.0, "hi": 1.0, "mean": 0.0, "std": 1.0},
        )


@pytest.mark.slow
def test_cli_train_refuses_nan_image(tmp_path):
    path = nan_image(tmp_path)
    labels = tmp_path / "l.nii.gz"
    from napari_weakseg.core.data.volumes import Volume, write_volume

    lab = np.full((10, 12, 14), 255, np.uint8)
    lab[5] = 0
    lab[5, 3:6, 3:6] = 1
    write_volume(labels, Volume(lab))
    line = one_sentence(
        weakseg(
            "train",
            "--image",
            path,
            "--labels",
            labels,
            "--out",
            tmp_path / "m.safetensors",
        )
    )
    assert "NaN" in line
    assert not (tmp_path / "m.safetensors").exists()


def test_crf_refuses_nan_probabilities(tmp_path):
    from napari_weakseg import api

    image = np.ones((10, 12, 14), np.float32)
    prob = np.full((2, 10, 12, 14), 0.5, np.float32)
    prob[1, 2, 3, 4] = np.inf
    with pytest.raises(WeaksegError, match="'probabilities' has 1 NaN"):
        api.crf(image, prob, device="cpu")


@pytest.mark.parametrize("shape", [(100000,) * 3, (4096,) * 3])
def test_huge_zarr_arrays_are_refused_before_loading(tmp_path, shape):
    import zarr

    path = tmp_path / "huge.zarr"
    zarr.open(
        str(path), mode="w", shape=shape, dtype="uint8", chunks=(64, 64, 64)
    )  # metadata only: nothing is written
    with pytest.raises(WeaksegError, match="huge.zarr holds .* voxels"):
        read_volume(path)
    with pytest.raises(WeaksegError, match="limit"):
        read_volume(path, lazy=True)
