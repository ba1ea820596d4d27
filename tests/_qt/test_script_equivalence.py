"""Copy as script: the Python script and the ``weakseg`` command of the
Apply, Boxes, CAM and Pretrain docks run and give what the dock gave
(the same label arrays, maps and weights)."""

import runpy
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from napari_weakseg import api, cli
from napari_weakseg._qt.apply_widget import ApplyWidget
from napari_weakseg._qt.boxes_widget import BoxesWidget
from napari_weakseg._qt.cam_widget import CamWidget
from napari_weakseg._qt.pretrain_widget import PretrainWidget
from napari_weakseg.core.data.geometry import Geometry
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.data.volumes import Volume, read_volume, write_volume

SHAPE = (16, 24, 24)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny U-Net trained on the phantom (shared by Apply and CAM)."""
    folder = tmp_path_factory.mktemp("model")
    image, truth = make_phantom(SHAPE)
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[8] = truth[8]
    geometry = Geometry((2.0, 1.0, 1.0))
    img = write_volume(folder / "img.nii.gz", Volume(image, geometry))
    lbl = write_volume(folder / "lbl.nii.gz", Volume(sparse, geometry))
    out = folder / "m.safetensors"
    api.train(img, lbl, out, steps=2, base_filters=4, device="cpu")
    return out


def _viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    image, _ = make_phantom(SHAPE)
    viewer.add_image(image, name="phantom", scale=(2.0, 1.0, 1.0))
    return viewer


def _run_python(dock, folder):
    """Run the dock's Python script (as a file, like a user would)."""
    script = folder / "script.py"
    text = dock.as_script("python", script)
    runpy.run_path(str(script), run_name="__main__")
    return text


def _run_command(dock):
    line = dock.as_script("cli").splitlines()[-1]
    words = shlex.split(line)
    assert words[0] == "weakseg"
    assert cli.main([*words[1:], "--quiet"]) == 0
    return words


def _out(words):
    return words[words.index("--out") + 1]


def _same_tensors(a, b):
    a, b = load_file(a), load_file(b)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_apply_script_gives_the_docks_labels(
    make_napari_viewer, model, tmp_path
):
    viewer = _viewer(make_napari_viewer)
    dock = ApplyWidget(viewer)
    made = dock.run(image="phantom", model=model, tta=True)
    mine = np.asarray(made.layers[0].data)
    assert mine.any()

    _run_python(dock, tmp_path)
    out = Path(_out(shlex.split(dock.as_script("cli").splitlines()[-1])))
    assert np.array_equal(read_volume(out).data, mine)
    out.unlink()
    _run_command(dock)
    assert np.array_equal(read_volume(out).data, mine)


def test_cam_script_gives_the_docks_map(make_napari_viewer, model, tmp_path):
    viewer = _viewer(make_napari_viewer)
    dock = CamWidget(viewer)
    dock.update(model=model)
    made = dock.run("map", image="phantom", method="gradcam", class_index=1)
    mine = np.asarray(made.layers[0].data)
    assert mine.shape == SHAPE

    _run_python(dock, tmp_path)
    out = Path(_out(shlex.split(dock.as_script("cli").splitlines()[-1])))
    assert np.array_equal(read_volume(out).data, mine)
    out.unlink()
    _run_command(dock)
    assert np.array_equal(read_volume(out).data, mine)


def _boxes_dock(viewer):
    dock = BoxesWidget(viewer)
    dock.update(image="phantom")
    layer = dock.create_boxes_layer()
    layer.add_rectangles(
        np.array([[8, 4, 4], [8, 4, 20], [8, 20, 20], [8, 20, 4]], float)
    )
    return dock


@pytest.mark.slow
def test_boxes_script_gives_the_docks_masks_and_model(
    make_napari_viewer, tmp_path
):
    viewer = _viewer(make_napari_viewer)
    dock = _boxes_dock(viewer)
    made = dock.run(rounds=1, steps_per_round=2, depth=9)
    mine = np.asarray(made.layers[-1].data)
    assert made.layers[-1].name == "phantom box masks" and mine.any()
    words = shlex.split(dock.as_script("cli").splitlines()[-1])
    model_out = words[words.index("--model-out") + 1]
    kept = tmp_path / "dock.safetensors"
    shutil.copy(model_out, kept)

    _run_python(dock, tmp_path)
    assert np.array_equal(read_volume(_out(words)).data, mine)
    _same_tensors(kept, model_out)
    _run_command(dock)
    assert np.array_equal(read_volume(_out(words)).data, mine)
    _same_tensors(kept, model_out)

    info = api.model_info(model_out)  # the rounds' model has its recipe
    assert info.recipe["command"] == "box2mask"
    assert info.recipe["settings"]["steps_per_round"] == 2
    again = shlex.split(info.command)
    assert again[:2] == ["weakseg", "box2mask"]
    assert cli.build_parser().parse_args(again[1:]).rounds == 1


def test_pretrain_script_gives_the_docks_encoder(make_napari_viewer, tmp_path):
    viewer = _viewer(make_napari_viewer)
    dock = PretrainWidget(viewer)
    tasks = {"rotation": True, "contrastive": False, "inpainting": False}
    made = dock.run(
        images=["phantom"],
        masked=False,
        steps=2,
        patch=16,
        base_filters=4,
        out=tmp_path / "dock.safetensors",
        **tasks,
    )
    assert made.path == tmp_path / "dock.safetensors"

    dock.update(out=tmp_path / "py.safetensors")
    _run_python(dock, tmp_path)
    _same_tensors(made.path, tmp_path / "py.safetensors")
    dock.update(out=tmp_path / "cli.safetensors")
    _run_command(dock)
    _same_tensors(made.path, tmp_path / "cli.safetensors")
