"""Several processes training one model with PyTorch DDP.

``weakseg train`` (or :func:`~..api.train`) started by ``torchrun
--nproc-per-node N`` finds ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in its
environment: each process joins the group (NCCL on GPUs, gloo on CPU),
takes GPU ``LOCAL_RANK``, samples its own patches (a rank-dependent
seed), and DDP averages the gradients, so every rank holds the same
weights after every step.  Only rank 0 writes checkpoints; stop and time
budget are decided together (the ranks' flags are reduced every step).
Without those variables nothing here does anything.
"""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass

import torch

from ..base.errors import WeaksegError

#: how long a rank waits for the others before it gives up
TIMEOUT = datetime.timedelta(minutes=2)


@dataclass(frozen=True)
class World:
    """This process's place in the group (a single process: 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """The group from ``torchrun``'s environment (read, not joined)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return World()
    return World(rank, size, local) if size > 1 else World()


def device_for(device: torch.device, w: World) -> torch.device:
    """Each rank's own GPU (``cuda:LOCAL_RANK``); other devices as given."""
    if w.distributed and device.type == "cuda" and device.index is None:
        return torch.device("cuda", w.local_rank % torch.cuda.device_count())
    return device


def join(device: torch.device, w: World) -> None:
    """Join the process group once (NCCL for CUDA, else gloo)."""
    import torch.distributed as dist

    if not w.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=TIMEOUT)
    except (RuntimeError, ValueError) as exc:
        raise WeaksegError(
            f"Rank {w.rank} could not join the other {w.size - 1} "
            f"training processes ({exc})."
        ) from None


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` under DDP (gradients averaged across ranks)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # the networks keep no buffers (instance norm); newer torch names the
    # switch differently
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    quiet = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in params
        else {"broadcast_buffers": False}
    )
    return DistributedDataParallel(model, device_ids=ids, **quiet)


def any_rank(flag: bool, w: World, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (stop, deadline)."""
    if not w.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def lost(w: World, exc: BaseException) -> WeaksegError:
    """The sentence for a group that broke (a rank died or hung)."""
    return WeaksegError(
        f"Training stopped: another of the {w.size} processes ended or "
        f"stopped answering ({type(exc).__name__}); the checkpoints "
        "written so far are intact."
    )


def is_group_error(exc: BaseException) -> bool:
    """An error of the process group (a peer gone), not of the model."""
    import torch.distributed as dist

    text = str(exc)
    return isinstance(exc, getattr(dist, "DistError", ())) or any(
        word in text for word in ("gloo", "NCCL", "Connection closed")
    )
