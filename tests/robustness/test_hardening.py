"""Second hostile-user round: the API guards files as the CLI does,
batches never lose a result, training that diverges writes nothing bad,
settings are range-checked everywhere, signals stop cleanly, kills leave
nothing behind, threads do not share a random state, NaN never trains.

Every test here failed on the code before this round (each names the
failure it pins down).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from corpus import run_main

from napari_weakseg import api, cli
from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.base.events import run
from napari_weakseg.core.data.volumes import Volume, read_volume, write_volume
from napari_weakseg.core.nn.models import CONFIG_KEY, read_model_file
from napari_weakseg.core.nn.networks import (
    ModelConfig,
    build_network,
    canonical_state,
)
from napari_weakseg.core.train.budget import Budget

TINY = {"patch_size": (16, 16, 16), "base_filters": 4, "device": "cpu"}


def unchanged(*paths):
    """The bytes of ``paths`` now, to compare after the call."""
    return {p: p.read_bytes() for p in paths}


# --- 1, 7: the API guards its outputs


def test_api_train_never_writes_over_its_own_labels(case):
    img, lbl, _ = case
    before = unchanged(img, lbl)
    with pytest.raises(WeaksegError, match=r"must end in \.safetensors"):
        api.train(img, lbl, lbl, steps=1, **TINY)
    assert unchanged(img, lbl) == before


def test_api_predict_never_writes_over_its_image(case):
    img, _, model = case
    before = unchanged(img)
    with pytest.raises(WeaksegError, match="also an input of this run"):
        api.predict(model, img, out=img, device="cpu")
    assert unchanged(img) == before


def test_the_last_checkpoint_of_out_is_never_an_input(case, tmp_path):
    """``--init X.last.safetensors --out X.safetensors`` (a resume) would
    replace the init model with the new run's checkpoint."""
    img, lbl, model = case
    init = tmp_path / "X.last.safetensors"
    model.rename(init)
    before = unchanged(init)
    with pytest.raises(WeaksegError, match=r"would write X\.last"):
        api.train(img, lbl, tmp_path / "X.safetensors", init=init, **TINY)
    assert unchanged(init) == before
    assert not (tmp_path / "X.safetensors").exists()


def test_cli_resume_is_refused_the_same_way(case, tmp_path, capsys):
    img, lbl, model = case
    init = tmp_path / "X.last.safetensors"
    model.rename(init)
    code, err = run_main(
        ["train", "--image", img, "--labels", lbl, "--init", init]
        + ["--out", tmp_path / "X.safetensors", "--steps", "1"],
        capsys,
    )
    assert code == 2 and len(err) == 1 and "also an input" in err[0]


@pytest.mark.parametrize(
    "call",
    [
        lambda img, lbl, m, t: api.boxes_to_masks(img, [], out=img),
        lambda img, lbl, m, t: api.class_activation_map(m, img, out=img),
        lambda img, lbl, m, t: api.pretrain([img], t / "img.last.x"),
        lambda img, lbl, m, t: api.crf(img, img, out=img),
        lambda img, lbl, m, t: api.segment_from_map(img, lbl, out=lbl),
    ],
    ids=["boxes", "cam", "pretrain-suffix", "crf", "segment_from_map"],
)
def test_every_api_writer_refuses_an_input_as_output(case, tmp_path, call):
    img, lbl, model = case
    before = unchanged(img, lbl, model)
    with pytest.raises(WeaksegError, match="also an input|safetensors"):
        call(img, lbl, model, tmp_path)
    assert unchanged(img, lbl, model) == before


# --- 2: batches


def test_a_batch_with_two_inputs_of_one_name_is_refused(case, tmp_path):
    img, _, model = case
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "scan.nii.gz").write_bytes(img.read_bytes())
    out = tmp_path / "out"
    with pytest.raises(WeaksegError, match="would both be written as"):
        api.predict_batch(
            model,
            [tmp_path / "a/scan.nii.gz", tmp_path / "b/scan.nii.gz"],
            out,
            device="cpu",
        )
    assert not out.exists()  # refused before any work


def test_cli_batch_with_two_inputs_of_one_name_exits_2(case, tmp_path, capsys):
    img, _, model = case
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "scan.nii.gz").write_bytes(img.read_bytes())
    code, err = run_main(
        ["predict", "--model", model, "--out", tmp_path / "out"]
        + ["--image", tmp_path / "a/scan.nii.gz"]
        + ["--image", tmp_path / "b/scan.nii.gz"],
        capsys,
    )
    assert code == 2 and len(err) == 1 and "both be written" in err[0]


def test_an_input_linked_into_the_output_folder_is_kept(case, tmp_path):
    """The real file lives in the output folder; the input is a link to
    it from elsewhere.  Its segmentation would replace it."""
    img, _, model = case
    out = tmp_path / "out"
    out.mkdir()
    real = out / "scan.nii.gz"
    real.write_bytes(img.read_bytes())
    (tmp_path / "in").mkdir()
    link = tmp_path / "in" / "scan.nii.gz"
    link.symlink_to(real)
    before = unchanged(real)
    with pytest.raises(WeaksegError, match="would replace the input"):
        api.predict_batch(model, [link], out, device="cpu")
    assert unchanged(real) == before


def test_labels_and_probabilities_of_a_batch_need_two_folders(case, tmp_path):
    img, _, model = case
    with pytest.raises(WeaksegError, match="give two folders"):
        api.predict_batch(
            model,
            [img],
            tmp_path / "o",
            probabilities_dir=tmp_path / "o",
            device="cpu",
        )


# --- 5: divergence


def test_an_infinite_learning_rate_is_refused_by_the_api(case, tmp_path):
    img, lbl, _ = case
    with pytest.raises(WeaksegError, match="learning_rate must be a number"):
        api.train(img, lbl, tmp_path / "m.safetensors", learning_rate=math.inf)


def test_training_that_diverges_keeps_the_previous_model(case, tmp_path):
    """The core has no range check: a huge rate turns the weights NaN
    after the first step; the run stops and writes no NaN weights."""
    from napari_weakseg.core.train import unet as training

    img, lbl, model = case
    out = tmp_path / "model.safetensors"
    model.rename(out)
    before = unchanged(out)
    config = training.TrainConfig(
        budget=Budget(steps=20, val_every=1, device=TINY["device"]),
        learning_rate=math.inf,
        patch_size=TINY["patch_size"],
        base_filters=TINY["base_filters"],
    )
    image, labels = read_volume(img).data, read_volume(lbl).data
    with pytest.raises(WeaksegError, match=r"diverged at step \d.*kept as"):
        run(training.iter_train([image], [labels], out, config))
    assert unchanged(out) == before
    assert not (tmp_path / "model.last.safetensors").exists()


def test_a_model_file_with_nan_weights_is_refused_at_load(tmp_path):
    from safetensors.torch import save_file

    cfg = ModelConfig(network="resunet", filters=[4, 8, 16])
    tensors = canonical_state(build_network(cfg))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    path = tmp_path / "nan.safetensors"
    save_file(tensors, path, metadata={CONFIG_KEY: cfg.to_json()})
    with pytest.raises(WeaksegError, match="NaN or infinite weights"):
        api.load_model(path, "cpu")


# --- 9, 11: settings in range, the same bounds for the API and the CLI


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ignore-label", "1000"], "ignore_label must be"),
        (["--ignore-label", "-1"], "ignore_label must be"),
        (["--batch-size", "1000000000"], "batch_size must be"),
        (["--patch-size", "1024", "1024", "1024"], "not a patch side"),
        (["--seed", "-1"], "seed must be"),
    ],
)
def test_cli_ranges_are_checked_at_parse_time(
    case, tmp_path, capsys, argv, message
):
    img, lbl, _ = case
    code, err = run_main(
        ["train", "--image", img, "--labels", lbl]
        + ["--out", tmp_path / "m.safetensors", *argv],
        capsys,
    )
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_a_patch_that_cannot_fit_in_memory_is_refused(case, tmp_path):
    img, lbl, _ = case
    with pytest.raises(WeaksegError, match=r"needs about [\d,.]+ GiB"):
        api.train(
            img,
            lbl,
            tmp_path / "m.safetensors",
            patch_size=(512, 512, 512),
            batch_size=1024,
            device="cpu",
        )
    assert list(tmp_path.glob("m*")) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": True}, "steps must be a whole number"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"base_filters": 0}, "base_filters must be"),
        ({"patch_size": (12, 16, 16)}, "multiple of 8"),
        ({"patch_size": (16, 16)}, "three sides"),
        ({"ignore_label": 1000}, "ignore_label must be"),
        ({"seed": -1}, "seed must be"),
        ({"minutes": float("nan")}, "minutes must be"),
    ],
)
def test_api_train_settings_are_one_sentence(case, tmp_path, kwargs, message):
    img, lbl, _ = case
    with pytest.raises(WeaksegError, match=message):
        api.train(img, lbl, tmp_path / "m.safetensors", **kwargs)


@pytest.mark.parametrize("overlap", [1.0, -1.0, float("nan")])
def test_api_overlap_is_checked(case, overlap):
    img, _, model = case
    with pytest.raises(WeaksegError, match="overlap must be"):
        api.predict(model, img, overlap=overlap)


@pytest.mark.parametrize(
    "image, message",
    [
        (["a.nii.gz", "b.nii.gz"], "list of 2 paths"),
        (np.zeros((0, 4, 4), np.float32), "is empty"),
        (np.zeros((8, 8, 8), np.complex64), "complex numbers"),
        ("text", "No file or folder"),
        (object(), "not an image of numbers"),
    ],
    ids=["list", "empty", "complex", "text", "object"],
)
def test_api_predict_wrong_images_are_one_sentence(case, image, message):
    _, _, model = case
    with pytest.raises(WeaksegError, match=message):
        api.predict(model, image, device="cpu")


def test_suggest_slice_with_an_unknown_axis_is_one_sentence(case):
    _, lbl, _ = case
    with pytest.raises(WeaksegError, match="Axis must be z, y, x"):
        api.suggest_slice(lbl, axis="w")
    assert api.suggest_slice(lbl, axis="x") == api.suggest_slice(lbl, axis=2)


def test_a_torch_tensor_is_one_volume(case, tmp_path):
    """It was split along its first axis into 16 2D images."""
    img, lbl, _ = case
    image = torch.from_numpy(np.asarray(read_volume(img).data))
    labels = torch.from_numpy(np.asarray(read_volume(lbl).data))
    fin = api.train(image, labels, tmp_path / "t.safetensors", steps=1, **TINY)
    assert fin.steps == 1
    seg, _ = api.predict(tmp_path / "t.safetensors", image, device="cpu")
    assert seg.shape == tuple(image.shape)


# --- 10: every field of a model file


@pytest.mark.parametrize(
    "field, value",
    [
        ("normalisation", {"method": "bogus", "lower": 0.5, "upper": 99.5}),
        ("normalisation", {"method": "percentile_zscore", "lower": 150}),
        ("normalisation", {"lower": 60.0, "upper": 40.0}),
        ("normalisation", {"lower": "x"}),
        ("patch_size", [1024, 1024, 1024]),
        ("patch_size", [512, 512, 512]),
    ],
)
def test_model_file_fields_are_all_checked(tmp_path, field, value):
    from napari_weakseg.core.nn.models import save_tensors

    cfg = ModelConfig(network="resunet", filters=[4, 8, 16])
    tensors = canonical_state(build_network(cfg))
    setattr(cfg, field, value)
    path = save_tensors(tmp_path / "m.safetensors", tensors, cfg)
    with pytest.raises(WeaksegError, match=f"field '{field}'"):
        read_model_file(path)


# --- 13: signals


def _command_that_signals(signum, cooperative):
    def command(args, stop):
        os.kill(os.getpid(), signum)  # handled before the next line
        assert stop.is_set()

    return command


@pytest.mark.parametrize(
    "signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
)
@pytest.mark.parametrize("cooperative", [True, False])
def test_a_signal_gives_the_same_documented_status(
    case, monkeypatch, capsys, signum, status, cooperative
):
    """A stopped run exits 128 + the signal's number in every command; a
    cooperative one (training) keeps going to its checkpoint."""
    _, lbl, _ = case
    previous = signal.getsignal(signum)
    monkeypatch.setitem(
        cli.COMMANDS, "suggest", _command_that_signals(signum, cooperative)
    )
    monkeypatch.setattr(
        cli.entry, "COOPERATIVE", {"suggest"} if cooperative else set()
    )
    code, err = run_main(["suggest", "--labels", lbl], capsys)
    assert code == status
    assert err and err[-1].startswith("weakseg: stop")
    assert signal.getsignal(signum) == previous


def _train_until_signal(case, tmp_path, command, signum):
    img, lbl, _ = case
    out = tmp_path / ("m.safetensors" if command == "train" else "o.nii.gz")
    argv = [sys.executable, "-m", "napari_weakseg.cli", command]
    argv += ["--image", str(img), "--out", str(out), "--device", "cpu"]
    if command == "train":
        argv += ["--labels", str(lbl), "--steps", "100000"]
    else:
        (tmp_path / "b.csv").write_text("z0,y0,x0,z1,y1,x1,class\n")
        with open(tmp_path / "b.csv", "a") as f:
            f.write("4,6,6,12,18,18,1\n")
        argv += ["--boxes", str(tmp_path / "b.csv")]
        argv += ["--steps-per-round", "100000"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in proc.stdout:  # a first step is done: there is work to keep
        if line.startswith("step "):
            proc.send_signal(signum)
            break
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err, out


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, signum, status",
    [
        ("train", signal.SIGTERM, 143),
        ("train", signal.SIGINT, 130),
        ("box2mask", signal.SIGTERM, 143),
    ],
)
def test_sigterm_stops_like_ctrl_c(case, tmp_path, command, signum, status):
    code, err, out = _train_until_signal(case, tmp_path, command, signum)
    assert code == status, err
    if command == "train":  # the steps done are kept
        assert read_model_file(out)[0]
    else:  # no half-made labels
        assert not out.exists()
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == []


# --- 14: kill -9 during a save -----------------------------------------------

_SAVER = """
import os, sys, torch
from napari_weakseg.core.nn import models
from napari_weakseg.core.nn.networks import ModelConfig
real = os.replace
def hang(src, dst):  # killed here: the temporary is complete, not renamed
    print("written", flush=True)
    sys.stdin.read()
os.replace = hang
tensors = {"w": torch.zeros(1_000_000)}
models.save_tensors(sys.argv[1], tensors, ModelConfig())
"""


def test_kill_9_during_a_save_leaves_one_named_temporary(tmp_path):
    target = tmp_path / "model.safetensors"
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(target)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "written"
        proc.kill()
        proc.wait()
    # each new save removed the temporary of the one killed before it;
    # nothing comes from the safetensors library itself
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".model.safetensors."), left
    from napari_weakseg.core.base.files import temporaries_of
    from napari_weakseg.core.nn.models import save_tensors

    save_tensors(target, {"w": torch.ones(3)}, ModelConfig())
    assert temporaries_of(target) == []
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_a_volume_write_removes_stale_temporaries(tmp_path):
    target = tmp_path / "seg.nii.gz"
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(proc.stdout)  # a process that is gone
    stale = tmp_path / f".seg.nii.gz.{dead}-0123abcd.tmp.nii.gz"
    stale.write_bytes(b"half")
    mine = tmp_path / f".seg.nii.gz.{os.getpid()}-0123abcd.tmp.nii.gz"
    mine.write_bytes(b"in use")  # a live writer's temporary stays
    write_volume(target, Volume(np.zeros((4, 4, 4), np.uint8)))
    assert not stale.exists() and mine.exists()


# --- 15: threads


def test_two_threads_with_one_seed_train_the_solo_weights(case, tmp_path):
    img, lbl, _ = case
    kwargs = dict(steps=3, seed=5, **TINY)
    api.train(img, lbl, tmp_path / "solo.safetensors", **kwargs)
    threads = [
        threading.Thread(
            target=api.train,
            args=(img, lbl, tmp_path / f"t{k}.safetensors"),
            kwargs=kwargs,
        )
        for k in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    solo = read_model_file(tmp_path / "solo.safetensors")[0]
    for k in range(2):
        other = read_model_file(tmp_path / f"t{k}.safetensors")[0]
        assert all(torch.equal(solo[n], other[n]) for n in solo)


# --- 16: NaN never trains, on any path


@pytest.fixture
def nan_case(case, tmp_path):
    img, lbl, model = case
    data = np.asarray(read_volume(img).data, np.float32).copy()
    data[3, 4, 5] = np.nan
    bad = write_volume(tmp_path / "nan.nrrd", Volume(data))
    return bad, lbl, model


@pytest.mark.parametrize(
    "call",
    [
        lambda im, lbl, m, t: api.train(im, lbl, t / "x.safetensors"),
        lambda im, lbl, m, t: api.predict(m, im),
        lambda im, lbl, m, t: api.boxes_to_masks(im, []),
        lambda im, lbl, m, t: api.class_activation_map(m, im),
        lambda im, lbl, m, t: api.segment_from_map(im, lbl),
    ],
    ids=["train", "predict", "boxes", "cam", "segment_from_map"],
)
def test_nan_is_refused_on_every_path(nan_case, tmp_path, call):
    img, lbl, model = nan_case
    with pytest.raises(WeaksegError, match="1 NaN or infinite voxels"):
        call(img, lbl, model, tmp_path)
    assert not (tmp_path / "x.safetensors").exists()
    assert not (tmp_path / "e.safetensors").exists()


def test_a_nifti_with_a_nan_voxel_is_refused(case, tmp_path):
    """ITK's NIfTI reader turns NaN into 0: the file must be checked."""
    img, lbl, _ = case
    data = np.asarray(read_volume(img).data, np.float32).copy()
    data[3, 4, 5] = np.nan
    bad = write_volume(tmp_path / "nan.nii.gz", Volume(data))
    with pytest.raises(WeaksegError, match="NaN or infinite"):
        api.train(bad, lbl, tmp_path / "x.safetensors", steps=1, **TINY)
    assert not (tmp_path / "x.safetensors").exists()


def test_every_command_that_can_stop_at_a_step_does_so_at_a_signal():
    """Commands whose API function takes ``stop`` finish their step and
    keep their checkpoint; the others are interrupted at once."""
    import inspect

    api_of = {
        "train": api.train,
        "predict": api.predict,
        "box2mask": api.boxes_to_masks,
        "train-classifier": api.train_classifier,
        "cam": api.class_activation_map,
        "cam2seg": api.cam_to_segmentation,
        "pretrain": api.pretrain,
        "crf": api.crf,
        "suggest": api.suggest_slice,
        "evaluate": api.evaluate,
        "export": api.export_model,
        "info": api.model_info,
    }
    assert set(api_of) == set(cli.COMMANDS)
    stoppable = {
        name
        for name, fn in api_of.items()
        if "stop" in inspect.signature(fn).parameters
    }
    assert stoppable == cli.COOPERATIVE


def test_a_pool_skips_a_nan_volume_saying_why(nan_case, tmp_path):
    """Pretraining streams a pool: a volume with NaN is skipped with its
    reason, and a pool of nothing else is refused."""
    img, _, _ = nan_case
    with pytest.raises(WeaksegError) as refused:
        api.pretrain([img], tmp_path / "e.safetensors")
    assert str(refused.value).startswith(
        "No volume of the pool could be read (1 skipped; the first: "
        "nan.nrrd is skipped: "
    )
    assert "NaN or infinite voxels" in str(refused.value)
    assert not (tmp_path / "e.safetensors").exists()
