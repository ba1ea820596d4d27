"""The commands: each maps its parsed arguments onto one API function
(:mod:`napari_weakseg.api`, by parameter name) and says what it wrote."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.base.errors import Cancelled, WeaksegError
from .progress import Meter, _printer
from .safety import is_batch


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
    from .. import api

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


def _legend(model: str) -> str:
    """What the label values of a model's predictions mean."""
    from .. import api

    names = api.class_names(model)
    return "labels: " + ", ".join(f"{k} {n}" for k, n in enumerate(names))


def _cmd_predict(args: argparse.Namespace, stop: threading.Event) -> None:
    from .. import api

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
    from .. import api

    show = _printer(Meter(args.quiet), rounds_model=args.model_out)
    call(api.boxes_to_masks, args, callback=show, stop=stop)
    print(f"wrote {args.out}")


def _cmd_crf(args: argparse.Namespace, stop: threading.Event) -> None:
    from .. import api

    call(api.crf, args)
    print(f"wrote {args.out}")


def _cmd_train_classifier(
    args: argparse.Namespace, stop: threading.Event
) -> None:
    from .. import api

    show = _printer(Meter(args.quiet))
    _say_finished(call(api.train_classifier, args, callback=show, stop=stop))


def _cmd_cam(args: argparse.Namespace, stop: threading.Event) -> None:
    from .. import api

    show = _printer(Meter(args.quiet))
    m = call(api.class_activation_map, args, callback=show, stop=stop)
    print(f"wrote {args.out}")
    if args.pseudo_labels:
        geometry = api.read_volume(args.out).geometry
        seeds = api.pseudo_labels(m, args.class_index)
        api.write_volume(args.pseudo_labels, api.Volume(seeds, geometry))
        print(f"wrote {args.pseudo_labels}")


def _cmd_cam2seg(args: argparse.Namespace, stop: threading.Event) -> None:
    from .. import api

    show = _printer(Meter(args.quiet), rounds_model=args.model_out)
    call(api.cam_to_segmentation, args, callback=show, stop=stop)
    print(f"wrote {args.out}")


def _cmd_suggest(args: argparse.Namespace, stop: threading.Event) -> None:
    from .. import api

    picked = call(api.suggest_slice, args)
    print(" ".join(str(i) for i in picked))


def _cmd_pretrain(args: argparse.Namespace, stop: threading.Event) -> None:
    from .. import api
    from ..core.base.events import Notice, Pretext, Skipped

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
    from .. import api
    from ..api import score_table as table

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
    from .. import api

    print(api.model_info(args.model))


def _cmd_export(args: argparse.Namespace, stop: threading.Event) -> None:
    from .. import api

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
