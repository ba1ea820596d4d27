"""Scoring a result: api.evaluate and ``weakseg evaluate``, against
values worked out by hand on small arrays."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from napari_weakseg import api
from napari_weakseg.cli import main
from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.data.geometry import Geometry
from napari_weakseg.core.data.volumes import Volume, write_volume


def cubes():
    """Truth: a 4^3 cube; prediction: the same cube moved 1 voxel in x.
    Overlap 4*4*3 = 48 of 64 + 64: Dice 0.75, IoU 48/80 = 0.6; every
    surface voxel of one is at most 1 voxel from the other: HD95 = 1."""
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[2:6, 2:6, 2:6] = 1
    pred = np.zeros_like(truth)
    pred[2:6, 2:6, 3:7] = 1
    return pred, truth


def test_dice_iou_hd95_and_volume_by_hand():
    pred, truth = cubes()
    (row,) = api.evaluate(pred, truth)
    assert (row.label, row.dice, row.volume_pred, row.volume_truth) == (
        1,
        0.75,
        64.0,
        64.0,
    )
    assert row.iou == pytest.approx(0.6)
    assert row.hd95 == pytest.approx(1.0)


def test_spacing_scales_distances_and_volumes(tmp_path):
    pred, truth = cubes()
    g = Geometry(spacing=(1.0, 1.0, 2.5))  # x voxels 2.5 mm wide
    p = write_volume(tmp_path / "p.nii.gz", Volume(pred, g))
    t = write_volume(tmp_path / "t.nii.gz", Volume(truth, g))
    (row,) = api.evaluate(p, t)
    assert row.hd95 == pytest.approx(2.5)
    assert row.volume_truth == pytest.approx(64 * 2.5)
    assert row.case == "p.nii.gz"


def test_ignored_reference_voxels_count_for_neither():
    pred, truth = cubes()
    truth = truth.copy()
    truth[:, :, 6:] = 255  # the prediction's extra column is unlabelled
    (row,) = api.evaluate(pred, truth, ignore_label=255)
    assert row.dice == pytest.approx(2 * 48 / (48 + 64))
    pred2 = pred.copy()
    pred2[:, :, 6] = 0  # the same as cutting it by hand
    (same,) = api.evaluate(pred2, truth, ignore_label=255)
    assert same.dice == row.dice


def test_a_class_missing_from_the_prediction_scores_zero():
    pred, truth = cubes()
    truth = truth.copy()
    truth[7:9, 7:9, 7:9] = 2
    rows = api.evaluate(pred, truth)
    assert [r.label for r in rows] == [1, 2]
    assert rows[1].dice == 0.0 and math.isnan(rows[1].hd95)


def test_two_folders_pair_by_name_and_write_csv(tmp_path, capsys):
    pred, truth = cubes()
    for folder in ("pred", "truth"):
        (tmp_path / folder).mkdir()
    for name in ("a.nii.gz", "b.nii.gz"):
        write_volume(tmp_path / "pred" / name, Volume(pred))
        write_volume(tmp_path / "truth" / name, Volume(truth))
    table = tmp_path / "scores.csv"
    code = main(
        ["evaluate", "--pred", str(tmp_path / "pred")]
        + ["--truth", str(tmp_path / "truth"), "--csv", str(table)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "mean of 2" in out and "0.7500" in out
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert [(r["case"], float(r["dice"])) for r in rows] == [
        ("a.nii.gz", 0.75),
        ("b.nii.gz", 0.75),
    ]


def test_bad_evaluations_are_one_sentence(tmp_path, capsys):
    pred, truth = cubes()
    with pytest.raises(WeaksegError, match="same voxel grid"):
        api.evaluate(pred[:5], truth)
    with pytest.raises(WeaksegError, match="one reference per prediction"):
        api.evaluate([pred, pred], [truth])
    with pytest.raises(WeaksegError, match="must end in .csv"):
        api.evaluate(pred, truth, out=tmp_path / "x.txt")
    p = write_volume(tmp_path / "p.nii.gz", Volume(pred))
    code = main(["evaluate", "--pred", str(p), "--truth", str(p)])
    assert code == 0  # a perfect score is a score
    code = main(
        ["evaluate", "--pred", str(p), "--truth", str(p), "--csv", str(p)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "must end in .csv" in err[0]
