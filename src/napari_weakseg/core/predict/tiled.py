"""Prediction of volumes larger than memory, block by block with dask.

The volume is cut into blocks (dask chunks) and every block is predicted
by MONAI's sliding window over the block plus a halo
(:func:`dask.array.map_overlap`, no padding at the volume's edges).
Blocks start on the sliding window's grid and the halo is what the
windows covering a block's voxels reach beyond it, so each voxel gets
the same Gaussian-blended windows as a whole-volume prediction: the
result equals :func:`~.inference.predict_probabilities` on the whole
volume (up to float rounding; test-time flips excepted, whose windows are
anchored at the block's far side).

Any dask scheduler runs the graph: this thread (the default: one block
at a time, torch parallel inside), or a :mod:`dask.distributed` cluster
whose workers each load the model file once (:class:`ModelRef`).  Memory
is bounded by the block size, not the volume size: outputs stream into
zarr stores block by block.
"""

from __future__ import annotations

import contextlib
import functools
import math
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.defaults import OVERLAP
from ..base.errors import Cancelled, WeaksegError
from ..base.events import Progress
from ..data.normalise import apply_normalisation
from .sliding import predict_probabilities

#: edge of a block, in voxels, before aligning it to the window grid
BLOCK_EDGE = 128
#: how long to wait for a dask scheduler's answer
CONNECT_TIMEOUT = "10s"


def window_step(patch: int, overlap: float) -> int:
    """MONAI's scan interval for one axis (``int(patch * (1 - overlap))``)."""
    return max(1, int(patch * (1 - overlap)))


def halo(patch: int, overlap: float) -> tuple[int, int]:
    """Voxels a block reads before and after itself along one axis.

    Windows start on multiples of the step ``s``; those covering a block
    ``[a, b)`` (``a``, ``b`` on the grid) start from the first grid point
    after ``a - patch`` and reach ``b - s + patch``.
    """
    s = window_step(patch, overlap)
    return s * (math.ceil(patch / s) - 1), patch - s


def plan_chunks(
    shape: Sequence[int],
    patch: Sequence[int],
    overlap: float,
    edge: int | Sequence[int] = BLOCK_EDGE,
) -> tuple[tuple[int, ...], ...]:
    """Block sizes per axis: multiples of the window step, at least a
    patch, the last one at least a patch too (so no block is padded)."""
    edges = [edge] * 3 if isinstance(edge, int) else list(edge)
    chunks = []
    for size, p, e in zip(shape, patch, edges):
        size, p, e = int(size), int(p), int(e)
        if e < p:
            raise WeaksegError(
                f"Blocks of {e} voxels are smaller than the model's patch "
                f"({p}); give blocks of at least {p} voxels."
            )
        s = window_step(p, overlap)
        c = s * max(math.ceil(p / s), round(e / s))
        if size <= c + p:
            chunks.append((size,))
            continue
        n, rest = divmod(size, c)
        sizes = [c] * n
        if rest and rest < p:
            sizes[-1] += rest
        elif rest:
            sizes.append(rest)
        chunks.append(tuple(sizes))
    return tuple(chunks)


@dataclass(frozen=True)
class ModelRef:
    """A model by its file: what a worker process receives; each process
    loads it once (no code runs: safetensors)."""

    path: str
    device: str = "auto"

    def load(self) -> torch.nn.Module:
        return _load_cached(self.path, self.device)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, device: str) -> torch.nn.Module:
    from ..base.device import resolve_device
    from ..nn.models import load_model

    return load_model(path, resolve_device(device))[0]


def _block_probabilities(
    block: np.ndarray,
    model: Any,
    stats: dict[str, float],
    patch: tuple[int, ...],
    overlap: float,
    device: str,
    tta: bool | Sequence[int],
    halos: tuple[tuple[int, int], ...],
    block_info: dict | None = None,
) -> np.ndarray:
    """Probabilities of one block read with its halo, the halo cut off."""
    net = model.load() if isinstance(model, ModelRef) else model
    dev = next(net.parameters()).device if device == "model" else device
    probs = predict_probabilities(
        net,
        apply_normalisation(block, stats),
        patch,
        torch.device(dev),
        overlap,
        tta=tta,
    )
    info = (block_info or {}).get(0)
    if info is None:  # dask probing the function with an empty block
        return probs
    keep = [slice(None)]
    for (before, after), k, n, size in zip(
        halos, info["chunk-location"], info["num-chunks"], block.shape
    ):
        lo = before if k > 0 else 0
        hi = size - (after if k < n - 1 else 0)
        keep.append(slice(lo, hi))
    return np.ascontiguousarray(probs[tuple(keep)])


def probability_graph(
    image: Any,
    model: torch.nn.Module | ModelRef,
    stats: dict[str, float],
    patch: Sequence[int],
    num_classes: int,
    overlap: float = OVERLAP,
    device: str = "model",
    tta: bool | Sequence[int] = False,
    edge: int | Sequence[int] = BLOCK_EDGE,
) -> Any:
    """A lazy ``(C, Z, Y, X)`` float32 dask array of probabilities.

    ``image`` may be numpy, zarr or dask; it is read block by block.
    """
    import dask.array as da

    patch = tuple(int(p) for p in patch)
    chunks = plan_chunks(image.shape, patch, overlap, edge)
    x = (
        image.rechunk(chunks)
        if isinstance(image, da.Array)
        else da.from_array(image, chunks=chunks, asarray=False)
    )
    depth = tuple(halo(p, overlap) for p in patch)
    return da.map_overlap(
        _block_probabilities,
        x,
        depth=dict(enumerate(depth)),
        boundary="none",
        trim=False,
        new_axis=0,
        chunks=((num_classes,), *x.chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0, 0), np.float32),
        model=model,
        stats=dict(stats),
        patch=patch,
        overlap=overlap,
        device=device,
        tta=tta,
        halos=depth,
        name="weakseg-predict",
    )


def iter_store(
    probs: Any,
    labels_out: Any,
    probabilities_out: Any = None,
    client: Any = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Generator[Progress, None, None]:
    """Compute ``probs`` block by block into the output arrays (zarr).

    Without ``client`` the blocks run one after another on this thread
    (memory: one block); with a :class:`distributed.Client` they run on
    its workers, each block writing its own region of the stores, which
    must then be on a file system the workers share.  Stop is checked
    between blocks; yields one :class:`Progress` per block (or passes it
    to ``on_progress`` instead).
    """
    import dask

    blocks = list(np.ndindex(*probs.numblocks[1:]))
    total = len(blocks)
    starts = [np.cumsum((0, *c[:-1])) for c in probs.chunks[1:]]

    def region(idx: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(
            slice(int(s[i]), int(s[i]) + c[i])
            for s, c, i in zip(starts, probs.chunks[1:], idx)
        )

    def write(p: np.ndarray, box: tuple[slice, ...]) -> int:
        labels_out[box] = np.argmax(p, axis=0).astype(np.uint8)
        if probabilities_out is not None:
            probabilities_out[(slice(None), *box)] = p
        return 1

    def report(done: int) -> tuple[Progress, ...]:
        event = Progress(done, total, "predicting")
        if on_progress is None:
            return (event,)
        on_progress(event)  # reported on this thread, not yielded
        return ()

    yield from report(0)
    tasks = [
        dask.delayed(write)(probs.blocks[(0, *idx)], region(idx))
        for idx in blocks
    ]
    if client is None:
        for done, task in enumerate(tasks, start=1):
            if stop is not None and stop.is_set():
                raise Cancelled("Prediction stopped.")
            task.compute(scheduler="sync")
            yield from report(done)
        return
    from distributed import as_completed

    futures = client.compute(tasks)
    try:
        for done, future in enumerate(as_completed(futures), start=1):
            future.result()  # a worker's error, raised here
            if stop is not None and stop.is_set():
                raise Cancelled("Prediction stopped.")
            yield from report(done)
    finally:
        client.cancel(futures)


@contextlib.contextmanager
def connect(scheduler: Any) -> Iterator[Any]:
    """A :class:`distributed.Client` for the block (None without a
    scheduler): ``"local"`` starts a :class:`~distributed.LocalCluster`
    (one single-threaded worker process; for several GPUs start
    ``dask-cuda``'s cluster and give its address), another string is a
    scheduler address (both closed when the block ends); a client is
    used as it is."""
    if scheduler is None or not isinstance(scheduler, str):
        yield scheduler  # none, or a client the caller holds open
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise WeaksegError(
            "Distributed prediction needs dask.distributed: pip install "
            "distributed."
        ) from None
    if scheduler == "local":
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=1, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise WeaksegError(
            f"No dask scheduler answers at {scheduler} ({exc})."
        ) from None
    try:
        yield client
    finally:
        client.close()


def iter_predict_volume(
    model: torch.nn.Module | ModelRef,
    config: Any,
    volume: Any,
    out: str | Path | None = None,
    probabilities: str | Path | None = None,
    overlap: float = OVERLAP,
    tta: bool | Sequence[int] = False,
    stop: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    client: Any = None,
    edge: int | Sequence[int] = BLOCK_EDGE,
) -> Generator[Progress, None, tuple[Any, Any]]:
    """Predict ``volume`` (a :class:`~.io.Volume`) block by block.

    Outputs stream into zarr stores: ``out``/``probabilities`` when they
    are ``.zarr``/``.ome.zarr`` paths (written beside, renamed into place
    when complete), else scratch stores, then written in their format
    (other formats need the whole array in memory) or, without a path,
    returned in memory.  Returns ``(labels, probabilities)``: lazy zarr
    arrays for zarr outputs, numpy otherwise (probabilities None when
    neither asked for nor needed).
    """
    from ..data.normalise import intensity_stats
    from ..data.volumes import (
        Volume,
        atomic_output,
        create_store,
        finish_store,
        is_zarr_path,
        read_volume,
        write_volume,
    )

    data, geometry = volume.data, volume.geometry
    stats = intensity_stats(data, config.normalisation)
    probs = probability_graph(
        data,
        model,
        stats,
        config.patch_size,
        config.num_classes,
        overlap,
        "model",
        tta,
        edge,
    )
    chunks = tuple(c[0] for c in probs.chunks[1:])
    wanted = {"labels": out, "probabilities": probabilities}
    shapes = {"labels": data.shape, "probabilities": probs.shape}
    dtypes = {"labels": np.uint8, "probabilities": np.float32}
    with contextlib.ExitStack() as stack:
        scratch: Path | None = None
        tmp: dict[str, Path] = {}
        for key, path in wanted.items():
            if path is None and key == "probabilities":
                continue
            if path is not None and is_zarr_path(path):
                tmp[key] = stack.enter_context(atomic_output(path))
                continue
            if scratch is None:
                beside = Path(path).parent if path is not None else None
                if beside is not None:
                    beside.mkdir(parents=True, exist_ok=True)
                scratch = Path(
                    stack.enter_context(
                        tempfile.TemporaryDirectory(
                            prefix=".weakseg-", dir=beside
                        )
                    )
                )
            tmp[key] = scratch / f"{key}.zarr"
        arrays = {
            key: create_store(
                t,
                wanted[key] if wanted[key] is not None else t,
                tuple(shapes[key]),
                dtypes[key],
                geometry,
                chunks if key == "labels" else (1, *chunks),
            )
            for key, t in tmp.items()
        }
        yield from iter_store(
            probs,
            arrays["labels"],
            arrays.get("probabilities"),
            client,
            stop,
            on_progress,
        )
        results: dict[str, Any] = {"probabilities": None}
        for key, t in tmp.items():
            path = wanted[key]
            if path is not None and is_zarr_path(path):
                finish_store(t, path)
                continue
            results[key] = np.asarray(arrays[key])
            if path is not None:
                write_volume(path, Volume(results[key], geometry))
    for key, path in wanted.items():
        if path is not None and is_zarr_path(path):
            results[key] = read_volume(path, lazy=True).data
    return results["labels"], results["probabilities"]
