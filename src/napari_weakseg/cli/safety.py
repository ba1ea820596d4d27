"""Output safety: refuse outputs that would destroy something before any
work runs."""

from __future__ import annotations

import argparse

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
    from ..core.data.outputs import check_outputs as check

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


def is_batch(args: argparse.Namespace) -> bool:
    """``predict`` over several images or a folder of volumes."""
    from ..core.data.volumes import is_collection

    return len(args.image) > 1 or is_collection(args.image[0])
