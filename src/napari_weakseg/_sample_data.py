"""napari sample-data contributions: the shipped MNI volume and a phantom.

Pure functions returning napari layer-data tuples; no Qt, no network.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from .core.base.defaults import (
    DONE_KEY,
    IMAGE_KEY,
    ROLE_ANNOTATION,
    ROLE_KEY,
    ROLE_REFERENCE,
)
from .core.data.phantom import make_phantom
from .core.data.sparse import from_sparse_labels
from .core.data.volumes import read_volume

LayerData = tuple[Any, dict[str, Any], str]


def sample_dir() -> Path:
    """The folder holding the shipped sample volumes."""
    installed = Path(str(resources.files("napari_weakseg"))) / "sample_data"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "sample_data"


def sample_path(name: str) -> Path:
    return sample_dir() / name


def mni152() -> list[LayerData]:
    """MNI152 T1 (2 mm), its tissue labels and a few annotated slices."""
    t1 = read_volume(sample_path("mni152_t1_2mm.nii.gz"))
    tissue = read_volume(sample_path("mni152_tissue_2mm.nii.gz"))
    sparse = read_volume(sample_path("mni152_sparse_2mm.nii.gz"))
    painted, done = from_sparse_labels(sparse.data)
    geo = t1.geometry.layer_kwargs()
    ann_meta = {
        **geo["metadata"],
        DONE_KEY: done,
        ROLE_KEY: ROLE_ANNOTATION,
        IMAGE_KEY: "MNI152 T1",
    }
    ref_meta = {**geo["metadata"], ROLE_KEY: ROLE_REFERENCE}
    return [
        (t1.data, {**geo, "name": "MNI152 T1"}, "image"),
        (
            tissue.data,
            {
                **geo,
                "metadata": ref_meta,
                "name": "tissue (reference)",
                "visible": False,
            },
            "labels",
        ),
        (
            painted,
            {**geo, "metadata": ann_meta, "name": "annotations"},
            "labels",
        ),
    ]


def phantom() -> list[LayerData]:
    """A small synthetic phantom (image and its true labels)."""
    image, labels = make_phantom()
    return [
        (image, {"name": "phantom"}, "image"),
        (
            labels,
            {
                "name": "phantom truth",
                "visible": False,
                "metadata": {ROLE_KEY: ROLE_REFERENCE},
            },
            "labels",
        ),
    ]
