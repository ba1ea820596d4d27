"""Reading a bioimage.io model package exported by napari-weakseg.

Reading needs neither ``bioimageio.spec`` nor ``bioimageio.core``:
``rdf.yaml`` is parsed with PyYAML's safe loader (no aliases), the
napari-weakseg config comes from its ``config.weakseg`` section and the
state dict is loaded with ``torch.load(weights_only=True)``: no pickled
code runs.  Writing a package is :mod:`~.export`'s.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..base.errors import WeaksegError
from .networks import ModelConfig, build_network, canonical_state, non_finite

SUFFIX = ".zip"
#: the description's own file inside a package
RDF = "rdf.yaml"
#: largest rdf.yaml / weights file read from a package (bytes)
MAX_RDF = 1 << 20
MAX_WEIGHTS = 4 << 30


def is_package(path: Any) -> bool:
    """A path that names a bioimage.io package (``.zip``)."""
    return isinstance(path, str | os.PathLike) and str(path).lower().endswith(
        SUFFIX
    )


def _member(zf: zipfile.ZipFile, name: Any, limit: int, what: str) -> bytes:
    if not isinstance(name, str) or name not in zf.namelist():
        raise WeaksegError(f"The package has no {what} ({name}).")
    if zf.getinfo(name).file_size > limit:
        raise WeaksegError(f"The package's {what} is implausibly large.")
    return zf.read(name)


def _loader() -> Any:
    """PyYAML's safe loader without aliases: a small file of nested
    aliases would otherwise expand without bound once serialised."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def fetch_alias(self) -> None:
            raise yaml.YAMLError("aliases are not allowed")

    return NoAliases


def read_package(path: str | os.PathLike) -> tuple[dict, ModelConfig]:
    """Tensors and config of a bioimage.io package exported by
    napari-weakseg; no code runs (YAML safe-load, ``weights_only``)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise WeaksegError(f"No model file at {p}.")
    try:
        with zipfile.ZipFile(p) as zf:
            rdf = yaml.load(  # noqa: S506 - a safe loader, no aliases
                _member(zf, RDF, MAX_RDF, "rdf.yaml"), Loader=_loader()
            )
            ours = ((rdf or {}).get("config") or {}).get("weakseg")
            if not isinstance(ours, dict):
                raise WeaksegError(
                    f"{p.name} is a bioimage.io package but not one "
                    "exported by napari-weakseg (no config.weakseg)."
                )
            entry = (rdf.get("weights") or {}).get("pytorch_state_dict")
            if not isinstance(entry, dict):
                raise WeaksegError(
                    f"{p.name} has no pytorch_state_dict weights."
                )
            data = _member(zf, entry.get("source"), MAX_WEIGHTS, "weights")
    except (zipfile.BadZipFile, OSError, yaml.YAMLError, AttributeError):
        raise WeaksegError(
            f"{p.name} is not a bioimage.io package (a .zip holding rdf.yaml)."
        ) from None
    sha = entry.get("sha256")
    if sha and hashlib.sha256(data).hexdigest() != sha:
        raise WeaksegError(
            f"{p.name}'s weights do not match their sha256 (damaged)."
        )
    try:
        config = ModelConfig.from_json(json.dumps(ours.get("model_config")))
    except (TypeError, ValueError) as exc:
        raise WeaksegError(
            f"{p.name} has a damaged model config ({exc})."
        ) from None
    try:
        state = torch.load(
            io.BytesIO(data), map_location="cpu", weights_only=True
        )
    except Exception:  # noqa: BLE001 - any unreadable file: one sentence
        raise WeaksegError(
            f"{p.name}'s weights are not a plain PyTorch state dict."
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(t, torch.Tensor)
        for k, t in state.items()
    ):
        raise WeaksegError(
            f"{p.name}'s weights are not a plain PyTorch state dict."
        )
    bad = non_finite(state)
    if bad:
        raise WeaksegError(
            f"{p.name} holds NaN or infinite weights (tensor '{bad}')."
        )
    if config.kind != "unet":
        raise WeaksegError(f"{p.name} holds no segmentation model.")
    model = build_network(config)
    own = model.state_dict()
    if set(state) != set(own) or any(
        tuple(state[k].shape) != tuple(own[k].shape) for k in own
    ):
        raise WeaksegError(
            f"{p.name}'s weights do not match its own architecture."
        )
    model.load_state_dict(state, strict=True)
    return canonical_state(model), config
