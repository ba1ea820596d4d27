"""bioimage.io export and import, and class names from training to
every output (the napari side is in _qt/test_class_names.py)."""

import os
import re
import zipfile

import numpy as np
import pytest
import torch

from napari_weakseg import api
from napari_weakseg.cli import main
from napari_weakseg.core.base import classes
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.nn.models import save_tensors
from napari_weakseg.core.nn.networks import ModelConfig

NAMES = ["background", "head", "body"]


def _sparse(truth):
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[8] = truth[8]
    sparse[:, 12] = truth[:, 12]
    return sparse


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model of the phantom whose classes are named head, body."""
    folder = tmp_path_factory.mktemp("export")
    image, truth = make_phantom((16, 24, 24))
    model = folder / "m.safetensors"
    api.train(
        image,
        _sparse(truth),
        model,
        steps=2,
        base_filters=4,
        patch_size=[16, 16, 16],
        device="cpu",
        class_names=["head", "body"],
    )
    return model, image, truth


@pytest.mark.slow
def test_package_passes_bioimageio_test_and_predicts_as_the_model(
    trained, tmp_path
):
    pytest.importorskip("bioimageio.core")
    from bioimageio.core import test_model

    model, image, _ = trained
    package = tmp_path / "pkg.zip"
    # check=False: the test below runs bioimageio.core's test itself
    assert api.export_model(model, package, sample=image, check=False)
    summary = test_model(str(package), devices=["cpu"])
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    with zipfile.ZipFile(package) as zf:
        names = set(zf.namelist())
        readme = zf.read("README.md").decode()
        rdf = zf.read("rdf.yaml").decode()
    assert {"rdf.yaml", "weights.pt", "weights_torchscript.pt"} <= names
    assert "| 1 | head |" in readme and "## Validation" in readme
    assert "- head" in rdf and "halo:" in rdf and "min_percentile" in rdf
    # read back without bioimageio: the same predictions, the same names
    labels, probs = api.predict(model, image, device="cpu")
    labels2, probs2 = api.predict(package, image, device="cpu")
    np.testing.assert_allclose(probs2, probs, atol=1e-6)
    np.testing.assert_array_equal(labels2, labels)
    assert api.class_names(package) == NAMES


def test_export_cli_writes_the_package_and_refuses_bad_input(
    trained, tmp_path, capsys
):
    pytest.importorskip("bioimageio.spec")
    model, _, _ = trained
    out = tmp_path / "p.zip"
    assert main(["export", str(model), str(out), "--no-check"]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out

    def refused(args, words):
        assert main(["export", *map(str, args), "--no-check"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and words in err, err

    text = tmp_path / "notes.safetensors"
    text.write_text("not a model")
    refused([text, tmp_path / "a.zip"], "not a napari-weakseg model")
    refused([model, tmp_path / "a.safetensors"], "must end in .zip")
    refused([model, model], "must end in .zip")
    refused([model, tmp_path / "a.zip", "--license", "mine"], "not a license")
    encoder = tmp_path / "enc.safetensors"
    save_tensors(encoder, {"w": torch.zeros(1)}, ModelConfig(kind="encoder"))
    refused([encoder, tmp_path / "a.zip"], "only segmentation models")
    odd = ModelConfig(
        normalisation={"method": "percentile_zscore", "lower": 0, "upper": 1}
    )
    save_tensors(tmp_path / "odd.safetensors", {"w": torch.zeros(1)}, odd)
    refused([tmp_path / "odd.safetensors", tmp_path / "a.zip"], "percentile")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            refused([model, locked / "a.zip"], "read-only")
        finally:
            locked.chmod(0o700)
    # nothing half-written anywhere
    assert not list(tmp_path.glob("a.zip*")) and not list(
        tmp_path.glob(".a.zip*")
    )


def test_a_package_that_is_not_ours_is_one_sentence(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(api.WeaksegError, match="not a bioimage.io package"):
        api.class_names(bad)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("rdf.yaml", "type: model\nname: other\n")
    with pytest.raises(api.WeaksegError, match="not one exported by"):
        api.predict(foreign, np.zeros((8, 8, 8), np.float32))
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w") as zf:
        zf.writestr("rdf.yaml", "a: &a [1, 1]\nb: [*a, *a]\n")
    with pytest.raises(api.WeaksegError, match="not a bioimage.io package"):
        api.class_names(bomb)


def test_class_names_reach_the_model_and_the_evaluation_table(
    trained, tmp_path
):
    model, _, truth = trained
    assert api.class_names(model) == NAMES
    rows = api.evaluate(truth, truth, class_names=model)
    assert [r.name for r in rows] == ["head", "body"]
    rows = api.evaluate(truth, truth, class_names="left,right")
    assert [r.name for r in rows] == ["left", "right"]
    # a model file from before names existed: class 1, class 2
    old = ModelConfig(num_classes=3, class_names=[])
    assert api.class_names((None, old)) == classes.default(3)
    assert classes.default(3) == ["background", "class 1", "class 2"]


def test_cli_class_names_reach_the_model_and_the_table(
    files, tmp_path, capsys
):
    img, lbl = files
    model = tmp_path / "m.safetensors"
    args = ["train", "--image", str(img), "--labels", str(lbl)]
    args += ["--out", str(model), "--steps", "1", "--base-filters", "4"]
    args += ["--device", "cpu", "--class-names", "head, body", "--quiet"]
    assert main(args) == 0
    assert api.class_names(model) == NAMES
    capsys.readouterr()
    pred = tmp_path / "pred.nii.gz"
    assert (
        main(
            ["predict", "--model", str(model), "--image", str(img)]
            + ["--out", str(pred), "--device", "cpu", "--quiet"]
        )
        == 0
    )
    assert "labels: 0 background, 1 head, 2 body" in capsys.readouterr().out
    assert (
        main(
            ["evaluate", "--pred", str(lbl), "--truth", str(lbl)]
            + ["--ignore-label", "255", "--class-names", str(model)]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "head" in table and "body" in table and "class 1" not in table


@pytest.mark.parametrize(
    ("names", "words"),
    [
        (["head"], "the labels hold 2 classes (1 to 2) but 1 name was"),
        (["a", "b", "c", "d"], "but 4 names were given"),
        (["head", "head"], "'head' is given twice"),
        (["head", " "], "Class name 2 is empty"),
        ("head,,body", "Class name 2 is empty"),
    ],
)
def test_bad_class_names_are_one_sentence(tmp_path, names, words):
    image, truth = make_phantom((16, 24, 24))
    with pytest.raises(api.WeaksegError, match=re.escape(words)):
        api.train(
            image,
            _sparse(truth),
            tmp_path / "m.safetensors",
            steps=1,
            base_filters=4,
            device="cpu",
            class_names=names,
        )
    assert not (tmp_path / "m.safetensors").exists()


def test_cli_refuses_bad_class_names(files, tmp_path, capsys):
    img, lbl = files
    args = ["train", "--image", str(img), "--labels", str(lbl)]
    args += ["--out", str(tmp_path / "m.safetensors")]
    with pytest.raises(SystemExit) as stop:
        main([*args, "--class-names", "head,head"])
    assert stop.value.code == 2
    assert "given twice" in capsys.readouterr().err
