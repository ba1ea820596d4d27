"""The ``weakseg`` command line: one subcommand per API function.

Bad input prints one sentence to stderr and exits with status 2; Ctrl-C
during training stops cooperatively and keeps the last checkpoint.
"""

from __future__ import annotations

import argparse
import inspect
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .core.base import defaults
from .core.base.errors import Cancelled, WeaksegError

DEVICES = ("auto", "cpu", "cuda", "mps")


# --- argument types: checked at parse time, one sentence each -------------


def bounded(name: str) -> Callable[[str], Any]:
    """An argparse type for setting ``name``: its range is the API's
    (:data:`~.core.defaults.BOUNDS`), checked by the same code."""
    from .core.base.settings import problem

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
    from .core.base.settings import check_patch

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
    from .core.base import classes

    try:
        return classes.check(classes.parse(text))
    except WeaksegError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None


# --- output safety ---------------------------------------------------------

#: per verb: argument -> what it writes ("model" or "volume")
OUTPUTS = {
    "train": {"out": "model"},
    "predict": {"out": "volume", "probabilities": "volume"},
    "box2mask": {"out": "volume", "model_out": "model"},
    "crf": {"out": "volume"},
    "train-classifier": {"out": "model"},
    "cam": {"out": "volume", "pseudo_labels": "volume"},
    "cam2seg": {"out": "volume", "model_out": "model"},
    "pretrain": {"out": "model"},
    "suggest": {},
    "evaluate": {},
    "export": {"out": "package"},
    "info": {},
}
INPUTS = (
    "image",
    "labels",
    "model",
    "init",
    "boxes",
    "crops",
    "probabilities",
    "sample",
)


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that would destroy something before any work runs
    (the API's rules, :mod:`~.core.outputs`; a batch's folders are
    checked by the API, output by output)."""
    from .core.data.outputs import check_outputs as check

    if args.command == "predict" and is_batch(args):
        return
    outs = {
        k: (getattr(args, k, None), kind)
        for k, kind in OUTPUTS[args.command].items()
    }
    ins = []
    for k in INPUTS:
        if k not in outs:
            v = getattr(args, k, None)
            ins += v if isinstance(v, list) else [v]
    check(outs, ins)


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
    p.add_argument(
        "--ignore-label", type=bounded("ignore_label"), default=defaults.IGNORE
    )
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
    p.add_argument("--steps", type=STEPS, default=defaults.STEPS)
    p.add_argument(
        "--minutes",
        type=MINUTES,
        default=None,
        help="wall-clock budget; stops early with a checkpoint",
    )
    p.add_argument(
        "--patience",
        type=bounded("patience"),
        default=None,
        metavar="STEPS",
        help="automatic budget: end when validation has not improved for "
        "this many steps (--steps and --minutes become ceilings)",
    )
    p.add_argument(
        "--patch-size", type=_patch, nargs=3, metavar=("Z", "Y", "X")
    )
    p.add_argument(
        "--batch-size", type=bounded("batch_size"), default=defaults.BATCH_SIZE
    )
    p.add_argument(
        "--base-filters", type=FILTERS, default=defaults.BASE_FILTERS
    )
    p.add_argument(
        "--learning-rate",
        type=bounded("learning_rate"),
        default=defaults.LEARNING_RATE,
    )
    p.add_argument(
        "--augment",
        choices=defaults.AUGMENTATIONS,
        default=defaults.AUGMENT,
        help="flips: mirror every axis; none: better when classes are told "
        "apart by position (head vs body, left vs right); affine: no "
        "mirroring, small turns, scaling, intensity; full: + 90° turns, "
        "intensity, noise",
    )
    p.add_argument(
        "--init",
        metavar="FILE",
        help="model or pretrained encoder to start from",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=SEED, default=0)
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
        help="average over flips (test-time augmentation)",
    )
    p.add_argument("--overlap", type=bounded("overlap"), default=0.5)
    p.add_argument("--device", choices=DEVICES, default="auto")
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


def _box_parsers(sub: Any) -> None:
    p = sub.add_parser("box2mask", help="dense masks from 3D boxes")
    p.add_argument("--image", required=True, metavar="IMG")
    p.add_argument(
        "--boxes",
        required=True,
        metavar="BOXES",
        help="CSV z0,y0,x0,z1,y1,x1,class (or JSON)",
    )
    p.add_argument("--out", required=True, metavar="LBL")
    p.add_argument(
        "--model-out", metavar="MODEL", help="also keep the last round's model"
    )
    p.add_argument(
        "--rounds", type=bounded("rounds"), default=defaults.BOX_ROUNDS
    )
    p.add_argument(
        "--steps-per-round",
        type=bounded("steps_per_round"),
        default=defaults.BOX_STEPS_PER_ROUND,
    )
    p.add_argument("--initial", choices=("box", "grabcut"), default="grabcut")
    # dest = the API's parameter names (the rules are on by default)
    p.add_argument("--no-crf", dest="crf", action="store_false")
    p.add_argument(
        "--no-outside-rule", dest="outside_boxes", action="store_false"
    )
    p.add_argument("--no-class-rule", dest="wrong_class", action="store_false")
    p.add_argument("--no-core-rule", dest="off_core", action="store_false")
    p.add_argument(
        "--min-fill",
        type=bounded("min_fill"),
        default=0.5,
        help="reset an object whose mask holds less than this fraction of "
        "its initial target's object voxels (0: off)",
    )
    p.add_argument(
        "--core-fraction",
        type=bounded("core_fraction"),
        default=0.2,
        help="each object must touch its box's core: the ellipsoid "
        "centred in the box holding this fraction of its volume",
    )
    p.add_argument(
        "--base-filters", type=FILTERS, default=defaults.BASE_FILTERS
    )
    p.add_argument("--init", metavar="FILE")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=SEED, default=0)
    c = sub.add_parser("crf", help="dense-CRF refinement of probabilities")
    c.add_argument("--image", required=True, metavar="IMG")
    c.add_argument("--probabilities", required=True, metavar="PROB")
    c.add_argument("--out", required=True, metavar="LBL")
    c.add_argument("--device", choices=DEVICES, default="auto")


def _cam_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "train-classifier", help="train a 3D classifier from labelled crops"
    )
    p.add_argument(
        "--crops",
        required=True,
        metavar="CROPS.csv",
        help="header image,z0,y0,x0,z1,y1,x1,class",
    )
    p.add_argument("--out", required=True, metavar="MODEL")
    p.add_argument("--steps", type=STEPS, default=defaults.STEPS)
    p.add_argument("--minutes", type=MINUTES, default=None)
    p.add_argument(
        "--base-filters", type=FILTERS, default=defaults.BASE_FILTERS
    )
    p.add_argument(
        "--pooling",
        choices=("topk", "gap"),
        default="topk",
        help="topk: local evidence, top-k pooled (maps that localise; the "
        "default); gap: U-Net encoder + global average pooling (--init "
        "from a U-Net or a pretrained encoder)",
    )
    p.add_argument("--init", metavar="FILE")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=SEED, default=0)
    _cam2seg_parser(sub)
    c = sub.add_parser("cam", help="CAM / Grad-CAM map of a volume")
    c.add_argument("--model", required=True, metavar="MODEL")
    c.add_argument("--image", required=True, metavar="IMG")
    c.add_argument("--out", required=True, metavar="MAP")
    c.add_argument(
        "--method", choices=("gradcam", "gradcam++", "cam"), default="gradcam"
    )
    c.add_argument(
        "--layer",
        metavar="NAME",
        help="block to take the map from (default: deepest)",
    )
    c.add_argument(
        "--class", dest="class_index", type=bounded("class_index"), default=1
    )
    c.add_argument(
        "--pseudo-labels",
        metavar="LBL",
        help="also write seeds (class / 0 / 255) from the map",
    )
    c.add_argument("--device", choices=DEVICES, default="auto")


def _cam2seg_parser(sub: Any) -> None:
    p = sub.add_parser(
        "cam2seg",
        help="segmentation from a classifier's map: seed, expand, constrain",
    )
    p.add_argument("--model", required=True, metavar="CLASSIFIER")
    p.add_argument("--image", required=True, metavar="IMG")
    p.add_argument("--out", required=True, metavar="LBL")
    p.add_argument(
        "--crops",
        metavar="CROPS.csv",
        help="crop labels of this image: crops of class 0 stay background, "
        "the U-Net must cover the class in crops of --class",
    )
    p.add_argument(
        "--class", dest="class_index", type=bounded("class_index"), default=1
    )
    p.add_argument(
        "--method", choices=("cam", "gradcam", "gradcam++"), default="cam"
    )
    p.add_argument(
        "--rounds", type=bounded("rounds"), default=defaults.BOX_ROUNDS
    )
    p.add_argument(
        "--no-expand",
        dest="expand",
        action="store_false",
        help="no expansion loss (GWRP) over the crops of --class",
    )
    p.add_argument(
        "--steps-per-round",
        type=bounded("steps_per_round"),
        default=defaults.BOX_STEPS_PER_ROUND,
    )
    p.add_argument("--no-crf", dest="crf", action="store_false")
    p.add_argument(
        "--model-out", metavar="MODEL", help="also keep the last round's U-Net"
    )
    p.add_argument(
        "--base-filters", type=FILTERS, default=defaults.BASE_FILTERS
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=SEED, default=0)


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
        help="comma-separated: rotation, contrastive, inpainting, masked",
    )
    p.add_argument("--steps", type=STEPS, default=defaults.STEPS)
    p.add_argument("--minutes", type=MINUTES, default=None)
    p.add_argument(
        "--patch-size",
        "--patch",
        dest="patch",
        type=_patch,
        default=defaults.PRETRAIN_PATCH,
        metavar="N",
        help="edge of the cubic pretraining patches",
    )
    p.add_argument(
        "--base-filters", type=FILTERS, default=defaults.BASE_FILTERS
    )
    p.add_argument(
        "--network",
        choices=("resunet", "dynunet"),
        default=defaults.NETWORK,
        help="the network to pretrain: resunet (what train builds) or "
        "dynunet (what train-classifier --pooling gap builds)",
    )
    p.add_argument(
        "--cache",
        type=bounded("count"),
        default=defaults.POOL_CACHE,
        metavar="N",
        help="pool volumes held in memory at once",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=SEED, default=0)


def _evaluate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score segmentations against references (Dice, IoU, HD95)",
        description="Dice, IoU, HD95 (in the spacing's units, e.g. mm) "
        "and volume per class of each --pred against its --truth; with "
        "several, a mean row per class.",
    )
    p.add_argument("--pred", action="append", required=True, metavar="LBL")
    p.add_argument("--truth", action="append", required=True, metavar="REF")
    p.add_argument(
        "--ignore-label",
        type=bounded("ignore_label"),
        default=None,
        help="reference voxels of this value count for neither "
        "(unlabelled voxels of a sparse reference)",
    )
    p.add_argument("--csv", metavar="TABLE.csv")
    p.add_argument(
        "--class-names",
        metavar="NAMES",
        help="comma-separated names of labels 1..K for the table, or a "
        "model file (.safetensors or bioimage.io .zip) whose names to use "
        "(default: class 1, class 2...)",
    )


def _export_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a model as a bioimage.io model package",
        description="Write MODEL as a bioimage.io package OUT (.zip): "
        "TorchScript and state-dict weights, preprocessing, class names, "
        "test tensors and a README; bioimageio.core's model test must pass "
        "before OUT appears (pip install 'napari-weakseg[export]'). "
        "weakseg predict --model OUT.zip reads it back.",
    )
    p.add_argument("model", metavar="MODEL", help="model file (.safetensors)")
    p.add_argument("out", metavar="OUT", help="package to write (.zip)")
    p.add_argument(
        "--format",
        choices=("bioimageio",),
        default="bioimageio",
        help="package format",
    )
    p.add_argument(
        "--sample",
        metavar="IMG",
        help="image whose middle patch becomes the test input (default: a "
        "phantom)",
    )
    p.add_argument(
        "--name", help="the model's name (default: from the file name)"
    )
    p.add_argument(
        "--description",
        help="one sentence on what it segments (default: from the classes)",
    )
    p.add_argument(
        "--author",
        dest="authors",
        action="append",
        default=[],
        metavar="NAME",
        help="an author's name; repeat for several (default: none)",
    )
    p.add_argument(
        "--license",
        default="CC-BY-4.0",
        help="SPDX license of the weights",
    )
    p.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip bioimageio.core's model test",
    )


def _info_parser(sub: Any) -> None:
    p = sub.add_parser(
        "info",
        help="what a model file holds and how it was made",
        description="Print a model's classes and settings, the inputs it "
        "was trained on (file names and SHA-256) and the weakseg command "
        "that, run again with another --out, trains the same weights on "
        "the same machine.",
    )
    p.add_argument("model", metavar="MODEL", help="model file (.safetensors)")


def _suggest_parser(sub: Any) -> None:
    p = sub.add_parser(
        "suggest",
        help="print the slices most worth annotating next",
        description="Slices on one axis to annotate next: those of highest "
        "mean entropy with --probabilities (from predict), else those "
        "farthest from every fully labelled slice.",
    )
    p.add_argument("--labels", required=True, metavar="LBL")
    p.add_argument("--probabilities", metavar="PROB")
    p.add_argument("--axis", choices=("z", "y", "x"), default="z")
    p.add_argument("--count", type=bounded("count"), default=1)
    p.add_argument(
        "--ignore-label", type=bounded("ignore_label"), default=defaults.IGNORE
    )


class _Help(argparse.HelpFormatter):
    """Every option's sentence ends with its default, in words: a value,
    ``none``, or ``on`` / ``off`` for a switch (required ones have
    none; a sentence that names its default keeps its own words)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.required
            or "default" in text
            or action.default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        if isinstance(action, argparse._StoreTrueAction):
            shown = "off"
        elif isinstance(action, argparse._StoreFalseAction):
            shown = "on"
        elif action.default is None:
            shown = "none"
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})"


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit 2 (no usage dump)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="weakseg",
        description="Dense 3D segmentation from very little annotation.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _predict_parser(sub)
    _box_parsers(sub)
    _cam_parsers(sub)
    _pretrain_parser(sub)
    _suggest_parser(sub)
    _evaluate_parser(sub)
    _export_parser(sub)
    _info_parser(sub)
    for p in sub.choices.values():
        p.add_argument(
            "--quiet", action="store_true", help="no progress output"
        )
        p.add_argument(
            "--verbose",
            action="store_true",
            help="show the libraries' own warnings (ITK, tifffile, zarr...)",
        )
        p.formatter_class = _Help
        for action in p._actions:
            if action.help is None:
                action.help = HELP[action.dest]
    return parser


#: the sentence of every option that does not carry its own above; the
#: same concept has the same words (and flag) in every command
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


class Meter:
    """Live progress of a long verb.

    On a terminal a ``tqdm`` bar (rate and ETA) on stderr; otherwise a
    plain line on stdout at the first and last update and every
    ``every_s`` seconds between; nothing with ``--quiet``.
    """

    def __init__(self, quiet: bool = False, every_s: float = 5.0) -> None:
        self.quiet, self.every_s = quiet, every_s
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.label = ""
        self.last = 0.0

    def update(self, label: str, done: int, total: int, extra: str = ""):
        if self.quiet:
            return
        if self.tty:
            from tqdm import tqdm

            if self.bar is None or label != self.label or done < self.bar.n:
                self.close()
                self.bar = tqdm(
                    total=total,
                    desc=label,
                    file=sys.stderr,
                    dynamic_ncols=True,
                    leave=False,
                )
                self.label = label
            self.bar.set_postfix_str(extra, refresh=False)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if done <= 1 or done >= total or now - self.last >= self.every_s:
            self.last = now
            print(f"{label} {done}/{total}  {extra}".rstrip(), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def say(self, text: str) -> None:
        """A line that stays (above a live bar)."""
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)


def _printer(
    meter: Meter, init_name: str = "", rounds_model: str | None = ""
) -> Any:
    """The progress lines of a command.  ``rounds_model``: for recursive
    rounds, the model file kept (``--model-out``) or None (a scratch
    file that is never announced); rounds validate on their own
    targets."""
    rounds = rounds_model != ""
    from .core.base.events import (
        Finished,
        Notice,
        Plateau,
        Progress,
        Round,
        Saved,
        Skipped,
        Started,
        Step,
        Validation,
    )

    def show(event: Any) -> None:
        if isinstance(event, Started):
            world = getattr(event, "world_size", 1)
            meter.say(
                f"training on {event.device}"
                + (f" ({event.network})" if event.network else "")
                + f", patch {event.patch_size}, "
                f"{event.train_voxels} labelled voxels"
                + (f", world size {world}" if world > 1 else "")
            )
            if event.transferred:
                meter.say(
                    f"initialised {event.transferred} tensors from {init_name}"
                )
        elif isinstance(event, Step):
            meter.update(
                "step",
                event.step,
                event.total,
                f"loss {event.loss:.4f}  eta {event.eta_s:.0f}s",
            )
        elif isinstance(event, Plateau):
            meter.say(
                f"  no better since step {event.best_step}: ending early"
            )
        elif isinstance(event, Validation):
            where = (
                "held-out slices"
                if event.held_out
                else "this round's targets"
                if rounds
                else "training data"
            )
            meter.say(f"  {event.metric} on {where}: {event.mean_dice:.3f}")
        elif (
            isinstance(event, Saved)
            and event.kind in ("best", "final")
            and (not rounds or rounds_model)
        ):
            meter.say(f"  saved {event.kind} model to {event.path}")
        elif isinstance(event, Progress):
            meter.update(event.message or "progress", event.done, event.total)
        elif isinstance(event, Notice):  # shown even with --quiet
            print(f"weakseg: warning: {event.message}", file=sys.stderr)
        elif isinstance(event, Skipped):  # shown even with --quiet
            print(
                f"weakseg: skipped {event.path}: {event.reason}",
                file=sys.stderr,
            )
        elif isinstance(event, Round):
            meter.say(
                f"round {event.round}/{event.rounds}: "
                f"{100 * event.changed:.2f} % of box voxels changed"
            )
        elif isinstance(event, Finished) and event.message:
            meter.say(event.message)

    return show


def call(func: Callable[..., Any], args: argparse.Namespace, **extra: Any):
    """Call API ``func`` with the parsed arguments named like its
    parameters (argparse destinations are the API's names), plus
    ``extra`` for the few that differ."""
    params = inspect.signature(func).parameters
    kwargs = {k: v for k, v in vars(args).items() if k in params}
    return func(**{**kwargs, **extra})


def _say_finished(result: Any) -> None:
    if result.steps == 0:
        raise Cancelled("stopped before the first step; nothing was written")
    if result.message:
        print(result.message)
    how = "stopped" if result.stopped else "finished"
    print(
        f"{how} after {result.steps} steps; {result.summary()}; "
        f"model: {result.best_path}"
    )


def _cmd_train(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    if args.nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:
        _launch(args.nproc_per_node, args.argv)
        return
    main_rank = os.environ.get("RANK", "0") == "0"  # the others are quiet
    meter = Meter(args.quiet or not main_rank)
    show = _printer(meter, init_name=Path(args.init or "").name)
    finished = call(
        api.train, args, images=args.image, callback=show, stop=stop
    )
    if main_rank:
        _say_finished(finished)


def _launch(processes: int, argv: Sequence[str]) -> None:
    """``train`` again under ``torchrun --standalone`` with ``processes``
    processes on this machine (DDP; see the README for several nodes)."""
    import subprocess

    rest, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--nproc-per-node":
            skip = True
        elif not token.startswith("--nproc-per-node="):
            rest.append(token)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={processes}", "-m", "napari_weakseg.cli"]
    status = subprocess.run([*command, *rest], check=False).returncode
    if status:
        raise WeaksegError(
            f"The {processes} training processes ended with status "
            f"{status} (see above)."
        )


def is_batch(args: argparse.Namespace) -> bool:
    """``predict`` over several images or a folder of volumes."""
    from .core.data.volumes import is_collection

    return len(args.image) > 1 or is_collection(args.image[0])


def _legend(model: str) -> str:
    """What the label values of a model's predictions mean."""
    from . import api

    names = api.class_names(model)
    return "labels: " + ", ".join(f"{k} {n}" for k, n in enumerate(names))


def _cmd_predict(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    show = _printer(Meter(args.quiet))
    if not is_batch(args):
        call(api.predict, args, image=args.image[0], callback=show, stop=stop)
        print(f"wrote {args.out} ({_legend(args.model)})")
        return
    batch = call(
        api.predict_batch,
        args,
        images=args.image,
        out_dir=args.out,
        probabilities_dir=args.probabilities,
        callback=show,
        stop=stop,
    )
    total = len(batch.written) + len(batch.skipped)
    print(
        f"wrote {len(batch.written)} of {total} volumes to {args.out} "
        f"({_legend(args.model)})"
    )
    if batch.skipped:
        raise WeaksegError(
            f"skipped {len(batch.skipped)} of {total} inputs (see above)."
        )


def _cmd_box2mask(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    show = _printer(Meter(args.quiet), rounds_model=args.model_out)
    call(api.boxes_to_masks, args, callback=show, stop=stop)
    print(f"wrote {args.out}")


def _cmd_crf(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    call(api.crf, args)
    print(f"wrote {args.out}")


def _cmd_train_classifier(
    args: argparse.Namespace, stop: threading.Event
) -> None:
    from . import api

    show = _printer(Meter(args.quiet))
    _say_finished(call(api.train_classifier, args, callback=show, stop=stop))


def _cmd_cam(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    show = _printer(Meter(args.quiet))
    m = call(api.class_activation_map, args, callback=show, stop=stop)
    print(f"wrote {args.out}")
    if args.pseudo_labels:
        geometry = api.read_volume(args.out).geometry
        seeds = api.pseudo_labels(m, args.class_index)
        api.write_volume(args.pseudo_labels, api.Volume(seeds, geometry))
        print(f"wrote {args.pseudo_labels}")


def _cmd_cam2seg(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    show = _printer(Meter(args.quiet), rounds_model=args.model_out)
    call(api.cam_to_segmentation, args, callback=show, stop=stop)
    print(f"wrote {args.out}")


def _cmd_suggest(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    picked = call(api.suggest_slice, args)
    print(" ".join(str(i) for i in picked))


def _cmd_pretrain(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api
    from .core.base.events import Notice, Pretext, Skipped

    meter = Meter(args.quiet)

    def show(event: Any) -> None:
        if isinstance(event, Skipped | Notice):
            meter.say(getattr(event, "reason", None) or event.message)
        if isinstance(event, Pretext):
            meter.update(
                "pretraining", event.step, args.steps, event.summary()
            )

    result = call(
        api.pretrain, args, images=args.image, callback=show, stop=stop
    )
    if result.steps == 0:
        raise Cancelled("stopped before the first step; nothing was written")
    print(
        f"pretrained {result.steps} steps; {result.summary()}; "
        f"encoder: {result.best_path}"
    )


def _cmd_evaluate(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api
    from .core.predict.evaluation import table

    pred = args.pred if len(args.pred) > 1 else args.pred[0]
    truth = args.truth if len(args.truth) > 1 else args.truth[0]
    rows = api.evaluate(
        pred,
        truth,
        ignore_label=args.ignore_label,
        out=args.csv,
        class_names=args.class_names,
    )
    if not rows:
        raise WeaksegError(
            "Neither the predictions nor the references hold any class "
            "other than background."
        )
    print(table(rows))
    if args.csv:
        print(f"wrote {args.csv}")


def _cmd_info(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    print(api.model_info(args.model))


def _cmd_export(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    if not args.quiet:
        print(
            f"exporting {args.model}"
            + (" and testing the package" if args.check else ""),
            flush=True,
        )
    call(api.export_model, args)
    print(f"wrote {args.out}")


COMMANDS = {
    "export": _cmd_export,
    "info": _cmd_info,
    "evaluate": _cmd_evaluate,
    "pretrain": _cmd_pretrain,
    "train-classifier": _cmd_train_classifier,
    "cam": _cmd_cam,
    "cam2seg": _cmd_cam2seg,
    "train": _cmd_train,
    "predict": _cmd_predict,
    "box2mask": _cmd_box2mask,
    "crf": _cmd_crf,
    "suggest": _cmd_suggest,
}


#: commands that stop cooperatively at a signal: they finish the step or
#: window at hand, keep a checkpoint and clean up; the others are
#: interrupted at once (their temporaries are removed on the way out)
COOPERATIVE = {
    "train",
    "predict",
    "box2mask",
    "train-classifier",
    "cam",
    "cam2seg",
    "pretrain",
}


class Stop:
    """SIGINT (Ctrl-C) and SIGTERM (SLURM preemption, ``docker stop``,
    systemd) stop a run the same way: a cooperative command ends with
    its checkpoint, another is interrupted; a second signal interrupts
    any.  The exit status is then 128 + the signal's number (130 for
    Ctrl-C, 143 for SIGTERM), whatever the command, so a script can tell
    a stopped run from a finished one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, cooperative: bool) -> None:
        self.event = threading.Event()
        self.cooperative = cooperative
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self.previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        self.signum = signum if first else self.signum
        self.event.set()
        if not (first and self.cooperative):  # through `except Exception`
            raise KeyboardInterrupt(
                f"stopped by {signal.Signals(signum).name}"
            )

    @property
    def status(self) -> int:
        return 128 + int(self.signum or signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``weakseg``; returns the exit status."""
    import warnings

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings(), Stop(args.command in COOPERATIVE) as stop:
        if not args.verbose:  # one sentence, not library chatter before it
            warnings.simplefilter("ignore")
            _quiet_itk()
        return _run(args, stop)


def _quiet_itk() -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)


def _run(args: argparse.Namespace, stop: Stop) -> int:
    """Run the command: 0 when it finished, 2 for bad input (one line on
    stderr), 128 + signal when a signal stopped it (see :class:`Stop`)."""
    try:
        check_outputs(args)
        COMMANDS[args.command](args, stop.event)
    except WeaksegError as exc:
        print(f"weakseg: error: {exc}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt) as exc:
        print(f"weakseg: {exc or 'stopped'}", file=sys.stderr)
        return stop.status
    if stop.event.is_set():
        print(
            "weakseg: stopped early (the checkpoint is kept)", file=sys.stderr
        )
        return stop.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
