"""Two gloo processes on CPU train one model with DDP (torchrun)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_weakseg.core.train import ddp

SCRIPT = """
import json, os, sys
import numpy as np, torch
import napari_weakseg.core.train.engine as engine
import napari_weakseg.core.train.unet as training
from napari_weakseg import api
from napari_weakseg.core.data.phantom import make_phantom

out, rank = sys.argv[1], os.environ["RANK"]
step = engine.optimiser_step


def logged_step(opt, loss):  # the weights and loss of this rank
    step(opt, loss)
    flat = [p.detach().flatten() for g in opt.param_groups
            for p in g["params"]]
    np.save(f"{out}/weights{rank}.npy", torch.cat(flat).numpy())
    with open(f"{out}/loss{rank}.txt", "a") as f:
        f.write(f"{float(loss):.8f}\\n")


save = training.save_model


def logged_save(path, *a):
    with open(f"{out}/saves.txt", "a") as f:
        f.write(rank + "\\n")
    return save(path, *a)


engine.optimiser_step, training.save_model = logged_step, logged_save
image, truth = make_phantom((24, 24, 24))
sparse = np.full(truth.shape, 255, np.uint8)
sparse[12] = truth[12]
events = []
result = api.train(image, sparse, f"{out}/m.safetensors", steps=3,
                   base_filters=4, patch_size=[16, 16, 16], device="cpu",
                   callback=events.append)
print(rank, "world", events[0].world_size, "steps", result.steps)
"""


def torchrun(*args, timeout=300):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return subprocess.run(
        [*command, "--nproc-per-node=2", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_world_is_one_process_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert ddp.world() == ddp.World(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ddp.world() == ddp.World(3, 4, 1)
    assert not ddp.world().main and ddp.world().distributed


@pytest.mark.slow
def test_two_gloo_ranks_hold_the_same_weights(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = torchrun(str(script), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "0 world 2 steps 3" in done.stdout
    assert "1 world 2 steps 3" in done.stdout
    w0 = np.load(tmp_path / "weights0.npy")
    w1 = np.load(tmp_path / "weights1.npy")
    np.testing.assert_array_equal(w0, w1)  # gradients were averaged
    # each rank drew its own patches: different losses at the first step
    first = [
        (tmp_path / f"loss{r}.txt").read_text().split()[0] for r in (0, 1)
    ]
    assert first[0] != first[1]
    saves = (tmp_path / "saves.txt").read_text().split()
    assert saves and set(saves) == {"0"}  # only rank 0 writes
    assert sorted(p.name for p in tmp_path.glob("m*")) == [
        "m.last.safetensors",
        "m.safetensors",
    ]


DIES = """
import os, numpy as np
import napari_weakseg.core.train.engine as engine
from napari_weakseg import api
from napari_weakseg.core.data.phantom import make_phantom
import sys
step, done = engine.optimiser_step, [0]


def dies(opt, loss):  # rank 1 ends at its second step
    step(opt, loss)
    done[0] += 1
    if os.environ["RANK"] == "1" and done[0] == 2:
        os._exit(3)


engine.optimiser_step = dies
image, truth = make_phantom((24, 24, 24))
sparse = np.full(truth.shape, 255, np.uint8)
sparse[12] = truth[12]
try:
    api.train(image, sparse, sys.argv[1] + "/m.safetensors", steps=50,
              base_filters=4, patch_size=[16, 16, 16], device="cpu")
except Exception as exc:
    print("rank", os.environ["RANK"], exc, flush=True)
"""


@pytest.mark.slow
def test_a_rank_that_dies_is_one_sentence(tmp_path):
    script = tmp_path / "dies.py"
    script.write_text(textwrap.dedent(DIES))
    done = torchrun(str(script), str(tmp_path))
    assert done.returncode != 0
    assert (
        "rank 0 Training stopped: another of the 2 processes ended or "
        "stopped answering"
    ) in done.stdout


@pytest.mark.slow
def test_cli_nproc_per_node_launches_two_processes(files, tmp_path, capfd):
    from napari_weakseg.cli import main

    img, lbl = files
    model = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(img), "--labels", str(lbl)]
    argv += ["--out", str(model), "--steps", "2", "--base-filters", "4"]
    argv += ["--device", "cpu", "--nproc-per-node", "2"]
    assert main(argv) == 0
    assert model.is_file()
    out = capfd.readouterr().out
    assert out.count("world size 2") == 1  # rank 1 is quiet
    assert out.count("finished after 2 steps") == 1
