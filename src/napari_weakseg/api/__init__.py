"""Headless Python API: the single facade over core.

Everything here runs without Qt.  The napari docks and the ``weakseg``
CLI call these functions and nothing deeper, so every input check lives
in one place.  Each long task comes twice: ``iter_<task>`` is a generator
that yields events (:mod:`~.core.events`) and returns the result (what a
napari worker runs), and ``<task>`` runs it to the end, passing every
event to ``callback``.

Examples
--------
>>> from napari_weakseg import api
>>> result = api.train("t1.nii.gz", "sparse.nii.gz", "model.safetensors")
>>> labels, probabilities = api.predict("model.safetensors", "t1.nii.gz")
>>> for event in api.iter_train("t1.nii.gz", "sparse.nii.gz", "m.safetensors"):
...     print(event)
"""

from __future__ import annotations

from ..core.base.errors import WeaksegError
from ..core.data.volumes import Volume, read_volume, write_volume
from ._common import as_volume  # noqa: F401
from .boxes import (  # noqa: F401
    boxes_to_masks,
    crf,
    iter_boxes_to_masks,
)
from .cam import (  # noqa: F401
    cam_layers,
    cam_to_segmentation,
    class_activation_map,
    iter_cam_to_segmentation,
    iter_class_activation_map,
    iter_segment_from_map,
    pseudo_labels,
    segment_from_map,
)
from .classifier import (  # noqa: F401
    _crops_of,
    iter_train_classifier,
    train_classifier,
)
from .models import (  # noqa: F401
    EXPORT_FORMATS,
    ModelInfo,
    class_names,
    export_model,
    load_model,
    model_info,
)
from .prediction import (  # noqa: F401
    Batch,
    batch_inputs,
    iter_predict,
    iter_predict_batch,
    predict,
    predict_batch,
    predict_slice,
    suggest_slice,
    uncertainty,
)
from .scoring import (  # noqa: F401
    evaluate,
    score_table,
)
from .training import (  # noqa: F401
    iter_pretrain,
    iter_train,
    pretrain,
    train,
)

__all__ = [
    "Volume",
    "WeaksegError",
    "boxes_to_masks",
    "cam_layers",
    "class_activation_map",
    "class_names",
    "crf",
    "evaluate",
    "export_model",
    "iter_boxes_to_masks",
    "iter_class_activation_map",
    "iter_predict",
    "iter_predict_batch",
    "iter_pretrain",
    "iter_train",
    "iter_train_classifier",
    "iter_cam_to_segmentation",
    "cam_to_segmentation",
    "iter_segment_from_map",
    "segment_from_map",
    "load_model",
    "model_info",
    "predict",
    "predict_batch",
    "predict_slice",
    "pseudo_labels",
    "pretrain",
    "read_volume",
    "score_table",
    "suggest_slice",
    "train",
    "train_classifier",
    "uncertainty",
    "write_volume",
]
