"""The crop classifier in core: crops files, cutting, and training on the
engine (accuracy as its metric, its budget, its OOM sentence)."""

import numpy as np
import pytest
import torch

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.base.events import Finished, Validation, run
from napari_weakseg.core.methods import classifier
from napari_weakseg.core.methods.classifier import (
    ClassifierConfig,
    Crop,
    cut,
    iter_train_classifier,
    read_crops,
)
from napari_weakseg.core.nn.models import read_model_file
from napari_weakseg.core.train import engine
from napari_weakseg.core.train.budget import Budget

HEADER = "image,z0,y0,x0,z1,y1,x1,class\n"


def test_read_crops_resolves_relative_images_and_whole_images(tmp_path):
    csv = tmp_path / "crops.csv"
    csv.write_text(HEADER + "a.nii.gz,1,2,3,4,5,6,1\n/abs/b.nrrd,,,,,,,0\n")
    assert read_crops(csv) == [
        Crop(str(tmp_path / "a.nii.gz"), (1, 2, 3, 4, 5, 6), 1),
        Crop("/abs/b.nrrd", None, 0),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image,z0,class\na,1,1\n", "lacks the column 'y0'"),
        (HEADER + "a,1,2,3,4,5,x,1\n", "Line 2 of crops.csv has a box"),
        (HEADER + "a,,,,,,,300\n", "has class 300; classes are 0..254"),
        (HEADER, "holds no crops"),
    ],
)
def test_bad_crops_files_are_one_sentence(tmp_path, text, message):
    csv = tmp_path / "crops.csv"
    csv.write_text(text)
    with pytest.raises(WeaksegError, match=message):
        read_crops(csv)


def test_cut_takes_the_box_and_refuses_boxes_outside():
    image = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    assert cut(image, None) is image
    np.testing.assert_array_equal(
        cut(image, (1, 2, 3, 3, 4, 6)), image[1:3, 2:4, 3:6]
    )
    for box in [(0, 0, 0, 5, 1, 1), (2, 0, 0, 2, 1, 1), (-1, 0, 0, 1, 1, 1)]:
        with pytest.raises(WeaksegError, match="empty or outside"):
            cut(image, box)


def _crops(n=6, size=12, seed=0):
    """Class 1: a bright cube in the middle; class 0: noise alone."""
    rng = np.random.default_rng(seed)
    crops, classes = [], []
    for i in range(n):
        c = rng.standard_normal((size,) * 3).astype(np.float32) * 0.3
        if i % 2:
            c[3:9, 3:9, 3:9] += 3.0
        crops.append(c)
        classes.append(i % 2)
    return crops, classes


def test_classifier_learns_and_reports_accuracy_by_name(tmp_path):
    crops, classes = _crops()
    out = tmp_path / "clf.safetensors"
    # the classifier steps at a tenth of this rate: 3e-3
    cfg = ClassifierConfig(
        budget=Budget(steps=30, val_every=10, device="cpu"),
        base_filters=4,
        learning_rate=3e-2,
    )
    events = []
    fin = run(iter_train_classifier(crops, classes, out, cfg), events.append)
    vals = [e for e in events if isinstance(e, Validation)]
    assert [v.step for v in vals] == [10, 20, 30]
    assert {v.metric for v in vals} == {"accuracy"}
    assert isinstance(fin, Finished) and fin.metric == "accuracy"
    assert fin.best == 1.0  # the bright cube is easy
    assert fin.summary() == "best validation accuracy 1.000"
    _, config = read_model_file(out)
    assert config.kind == "classifier" and config.num_classes == 2


def test_classifier_runs_on_the_engine_with_its_budget(tmp_path, monkeypatch):
    crops, classes = _crops()
    seen = {}
    real = engine.run

    def spy(task, plan, *args, **kwargs):
        seen["task"], seen["plan"] = task, plan
        return (yield from real(task, plan, *args, **kwargs))

    monkeypatch.setattr(engine, "run", spy)
    cfg = ClassifierConfig(
        budget=Budget(steps=2, minutes=0.5, device="cpu"), base_filters=4
    )
    run(iter_train_classifier(crops, classes, tmp_path / "c.safetensors", cfg))
    assert seen["plan"].minutes == 0.5 and seen["plan"].steps == 2
    assert seen["task"].metric == engine.ACCURACY


def test_classifier_out_of_memory_is_one_sentence(tmp_path, monkeypatch):
    crops, classes = _crops()

    def oom(self):
        raise torch.OutOfMemoryError("simulated")

    monkeypatch.setattr(classifier.ClassifierTask, "loss", oom)
    cfg = ClassifierConfig(
        budget=Budget(steps=2, device="cpu"), base_filters=4, batch_size=3
    )
    with pytest.raises(WeaksegError, match=r"Out of memory with patch "):
        run(
            iter_train_classifier(
                crops, classes, tmp_path / "c.safetensors", cfg
            )
        )


def test_one_class_or_unpaired_classes_are_refused(tmp_path):
    crops, _ = _crops(2)
    with pytest.raises(WeaksegError, match="Every crop has class 1"):
        run(iter_train_classifier(crops, [1, 1], tmp_path / "c.safetensors"))
    with pytest.raises(WeaksegError, match="Give one class per crop"):
        run(iter_train_classifier(crops, [0], tmp_path / "c.safetensors"))
