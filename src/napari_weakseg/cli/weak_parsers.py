"""Parsers of the weakly supervised commands: boxes (``box2mask``,
``crf``) and image-level labels (``train-classifier``, ``cam2seg``,
``cam``)."""

from __future__ import annotations

from typing import Any

from ..core.base import defaults
from .options import (
    add_budget,
    add_cam,
    add_device,
    add_init,
    add_network,
    add_no_crf,
    add_rounds,
    add_seed,
    bounded,
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
    add_rounds(p)
    p.add_argument(
        "--initial",
        choices=defaults.BOX_INITIALS,
        default=defaults.BOX_INITIALS[0],
    )
    # dest = the API's parameter names (the rules are on by default)
    add_no_crf(p)
    p.add_argument(
        "--no-outside-rule", dest="outside_boxes", action="store_false"
    )
    p.add_argument("--no-class-rule", dest="wrong_class", action="store_false")
    p.add_argument("--no-core-rule", dest="off_core", action="store_false")
    p.add_argument(
        "--min-fill",
        type=bounded("min_fill"),
        default=defaults.MIN_FILL,
        help="reset an object whose mask holds less than this fraction of "
        "its initial target's object voxels (0: off)",
    )
    p.add_argument(
        "--core-fraction",
        type=bounded("core_fraction"),
        default=defaults.CORE_FRACTION,
        help="each object must touch its box's core: the ellipsoid "
        "centred in the box holding this fraction of its volume",
    )
    add_network(p)
    add_init(p)
    add_device(p)
    add_seed(p)
    c = sub.add_parser("crf", help="dense-CRF refinement of probabilities")
    c.add_argument("--image", required=True, metavar="IMG")
    c.add_argument("--probabilities", required=True, metavar="PROB")
    c.add_argument("--out", required=True, metavar="LBL")
    add_device(c)


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
    add_budget(p)
    add_network(p)
    p.add_argument(
        "--pooling",
        choices=defaults.POOLINGS,
        default=defaults.POOLINGS[0],
        help="topk: local evidence, top-k pooled (maps that localise; the "
        "default); gap: U-Net encoder + global average pooling (--init "
        "from a U-Net or a pretrained encoder)",
    )
    add_init(p)
    add_device(p)
    add_seed(p)
    _cam2seg_parser(sub)
    c = sub.add_parser("cam", help="CAM / Grad-CAM map of a volume")
    c.add_argument("--model", required=True, metavar="MODEL")
    c.add_argument("--image", required=True, metavar="IMG")
    c.add_argument("--out", required=True, metavar="MAP")
    add_cam(c, method=defaults.CAM_METHODS[0])
    c.add_argument(
        "--layer",
        metavar="NAME",
        help="block to take the map from (default: deepest)",
    )
    c.add_argument(
        "--pseudo-labels",
        metavar="LBL",
        help="also write seeds (class / 0 / 255) from the map",
    )
    add_device(c)


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
    add_cam(p, method=defaults.CAM2SEG_METHOD)
    add_rounds(p)
    p.add_argument(
        "--no-expand",
        dest="expand",
        action="store_false",
        help="no expansion loss (GWRP) over the crops of --class",
    )
    add_no_crf(p)
    p.add_argument(
        "--model-out", metavar="MODEL", help="also keep the last round's U-Net"
    )
    add_network(p)
    add_device(p)
    add_seed(p)
