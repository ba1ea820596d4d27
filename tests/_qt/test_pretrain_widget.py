"""Pretrain dock: layers -> encoder file -> offered to the Train dock."""

from napari_weakseg._qt.pretrain_widget import PretrainWidget
from napari_weakseg._qt.train_widget import TrainWidget
from napari_weakseg.core.base import defaults
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.data.volumes import Volume, write_volume
from napari_weakseg.core.nn.models import read_model_file


def test_pretrain_then_train_dock_offers_the_encoder(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    image, _ = make_phantom((24, 24, 24))
    viewer.add_image(image, name="a")
    viewer.add_image(image[::-1].copy(), name="b")
    w = PretrainWidget(viewer)
    w.reset_choices()
    assert list(w.images.choices) == ["a", "b"]
    # the default task set (defaults.PRETRAIN_TASKS)
    boxes = {
        t: getattr(w, t).value
        for t in ("rotation", "contrastive", "inpainting", "masked")
    }
    assert boxes == {t: t in defaults.PRETRAIN_TASKS for t in boxes}
    assert w.pool_folder() is None  # the layers are used
    w.images.value = ["a", "b"]
    w.rotation.value = True  # plots its accuracy beside the loss
    w.steps.value, w.patch.value, w.base_filters.value = 3, 16, 4
    w.out.value = str(tmp_path / "enc.safetensors")
    train = TrainWidget(viewer)
    with qtbot.waitSignal(w.start_pretraining().finished, timeout=300_000):
        pass
    assert read_model_file(tmp_path / "enc.safetensors")[1].kind == "encoder"
    assert str(train.init.value) == str(tmp_path / "enc.safetensors")
    assert w.status.value.startswith("encoder: ")
    # loss per step; rotation accuracy per step (no contrastive curve)
    assert len(w.plot.steps) == 3 and len(w.plot.val_steps) == 3


def test_pretrain_dock_streams_a_folder(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    folder = tmp_path / "pool"
    folder.mkdir()
    for k in range(3):
        image, _ = make_phantom((20, 20, 20), seed=k)
        write_volume(folder / f"u{k}.nii.gz", Volume(image))
    (folder / "bad.nii.gz").write_bytes(b"garbage")
    w = PretrainWidget(viewer)
    w.folder.value = str(folder)
    assert w.pool_folder() == folder
    w.rotation.value = w.contrastive.value = w.inpainting.value = False
    w.masked.value = True
    w.steps.value, w.patch.value, w.base_filters.value = 2, 16, 4
    w.out.value = str(tmp_path / "enc.safetensors")
    with qtbot.waitSignal(w.start_pretraining().finished, timeout=300_000):
        pass
    assert w.skipped == 1
    assert w.status.value.startswith("encoder: ")
    assert read_model_file(tmp_path / "enc.safetensors")[1].kind == "encoder"
