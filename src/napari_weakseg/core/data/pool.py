"""A streaming pool of unlabelled volumes.

Pretraining and semi-supervised training draw patches from a pool of
unlabelled volumes that may be far larger than memory (137 hippocampus
crops, thousands of scans).  :class:`VolumePool` lists the files of the
folders, globs and files it is given, and keeps at most ``cache``
normalised volumes in memory: every ``swap_every`` draws the oldest one
is dropped and the next file (in a shuffled order, epoch after epoch) is
read in its place.  A file that cannot be read is skipped with one
:class:`~.events.Skipped` (collected in :attr:`VolumePool.pending` for the
trainer to yield); a 2D image or a volume with channels stops the run
with one sentence; so does a pool with no volume at all.
"""

from __future__ import annotations

import glob
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..base.defaults import POOL_CACHE
from ..base.errors import WeaksegError
from ..base.events import Skipped
from .normalise import normalise

#: draws between two reads of a new volume into the cache
SWAP_EVERY = 4


def pool_files(sources: str | os.PathLike | Sequence[Any]) -> list[Path]:
    """The volume files of folders, glob patterns and files, sorted per
    source, each once."""
    from .formats import can_read
    from .volumes import is_collection, volume_files

    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    out: list[Path] = []
    for src in sources:
        text = str(src)
        if is_collection(src):
            found = volume_files(src)
            if not found:
                raise WeaksegError(
                    f"The pool folder {text} holds no volume file."
                )
        elif any(c in text for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(text) if can_read(p))
            if not found:
                raise WeaksegError(
                    f"The pool pattern {text} matches no volume file."
                )
        elif Path(text).exists():
            found = [Path(text)]
        else:
            raise WeaksegError(f"The pool source {text} does not exist.")
        out += [p for p in found if p not in out]
    if not out:
        raise WeaksegError("Give at least one unlabelled volume or folder.")
    return out


def pad_to(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Pad (edge values, after the end) axes shorter than ``size``."""
    pad = [(0, max(0, int(p) - s)) for p, s in zip(size, image.shape)]
    return np.pad(image, pad, mode="edge") if any(b for _, b in pad) else image


class VolumePool:
    """Normalised unlabelled volumes, at most ``cache`` in memory.

    ``sources``: folders, glob patterns or files (read as they are
    needed), or arrays already in memory (kept as they are).  ``size``:
    every volume is padded (edge values) to at least this shape.
    """

    def __init__(
        self,
        sources: Any,
        size: Sequence[int] = (1, 1, 1),
        cache: int = POOL_CACHE,
        swap_every: int = SWAP_EVERY,
        seed: int = 0,
    ) -> None:
        self.size = [int(s) for s in size]
        self.cache_limit = max(1, int(cache))
        self.swap_every = max(1, int(swap_every))
        self.rng = np.random.default_rng(seed)
        self.cache: OrderedDict[Any, np.ndarray] = OrderedDict()
        self.pending: list[Skipped] = []
        self.skipped: list[Skipped] = []
        self.reads = 0
        self.draws = 0
        items = list(sources) if _is_many(sources) else [sources]
        arrays = [x for x in items if not isinstance(x, str | os.PathLike)]
        if arrays and len(arrays) != len(items):
            raise WeaksegError(
                "Give the pool as files and folders, or as arrays, not both."
            )
        self.arrays = []
        for k, a in enumerate(arrays, start=1):
            try:
                self.arrays.append(self._prepare(np.asarray(a), f"{k}"))
            except _Unusable as e:
                raise WeaksegError(f"Pool volume {k}: {e}.") from None
        if self.arrays:
            self.paths: list[Path] = []
            self.cache_limit = len(self.arrays)
            for k, a in enumerate(self.arrays):
                self.cache[k] = a
            return
        self.paths = pool_files(items)
        self.found = len(self.paths)
        self.order: list[Path] = []
        self._fill()

    @classmethod
    def prepared(cls, arrays: Sequence[np.ndarray], seed: int = 0):
        """A pool of volumes already normalised and padded, in memory."""
        pool = cls.__new__(cls)
        pool.size, pool.swap_every = [1, 1, 1], SWAP_EVERY
        pool.rng = np.random.default_rng(seed)
        pool.pending, pool.skipped, pool.paths = [], [], []
        pool.reads = pool.draws = 0
        pool.found = len(arrays)
        pool.arrays = list(arrays)
        pool.cache_limit = len(pool.arrays)
        pool.cache = OrderedDict(enumerate(pool.arrays))
        return pool

    def __len__(self) -> int:
        return len(self.arrays) or self.found

    @property
    def usable(self) -> int:
        """Volumes not skipped (so far)."""
        return len(self.arrays) or len(self.paths)

    def _prepare(self, img: np.ndarray, name: str) -> np.ndarray:
        img = self._check(img, name)
        return np.ascontiguousarray(pad_to(normalise(img), self.size))

    @staticmethod
    def _check(img: np.ndarray, name: str) -> np.ndarray:
        """``img`` as a float32 3D volume, or one sentence why not."""
        if img.ndim == 4 and img.shape[0] == 1:
            img = img[0]
        if img.ndim == 4:
            raise WeaksegError(
                f"The pool volume {name} has {img.shape[0]} channels; the "
                "pool must hold single-channel 3D volumes like the images "
                "it trains with."
            )
        if img.ndim != 3 or min(img.shape) < 2:
            raise WeaksegError(
                f"The pool volume {name} is a 2D image {tuple(img.shape)}; "
                "the pool must hold 3D volumes."
            )
        img = np.asarray(img, np.float32)
        if not np.isfinite(img).all() or float(img.std()) < 1e-6:
            raise _Unusable("it is flat or holds NaN or infinite voxels")
        return img

    def raw(self) -> Iterator[np.ndarray]:
        """Every usable volume once, as read (float32, not normalised nor
        padded); unreadable files are skipped as :meth:`volume` skips
        them (see :meth:`drain`)."""
        if self.arrays:
            raise WeaksegError(
                "A pool given as arrays holds normalised copies only."
            )
        for path in list(self.paths):
            img = self._read(path, prepare=self._check)
            if img is not None:
                yield img

    def _read(self, path: Path, prepare=None) -> np.ndarray | None:
        from .volumes import read_volume

        try:
            data = np.asarray(read_volume(path).data)
        except WeaksegError as e:
            if "channel" in str(e):
                raise WeaksegError(
                    f"The pool volume {path.name} has several channels; "
                    "the pool must hold single-channel 3D volumes."
                ) from None
            return self._skip(path, str(e))
        except Exception as e:  # noqa: BLE001 - any unreadable file
            return self._skip(path, f"{type(e).__name__}: {e}")
        self.reads += 1
        try:
            return (prepare or self._prepare)(data, path.name)
        except _Unusable as e:
            return self._skip(path, str(e))

    def _skip(self, path: Path, reason: str) -> None:
        reason = reason.strip().split("\n")[0].rstrip(".")
        ev = Skipped(str(path), f"{path.name} is skipped: {reason}.")
        self.skipped.append(ev)
        self.pending.append(ev)
        self.paths = [p for p in self.paths if p != path]
        if not self.paths:
            raise WeaksegError(
                f"No volume of the pool could be read ({len(self.skipped)} "
                f"skipped; the first: {self.skipped[0].reason})"
            )
        return None

    def _next_path(self) -> Path:
        if not self.order:
            self.order = [
                self.paths[i] for i in self.rng.permutation(len(self.paths))
            ]
        return self.order.pop()

    def _load_one(self) -> None:
        """Read the next volume not in the cache (skipping bad files)."""
        for _ in range(2 * len(self.paths) + 2):
            path = self._next_path()
            if path in self.cache:
                if len(self.cache) >= len(self.paths):
                    return
                continue
            img = self._read(path)
            if img is not None:
                self.cache[path] = img
                return

    def _fill(self) -> None:
        while len(self.cache) < min(self.cache_limit, len(self.paths)):
            before = len(self.cache)
            self._load_one()
            if len(self.cache) == before:
                break

    def volume(self) -> np.ndarray:
        """A random cached volume; every ``swap_every`` draws the oldest
        cached volume makes room for the next one read."""
        self.draws += 1
        if (
            not self.arrays
            and self.draws % self.swap_every == 0
            and len(self.paths) > len(self.cache)
        ):
            self.cache.popitem(last=False)
            self._fill()
        keys = list(self.cache)
        return self.cache[keys[int(self.rng.integers(len(keys)))]]

    def drain(self) -> list[Skipped]:
        """The skipped files not reported yet."""
        out, self.pending = self.pending, []
        return out


class _Unusable(Exception):
    pass


def _is_many(x: Any) -> bool:
    return isinstance(x, list | tuple)
