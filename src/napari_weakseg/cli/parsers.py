"""The ``weakseg`` parser: one subparser per command (declared in
:mod:`.train_parsers`, :mod:`.weak_parsers` and :mod:`.tool_parsers`),
help that ends in each option's default, and one-line errors."""

from __future__ import annotations

import argparse
from typing import Any

from .. import __version__
from .options import HELP
from .tool_parsers import (
    _evaluate_parser,
    _export_parser,
    _info_parser,
    _suggest_parser,
)
from .train_parsers import _predict_parser, _pretrain_parser, _train_parser
from .weak_parsers import _box_parsers, _cam_parsers


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
