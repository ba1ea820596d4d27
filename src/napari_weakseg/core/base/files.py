"""Temporaries that carry their target's name, and their clean-up.

Every file the product writes is first written to a temporary beside
its target, named ``.<target name>.<pid>-<random>.tmp<suffix>``, then
renamed onto it.  A process killed with ``kill -9`` cannot remove its
temporary; the next write of the same target removes every temporary of
that target whose process is gone, so kills never pile up files.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

_PATTERN = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp")


def last_path(out: str | Path) -> Path:
    """Where the last (not best) checkpoint of ``out`` goes."""
    p = Path(out)
    stem = p.name.removesuffix(".safetensors")
    return p.with_name(f"{stem}.last.safetensors")


def temporary_sibling(target: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh temporary path beside ``target`` (nothing is created);
    stale temporaries of ``target`` are removed first."""
    p = Path(target)
    remove_stale(p)
    token = secrets.token_hex(4)
    return p.with_name(f".{p.name}.{os.getpid()}-{token}.tmp{suffix}")


def temporaries_of(target: str | os.PathLike) -> list[Path]:
    """The temporaries of ``target`` beside it, of any process."""
    p = Path(target)
    if not p.parent.is_dir():
        return []
    out = []
    for entry in p.parent.iterdir():
        m = _PATTERN.match(entry.name)
        if m and m["name"] == p.name:
            out.append(entry)
    return sorted(out)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale(target: str | os.PathLike) -> int:
    """Remove the temporaries of ``target`` left by processes that are
    gone (killed mid-write); returns how many."""
    removed = 0
    for tmp in temporaries_of(target):
        m = _PATTERN.match(tmp.name)
        if m is None or _alive(int(m["pid"])):
            continue
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def discard(path: Path) -> None:
    """Remove a temporary file or folder if it is there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)
