"""Safe model files: save, read, load and transfer weights.

A model file is a single ``.safetensors`` file: tensors plus a JSON config
(:class:`~.networks.ModelConfig`) in the header metadata.  Loading parses
JSON and raw tensors only; no pickle, so a model file can never execute
code.  A bioimage.io package exported by napari-weakseg reads the same
way (:mod:`~.packages`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ... import __version__
from ..base.errors import WeaksegError
from .networks import (
    FORMAT_VERSION,
    ModelConfig,
    build_network,
    canonical_state,
    non_finite,
)
from .packages import read_package

CONFIG_KEY = "weakseg_config"


def save_model(
    path: str | os.PathLike, model: Any, config: ModelConfig
) -> Path:
    """Write a module's tensors and config to one file, atomically."""
    return save_tensors(path, canonical_state(model), config)


def save_tensors(
    path: str | os.PathLike, tensors: dict, config: ModelConfig
) -> Path:
    """Write tensors and config to one ``.safetensors`` file, atomically.

    The bytes go to a temporary named after ``path`` beside it (see
    :mod:`~.files`), then it is renamed; weights that are NaN or infinite
    are never written.
    """
    from safetensors.torch import save

    from ..base.files import discard, temporary_sibling

    p = Path(path)
    if p.is_dir():
        raise WeaksegError(f"{p} is an existing folder; give a file name.")
    bad = non_finite(tensors)
    if bad:
        raise WeaksegError(
            f"The weights hold NaN or infinite values (tensor '{bad}'); "
            f"{p.name} was not written."
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    data = save(tensors, metadata={CONFIG_KEY: config.to_json()})
    tmp = temporary_sibling(p)
    try:
        with open(tmp, "xb") as f:  # 0666 less the umask, like any file
            f.write(data)
        os.replace(tmp, p)
    finally:
        discard(tmp)
    return p


def read_model_file(path: str | os.PathLike) -> tuple[dict, ModelConfig]:
    """Tensors and config of a model file (or of a bioimage.io package
    exported by napari-weakseg), with no code execution."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    p = Path(path)
    if p.suffix.lower() == ".zip":  # a bioimage.io package
        return read_package(p)
    if not p.is_file():
        raise WeaksegError(f"No model file at {p}.")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeaksegError(
            f"{p.name} is not a napari-weakseg model file (expected a "
            ".safetensors file written by napari-weakseg)."
        ) from exc
    if CONFIG_KEY not in meta:
        raise WeaksegError(
            f"{p.name} is a safetensors file but not a napari-weakseg model "
            "(its header has no weakseg config)."
        )
    try:
        config = ModelConfig.from_json(meta[CONFIG_KEY])
    except (TypeError, ValueError) as exc:
        raise WeaksegError(
            f"{p.name} has a damaged model config ({exc})."
        ) from None
    bad = non_finite(tensors)
    if bad:
        raise WeaksegError(
            f"{p.name} holds NaN or infinite weights (tensor '{bad}'); it "
            "is the result of a diverged training and cannot predict."
        )
    if config.format_version != FORMAT_VERSION:
        raise WeaksegError(
            f"{p.name} uses model format {config.format_version}; this "
            f"napari-weakseg ({__version__}) reads format {FORMAT_VERSION}."
        )
    return tensors, config


def load_model(
    path: str | os.PathLike, device: Any = "cpu"
) -> tuple[Any, ModelConfig]:
    """Rebuild a segmentation network from a model file, in eval mode."""
    tensors, config = read_model_file(path)
    model = build_network(config)
    expected = set(canonical_state(model))
    if set(tensors) != expected:
        k = sorted(expected ^ set(tensors))[0]
        raise WeaksegError(
            f"{Path(path).name} does not match its own architecture "
            f"(tensor '{k}' is missing or unexpected)."
        )
    transfer_weights(model, tensors, Path(path).name)
    return model.to(device).eval(), config


def transfer_weights(model: Any, tensors: dict, source: str = "file") -> int:
    """Copy ``tensors`` into ``model``; every one must fit, or nothing is.

    Returns the number of tensors transferred.  A name the model lacks or a
    shape that differs is an architecture mismatch and a clear error, never
    a silent partial load.
    """
    own = model.state_dict()
    missing = [k for k in tensors if k not in own]
    wrong = [
        k
        for k in tensors
        if k in own and tuple(own[k].shape) != tuple(tensors[k].shape)
    ]
    if missing or wrong:
        k = (missing or wrong)[0]
        why = "has no tensor" if missing else "has another shape for"
        raise WeaksegError(
            f"The architecture of {source} does not match this model: the "
            f"model {why} '{k}' ({len(missing) + len(wrong)} of "
            f"{len(tensors)} tensors differ)."
        )
    model.load_state_dict(
        {k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=False
    )
    return len(tensors)
