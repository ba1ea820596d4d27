"""Bad CSV/JSON inputs, tiny images and wrong model kinds through the CLI:
one sentence and exit 2 each, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
from test_crafted_files import one_sentence, weakseg

from napari_weakseg.core.data.volumes import Volume, write_volume
from napari_weakseg.core.nn.models import save_model
from napari_weakseg.core.nn.networks import ModelConfig, build_network


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    write_volume(
        d / "img.nii.gz", Volume(rng.random((16, 24, 24)).astype(np.float32))
    )
    write_volume(d / "tiny.nii.gz", Volume(np.ones((2, 2, 2), np.float32)))
    cfg = ModelConfig(
        kind="classifier",
        num_classes=2,
        filters=[4, 8, 16],
        patch_size=[16, 16, 16],
    )
    save_model(d / "clf.safetensors", build_network(cfg), cfg)
    head = "image,z0,y0,x0,z1,y1,x1,class\n"
    files = {
        "inf.csv": "z0,y0,x0,z1,y1,x1,class\n0,0,0,inf,5,5,1\n",
        "five.json": "5",
        "strings.json": '["a", "b"]',
        "neg.csv": head + "img.nii.gz,0,0,0,8,8,8,-1\n"
        "img.nii.gz,8,8,8,16,16,16,1\n",
        "short.csv": head + "img.nii.gz,0,0,0\n",
        "onevox.csv": head + "img.nii.gz,0,0,0,1,1,1,0\n"
        "img.nii.gz,5,5,5,6,6,6,1\n",
    }
    for name, text in files.items():
        (d / name).write_text(text)
    (d / "bin.csv").write_bytes(b"z0,y0,x0,z1,y1,x1,class\n\xff\xfe,1\n")
    return d


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, why",
    [
        (["box2mask", "--boxes", "inf.csv"], "not a finite number"),
        (["box2mask", "--boxes", "bin.csv"], "not UTF-8"),
        (["box2mask", "--boxes", "five.json"], "must hold a list"),
        (["box2mask", "--boxes", "strings.json"], "must hold a list"),
        (["train-classifier", "--crops", "neg.csv"], "class -1"),
        (["train-classifier", "--crops", "short.csv"], "is short"),
    ],
)
def test_bad_box_and_crop_files(folder, args, why, tmp_path):
    verb, flag, name = args
    extra = (
        ["--image", folder / "img.nii.gz", "--out", tmp_path / "o.nii.gz"]
        if verb == "box2mask"
        else ["--out", tmp_path / "c.safetensors"]
    )
    line = one_sentence(
        weakseg(
            verb,
            flag,
            folder / name,
            *extra,
            "--steps" if verb != "box2mask" else "--rounds",
            "1",
        )
    )
    assert why in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cam_on_an_image_smaller_than_the_patch(folder, tmp_path):
    done = weakseg(
        "cam",
        "--model",
        folder / "clf.safetensors",
        "--image",
        folder / "tiny.nii.gz",
        "--out",
        tmp_path / "m.nii.gz",
    )
    assert done.returncode == 0, done.stderr
    from napari_weakseg.core.data.volumes import read_volume

    assert read_volume(tmp_path / "m.nii.gz").shape == (2, 2, 2)


@pytest.mark.slow
def test_classifier_on_one_voxel_crops(folder, tmp_path):
    done = weakseg(
        "train-classifier",
        "--crops",
        folder / "onevox.csv",
        "--out",
        tmp_path / "c.safetensors",
        "--steps",
        "2",
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "c.safetensors").is_file()
