"""Pick the compute device: CUDA > MPS > CPU, overridable."""

from __future__ import annotations

import torch

from .errors import WeaksegError

CHOICES = ("auto", "cpu", "cuda", "mps")


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


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA (bf16 where supported), none elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
