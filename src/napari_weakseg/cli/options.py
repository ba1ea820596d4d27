"""Argument types and the options several commands share.

Each argument type checks at parse time and says what is wrong in one
sentence.  Each ``add_*`` helper declares one group of options that
several commands take, with the defaults, choices and ranges of
:mod:`~.core.base.defaults`, so a flag means the same in every command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..core.base import defaults
from ..core.base.errors import WeaksegError

DEVICES = defaults.DEVICES


# --- argument types: checked at parse time, one sentence each -------------


def bounded(name: str) -> Callable[[str], Any]:
    """An argparse type for setting ``name``: its range is the API's
    (:data:`~.core.defaults.BOUNDS`), checked by the same code."""
    from ..core.base.settings import problem

    kind = defaults.BOUNDS[name][0]

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not a{'n integer' if kind is int else ' number'}"
            ) from None
        why = problem(name, value)
        if why:
            raise argparse.ArgumentTypeError(why)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in errors
    return parse


STEPS = bounded("steps")
SEED = bounded("seed")
FILTERS = bounded("base_filters")
MINUTES = bounded("minutes")


def _patch(text: str) -> int:
    from ..core.base.settings import check_patch

    try:
        value = int(text)
        check_patch(value, "a patch side")
    except (ValueError, WeaksegError):
        raise argparse.ArgumentTypeError(
            f"{text} is not a patch side (a multiple of "
            f"{defaults.PATCH_MULTIPLE} from {defaults.BOUNDS['patch'][1]} "
            f"to {defaults.BOUNDS['patch'][2]})"
        ) from None
    return value


def class_names(text: str) -> list[str]:
    """``head,body`` -> the names of labels 1, 2 (checked: none empty or
    repeated)."""
    from ..core.base import classes

    try:
        return classes.check(classes.parse(text))
    except WeaksegError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None


# --- shared options: one declaration each ---------------------------------
# An option without ``help`` here takes its sentence from :data:`HELP`
# when the parser is built.


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device``: where to compute (auto picks CUDA > MPS > CPU)."""
    p.add_argument("--device", choices=DEVICES, default=DEVICES[0])


def add_seed(p: argparse.ArgumentParser) -> None:
    """``--seed``: the random seed of a training run."""
    p.add_argument("--seed", type=SEED, default=defaults.SEED)


def add_budget(p: argparse.ArgumentParser, patience: bool = False) -> None:
    """``--steps`` and ``--minutes`` (the first limit reached ends the
    run); with ``patience``, also ``--patience`` (the automatic budget)."""
    p.add_argument("--steps", type=STEPS, default=defaults.STEPS)
    p.add_argument("--minutes", type=MINUTES, default=None)
    if patience:
        p.add_argument(
            "--patience",
            type=bounded("patience"),
            default=None,
            metavar="STEPS",
            help="automatic budget: end when validation has not improved "
            "for this many steps (--steps and --minutes become ceilings)",
        )


def add_network(p: argparse.ArgumentParser, choose: bool = False) -> None:
    """``--base-filters``; with ``choose``, also ``--network`` (which
    network to build)."""
    p.add_argument(
        "--base-filters", type=FILTERS, default=defaults.BASE_FILTERS
    )
    if choose:
        p.add_argument(
            "--network",
            choices=defaults.PRETRAIN_NETWORKS,
            default=defaults.NETWORK,
            help="the network to pretrain: resunet (what train builds) or "
            "dynunet (what train-classifier --pooling gap builds)",
        )


def add_init(p: argparse.ArgumentParser) -> None:
    """``--init``: the model or pretrained encoder to start from."""
    p.add_argument("--init", metavar="FILE")


def add_ignore_label(
    p: argparse.ArgumentParser,
    default: int | None = defaults.IGNORE,
    help: str | None = None,
) -> None:
    """``--ignore-label``: the label value of unlabelled voxels."""
    p.add_argument(
        "--ignore-label",
        type=bounded("ignore_label"),
        default=default,
        help=help,
    )


def add_rounds(p: argparse.ArgumentParser) -> None:
    """``--rounds`` and ``--steps-per-round`` of recursive training."""
    p.add_argument(
        "--rounds", type=bounded("rounds"), default=defaults.BOX_ROUNDS
    )
    p.add_argument(
        "--steps-per-round",
        type=bounded("steps_per_round"),
        default=defaults.BOX_STEPS_PER_ROUND,
    )


def add_no_crf(p: argparse.ArgumentParser) -> None:
    """``--no-crf``: no dense-CRF refinement between rounds (the API's
    ``crf``, on by default)."""
    p.add_argument("--no-crf", dest="crf", action="store_false")


def add_cam(p: argparse.ArgumentParser, method: str) -> None:
    """``--class`` (whose map) and ``--method`` (which map, ``method``
    by default)."""
    p.add_argument(
        "--class", dest="class_index", type=bounded("class_index"), default=1
    )
    p.add_argument("--method", choices=defaults.CAM_METHODS, default=method)


#: the sentence of every option that does not carry its own; the same
#: concept has the same words (and flag) in every command
HELP = {
    "image": "image volume (a file, a .zarr store or a DICOM folder)",
    "labels": "label volume",
    "out": "file to write",
    "model": "model file (.safetensors, or a bioimage.io .zip that weakseg "
    "exported) to use",
    "init": "model or pretrained encoder (.safetensors) to start from",
    "ignore_label": "label value of unlabelled voxels",
    "steps": "training budget in optimiser steps",
    "minutes": "wall-clock budget; stops early with a checkpoint",
    "patch_size": "patch size in voxels, each a multiple of 8 "
    "(default: planned from the image and the device)",
    "batch_size": "patches per step",
    "base_filters": "channels of the first U-Net level (doubling per level)",
    "learning_rate": "AdamW learning rate",
    "device": "where to compute: auto picks CUDA > MPS > CPU",
    "seed": "random seed; the same seed on the same machine gives the same "
    "weights",
    "overlap": "overlap of neighbouring sliding windows (share of a window)",
    "rounds": "recursive training rounds",
    "steps_per_round": "training steps in each round",
    "initial": "first targets: grabcut (an intensity model of each box) or "
    "box (its centre)",
    "crf": "no dense-CRF refinement between rounds",
    "outside_boxes": "no rule that voxels outside every box are background",
    "wrong_class": "no rule that a box's voxels are its class or background",
    "off_core": "no rule that a mask must cover its box's core",
    "probabilities": "class probabilities (C, Z, Y, X), from predict",
    "crops": "CSV of crops: image,z0,y0,x0,z1,y1,x1,class",
    "class_index": "class whose map is computed",
    "method": "class activation map: cam, gradcam or gradcam++",
    "tasks": "comma-separated pretext tasks",
    "axis": "axis whose slices are suggested",
    "count": "how many slices to suggest",
    "pred": "label volume to score, or a folder of them; repeat for several",
    "truth": "reference label volume (or folder, paired by file name), one "
    "per --pred",
    "csv": "also write the table as CSV",
    "boxes": "CSV z0,y0,x0,z1,y1,x1,class (or JSON)",
    "help": "show this help and exit",
}
