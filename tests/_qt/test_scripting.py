"""Scripting the docks: named fields, run/start, copy as script."""

import shlex
import subprocess
import sys

import numpy as np
import pytest
from magicgui.widgets import CheckBox, FileEdit, Select
from magicgui.widgets.bases import CategoricalWidget, RangedWidget
from safetensors.torch import load_file

from napari_weakseg import cli
from napari_weakseg._qt.annotation_widget import AnnotationWidget
from napari_weakseg._qt.apply_widget import ApplyWidget
from napari_weakseg._qt.boxes_widget import BoxesWidget
from napari_weakseg._qt.cam_widget import CamWidget
from napari_weakseg._qt.fields import LayerPicker
from napari_weakseg._qt.pretrain_widget import PretrainWidget
from napari_weakseg._qt.train_widget import TrainWidget
from napari_weakseg.core.base.defaults import DONE_KEY
from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.data.sparse import from_sparse_labels

DOCKS = (
    AnnotationWidget,
    TrainWidget,
    ApplyWidget,
    BoxesWidget,
    CamWidget,
    PretrainWidget,
)
QUICK = {"steps": 4, "base_filters": 4, "device": "cpu"}


def _viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    image, truth = make_phantom((16, 24, 24))
    viewer.add_image(image, name="phantom", scale=(2.0, 1.0, 1.0))
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[8] = truth[8]
    sparse[:, 12] = truth[:, 12]
    painted, done = from_sparse_labels(sparse)
    viewer.add_labels(
        painted,
        name="ann",
        scale=(2.0, 1.0, 1.0),
        metadata={DONE_KEY: done, "weakseg_image": "phantom"},
    )
    return viewer


def _trained(viewer, folder):
    dock = TrainWidget(viewer)
    result = dock.run(
        image="phantom", labels="ann", out=folder / "m.safetensors", **QUICK
    )
    return dock, result


def _other_value(widget, folder):
    """A valid value different from the widget's (for every kind)."""
    value = widget.value
    if isinstance(widget, LayerPicker):
        names = [c.name for c in widget.choices if c is not None]
        return next((n for n in names if n != getattr(value, "name", 0)), None)
    if isinstance(widget, CheckBox):
        return not value
    if isinstance(widget, Select):
        return list(widget.choices[:1])
    if isinstance(widget, CategoricalWidget):
        return next(c for c in widget.choices if c != value)
    if isinstance(widget, RangedWidget):
        lo, hi = widget.min, widget.max
        if isinstance(value, float):
            return float(hi if value != hi else lo)
        new = int(lo + (hi - lo) // 3)
        return new if new != value else int(hi)
    if isinstance(widget, FileEdit):
        return folder / f"{widget.name}.safetensors"
    if isinstance(value, str):  # a text field
        return "head,body"
    raise AssertionError(f"no value for {widget.name}")


@pytest.mark.slow
def test_every_field_of_every_dock_set_by_name_round_trips(
    make_napari_viewer, tmp_path
):
    viewer = _viewer(make_napari_viewer)
    _, trained = _trained(viewer, tmp_path)
    viewer.add_shapes(name="boxes", ndim=3)
    viewer.add_image(np.zeros((16, 24, 24), np.float32), name="other")
    viewer.add_labels(np.zeros((16, 24, 24), np.uint8), name="truth")
    for cls in DOCKS:
        dock = cls(viewer)
        dock.reset_choices()
        assert all(w.name for w in dock), cls  # every control is named
        if cls is CamWidget:  # its block list comes from a model
            dock["model"].value = trained.path
            assert dock["layer"].choices
        for widget in dock.fields():
            if cls is CamWidget and widget.name == "model":
                continue
            new = _other_value(widget, tmp_path)
            dock[widget.name].value = new  # a layer picker takes a name
            shown = dock[widget.name].value
            assert getattr(shown, "name", shown) == new or (
                isinstance(widget, FileEdit)
            ), (cls.__name__, widget.name)
        saved = dock.asdict()
        assert list(saved) == dock.field_names()
        fresh = cls(viewer)
        fresh.reset_choices()
        if cls is CamWidget:
            fresh.update(model=saved["model"])
        fresh.update(saved)
        assert fresh.asdict() == saved, cls.__name__


def test_bad_names_values_and_layers_are_one_sentence(make_napari_viewer):
    viewer = _viewer(make_napari_viewer)
    dock = TrainWidget(viewer)
    dock.reset_choices()  # as napari does when it docks it
    before = dock.asdict()
    with pytest.raises(WeaksegError, match="no field 'stepz'.*steps, "):
        dock.update(steps=5, stepz=3)
    with pytest.raises(WeaksegError, match="no field 'nope'"):
        dock["nope"]
    with pytest.raises(WeaksegError, match="between 1 and 1000000000"):
        dock.update(base_filters=8, steps=0)
    with pytest.raises(
        WeaksegError, match="No image layer named 'x'.*phantom"
    ):
        dock.update(image="x")
    with pytest.raises(WeaksegError, match="one of auto, cpu"):
        dock.update(device="tpu")
    with pytest.raises(WeaksegError, match="shows a result"):
        dock.update(status="x")
    assert dock.asdict() == before  # nothing changed
    with pytest.raises(WeaksegError, match="no job 'predict'"):
        dock.run("predict")


def test_run_refuses_while_running_and_raises_the_docks_sentence(
    make_napari_viewer, tmp_path
):
    viewer = _viewer(make_napari_viewer)
    dock = TrainWidget(viewer)
    worker = dock.start(
        image="phantom",
        labels="ann",
        out=tmp_path / "m.safetensors",
        **{**QUICK, "steps": 10_000},
    )
    assert worker.is_running or not dock._outcome.done
    with pytest.raises(WeaksegError, match="already running"):
        dock.run(steps=5)
    dock.request_stop()
    dock.wait()
    assert dock["steps"].value == 10_000  # the refused run changed nothing
    apply = ApplyWidget(viewer)
    with pytest.raises(WeaksegError, match="No model file at"):
        apply.run(image="phantom", model=tmp_path / "none.safetensors")


@pytest.mark.slow
def test_run_train_then_apply_returns_what_they_made(
    make_napari_viewer, tmp_path
):
    viewer = _viewer(make_napari_viewer)
    _, result = _trained(viewer, tmp_path)
    assert result.path == tmp_path / "m.safetensors"
    assert result.path.is_file() and result.value.steps == 4
    apply = ApplyWidget(viewer)
    made = apply.run(
        image="phantom", model=result.path, show_probabilities=True
    )
    names = [layer.name for layer in made.layers]
    assert names[0] == "phantom prediction"
    assert "phantom p(class 1)" in names
    again = apply.run()  # the layer is filled again, and reported
    assert again.layers[0] is made.layers[0]


@pytest.mark.slow
def test_train_script_gives_the_docks_weights(make_napari_viewer, tmp_path):
    """Copy as script (Python and command) of the Train dock runs and
    trains the weights the dock trained."""
    viewer = _viewer(make_napari_viewer)
    dock, result = _trained(viewer, tmp_path)
    mine = load_file(result.path)

    dock.update(out=tmp_path / "py.safetensors")
    python = dock.as_script("python", tmp_path / "train.py")
    assert "api.train(" in python and "saved as" in python
    assert (tmp_path / "train.py").read_text() == python
    assert (tmp_path / "ann sparse.nii.gz").is_file()  # no file: saved
    run = subprocess.run(
        [sys.executable, str(tmp_path / "train.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    theirs = load_file(tmp_path / "py.safetensors")
    assert all(np.array_equal(mine[k], theirs[k]) for k in mine)

    dock.update(out=tmp_path / "cli.safetensors")
    command = dock.as_script("cli").splitlines()[-1]
    assert command.startswith("weakseg train --image ")
    assert cli.main([*shlex.split(command)[1:], "--quiet"]) == 0
    theirs = load_file(tmp_path / "cli.safetensors")
    assert all(np.array_equal(mine[k], theirs[k]) for k in mine)


def test_copy_as_script_is_in_every_dock_that_runs_a_job(make_napari_viewer):
    viewer = _viewer(make_napari_viewer)
    for cls in DOCKS:
        dock = cls(viewer)
        button = dock.get_widget("copy_script_button")
        assert (button is None) == (cls is AnnotationWidget)
        if button is not None:
            texts = [a.text() for a in button.native.menu().actions()]
            assert texts[0] == "Python to clipboard"
    with pytest.raises(WeaksegError, match="no job a script"):
        AnnotationWidget(viewer).as_script()


def test_annotate_run_adds_a_layer(make_napari_viewer):
    viewer = _viewer(make_napari_viewer)
    result = AnnotationWidget(viewer).run(image="phantom")
    assert result.layers[0].name == "phantom annotations"


def test_layers_menu_applies_the_model_to_the_selected_image(
    make_napari_viewer, qtbot, tmp_path
):
    from napari._app_model import get_app_model

    from napari_weakseg._qt.menus import apply_selected

    viewer = _viewer(make_napari_viewer)
    menu = get_app_model().menus.get_menu("napari/layers/segment")
    ids = [getattr(getattr(i, "command", None), "id", None) for i in menu]
    assert "napari-weakseg.apply_selected" in ids
    annotate = get_app_model().menus.get_menu("napari/layers/annotate")
    assert "napari-weakseg.open_annotate" in [
        getattr(getattr(i, "command", None), "id", None) for i in annotate
    ]
    _trained(viewer, tmp_path)  # the session's model: the Apply dock's
    viewer.layers.selection.active = viewer.layers["ann"]  # of 'phantom'
    worker = apply_selected(viewer)
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert "phantom prediction" in viewer.layers


def test_scripts_of_the_other_docks_parse(make_napari_viewer, tmp_path):
    """Apply, Boxes and Pretrain write Python that compiles and a command
    the weakseg parser takes."""
    viewer = _viewer(make_napari_viewer)
    apply = ApplyWidget(viewer)
    apply.update(image="phantom", model=tmp_path / "m.safetensors", tta=True)
    boxes = BoxesWidget(viewer)
    boxes.update(image="phantom")
    layer = boxes.create_boxes_layer()
    layer.add_rectangles(
        np.array([[8, 2, 2], [8, 2, 10], [8, 10, 10], [8, 10, 2]], float)
    )
    boxes.update(crf=False, rounds=2)
    pretrain = PretrainWidget(viewer)
    pretrain.update(images=["phantom"], rotation=True, steps=7)
    for dock, command in (
        (apply, "predict"),
        (boxes, "box2mask"),
        (pretrain, "pretrain"),
    ):
        compile(dock.as_script("python"), "script.py", "exec")
        words = shlex.split(dock.as_script("cli").splitlines()[-1])
        assert words[:2] == ["weakseg", command]
        args = cli.build_parser().parse_args(words[1:])
        assert args.command == command
    assert "--no-crf" in boxes.as_script("cli")
    assert "--rounds 2" in boxes.as_script("cli")
    assert "--tta" in apply.as_script("cli")
