"""Range checks of settings, the same for the API and the CLI.

Every numeric setting has one accepted range in
:data:`~.defaults.BOUNDS`; :func:`check` turns a value outside it (a
bool for a number, NaN, a fraction where a whole number belongs) into
one sentence.  The CLI builds its argument types from the same table.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from .defaults import BOUNDS, PATCH_MULTIPLE
from .errors import WeaksegError


def describe(name: str) -> str:
    """``'a whole number from 1 to 1,024'`` for a setting's range."""
    kind, low, high, closed = BOUNDS[name]
    what = "a whole number" if kind is int else "a number"
    top = f"{high:,}" if kind is int else f"{high:g}"
    low_text = f"{low:,}" if kind is int else f"{low:g}"
    return f"{what} from {low_text} to {top}" + (
        "" if closed else " (excluded)"
    )


def problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``name`` (None when it is)."""
    kind, low, high, closed = BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"{name} must be {describe(name)} (got {value!r})"
    if kind is int and not isinstance(value, numbers.Integral):
        return f"{name} must be {describe(name)} (got {value!r})"
    if not math.isfinite(value):
        return f"{name} must be {describe(name)} (got {value!r})"
    above = value > high if closed else value >= high
    if value < low or above:
        return f"{name} must be {describe(name)} (got {value!r})"
    return None


def check(**values: Any) -> None:
    """Refuse the first setting outside its range (None means unset)."""
    for name, value in values.items():
        if value is None:
            continue
        if name == "patch_size":
            check_patch(value)
            continue
        why = problem(name, value)
        if why:
            raise WeaksegError(why + ".")


def check_patch(patch: Sequence[int] | int, name: str = "patch_size") -> None:
    """A patch: three sides (or one), each a multiple of 8 in 8..512."""
    sides = [patch] if isinstance(patch, numbers.Real) else patch
    try:
        sides = list(sides)
    except TypeError:
        sides = [patch]
    ok = len(sides) in (1, 3) and all(
        problem("patch", s) is None and int(s) % PATCH_MULTIPLE == 0
        for s in sides
    )
    if not ok:
        raise WeaksegError(
            f"{name} must be three sides (Z, Y, X), each a multiple of "
            f"{PATCH_MULTIPLE} from {BOUNDS['patch'][1]} to "
            f"{BOUNDS['patch'][2]} (got {patch!r})."
        )
