"""Pick the compute device: CUDA > MPS > CPU, overridable."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
from collections.abc import Iterator, Sequence

import torch

from .defaults import DEVICES as CHOICES
from .errors import WeaksegError


def resolve_device(name: str | None = "auto") -> torch.device:
    """The device for ``name`` (``auto``, ``cpu``, ``cuda[:n]``, ``mps``)."""
    name = (name or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WeaksegError("CUDA was asked for but no CUDA GPU is available.")
    if name == "mps" and not has_mps:
        raise WeaksegError("MPS was asked for but is not available here.")
    if name.split(":")[0] not in CHOICES:
        raise WeaksegError(
            f"Unknown device '{name}'; use one of {', '.join(CHOICES)}."
        )
    return torch.device(name)


def autocast_dtype(
    device: torch.device, training: bool = False
) -> torch.dtype | None:
    """Mixed precision: on CUDA bf16 (float16 where bf16 is missing); on
    a CPU with native bf16 (:func:`cpu_bf16`) bf16 for the ``training``
    steps that ask for it; none elsewhere (CPU prediction stays float32:
    it is cheap, and its probabilities are compared to the float32
    reference)."""
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    if device.type == "cpu" and training and cpu_bf16():
        return torch.bfloat16
    return None


def cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX),
    where a bf16 training step costs about 0.75 of a float32 one at the
    same Dice (``docs/peer.md``).  ``WEAKSEG_CPU_BF16=0`` turns it off,
    ``=1`` on whatever the CPU."""
    forced = os.environ.get("WEAKSEG_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return _native_bf16()


@functools.cache
def _native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = set(f.read().split())
    except OSError:  # not Linux: no way to tell, stay in float32
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


_SEED_LOCK = threading.Lock()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's global generator seeded with ``seed`` inside the block and
    restored after it, one thread at a time: weights initialised inside
    are the same whatever other runs do at once (each run's patches come
    from its own generators)."""
    with _SEED_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


#: bytes of training memory per patch voxel, per base filter and per
#: patch of a batch: 59-101 measured (peak RSS of 2 steps, patches
#: 64^3-96^3, 16-32 filters, CPU); the check errs on the large side
TRAIN_BYTES_PER_VOXEL_FILTER = 100


def free_memory(device: torch.device) -> int | None:
    """Bytes the device can still allocate (None when unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_training_memory(
    patch: Sequence[int], batch: int, filters: int, device: torch.device
) -> None:
    """Refuse a patch, batch and width whose training cannot fit in the
    device's free memory, before anything is allocated."""
    voxels = math.prod(int(p) for p in patch)
    need = voxels * batch * filters * TRAIN_BYTES_PER_VOXEL_FILTER
    free = free_memory(device)
    if free is not None and need > free:
        raise WeaksegError(
            f"Training with patch {list(patch)}, batch {batch} and "
            f"{filters} base filters needs about {need / 2**30:,.1f} GiB "
            f"of memory but {free / 2**30:,.1f} GiB are free on "
            f"{device.type}; use a smaller patch, batch or width."
        )
