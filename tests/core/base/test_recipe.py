"""The default training recipe on a real case must not regress.

One real hippocampus MRI (``../shared/data``, beside the checkout in CI)
with one to two annotated slices per axis trains for a small fixed budget
with the defaults; the model must segment an unseen case above a floor
measured with margin (see the README's recipe section).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_weakseg.core.base.events import run
from napari_weakseg.core.base.metrics import dice_per_class
from napari_weakseg.core.data.sparse import evenly_spaced_slices
from napari_weakseg.core.data.volumes import read_volume
from napari_weakseg.core.nn.models import load_model
from napari_weakseg.core.predict.sliding import iter_predict
from napari_weakseg.core.train.budget import Budget
from napari_weakseg.core.train.unet import TrainConfig, iter_train

DATA = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "hippocampus_mri"
    / "labelled"
)
STEPS = 300
#: measured (mean of head and body Dice, before session 9's lower
#: cross-entropy weight, which raised every real-data sparse row) with the
#: current sampler (a labelled voxel anywhere in its patch, a quarter-patch
#: margin):
#: 0.649 / 0.675 / 0.723 over seeds 0-2 at 300 steps.  At 150 steps this
#: one-volume case learns more slowly than with the previous sampler
#: (0.568 / 0.484 / 0.634 vs 0.702 / 0.717 / 0.717; without the margin
#: 0.736 / 0.713 / 0.703): the trade-off for multi-volume sparse slices,
#: where the margin is what makes one slice per axis work (README).
FLOOR = 0.60

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATA.exists(), reason="../shared/data is absent"),
]


def case(name: str) -> tuple[np.ndarray, np.ndarray]:
    img = read_volume(DATA / "images" / f"hippocampus_{name}.nii.gz").data
    lab = read_volume(DATA / "labels" / f"hippocampus_{name}.nii.gz").data
    return np.asarray(img, np.float32), np.asarray(lab).astype(np.uint8)


def sparse(truth: np.ndarray, per_axis: int = 2) -> np.ndarray:
    out = np.full(truth.shape, 255, np.uint8)
    for axis, n in enumerate(truth.shape):
        for i in evenly_spaced_slices(n, per_axis):
            idx = [slice(None)] * 3
            idx[axis] = i
            out[tuple(idx)] = truth[tuple(idx)]
    return out


def test_default_recipe_segments_an_unseen_hippocampus(tmp_path):
    image, truth = case("001")
    cfg = TrainConfig(budget=Budget(steps=STEPS, seed=0, device="cpu"))
    fin = run(
        iter_train([image], [sparse(truth)], tmp_path / "m.safetensors", cfg)
    )
    assert fin.steps == STEPS and not fin.stopped
    model, config = load_model(tmp_path / "m.safetensors")
    assert config.network == "resunet"
    test_image, test_truth = case("003")
    pred, _ = run(
        iter_predict(
            model,
            test_image,
            config.patch_size,
            config.normalisation,
            __import__("torch").device("cpu"),
        )
    )
    dice = dice_per_class(pred, test_truth, 3)
    assert float(np.mean(dice)) >= FLOOR, dice
