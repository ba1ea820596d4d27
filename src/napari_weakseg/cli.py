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
from .core import defaults
from .core.errors import Cancelled, WeaksegError

DEVICES = ("auto", "cpu", "cuda", "mps")


# --- argument types: checked at parse time, one sentence each -------------


def _number(kind: type, low: float, high: float, closed_high: bool = True):
    """An argparse type: a finite ``kind`` within [low, high] (or high)."""
    import math

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not a{'n integer' if kind is int else ' number'}"
            ) from None
        above = value > high if closed_high else value >= high
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not finite")
        if value < low:
            raise argparse.ArgumentTypeError(
                f"{text} is below the minimum {low:g}"
            )
        if above:
            raise argparse.ArgumentTypeError(
                f"{text} is "
                + (
                    f"above the maximum {high:g}"
                    if closed_high
                    else f"not below {high:g}"
                )
            )
        return value

    parse.__name__ = kind.__name__  # argparse names the type in errors
    return parse


POSITIVE = _number(int, 1, 10**9)
NON_NEGATIVE = _number(int, 0, 10**9)
FILTERS = _number(int, 1, 320)
MINUTES = _number(float, 1e-3, 1e6)
LEARNING_RATE = _number(float, 1e-8, 1.0)
OVERLAP = _number(float, 0.0, 1.0, closed_high=False)
SHARE = _number(float, 0.0, 1.0)


def _patch(text: str) -> int:
    value = POSITIVE(text)
    if value < 8 or value % 8:
        raise argparse.ArgumentTypeError(
            f"{value} is not a patch side (a multiple of 8, at least 8)"
        )
    return value


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
}
INPUTS = (
    "image",
    "labels",
    "model",
    "init",
    "boxes",
    "crops",
    "probabilities",
)


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that would destroy something before any work runs.

    An output may not be a folder (except a zarr store being replaced),
    an input of the same command, another output, or of the wrong kind;
    its folder must be writable.
    """
    import os

    from .core.io import SUFFIXES, is_zarr_store, suffix_of

    outs = {
        k: Path(v)
        for k, v in (
            (k, getattr(args, k, None)) for k in OUTPUTS[args.command]
        )
        if v is not None
    }
    ins = []
    for k in INPUTS:
        if k in outs:
            continue
        v = getattr(args, k, None)
        ins += [Path(x) for x in (v if isinstance(v, list) else [v]) if x]
    seen: dict[Path, str] = {}
    batch = args.command == "predict" and is_batch(args)
    for key, path in outs.items():
        flag = "--" + key.replace("_", "-")
        kind = "folder" if batch else OUTPUTS[args.command][key]
        if kind == "folder" and path.is_file():
            raise WeaksegError(
                f"{flag} {path} is a file; a batch writes into a folder."
            )
        if kind == "model" and not path.name.endswith(".safetensors"):
            raise WeaksegError(
                f"{flag} {path} must end in .safetensors (a model file)."
            )
        if kind == "volume" and suffix_of(path) not in SUFFIXES:
            raise WeaksegError(
                f"{flag} {path} needs a volume suffix "
                f"({', '.join(s for s in SUFFIXES if s != '.nhdr')})."
            )
        if kind != "folder" and path.is_dir() and not is_zarr_store(path):
            raise WeaksegError(
                f"{flag} {path} is an existing folder; give a file name."
            )
        real = path.resolve()
        for other in ins:
            if other.exists() and real == other.resolve():
                raise WeaksegError(
                    f"{flag} {path} is also an input of this command; "
                    "write to another file."
                )
        if real in seen:
            raise WeaksegError(
                f"{flag} and {seen[real]} name the same file {path}."
            )
        seen[real] = flag
        parent = next(p for p in (real, *real.parents) if p.exists())
        if parent == real:
            parent = real.parent
        if not os.access(parent, os.W_OK):
            raise WeaksegError(f"Cannot write {path}: {parent} is read-only.")


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
    p.add_argument("--ignore-label", type=int, default=defaults.IGNORE)
    p.add_argument("--steps", type=POSITIVE, default=defaults.STEPS)
    p.add_argument(
        "--minutes",
        type=MINUTES,
        default=None,
        help="wall-clock budget; stops early with a checkpoint",
    )
    p.add_argument(
        "--patience",
        type=POSITIVE,
        default=None,
        metavar="STEPS",
        help="automatic budget: end when validation has not improved for "
        "this many steps (--steps and --minutes become ceilings)",
    )
    p.add_argument(
        "--patch-size", type=_patch, nargs=3, metavar=("Z", "Y", "X")
    )
    p.add_argument("--batch-size", type=POSITIVE, default=defaults.BATCH_SIZE)
    p.add_argument(
        "--base-filters", type=FILTERS, default=defaults.BASE_FILTERS
    )
    p.add_argument(
        "--learning-rate", type=LEARNING_RATE, default=defaults.LEARNING_RATE
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
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument(
        "--nproc-per-node",
        type=POSITIVE,
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
    p.add_argument("--overlap", type=OVERLAP, default=0.5)
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
        type=POSITIVE,
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
    p.add_argument("--rounds", type=POSITIVE, default=defaults.BOX_ROUNDS)
    p.add_argument(
        "--steps-per-round",
        type=POSITIVE,
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
        type=SHARE,
        default=0.5,
        help="reset an object whose mask holds less than this fraction of "
        "its initial target's object voxels (0: off)",
    )
    p.add_argument(
        "--base-filters", type=FILTERS, default=defaults.BASE_FILTERS
    )
    p.add_argument("--init", metavar="FILE")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
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
    p.add_argument("--steps", type=POSITIVE, default=defaults.STEPS)
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
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
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
    c.add_argument("--class", dest="class_index", type=NON_NEGATIVE, default=1)
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
    p.add_argument("--class", dest="class_index", type=POSITIVE, default=1)
    p.add_argument(
        "--method", choices=("cam", "gradcam", "gradcam++"), default="cam"
    )
    p.add_argument("--rounds", type=POSITIVE, default=defaults.BOX_ROUNDS)
    p.add_argument(
        "--no-expand",
        dest="expand",
        action="store_false",
        help="no expansion loss (GWRP) over the crops of --class",
    )
    p.add_argument(
        "--steps-per-round",
        type=POSITIVE,
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
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)


def _pretrain_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pretrain", help="self-supervised pretraining of the encoder"
    )
    p.add_argument(
        "--image",
        action="append",
        required=True,
        metavar="IMG",
        help="unlabelled volume; repeat for several",
    )
    p.add_argument("--out", required=True, metavar="ENCODER")
    p.add_argument(
        "--tasks",
        default=",".join(defaults.PRETRAIN_TASKS),
        help="comma-separated: rotation, contrastive, inpainting",
    )
    p.add_argument("--steps", type=POSITIVE, default=defaults.STEPS)
    p.add_argument("--minutes", type=MINUTES, default=None)
    p.add_argument("--patch", type=_patch, default=defaults.PRETRAIN_PATCH)
    p.add_argument(
        "--base-filters", type=FILTERS, default=defaults.BASE_FILTERS
    )
    p.add_argument(
        "--network",
        choices=("dynunet", "resunet"),
        default="dynunet",
        help="whose encoder to pretrain: dynunet (shared with the "
        "classifier) or resunet (the default U-Net)",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)


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
    p.add_argument("--count", type=POSITIVE, default=1)
    p.add_argument("--ignore-label", type=int, default=defaults.IGNORE)


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
    for p in sub.choices.values():
        p.add_argument(
            "--quiet", action="store_true", help="no progress output"
        )
        p.add_argument(
            "--verbose",
            action="store_true",
            help="show the libraries' own warnings (ITK, tifffile, zarr...)",
        )
    return parser


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


def _printer(meter: Meter, init_name: str = "") -> Any:
    from .core.events import (
        Finished,
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
                f"training on {event.device}, patch {event.patch_size}, "
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
            where = "held-out slices" if event.held_out else "training data"
            meter.say(f"  {event.metric} on {where}: {event.mean_dice:.3f}")
        elif isinstance(event, Saved) and event.kind in ("best", "final"):
            meter.say(f"  saved {event.kind} model to {event.path}")
        elif isinstance(event, Progress):
            meter.update(event.message or "progress", event.done, event.total)
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
    from .core.io import is_collection

    return len(args.image) > 1 or is_collection(args.image[0])


def _cmd_predict(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    show = _printer(Meter(args.quiet))
    if not is_batch(args):
        call(api.predict, args, image=args.image[0], callback=show, stop=stop)
        print(f"wrote {args.out}")
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
    print(f"wrote {len(batch.written)} of {total} volumes to {args.out}")
    if batch.skipped:
        raise WeaksegError(
            f"skipped {len(batch.skipped)} of {total} inputs (see above)."
        )


def _cmd_box2mask(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    show = _printer(Meter(args.quiet))
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

    show = _printer(Meter(args.quiet))
    call(api.cam_to_segmentation, args, callback=show, stop=stop)
    print(f"wrote {args.out}")


def _cmd_suggest(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api

    picked = call(api.suggest_slice, args)
    print(" ".join(str(i) for i in picked))


def _cmd_pretrain(args: argparse.Namespace, stop: threading.Event) -> None:
    from . import api
    from .core.events import Pretext

    meter = Meter(args.quiet)

    def show(event: Any) -> None:
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


COMMANDS = {
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``weakseg``; returns the exit status."""
    import warnings

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    with warnings.catch_warnings():
        if not args.verbose:  # one sentence, not library chatter before it
            warnings.simplefilter("ignore")
            _quiet_itk()
        return _run(args, stop, previous)


def _quiet_itk() -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)


def _run(args: argparse.Namespace, stop: threading.Event, previous) -> int:
    try:
        check_outputs(args)
        COMMANDS[args.command](args, stop)
    except WeaksegError as exc:
        print(f"weakseg: error: {exc}", file=sys.stderr)
        return 2
    except Cancelled as exc:
        print(f"weakseg: {exc or 'stopped'}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
