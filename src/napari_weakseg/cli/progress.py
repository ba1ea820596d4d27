"""Progress of a long command: the live :class:`Meter` and the lines
that training, prediction and recursive rounds print."""

from __future__ import annotations

import sys
import time
from typing import Any


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
    from ..core.base.events import (
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
            if getattr(event, "augmentation", ""):
                meter.say(f"augmentation: {event.augmentation}")
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
