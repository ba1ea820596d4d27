"""The first minutes of a new user: sample data, every dock, defaults only.

Every picker must default to the layer of its role (the annotation layer,
never the dense reference); controls the README promises must be in
their dock.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakseg._qt.layer_data import done_of


@pytest.fixture
def sample_viewer(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-weakseg", "mni152")
    return viewer


def dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("napari-weakseg", name)
    return widget


def test_pickers_default_to_their_role_never_the_reference(sample_viewer):
    v = sample_viewer
    t1, ann = v.layers["MNI152 T1"], v.layers["annotations"]
    annotate = dock(v, "Sparse slice annotation")
    train = dock(v, "Train (sparse slices)")
    apply = dock(v, "Apply and correct")
    assert annotate.image.value is t1 and annotate.annotations.value is ann
    assert train.image.value is t1 and train.annotations.value is ann
    assert apply.annotations.value is ann
    assert apply.prediction.value is None  # nothing predicted yet
    # A prediction appears: Apply's prediction picker takes it, the
    # annotation pickers keep the annotation layer.
    from napari_weakseg._qt.layers import upsert_layer

    pred = upsert_layer(
        v, "MNI152 T1 prediction", ann.data * 0, t1, "prediction"
    )
    for w in (annotate, train, apply):
        w.reset_choices()
    assert apply.prediction.value is pred
    assert train.annotations.value is ann and apply.annotations.value is ann


def test_a_new_annotation_layer_becomes_the_default(sample_viewer):
    v = sample_viewer
    v.layers.remove("annotations")
    annotate = dock(v, "Sparse slice annotation")
    train = dock(v, "Train (sparse slices)")
    assert annotate.annotations.value is None
    assert train.annotations.value is None  # the reference is no default
    layer = annotate.create_annotation_layer()  # via napari's viewer proxy
    train.reset_choices()
    assert train.annotations.value.name == layer.name


def test_promised_controls_are_in_their_docks(sample_viewer):
    train = dock(sample_viewer, "Train (sparse slices)")
    apply = dock(sample_viewer, "Apply and correct")
    assert train.preview in list(train)
    assert apply.show_probabilities in list(apply)


def test_upsert_never_touches_a_user_layer(sample_viewer):
    from napari_weakseg._qt.layers import upsert_layer

    v = sample_viewer
    t1, ann = v.layers["MNI152 T1"], v.layers["annotations"]
    before = ann.data.copy()
    out = upsert_layer(v, "annotations", ann.data * 0 + 1, t1, "prediction")
    assert out is not ann and out.name == "annotations [2]"
    assert (ann.data == before).all()
    again = upsert_layer(v, "annotations", ann.data * 0 + 2, t1, "prediction")
    assert again is out and int(out.data.max()) == 2


def test_accepting_a_slice_can_be_undone_and_redone(sample_viewer):
    from napari_weakseg._qt.layers import upsert_layer

    v = sample_viewer
    t1, ann = v.layers["MNI152 T1"], v.layers["annotations"]
    apply = dock(v, "Apply and correct")
    pred = upsert_layer(
        v, "MNI152 T1 prediction", ann.data * 0 + 1, t1, "prediction"
    )
    apply.reset_choices()
    apply.prediction.value = pred
    before = ann.data.copy()
    v.dims.current_step = (20, 0, 0)  # slice z=20 is not annotated
    apply.accept_current_slice()
    after = ann.data.copy()
    assert (after[20] == 1).all() and (after[21:] == before[21:]).all()
    ann.undo()
    assert (ann.data == before).all()
    ann.redo()
    assert (ann.data == after).all()


def _press(layer, key):
    """Run the function a Labels layer binds to ``key`` (as napari does)."""
    from napari.utils.key_bindings import KeyBinding

    binding = KeyBinding.from_str(key)
    action = layer.keymap.get(binding) or type(layer).class_keymap[binding]
    action(layer)


def test_marking_and_unmarking_a_slice_are_undoable_edits(
    sample_viewer, qtbot
):
    v = sample_viewer
    annotate = dock(v, "Sparse slice annotation")
    ann = v.layers["annotations"]
    v.dims.current_step = (20, 0, 0)
    ann.data_setitem((np.array([20]), np.array([40]), np.array([40])), 2)
    painted = ann.data.copy()
    done_of_before = done_of(ann)
    annotate.mark_current_slice_done()
    done = ann.data.copy()
    assert 20 in done_of(ann)[0]
    assert (done[20][painted[20] == 0] == 255).all() and done[20, 40, 40] == 2
    annotate.mark_current_slice_done()  # already done: nothing changes
    assert np.array_equal(ann.data, done)
    _press(ann, "Control-Z")  # the layer's own undo key
    assert np.array_equal(ann.data, painted) and 20 not in done_of(ann)[0]
    # the undo key also schedules an autosave of the undone state
    assert annotate._autosave_timer.isActive()
    _press(ann, "Control-Shift-Z")
    assert np.array_equal(ann.data, done)
    annotate.unmark_current_slice()
    assert 20 not in done_of(ann)[0] and ann.data[20, 40, 40] == 2
    # where it crosses slices done on the other axes the brush stays
    others = done_of(ann)
    assert others[1] and others == {**done_of_before, 0: done_of_before[0]}
    ann.undo()
    assert np.array_equal(ann.data, done)


def test_restoring_an_autosave_is_one_undoable_edit(sample_viewer):
    from napari_weakseg._qt.annotation_widget import store_for

    v = sample_viewer
    annotate = dock(v, "Sparse slice annotation")
    t1 = v.layers["MNI152 T1"]
    saved = np.zeros(t1.data.shape, np.uint8)
    saved[30, 10:20, 10:20] = 1
    store_for(t1).save(saved, {0: [31]})  # an older session's done slice
    layer = annotate.create_annotation_layer()
    assert layer.data[30, 15, 15] == 1 and (layer.data[31] == 255).all()
    assert 31 in done_of(layer)[0]
    layer.undo()
    assert not layer.data.any() and done_of(layer)[0] == []


def test_background_brush_is_hidden_in_3d(sample_viewer):
    from napari_weakseg._qt.layers import BRUSH_COLOUR

    ann = sample_viewer.layers["annotations"]
    dock(sample_viewer, "Sparse slice annotation")
    sample_viewer.dims.ndisplay = 3
    assert np.asarray(ann.colormap.map(np.array([255])))[0, 3] == 0
    assert np.asarray(ann.colormap.map(np.array([1])))[0, 3] == 1
    sample_viewer.dims.ndisplay = 2
    np.testing.assert_allclose(
        np.asarray(ann.colormap.map(np.array([255])))[0], BRUSH_COLOUR
    )


def test_background_brush_is_muted_and_apart_from_classes(sample_viewer):
    import numpy as np

    from napari_weakseg._qt.layers import BRUSH_COLOUR

    ann = sample_viewer.layers["annotations"]
    dock(sample_viewer, "Sparse slice annotation")
    rgba = np.asarray(ann.colormap.map(np.array([*range(1, 11), 255])))
    np.testing.assert_allclose(rgba[-1], BRUSH_COLOUR, atol=1e-6)
    assert rgba[-1, 3] < 0.5  # translucent
    distance = np.abs(rgba[:-1, :3] - rgba[-1, :3]).sum(axis=1)
    assert distance.min() > 0.5  # far from classes 1..10


def test_every_control_has_a_tooltip(sample_viewer):
    from magicgui.widgets import Label, ProgressBar

    for name in (
        "Sparse slice annotation",
        "Train (sparse slices)",
        "Apply and correct",
        "Boxes to masks",
        "CAM and pseudo-labels",
        "Self-supervised pretraining",
    ):
        w = dock(sample_viewer, name)
        missing = [
            c.name or c.label
            for c in w
            if not isinstance(c, Label | ProgressBar) and not c.tooltip
        ]
        assert missing == [], (name, missing)


def test_shortcuts_are_bound_and_listed(sample_viewer):
    from napari_weakseg._qt.shortcuts import SHORTCUTS

    annotate = dock(sample_viewer, "Sparse slice annotation")
    train = dock(sample_viewer, "Train (sparse slices)")
    apply = dock(sample_viewer, "Apply and correct")
    bound = annotate.shortcuts + train.shortcuts + apply.shortcuts
    assert sorted(bound) == sorted(k for k, *_ in SHORTCUTS)
    # napari actions of the viewer: listed in Preferences > Shortcuts
    from napari.components import ViewerModel
    from napari.utils.action_manager import action_manager

    listed = action_manager._get_provider_actions(ViewerModel)
    assert {f"napari-weakseg:{m}" for _, _, m, _ in SHORTCUTS} <= set(listed)
    keymap = {str(k) for k in ViewerModel.class_keymap}
    assert {"Shift+D", "Shift+T", "Shift+K"} <= keymap
    text = annotate.show_shortcuts()
    assert "Shift+D: mark the shown slice done (Ctrl+Z undoes it)" in text
    # the bound key runs the dock's action
    ann = sample_viewer.layers["annotations"]
    sample_viewer.dims.current_step = (20, 0, 0)
    before = done_of(ann)[0]
    from napari.utils.key_bindings import KeyBinding

    action = ViewerModel.class_keymap[KeyBinding.from_str("Shift+D")]
    action(sample_viewer)
    assert done_of(ann)[0] == sorted({*before, 20})


def test_one_compact_dock_with_the_workflow_as_tabs(sample_viewer):
    v = sample_viewer
    v.window.resize(1280, 800)
    main = dock(v, "WeakSeg")
    tabs = [main.tabs.tabText(i) for i in range(main.tabs.count())]
    assert tabs == ["Annotate", "Train", "Apply", "Boxes", "CAM", "Pretrain"]
    assert main.docks["Train"].annotations.value.name == "annotations"
    # each tab scrolls, so the dock never needs more than the window
    assert main.minimumSizeHint().height() < 800
    for title, d in main.docks.items():
        for control in d:
            label = getattr(control, "label", "") or ""
            width = control.native.fontMetrics().horizontalAdvance(label)
            assert width < 200, (title, label)


@pytest.mark.slow
def test_a_first_time_user_session(sample_viewer, qtbot, tmp_path):
    """Defaults only, through the compact dock: paint, mark done, train,
    apply, keep a slice, undo, redo."""
    import numpy as np

    v = sample_viewer
    main = dock(v, "WeakSeg")
    annotate, train, apply = (
        main.docks[k] for k in ("Annotate", "Train", "Apply")
    )
    ann, t1 = v.layers["annotations"], v.layers["MNI152 T1"]
    assert annotate.annotations.value.name == ann.name
    assert train.annotations.value.name == ann.name
    assert train.image.value.name == t1.name
    assert apply.prediction.value is None
    # paint two more slices (class 1 and the background brush), mark done
    truth = np.asarray(v.layers["tissue (reference)"].data)
    for z in (20, 70):
        ann.data[z] = truth[z]  # the classes; the rest is left unpainted
        v.dims.current_step = (z, 0, 0)
        annotate.mark_current_slice_done()
    assert {20, 70} <= set(done_of(ann)[0])
    assert (ann.data[20][truth[20] == 0] == 255).all()
    # train a few steps with the defaults, then apply
    train.steps.value = 6
    train.out.value = str(tmp_path / "m.safetensors")
    with qtbot.waitSignal(train.start_training().finished, timeout=300_000):
        pass
    assert (tmp_path / "m.safetensors").is_file()
    with qtbot.waitSignal(apply.start_apply().finished, timeout=300_000):
        pass
    assert apply.prediction.value.name == "MNI152 T1 prediction"
    # keep slice 40 of the prediction, undo, redo
    before = ann.data.copy()
    v.dims.current_step = (40, 0, 0)
    apply.accept_current_slice()
    kept = ann.data.copy()
    assert not np.array_equal(kept[40], before[40])
    ann.undo()
    assert np.array_equal(ann.data, before)
    ann.redo()
    assert np.array_equal(ann.data, kept)


def test_a_pending_autosave_survives_closing_the_dock(sample_viewer, qtbot):
    """Strokes less than a second before the dock closes are still saved."""
    from napari_weakseg._qt.annotation_widget import store_for

    annotate = dock(sample_viewer, "Sparse slice annotation")
    ann = sample_viewer.layers["annotations"]
    image = sample_viewer.layers["MNI152 T1"]
    ann.data_setitem((np.array([30]), np.array([40]), np.array([40])), 2)
    annotate._schedule_autosave()
    assert annotate._autosave_timer.isActive()
    sample_viewer.window.remove_dock_widget("all")  # the dock is deleted
    with qtbot.waitSignal(annotate._autosave_timer.timeout, timeout=5000):
        pass
    annotate._writer.join()
    painted, _ = store_for(image).load()
    assert painted[30, 40, 40] == 2
