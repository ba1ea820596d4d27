"""Entry point of ``weakseg``: parse, check the outputs, run the command
and turn its end into an exit status; :class:`Stop` handles SIGINT and
SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ..core.base.errors import Cancelled, WeaksegError
from .commands import COMMANDS
from .parsers import build_parser
from .safety import check_outputs

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
