"""Every model keeps its recipe; `weakseg info` prints it, and its
`weakseg train` line trains the same weights again."""

import shlex

import numpy as np
import pytest
from safetensors.torch import load_file

from napari_weakseg import api, cli
from napari_weakseg.core.base import recipe


@pytest.mark.slow
def test_info_line_trains_the_same_weights_again(files, tmp_path, capsys):
    img, lbl = files
    first = tmp_path / "first.safetensors"
    args = ["train", "--image", str(img), "--labels", str(lbl)]
    args += ["--out", str(first), "--steps", "4", "--base-filters", "4"]
    assert cli.main([*args, "--device", "cpu", "--seed", "3", "--quiet"]) == 0
    capsys.readouterr()

    assert cli.main(["info", str(first)]) == 0
    printed = capsys.readouterr().out
    assert f"image: {img.resolve()}  sha256 " in printed
    assert "seed 3" in printed
    again = next(
        line for line in printed.splitlines() if line.startswith("again: ")
    )
    words = shlex.split(again.removeprefix("again: "))
    assert words[:2] == ["weakseg", "train"]
    at = words.index("--out")
    second = tmp_path / "second.safetensors"
    words[at + 1] = str(second)  # the same command, another --out
    assert cli.main([*words[1:], "--quiet"]) == 0
    a, b = load_file(first), load_file(second)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)

    info = api.model_info(second)
    assert info.recipe["inputs"]["labels"][0]["sha256"] == (
        recipe.sha256_file(lbl)
    )
    assert info.recipe["settings"]["steps"] == 4


def test_info_on_a_file_that_is_no_model_is_one_sentence(
    files, tmp_path, capsys
):
    img, _ = files
    assert cli.main(["info", str(img)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a napari-weakseg model" in err
    assert cli.main(["info", str(tmp_path / "none.safetensors")]) == 2
    assert "No model file at" in capsys.readouterr().err


def test_a_recipe_from_arrays_names_no_command(tmp_path):
    made = recipe.make(
        "train",
        {"image": [np.zeros((2, 2, 2), np.float32)], "labels": "x.nii.gz"},
        {"steps": 5, "patch_size": [8, 8, 8], "unlabelled": ["a", "b"]},
        seed=1,
    )
    assert made["inputs"]["image"][0]["file"] is None
    assert len(made["inputs"]["image"][0]["sha256"]) == 64
    text = "\n".join(recipe.lines(made, tmp_path / "m.safetensors"))
    assert "again: no command" in text
    line = recipe.command_line(made, "o.safetensors")
    assert "--patch-size 8 8 8" in line
    assert "--unlabelled a --unlabelled b" in line and "--seed 1" in line


@pytest.mark.slow
def test_an_encoder_keeps_its_recipe_too(files, tmp_path):
    img, _ = files
    out = tmp_path / "enc.safetensors"
    api.pretrain(
        [str(img)],
        out,
        tasks="rotation",
        steps=2,
        patch=16,
        base_filters=4,
        device="cpu",
        seed=2,
    )
    info = api.model_info(out)
    assert info.recipe["command"] == "pretrain"
    assert info.recipe["seed"] == 2
    assert info.command.startswith(f"weakseg pretrain --image {img.resolve()}")
    assert "--tasks rotation" in info.command


@pytest.mark.slow
def test_box_and_cam_models_keep_their_recipe(files, tmp_path, capsys):
    """box2mask --model-out and cam2seg --model-out: `weakseg info`
    prints the command, which makes the same weights again."""
    img, _ = files
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("z0,y0,x0,z1,y1,x1,class\n4,4,4,12,20,20,1\n")
    first = tmp_path / "rounds.safetensors"
    args = ["box2mask", "--image", str(img), "--boxes", str(boxes)]
    args += ["--out", str(tmp_path / "masks.nii.gz"), "--model-out"]
    args += [str(first), "--rounds", "1", "--steps-per-round", "2"]
    args += ["--initial", "box", "--no-crf", "--no-core-rule"]
    args += ["--base-filters", "4", "--device", "cpu", "--quiet"]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(["info", str(first)]) == 0
    printed = capsys.readouterr().out
    assert "made by: weakseg box2mask" in printed
    assert f"boxes: {boxes.resolve()}  sha256 " in printed
    again = next(
        line for line in printed.splitlines() if line.startswith("again: ")
    )
    words = shlex.split(again.removeprefix("again: "))
    assert "--no-crf" in words and "--no-core-rule" in words
    assert "--crf" not in words and "--no-class-rule" not in words
    second = first.with_name("rounds again.safetensors")
    assert words[words.index("--model-out") + 1] == str(second)
    assert words[words.index("--out") + 1].endswith(" labels.nii.gz")
    assert cli.main([*words[1:], "--quiet"]) == 0
    a, b = load_file(first), load_file(second)
    assert all(np.array_equal(a[k], b[k]) for k in a)

    unet = tmp_path / "cam2seg.safetensors"
    args = ["cam2seg", "--model", str(first), "--image", str(img)]
    args += ["--out", str(tmp_path / "seg.nii.gz"), "--model-out", str(unet)]
    args += ["--method", "gradcam", "--rounds", "1", "--steps-per-round"]
    args += ["2", "--no-crf", "--base-filters", "4", "--device", "cpu"]
    assert cli.main([*args, "--quiet"]) == 0
    info = api.model_info(unet)
    assert info.recipe["command"] == "cam2seg"
    assert info.recipe["inputs"]["model"]["sha256"] == (
        recipe.sha256_file(first)
    )
    parsed = cli.build_parser().parse_args(shlex.split(info.command)[1:])
    assert (parsed.method, parsed.crf, parsed.expand) == (
        "gradcam",
        False,
        True,
    )
    assert parsed.class_index == 1 and parsed.steps_per_round == 2


def test_a_recipe_of_an_api_only_function_names_no_command(tmp_path):
    made = recipe.make(
        "segment-from-map",
        {"image": "img.nii.gz", "map": "map.nii.gz"},
        {"class_index": 1, "crf": False},
        seed=0,
    )
    assert not recipe.runnable(made)
    text = "\n".join(recipe.lines(made, tmp_path / "m.safetensors"))
    assert "again: no command (api.segment_from_map made it" in text
    line = recipe.command_line({**made, "command": "cam2seg"}, "o")
    assert "--class 1" in line and "--no-crf" in line
