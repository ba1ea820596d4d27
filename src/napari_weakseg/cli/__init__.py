"""The ``weakseg`` command line: one subcommand per API function.

Bad input prints one sentence to stderr and exits with status 2; Ctrl-C
during training stops cooperatively and keeps the last checkpoint.

The package: :mod:`.options` (argument types and the options several
commands share, declared once), :mod:`.parsers` with
:mod:`.train_parsers`, :mod:`.weak_parsers` and :mod:`.tool_parsers`
(one parser per command), :mod:`.safety` (outputs checked before any
work), :mod:`.progress` (the live meter and progress lines),
:mod:`.commands` (each command onto its API function) and
:mod:`.entry` (:func:`main`, exit statuses, signals).
"""

from .commands import COMMANDS, call
from .entry import COOPERATIVE, Stop, main
from .options import (
    DEVICES,
    FILTERS,
    HELP,
    MINUTES,
    SEED,
    STEPS,
    bounded,
    class_names,
)
from .parsers import _Help, _Parser, build_parser
from .progress import Meter, _printer
from .safety import INPUTS, OUTPUTS, check_outputs, is_batch

__all__ = [
    "COMMANDS",
    "COOPERATIVE",
    "DEVICES",
    "FILTERS",
    "HELP",
    "INPUTS",
    "MINUTES",
    "OUTPUTS",
    "SEED",
    "STEPS",
    "Meter",
    "Stop",
    "_Help",
    "_Parser",
    "_printer",
    "bounded",
    "build_parser",
    "call",
    "check_outputs",
    "class_names",
    "is_batch",
    "main",
]
