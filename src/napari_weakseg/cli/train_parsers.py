"""Parsers of the commands that train on images and apply the result:
``train``, ``predict`` and ``pretrain``."""

from __future__ import annotations

from typing import Any

from ..core.base import defaults
from .options import (
    _patch,
    add_budget,
    add_device,
    add_ignore_label,
    add_init,
    add_network,
    add_seed,
    bounded,
    class_names,
)


def _train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a 3D U-Net on sparse slice labels",
        description="Train on images with sparse labels (0 background, "
        "1..K classes, --ignore-label unlabelled).",
    )
    p.add_argument(
        "--image",
        action="append",
        required=True,
        metavar="IMG",
        help="image volume; repeat for several",
    )
    p.add_argument(
        "--labels",
        action="append",
        required=True,
        metavar="LBL",
        help="sparse label volume, one per --image",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="MODEL",
        help="model file to write (.safetensors)",
    )
    add_ignore_label(p)
    p.add_argument(
        "--unlabelled",
        action="append",
        metavar="DIR",
        help="folder, glob or file of unlabelled volumes for "
        "semi-supervised training; repeat for several",
    )
    p.add_argument(
        "--semi",
        choices=defaults.SEMI_METHODS,
        default=None,
        help="semi-supervised method: selftrain = two rounds, the second "
        "on the first's confident pseudo-labels (twice the time); "
        "meanteacher / pseudo = an online term (default with --unlabelled: "
        f"{defaults.SEMI_METHOD})",
    )
    p.add_argument(
        "--semi-weight",
        type=float,
        default=defaults.SEMI_WEIGHT,
        help="weight of the semi-supervised term",
    )
    add_budget(p, patience=True)
    p.add_argument(
        "--patch-size", type=_patch, nargs=3, metavar=("Z", "Y", "X")
    )
    p.add_argument(
        "--batch-size", type=bounded("batch_size"), default=defaults.BATCH_SIZE
    )
    add_network(p)
    p.add_argument(
        "--learning-rate",
        type=bounded("learning_rate"),
        default=defaults.LEARNING_RATE,
    )
    p.add_argument(
        "--augment",
        choices=defaults.AUGMENTATIONS,
        default=defaults.AUGMENT,
        help="auto (default): planned from the labels, mirroring only axes "
        "along which no two look-alike classes are told apart by position, "
        "small turns, scaling, intensity where an axis is not mirrored; "
        "flips: mirror every axis; none: no mirroring; affine: no "
        "mirroring, small turns, scaling, intensity; full: + 90° turns, "
        "intensity, noise",
    )
    add_init(p)
    add_device(p)
    add_seed(p)
    p.add_argument(
        "--class-names",
        type=class_names,
        default=[],
        metavar="NAMES",
        help="comma-separated names of labels 1..K, e.g. head,body "
        "(stored in the model; default: class 1, class 2...)",
    )
    p.add_argument(
        "--nproc-per-node",
        type=bounded("nproc_per_node"),
        default=1,
        metavar="N",
        help="train with N processes on this machine (PyTorch DDP: one per "
        "GPU, or gloo on CPU); the same as starting this command with "
        "torchrun --nproc-per-node N",
    )


def _predict_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="segment a volume (or many) with a model",
        description="One --image: --out is the label volume.  Several "
        "--image or a folder of volumes: --out (and --probabilities) are "
        "folders, each output named like its input; unreadable inputs are "
        "skipped with one line each (exit status 2 if any was).",
    )
    p.add_argument("--model", required=True, metavar="MODEL")
    p.add_argument(
        "--image",
        action="append",
        required=True,
        metavar="IMG",
        help="image volume, or a folder of volumes; repeat for several",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="LBL",
        help="label volume to write (same geometry as IMG); a folder for "
        "a batch",
    )
    p.add_argument(
        "--probabilities",
        metavar="PROB",
        help="also write per-class probabilities (C, Z, Y, X)",
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="average over flips along the axes the model was trained "
        "mirrored on (test-time augmentation)",
    )
    p.add_argument(
        "--overlap", type=bounded("overlap"), default=defaults.OVERLAP
    )
    add_device(p)
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="predict block by block on a dask.distributed cluster: "
        "'local' starts one here, or a scheduler's address (its workers "
        "must see the model and the outputs)",
    )
    p.add_argument(
        "--block",
        type=bounded("block"),
        metavar="VOXELS",
        help="predict block by block, blocks about this many voxels on a "
        "side (at least the model's patch); automatic for volumes over "
        "256^3 voxels",
    )


def _pretrain_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pretrain", help="self-supervised pretraining of the encoder"
    )
    p.add_argument(
        "--image",
        action="append",
        required=True,
        metavar="IMG",
        help="unlabelled volume, folder of them or glob pattern (streamed "
        "from disk); repeat for several",
    )
    p.add_argument("--out", required=True, metavar="ENCODER")
    p.add_argument(
        "--tasks",
        default=",".join(defaults.PRETRAIN_TASKS),
        help="comma-separated: " + ", ".join(defaults.PRETEXT_TASKS),
    )
    add_budget(p)
    p.add_argument(
        "--patch-size",
        "--patch",
        dest="patch",
        type=_patch,
        default=defaults.PRETRAIN_PATCH,
        metavar="N",
        help="edge of the cubic pretraining patches",
    )
    add_network(p, choose=True)
    p.add_argument(
        "--cache",
        type=bounded("count"),
        default=defaults.POOL_CACHE,
        metavar="N",
        help="pool volumes held in memory at once",
    )
    add_device(p)
    add_seed(p)
