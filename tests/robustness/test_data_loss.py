"""Nothing the user had is lost or replaced: outputs, models, autosaves."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys

import numpy as np
import pytest
from corpus import run_main

from napari_weakseg.core.data.sparse import AnnotationStore
from napari_weakseg.core.data.volumes import Volume, write_volume
from napari_weakseg.core.nn.models import save_model
from napari_weakseg.core.nn.networks import ModelConfig, build_network


def test_predict_into_an_existing_folder_keeps_it(case, tmp_path, capsys):
    img, _, model = case
    folder = tmp_path / "results.nii.gz"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    code, err = run_main(
        ["predict", "--model", model, "--image", img, "--out", folder], capsys
    )
    assert code == 2 and len(err) == 1 and "existing folder" in err[0]
    assert (folder / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize(
    "out, why",
    [("lbl.nii.gz", "must end in .safetensors"), ("img.safetensors", None)],
)
def test_train_never_writes_over_an_input(case, tmp_path, capsys, out, why):
    img, lbl, _ = case
    before = lbl.read_bytes()
    target = tmp_path / out
    if why is None:  # an input that is itself named like a model
        target = tmp_path / "init.safetensors"
        case[2].rename(target)
        argv = [
            "train",
            "--image",
            img,
            "--labels",
            lbl,
            "--init",
            target,
            "--out",
            target,
            "--steps",
            "1",
        ]
        why = "also an input"
    else:
        argv = ["train", "--image", img, "--labels", lbl, "--out", target]
    code, err = run_main(argv, capsys)
    assert code == 2 and len(err) == 1 and why in err[0], err
    assert lbl.read_bytes() == before


def test_two_outputs_cannot_share_a_file(case, tmp_path, capsys):
    img, _, model = case
    out = tmp_path / "same.nii.gz"
    code, err = run_main(
        [
            "predict",
            "--model",
            model,
            "--image",
            img,
            "--out",
            out,
            "--probabilities",
            out,
        ],
        capsys,
    )
    assert code == 2 and "same file" in err[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--steps", "-3"],
        ["--steps", "0"],
        ["--minutes", "-1"],
        ["--batch-size", "0"],
        ["--base-filters", "0"],
        ["--learning-rate", "nan"],
        ["--patch-size", "20", "20", "-8"],
        ["--patch-size", "12", "16", "16"],
        ["--steps", "two"],
    ],
)
def test_train_arguments_are_checked_at_parse_time(
    case, capsys, args, tmp_path
):
    img, lbl, _ = case
    code, err = run_main(
        [
            "train",
            "--image",
            img,
            "--labels",
            lbl,
            "--out",
            tmp_path / "m.safetensors",
            *args,
        ],
        capsys,
    )
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("weakseg train: error: argument"), err
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("overlap", ["1", "-0.5", "nan"])
def test_predict_overlap_is_checked(case, capsys, overlap, tmp_path):
    img, _, model = case
    code, err = run_main(
        [
            "predict",
            "--model",
            model,
            "--image",
            img,
            "--out",
            tmp_path / "o.nii.gz",
            "--overlap",
            overlap,
        ],
        capsys,
    )
    assert code == 2 and len(err) == 1 and "--overlap" in err[0]


def test_predict_with_a_classifier_model_is_one_sentence(
    case, tmp_path, capsys
):
    img, _, _ = case
    cfg = ModelConfig(
        kind="classifier",
        num_classes=2,
        filters=[4, 8, 16],
        patch_size=[16, 16, 16],
    )
    clf = save_model(tmp_path / "c.safetensors", build_network(cfg), cfg)
    code, err = run_main(
        [
            "predict",
            "--model",
            clf,
            "--image",
            img,
            "--out",
            tmp_path / "o.nii.gz",
        ],
        capsys,
    )
    assert code == 2 and "classifier model" in err[0]


@pytest.mark.slow
def test_ctrl_c_at_the_start_keeps_the_old_model(case, tmp_path):
    img, lbl, model = case
    out = tmp_path / "model.safetensors"
    model.rename(out)
    before = out.read_bytes()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "napari_weakseg.cli",
            "train",
            "--image",
            str(img),
            "--labels",
            str(lbl),
            "--out",
            str(out),
            "--steps",
            "100000",
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:  # the handler is in place once training starts
        if line.startswith("training on"):
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_run_that_ends_before_its_first_step_writes_nothing(case, tmp_path):
    import threading

    from napari_weakseg import api

    img, lbl, _ = case
    stop = threading.Event()
    stop.set()
    fin = api.train(
        img,
        lbl,
        tmp_path / "new.safetensors",
        steps=5,
        device="cpu",
        stop=stop,
    )
    assert fin.steps == 0
    assert not (tmp_path / "new.safetensors").exists()
    assert not (tmp_path / "new.last.safetensors").exists()


def test_model_files_get_normal_permissions(case):
    assert case[2].stat().st_mode & 0o044 == 0o044


def _save_many(folder, seed, n):
    store = AnnotationStore(folder, "img")
    rng = np.random.default_rng(seed)
    for _ in range(n):
        store.save(rng.integers(0, 3, (8, 8, 8)), {0: [seed]})


def test_two_processes_autosaving_one_image(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_save_many, args=(tmp_path, s, 60)) for s in (1, 2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    painted, done = AnnotationStore(tmp_path, "img").load()
    assert painted.shape == (8, 8, 8) and done[0] in ([1], [2])
    leftovers = [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def test_a_damaged_autosave_falls_back_to_the_previous(tmp_path):
    store = AnnotationStore(tmp_path, "img")
    first = np.ones((4, 4, 4), np.uint8)
    store.save(first, {0: [1]})
    store.save(first * 2, {0: [2]})
    store.path.write_bytes(store.path.read_bytes()[:50])
    painted, done = store.load()
    assert np.array_equal(painted, first) and done[0] == [1]
    assert "cannot be read" in store.warning
    assert "restored the previous one" in store.warning
    store.previous.write_bytes(b"junk")
    assert store.load() is None
    assert store.warning.endswith("no annotations were restored.")


def test_a_folder_named_like_a_zarr_store_is_not_replaced(tmp_path):
    from napari_weakseg.core.base.errors import WeaksegError

    folder = tmp_path / "results.zarr"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    with pytest.raises(WeaksegError, match="existing folder"):
        write_volume(folder, Volume(np.zeros((4, 4, 4), np.uint8)))
    assert (folder / "keep.txt").read_text() == "precious"
    store = tmp_path / "store.zarr"  # a real store is replaced whole
    write_volume(store, Volume(np.zeros((4, 4, 4), np.uint8)))
    write_volume(store, Volume(np.ones((4, 4, 4), np.uint8)))
    from napari_weakseg.core.data.volumes import read_volume

    assert int(read_volume(store).data.max()) == 1
