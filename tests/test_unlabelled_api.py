"""Unlabelled pools through the API and the CLI (issue 29)."""

import numpy as np
import pytest

from napari_weakseg import api
from napari_weakseg.cli import main
from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.base.events import Notice, Progress, Skipped, Started
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.data.pool import VolumePool
from napari_weakseg.core.data.volumes import Volume, write_volume
from napari_weakseg.core.train import unet as training
from napari_weakseg.core.train.budget import Budget

SMALL = {"steps": 2, "base_filters": 4, "device": "cpu"}


@pytest.fixture
def pool(tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    for k in range(3):
        image, _ = make_phantom((16, 24, 24), seed=k)
        write_volume(folder / f"u{k}.nii.gz", Volume(image))
    (folder / "broken.nii.gz").write_bytes(b"garbage")
    return folder


def test_train_with_unlabelled_reaches_the_core(files, pool, monkeypatch):
    img, lbl = files
    seen = {}
    real = training.iter_train

    def spy(*a, **kw):
        seen.update(kw)
        return (yield from real(*a, **kw))

    monkeypatch.setattr(training, "iter_train", spy)
    events = []
    fin = api.train(
        img,
        lbl,
        files[0].parent / "m.safetensors",
        patch_size=(16, 16, 16),
        unlabelled=[pool],
        semi="meanteacher",
        callback=events.append,
        **SMALL,
    )
    assert fin.steps == 2
    assert seen["unlabelled"] == [pool]
    assert seen["semi"].method == "meanteacher"
    skipped = [e for e in events if isinstance(e, Skipped)]
    assert [e.path.endswith("broken.nii.gz") for e in skipped] == [True]
    # no pool: no term (the plain run is unchanged)
    api.train(
        img,
        lbl,
        files[0].parent / "m2.safetensors",
        patch_size=(16, 16, 16),
        **SMALL,
    )
    assert seen["unlabelled"] is None and seen["semi"] is None


def test_default_pool_method_self_trains_on_pseudo_labels(
    files, pool, monkeypatch
):
    """Two rounds: the labels alone, then the labels plus the teacher's
    confident labels of every readable pool volume, from the teacher's
    weights."""
    img, lbl = files
    calls = []
    real = training.iter_train

    def spy(images, labels, out, config, **kw):
        calls.append((len(images), kw["init"]))
        return (yield from real(images, labels, out, config, **kw))

    monkeypatch.setattr(training, "iter_train", spy)
    out = files[0].parent / "st.safetensors"
    events = []
    fin = api.train(
        img,
        lbl,
        out,
        patch_size=(16, 16, 16),
        unlabelled=[pool],
        callback=events.append,
        **SMALL,
    )
    assert fin.steps == 2
    assert calls == [(1, None), (4, out)]
    assert sum(isinstance(e, Started) for e in events) == 2
    progress = [(e.done, e.total) for e in events if isinstance(e, Progress)]
    assert progress == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    skipped = [e for e in events if isinstance(e, Skipped)]
    assert [e.path.endswith("broken.nii.gz") for e in skipped] == [True]


def test_pseudo_labels_are_the_confident_prediction(files, tmp_path):
    from napari_weakseg.core.base.device import resolve_device
    from napari_weakseg.core.methods.selftrain import pseudo_label
    from napari_weakseg.core.nn.models import load_model

    img, lbl = files
    model = tmp_path / "t.safetensors"
    api.train(img, lbl, model, patch_size=(16, 16, 16), **SMALL)
    image = np.asarray(api.read_volume(img).data)
    labels, probs = api.predict(model, image, device="cpu")
    net, mconf = load_model(model, "cpu")
    out, share = pseudo_label(
        net, mconf, image, resolve_device("cpu"), 0.6, 255
    )
    keep = probs.max(0) >= 0.6
    np.testing.assert_array_equal(out, np.where(keep, labels, 255))
    assert share == pytest.approx(keep.mean())


def test_pretrain_streams_a_folder_and_counts_skipped(pool, tmp_path):
    events = []
    fin = api.pretrain(
        [pool],
        tmp_path / "w.safetensors",
        tasks="masked",
        patch=16,
        cache=2,
        callback=events.append,
        **SMALL,
    )
    assert fin.steps == 2
    assert sum(isinstance(e, Skipped) for e in events) == 1
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert notes == ["1 of 4 pool volumes were skipped as unreadable."]


def test_pool_cache_is_bounded_during_pretraining(pool, tmp_path):
    from napari_weakseg.core.base.events import run
    from napari_weakseg.core.methods.pretraining import (
        PretrainConfig,
        iter_pretrain,
    )

    vp = VolumePool([pool], (16, 16, 16), cache=1, swap_every=1)
    cfg = PretrainConfig(
        budget=Budget(steps=4, device="cpu"),
        tasks=("masked",),
        base_filters=4,
        patch=16,
    )
    run(iter_pretrain(vp, tmp_path / "w.safetensors", cfg))
    assert len(vp.cache) == 1 and vp.reads >= 3


def test_bad_pools_are_one_sentence(files, tmp_path):
    img, lbl = files
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeaksegError, match="holds no volume file"):
        api.pretrain([empty], tmp_path / "w.safetensors", **SMALL)
    with pytest.raises(WeaksegError, match="holds no volume file"):
        api.train(
            img, lbl, tmp_path / "m.safetensors", unlabelled=empty, **SMALL
        )
    flat = tmp_path / "flat"
    flat.mkdir()
    write_volume(flat / "a.nii.gz", Volume(np.ones((1, 40, 40), np.float32)))
    with pytest.raises(WeaksegError, match="2D image"):
        api.pretrain([flat], tmp_path / "w.safetensors", **SMALL)
    with pytest.raises(WeaksegError, match="channels"):
        api.train(
            img,
            lbl,
            tmp_path / "m.safetensors",
            unlabelled=[np.zeros((3, 16, 16, 16), np.float32)],
            **SMALL,
        )


def test_cli_unlabelled_reaches_the_api(files, pool, monkeypatch, capsys):
    img, lbl = files
    seen = {}

    def fake(*a, **kw):
        seen.update(kw)
        raise WeaksegError("stop here.")

    import inspect

    fake.__signature__ = inspect.signature(api.train)  # the CLI reads it

    monkeypatch.setattr(api, "train", fake)
    base = [
        "train",
        "--image",
        str(img),
        "--labels",
        str(lbl),
        "--out",
        str(img.parent / "m.safetensors"),
    ]
    more = ["--unlabelled", str(pool), "--unlabelled", "x/*.nii.gz"]
    assert main(base + more + ["--semi", "pseudo"]) == 2
    assert seen["unlabelled"] == [str(pool), "x/*.nii.gz"]
    assert seen["semi"] == "pseudo"
    assert main(base) == 2
    assert seen["unlabelled"] is None and seen["semi"] is None


def test_cli_empty_pool_folder_exits_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(
        [
            "pretrain",
            "--image",
            str(empty),
            "--out",
            str(tmp_path / "w.safetensors"),
            "--steps",
            "1",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no volume file" in err[0]


def test_started_reports_transfer_from_a_masked_pool_model(
    files, pool, tmp_path
):
    image, truth = make_phantom((16, 24, 24))
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[8] = truth[8]
    img = write_volume(tmp_path / "i.nii.gz", Volume(image))
    lbl = write_volume(tmp_path / "l.nii.gz", Volume(sparse))
    w = api.pretrain(
        [pool], tmp_path / "w.safetensors", tasks="masked", patch=16, **SMALL
    )
    events = []
    api.train(
        img,
        lbl,
        tmp_path / "m.safetensors",
        init=w.best_path,
        patch_size=(16, 16, 16),
        callback=events.append,
        **SMALL,
    )
    started = [e for e in events if isinstance(e, Started)][0]
    assert started.transferred > 40  # encoder and decoder
