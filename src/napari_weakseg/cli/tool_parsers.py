"""Parsers of the commands around a model and its results: ``suggest``,
``evaluate``, ``export`` and ``info``."""

from __future__ import annotations

from typing import Any

from .options import add_ignore_label, bounded


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
    add_ignore_label(
        p,
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
    add_ignore_label(p)
