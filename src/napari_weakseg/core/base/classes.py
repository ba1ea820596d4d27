"""Class names: checked once, stored in the model, read everywhere.

A model's config holds one name per output channel, background first
(``["background", "head", "body"]``).  Users give the names of the
classes they labelled (1..K), optionally with the background's name in
front; files written before names existed get ``class 1``, ``class 2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .errors import WeaksegError

BACKGROUND = "background"
#: longest class name (a layer's status bar, a table column)
MAX_LENGTH = 64


def parse(text: str) -> list[str]:
    """``"head,body"`` -> ``["head", "body"]`` (spaces around trimmed)."""
    return [part.strip() for part in str(text).split(",")]


def check(names: Iterable[Any]) -> list[str]:
    """Names as given, refused in one sentence when one is empty, too
    long, not text or repeated (the count is checked against the labels
    by :func:`full`)."""
    if isinstance(names, str):
        names = parse(names)
    out = []
    for k, name in enumerate(names, start=1):
        if not isinstance(name, str):
            raise WeaksegError(
                f"Class name {k} is not text ({type(name).__name__})."
            )
        name = name.strip()
        if not name:
            raise WeaksegError(f"Class name {k} is empty.")
        if len(name) > MAX_LENGTH or not name.isprintable():
            raise WeaksegError(
                f"Class name {k} must be printable text of at most "
                f"{MAX_LENGTH} characters."
            )
        if name in out:
            raise WeaksegError(f"The class name '{name}' is given twice.")
        out.append(name)
    return out


def default(num_classes: int) -> list[str]:
    """``background, class 1, ..., class K-1`` for ``num_classes``."""
    return [BACKGROUND] + [f"class {c}" for c in range(1, num_classes)]


def full(names: Sequence[str], num_classes: int) -> list[str]:
    """One name per output channel, background first.

    ``names``: K names of classes 1..K, or K + 1 with the background's
    name first; empty: the defaults.  Another count is one sentence.
    """
    names = check(names)
    if not names:
        return default(num_classes)
    k = num_classes - 1
    if len(names) == k:
        if BACKGROUND in names:
            raise WeaksegError(
                f"'{BACKGROUND}' names label 0; give the names of labels "
                f"1 to {k} only."
            )
        return [BACKGROUND, *names]
    if len(names) == num_classes:
        return list(names)
    raise WeaksegError(
        f"Give one name per class: the labels hold {k} class"
        f"{'es' if k != 1 else ''} (1 to {k}) but {len(names)} name"
        f"{'s were' if len(names) != 1 else ' was'} given."
    )


def of(config: Any) -> list[str]:
    """The names of a model's classes, background first; files without
    names (or with a wrong count) get the defaults."""
    n = int(getattr(config, "num_classes", 0) or 0)
    names = list(getattr(config, "class_names", None) or [])
    if len(names) == n and len(set(names)) == n:
        return [str(x) for x in names]
    return default(n)
