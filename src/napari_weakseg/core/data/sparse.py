"""Sparse slice annotations and the training target they define.

Two conventions meet here.

*Painting* (a napari Labels layer): 0 = not painted, 1..K = classes and
:data:`BACKGROUND_BRUSH` (255) = explicitly painted background.  A slice can
be marked *done*: its unpainted voxels then count as background.

*Sparse labels* (files, CLI, API, training): 0 = background, 1..K =
classes, ``ignore_label`` (default 255) = unlabelled.

:func:`to_sparse_labels` and :func:`from_sparse_labels` convert between
them; nothing else in the package needs to know about the painting side.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..base.defaults import BACKGROUND_BRUSH, IGNORE
from ..base.errors import WeaksegError

AXES = ("z", "y", "x")

DoneSlices = dict[int, list[int]]


def _slicer(axis: int, index: int) -> tuple[slice | int, ...]:
    idx: list[slice | int] = [slice(None)] * 3
    idx[axis] = index
    return tuple(idx)


def normalise_done(
    done: Mapping[int | str, Iterable[int]] | None,
) -> DoneSlices:
    """``{axis: sorted unique slice indices}`` for axes 0, 1, 2."""
    out: DoneSlices = {0: [], 1: [], 2: []}
    for key, values in (done or {}).items():
        axis = (
            AXES.index(key)
            if isinstance(key, str) and key in AXES
            else int(key)
        )
        out[axis] = sorted({int(v) for v in values})
    return out


def to_sparse_labels(
    painted: np.ndarray,
    done: Mapping[int | str, Iterable[int]] | None = None,
    ignore_label: int = IGNORE,
) -> np.ndarray:
    """Turn a painted layer plus done slices into sparse labels."""
    painted = np.asarray(painted)
    sparse = np.full(painted.shape, ignore_label, np.uint8)
    for axis, indices in normalise_done(done).items():
        for i in indices:
            if not 0 <= i < painted.shape[axis]:
                raise WeaksegError(
                    f"Slice {i} on axis {AXES[axis]} is outside the volume "
                    f"(0..{painted.shape[axis] - 1})."
                )
            sparse[_slicer(axis, i)] = 0
    classes = (painted > 0) & (painted != BACKGROUND_BRUSH)
    sparse[classes] = painted[classes]
    sparse[painted == BACKGROUND_BRUSH] = 0
    return sparse


def from_sparse_labels(
    sparse: np.ndarray, ignore_label: int = IGNORE
) -> tuple[np.ndarray, DoneSlices]:
    """Inverse of :func:`to_sparse_labels`: painted layer and done slices.

    A slice counts as done when every voxel on it is labelled.
    """
    sparse = np.asarray(sparse)
    painted = np.zeros(sparse.shape, np.uint8)
    labelled = sparse != ignore_label
    painted[labelled & (sparse > 0)] = sparse[labelled & (sparse > 0)]
    painted[labelled & (sparse == 0)] = BACKGROUND_BRUSH
    done: DoneSlices = {}
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        full = np.all(labelled, axis=other)
        done[axis] = [int(i) for i in np.flatnonzero(full)]
    return painted, done


def painted_slices(painted: np.ndarray) -> DoneSlices:
    """Slices of a painted layer with no unpainted voxel, per axis: they
    are done (marking a slice done paints its rest with the background
    brush, an edit like any other, so undo and redo cover it)."""
    full = np.asarray(painted) != 0
    done: DoneSlices = {}
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        done[axis] = [int(i) for i in np.flatnonzero(np.all(full, axis=other))]
    return done


def fill_done(
    painted: np.ndarray, done: Mapping[int | str, Iterable[int]] | None
) -> np.ndarray:
    """``painted`` with the unpainted voxels of done slices set to the
    background brush: the same annotation, its done slices in the data."""
    out = np.array(painted, copy=True)
    for axis, indices in normalise_done(done).items():
        for i in indices:
            if 0 <= i < out.shape[axis]:
                plane = out[_slicer(axis, i)]
                plane[plane == 0] = BACKGROUND_BRUSH
    return out


def unmarked_plane(
    painted: np.ndarray,
    axis: int,
    index: int,
    done: Mapping[int | str, Iterable[int]] | None,
) -> np.ndarray:
    """Slice ``index`` of ``axis`` with its background brush taken off,
    except where it crosses another done slice (which stays done)."""
    # read one slice (a store on disk is never read whole)
    plane = np.array(np.asarray(painted[_slicer(axis, index)]), copy=True)
    keep = np.zeros(plane.shape, bool)
    others = [b for b in range(3) if b != axis]
    for k, b in enumerate(others):
        for j in normalise_done(done)[b]:
            line: list[slice | int] = [slice(None)] * 2
            line[k] = j
            keep[tuple(line)] = True
    plane[(plane == BACKGROUND_BRUSH) & ~keep] = 0
    return plane


#: chunk edge of annotation stores on disk (cubes: sparse slices run in
#: any orientation)
STORE_CHUNK = 64


def open_store(path: str | os.PathLike, shape: Sequence[int]) -> Any:
    """The on-disk annotation of a volume larger than memory: a zarr
    array of the painted layer (0 unpainted), created empty if ``path``
    holds none of this shape.  Every paint stroke is written to it (that
    is its autosave); only chunks someone painted take space.  Its done
    slices are in the attributes (:data:`~.defaults.DONE_KEY`)."""
    import zarr

    shape = tuple(int(s) for s in shape)
    p = Path(path)
    if p.exists():
        try:
            arr = zarr.open_array(str(p), mode="r+")
        except Exception as exc:  # damaged: say so, never paint over it
            raise WeaksegError(
                f"The annotation store {p} cannot be opened ({exc}); move "
                "it away to start a new one."
            ) from None
        if tuple(arr.shape) == shape:
            return arr
        raise WeaksegError(
            f"The annotation store {p} has shape {tuple(arr.shape)}, not "
            f"the image's {shape}; move it away to start a new one."
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    return zarr.open_array(
        str(p),
        mode="w",
        shape=shape,
        dtype=np.uint8,
        chunks=tuple(min(STORE_CHUNK, s) for s in shape),
        fill_value=0,
    )


def sparse_view(painted: Any, ignore_label: int = IGNORE) -> Any:
    """Sparse labels of a painted store as a lazy dask array (block by
    block :func:`to_sparse_labels`; done slices are in the data)."""
    import dask.array as da

    blocks = da.from_array(painted, chunks=painted.chunks, asarray=False)
    return blocks.map_blocks(
        to_sparse_labels, ignore_label=ignore_label, dtype=np.uint8
    )


def merge_done(*sets: Mapping[int | str, Iterable[int]] | None) -> DoneSlices:
    """The union of several done-slice mappings."""
    out: DoneSlices = {0: [], 1: [], 2: []}
    for done in sets:
        for axis, values in normalise_done(done).items():
            out[axis] = sorted({*out[axis], *values})
    return out


def labelled_fraction(sparse: np.ndarray, ignore_label: int = IGNORE) -> float:
    """Share of voxels that carry a label."""
    return float(np.mean(np.asarray(sparse) != ignore_label))


def evenly_spaced_slices(n: int, count: int) -> list[int]:
    """``count`` slice indices spread evenly over ``n``, ends excluded."""
    count = max(0, min(count, n))
    return [int(round(v)) for v in np.linspace(0, n, count + 2)[1:-1]]


def suggest_next_slice(
    shape: tuple[int, int, int],
    done: Mapping[int | str, Iterable[int]] | None,
    axis: int,
    uncertainty: np.ndarray | None = None,
) -> int:
    """The slice on ``axis`` most worth annotating next.

    Without a model: the slice farthest from every done slice (evenly
    spread).  With a per-voxel ``uncertainty`` volume: the unannotated
    slice with the highest mean uncertainty.
    """
    taken = set(normalise_done(done)[axis])
    n = shape[axis]
    free = [i for i in range(n) if i not in taken]
    if not free:
        raise WeaksegError(f"Every slice on axis {AXES[axis]} is done.")
    if uncertainty is not None:
        other = tuple(a for a in range(3) if a != axis)
        per_slice = np.asarray(uncertainty).mean(axis=other)
        return int(max(free, key=lambda i: (per_slice[i], -i)))
    if not taken:
        return n // 2
    anchors = np.array(sorted(taken | {-1, n}))

    def gap(i: int) -> float:
        return float(np.min(np.abs(anchors - i)))

    return int(max(free, key=lambda i: (gap(i), -i)))


@dataclass
class AnnotationStore:
    """Autosave of one image's annotations: painted layer + done slices.

    Written atomically as ``<key>.weakseg-annotations.npz`` in ``folder``
    (a unique temporary file, then a rename) under an advisory lock per
    key, so two viewers saving the same image never collide.  The snapshot
    it replaces is kept as ``….prev.npz``: when the newest cannot be read,
    :meth:`load` falls back to it and says so in :attr:`warning`.
    """

    folder: Path
    key: str
    done: DoneSlices = field(default_factory=dict)
    #: a sentence when :meth:`load` had to skip a damaged snapshot
    warning: str = ""

    @property
    def path(self) -> Path:
        return Path(self.folder) / f"{self.key}.weakseg-annotations.npz"

    @property
    def previous(self) -> Path:
        return self.path.with_name(
            self.path.name[: -len(".npz")] + ".prev.npz"
        )

    def save(self, painted: np.ndarray, done: Mapping | None = None) -> Path:
        self.done = normalise_done(done)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(
                    fh,
                    painted=np.asarray(painted, np.uint8),
                    done=np.frombuffer(
                        json.dumps(self.done).encode(), dtype=np.uint8
                    ),
                )
                fh.flush()
                os.fsync(fh.fileno())
            with self._lock():
                if self.path.exists():
                    os.replace(self.path, self.previous)
                os.replace(name, self.path)
        finally:
            if os.path.exists(name):
                os.unlink(name)
        return self.path

    @contextmanager
    def _lock(self):
        lock = self.path.with_name(self.path.name + ".lock")
        with open(lock, "a") as fh:
            try:
                import fcntl
            except ImportError:  # Windows: renames are atomic enough
                yield
                return
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self) -> tuple[np.ndarray, DoneSlices] | None:
        """The newest readable snapshot, or None when there is none."""
        self.warning = ""
        for path in (self.path, self.previous):
            if not path.exists():
                continue
            try:
                with np.load(path, allow_pickle=False) as f:
                    painted = np.asarray(f["painted"])
                    done = json.loads(bytes(f["done"]).decode())
                self.done = normalise_done(
                    {int(k): v for k, v in done.items()}
                )
            except Exception as exc:  # zip, zlib, JSON, key errors alike
                self.warning += (
                    f"The autosave {path.name} cannot be read "
                    f"({type(exc).__name__}); "
                )
                continue
            if self.warning:
                self.warning += f"restored the previous one, {path.name}."
            return painted, self.done
        if self.warning:
            self.warning += "no annotations were restored."
        return None
