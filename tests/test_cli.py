import subprocess
import sys

import numpy as np
import pytest

from napari_weakseg.cli import main
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.data.volumes import Volume, read_volume, write_volume


def test_train_predict_round_trip_keeps_geometry(
    files, tmp_path, capsys, oblique
):
    img, lbl = files
    model = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "train",
                "--image",
                str(img),
                "--labels",
                str(lbl),
                "--out",
                str(model),
                "--steps",
                "3",
                "--base-filters",
                "4",
                "--device",
                "cpu",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert "finished after 3 steps" in capsys.readouterr().out
    out, prob = tmp_path / "pred.mha", tmp_path / "prob.nii.gz"
    assert (
        main(
            [
                "predict",
                "--model",
                str(model),
                "--image",
                str(img),
                "--out",
                str(out),
                "--probabilities",
                str(prob),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    pred = read_volume(out)
    assert pred.data.shape == (16, 24, 24) and pred.data.dtype == np.uint8
    assert set(np.unique(pred.data)) <= {0, 1, 2}
    assert pred.geometry.allclose(oblique)
    p = read_volume(prob)
    assert p.data.shape == (3, 16, 24, 24) and p.geometry.allclose(oblique)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "predict",
                "--model",
                "nope.safetensors",
                "--image",
                "x.nii",
                "--out",
                "y.nii",
            ],
            "No model file at nope.safetensors.",
        ),
        (
            [
                "train",
                "--image",
                "a.nii",
                "--labels",
                "b.nii",
                "--labels",
                "c.nii",
                "--out",
                "m.safetensors",
            ],
            "Give one label volume per image (1 images, 2 label volumes).",
        ),
        (
            [
                "train",
                "--image",
                "missing.nii.gz",
                "--labels",
                "missing.nii.gz",
                "--out",
                "m.safetensors",
            ],
            "No file or folder at missing.nii.gz.",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    args, message, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("weakseg: error: ") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "m.safetensors").exists()


def test_mismatched_geometry_is_refused(files, tmp_path, capsys):
    img, _ = files
    other = write_volume(
        tmp_path / "other.nii.gz", Volume(np.zeros((16, 24, 24), np.uint8))
    )
    assert (
        main(
            [
                "train",
                "--image",
                str(img),
                "--labels",
                str(other),
                "--out",
                str(tmp_path / "m.safetensors"),
            ]
        )
        == 2
    )
    assert "different spacing, origin or direction" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "napari_weakseg.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "train" in out.stdout and "predict" in out.stdout


def test_box2mask_and_crf_commands(tmp_path, capsys, oblique):
    from napari_weakseg.core.data.boxes import Box, write_boxes
    from napari_weakseg.core.data.phantom import boxes_of, make_blobs

    image, truth = make_blobs((12, 24, 24))
    img = write_volume(tmp_path / "img.nii.gz", Volume(image, oblique))
    boxes = write_boxes(tmp_path / "b.csv", [Box(*b) for b in boxes_of(truth)])
    out = tmp_path / "masks.nii.gz"
    assert (
        main(
            [
                "box2mask",
                "--image",
                str(img),
                "--boxes",
                str(boxes),
                "--out",
                str(out),
                "--rounds",
                "1",
                "--steps-per-round",
                "2",
                "--base-filters",
                "4",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "round 1/1" in printed
    # the rounds' scratch model is never announced; validation names what
    # it measures
    assert "saved" not in printed and "rounds.safetensors" not in printed
    assert "Dice on this round's targets" in printed
    masks = read_volume(out)
    assert masks.data.shape == image.shape and masks.geometry.allclose(oblique)
    assert set(np.unique(masks.data)) <= {0, 1, 2}

    probs = np.stack([truth == 0, truth == 1, truth == 2]).astype(np.float32)
    prob = write_volume(
        tmp_path / "p.nii.gz", Volume(probs * 0.8 + 0.2 / 3, oblique)
    )
    assert (
        main(
            [
                "crf",
                "--image",
                str(img),
                "--probabilities",
                str(prob),
                "--out",
                str(tmp_path / "crf.nii.gz"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    refined = read_volume(tmp_path / "crf.nii.gz").data
    assert np.mean(refined == truth) > 0.97


def test_box2mask_refuses_bad_boxes(tmp_path, capsys):
    img = write_volume(
        tmp_path / "img.nii.gz", Volume(np.zeros((8, 8, 8), np.float32))
    )
    (tmp_path / "b.csv").write_text("z0,y0,x0,z1,y1,x1,class\n5,0,0,2,4,4,1\n")
    assert (
        main(
            [
                "box2mask",
                "--image",
                str(img),
                "--boxes",
                str(tmp_path / "b.csv"),
                "--out",
                str(tmp_path / "o.nii.gz"),
            ]
        )
        == 2
    )
    assert "Box 1 has z1=2 <= z0=5" in capsys.readouterr().err
    assert not (tmp_path / "o.nii.gz").exists()


@pytest.fixture
def crops_csv(tmp_path):
    from napari_weakseg.core.data.phantom import make_blobs

    image, truth = make_blobs((12, 24, 24))
    write_volume(tmp_path / "img.nii.gz", Volume(image))
    # left half holds objects of class 1 at y < 12; crops: object vs empty
    rows = ["image,z0,y0,x0,z1,y1,x1,class"]
    for y0 in (0, 12):
        for x0 in (0, 12):
            cls = int((truth[:, y0 : y0 + 12, x0 : x0 + 12] == 1).any())
            rows.append(f"img.nii.gz,0,{y0},{x0},12,{y0 + 12},{x0 + 12},{cls}")
    rows.append("img.nii.gz,,,,,,,1")
    (tmp_path / "crops.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "crops.csv"


def test_train_classifier_then_cam_and_pseudo_labels(
    crops_csv, tmp_path, capsys
):
    model = tmp_path / "clf.safetensors"
    assert (
        main(
            [
                "train-classifier",
                "--crops",
                str(crops_csv),
                "--out",
                str(model),
                "--steps",
                "3",
                "--base-filters",
                "4",
                "--pooling",
                "gap",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "accuracy on training data" in capsys.readouterr().out
    img = tmp_path / "img.nii.gz"
    for method in ("gradcam", "gradcam++", "cam"):
        out = tmp_path / f"{method}.nii.gz"
        assert (
            main(
                [
                    "cam",
                    "--model",
                    str(model),
                    "--image",
                    str(img),
                    "--out",
                    str(out),
                    "--method",
                    method,
                    "--class",
                    "1",
                    "--pseudo-labels",
                    str(tmp_path / "seeds.nii.gz"),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        m = read_volume(out).data
        assert m.shape == (12, 24, 24) and m.min() >= 0
    seeds = read_volume(tmp_path / "seeds.nii.gz").data
    assert set(np.unique(seeds)) <= {0, 1, 255}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--layer", "nope"],
            "No layer 'nope' to take a map from; choose one of",
        ),
        (["--class", "7"], "Class 7 is out of range"),
    ],
)
def test_cam_bad_requests(crops_csv, tmp_path, capsys, extra, message):
    from napari_weakseg import api

    model = tmp_path / "clf.safetensors"
    api.train_classifier(
        crops_csv, model, steps=1, base_filters=4, device="cpu"
    )
    assert (
        main(
            [
                "cam",
                "--model",
                str(model),
                "--image",
                str(tmp_path / "img.nii.gz"),
                "--out",
                str(tmp_path / "m.nii.gz"),
                "--device",
                "cpu",
                *extra,
            ]
        )
        == 2
    )
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.nii.gz").exists()


def test_classifier_with_one_class_is_refused(crops_csv, tmp_path, capsys):
    rows = crops_csv.read_text().splitlines()
    one = [rows[0]] + [r.rsplit(",", 1)[0] + ",1" for r in rows[1:]]
    crops_csv.write_text("\n".join(one) + "\n")
    assert (
        main(
            [
                "train-classifier",
                "--crops",
                str(crops_csv),
                "--out",
                str(tmp_path / "c.safetensors"),
            ]
        )
        == 2
    )
    assert "Every crop has class 1" in capsys.readouterr().err


def test_pretrain_then_init_reports_transferred_tensors(tmp_path, capsys):
    image, truth = make_phantom((24, 32, 32))
    img = write_volume(tmp_path / "img.nii.gz", Volume(image))
    enc = tmp_path / "enc.safetensors"
    assert (
        main(
            [
                "pretrain",
                "--image",
                str(img),
                "--image",
                str(img),
                "--out",
                str(enc),
                "--steps",
                "10",
                "--patch",
                "16",
                "--base-filters",
                "4",
                "--device",
                "cpu",
                "--tasks",
                "rotation,inpainting",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "rotation acc" in out and "inpainting " in out
    assert "top-1" not in out and "nan" not in out  # no contrastive run
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[12] = truth[12]
    lbl = write_volume(tmp_path / "s.nii.gz", Volume(sparse))
    assert (
        main(
            [
                "train",
                "--image",
                str(img),
                "--labels",
                str(lbl),
                "--out",
                str(tmp_path / "u.safetensors"),
                "--steps",
                "1",
                "--base-filters",
                "4",
                "--init",
                str(enc),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    from napari_weakseg.core.nn.models import read_model_file

    n = len(read_model_file(enc)[0])
    expected = f"initialised {n} tensors from enc.safetensors"
    assert expected in capsys.readouterr().out
    assert (
        main(
            [
                "pretrain",
                "--image",
                str(img),
                "--out",
                str(enc),
                "--tasks",
                "jigsaw",
            ]
        )
        == 2
    )


def test_suggest_prints_slices_and_refuses_bad_input(files, tmp_path, capsys):
    _, lbl = files  # slices z=8 and y=12 of (16, 24, 24) are labelled
    assert main(["suggest", "--labels", str(lbl), "--count", "2"]) == 0
    assert capsys.readouterr().out.split() == ["3", "12"]
    assert main(["suggest", "--labels", str(lbl), "--axis", "y"]) == 0
    assert capsys.readouterr().out.split() == ["5"]
    probs = np.zeros((2, 16, 24, 24), np.float32)
    probs[0] = 1.0
    probs[:, 14] = 0.5  # the model is unsure on slice 14
    p = write_volume(tmp_path / "p.nii.gz", Volume(probs))
    assert (
        main(["suggest", "--labels", str(lbl), "--probabilities", str(p)]) == 0
    )
    assert capsys.readouterr().out.split() == ["14"]
    assert main(["suggest", "--labels", str(tmp_path / "none.nii.gz")]) == 2
    assert capsys.readouterr().err.startswith("weakseg: error: ")
    image = np.random.default_rng(0).normal(size=(16, 24, 24)) * 100
    img = write_volume(tmp_path / "img.nii.gz", Volume(image.round()))
    assert main(["suggest", "--labels", str(img)]) == 2
    err = capsys.readouterr().err
    assert "it is not a label volume" in err and "every slice" not in err


def test_predict_over_a_folder_skips_what_it_cannot_read(
    files, tmp_path, capsys
):
    img, lbl = files
    model = tmp_path / "m.safetensors"
    api_train = [
        "train", "--image", str(img), "--labels", str(lbl), "--out",
        str(model), "--steps", "2", "--base-filters", "4", "--device", "cpu",
    ]  # fmt: skip
    assert main(api_train) == 0
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    image = read_volume(img)
    write_volume(inputs / "a.nii.gz", image)
    write_volume(inputs / "b.nrrd", Volume(image.data[:, ::-1].copy()))
    (inputs / "c.nii.gz").write_bytes(b"\x1f\x8b truncated")
    (inputs / "notes.txt").write_text("not a volume")
    capsys.readouterr()
    out = tmp_path / "segs"
    argv = ["predict", "--model", str(model), "--image", str(inputs)]
    argv += ["--out", str(out), "--device", "cpu", "--quiet"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "b.nrrd"]
    assert "wrote 2 of 3 volumes" in captured.out
    assert captured.err.count("weakseg: skipped") == 1
    assert "c.nii.gz" in captured.err
    assert "skipped 1 of 3 inputs" in captured.err
    seg = read_volume(out / "a.nii.gz")
    assert seg.data.shape == image.data.shape
    # the same files given one by one, with probabilities, all readable
    argv = ["predict", "--model", str(model), "--device", "cpu", "--quiet"]
    argv += ["--image", str(inputs / "a.nii.gz"), "--image", str(img)]
    argv += ["--out", str(tmp_path / "two")]
    argv += ["--probabilities", str(tmp_path / "p")]
    assert main(argv) == 0
    assert (tmp_path / "p" / "img.nrrd").is_file()
    # outputs into the input folder would replace the inputs
    argv = ["predict", "--model", str(model), "--image", str(inputs)]
    assert main([*argv, "--out", str(inputs), "--device", "cpu"]) == 2
    assert "would replace the input" in capsys.readouterr().err


def test_predict_block_by_block_into_zarr(files, tmp_path, capsys):
    """--block streams the labels into a zarr store: the same labels as a
    whole-volume prediction; a block under the patch is one sentence; a
    scheduler that does not answer is one sentence and writes nothing."""
    img, lbl = files
    model = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(img), "--labels", str(lbl)]
    argv += ["--out", str(model), "--steps", "2", "--base-filters", "4"]
    argv += ["--device", "cpu", "--patch-size", "8", "8", "8"]
    assert main(argv) == 0
    predict = ["predict", "--model", str(model), "--image", str(img)]
    predict += ["--device", "cpu", "--quiet"]
    assert main([*predict, "--out", str(tmp_path / "whole.nii.gz")]) == 0
    out = tmp_path / "seg.zarr"  # (OME-Zarr has no oblique direction)
    assert main([*predict, "--out", str(out), "--block", "8"]) == 0
    whole = read_volume(tmp_path / "whole.nii.gz").data
    np.testing.assert_array_equal(read_volume(out).data, whole)
    assert main([*predict, "--out", str(out), "--block", "4"]) == 2
    err = capsys.readouterr().err
    assert "Blocks of 4 voxels are smaller than the model's patch (8)" in err
    from napari_weakseg.core.predict import tiled

    tiled.CONNECT_TIMEOUT, saved = "1s", tiled.CONNECT_TIMEOUT
    try:
        bad = tmp_path / "never.ome.zarr"
        argv = [
            *predict,
            "--out",
            str(bad),
            "--scheduler",
            "tcp://127.0.0.1:9",
        ]
        assert main(argv) == 2
    finally:
        tiled.CONNECT_TIMEOUT = saved
    assert "No dask scheduler answers at tcp://127.0.0.1:9" in (
        capsys.readouterr().err
    )
    assert not bad.exists()


def test_cam2seg_turns_crop_labels_into_a_segmentation(
    crops_csv, tmp_path, capsys
):
    model = tmp_path / "clf.safetensors"
    base = ["--device", "cpu"]
    assert (
        main(
            ["train-classifier", "--crops", str(crops_csv), "--out"]
            + [str(model), "--steps", "20", "--base-filters", "4"]
            + base
        )
        == 0
    )
    out = tmp_path / "seg.nii.gz"
    img = tmp_path / "img.nii.gz"
    args = ["cam2seg", "--model", str(model), "--image", str(img)]
    rest = ["--crops", str(crops_csv), "--rounds", "2"]
    rest += ["--steps-per-round", "3", "--base-filters", "4"] + base
    assert main(args + ["--out", str(out)] + rest) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    seg = read_volume(out).data
    assert seg.shape == read_volume(img).data.shape
    assert set(np.unique(seg)) <= {0, 1}
    # every crop labelled absent stays background
    for line in crops_csv.read_text().splitlines()[1:]:
        f = line.split(",")
        if f[1] and f[7] == "0":
            z0, y0, x0, z1, y1, x1 = (int(v) for v in f[1:7])
            assert not seg[z0:z1, y0:y1, x0:x1].any()
    bad = main(args + ["--out", str(tmp_path / "b.nii.gz"), "--class", "3"])
    assert bad == 2
    assert "Class 3 is out of range" in capsys.readouterr().err
    assert not (tmp_path / "b.nii.gz").exists()


def test_cam2seg_no_expand_reaches_the_api(monkeypatch, tmp_path):
    import functools

    from napari_weakseg import api

    seen = {}

    @functools.wraps(api.cam_to_segmentation)
    def spy(**kw):
        seen.update(kw)

    monkeypatch.setattr(api, "cam_to_segmentation", spy)
    args = ["cam2seg", "--model", "m", "--image", "i", "--out", "o.nii.gz"]
    assert main(args) == 0
    assert seen["expand"] is True
    assert main(args + ["--no-expand"]) == 0
    assert seen["expand"] is False


def test_every_option_of_every_command_has_help_and_a_default():
    import argparse

    from napari_weakseg.cli import _Help, build_parser

    parser = build_parser()
    sub = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    for name, p in sub.choices.items():
        help_text = p.format_help()
        formatter = _Help(prog=name)
        for action in p._actions:
            if not action.option_strings or action.dest == "help":
                continue
            text = formatter._get_help_string(action)
            assert action.help, (name, action.dest)
            assert action.required or "default" in text, (name, action.dest)
        assert "(default: " in help_text, name


def test_pretrain_and_train_share_flag_names_and_network():
    from napari_weakseg.cli import build_parser
    from napari_weakseg.core.base import defaults

    parser = build_parser()
    args = parser.parse_args(
        ["pretrain", "--image", "x.nii.gz", "--out", "e.safetensors"]
        + ["--patch-size", "16"]
    )
    assert args.patch == 16 and args.network == defaults.NETWORK == "resunet"
