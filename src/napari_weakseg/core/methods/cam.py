"""Where a network looks: CAM, Grad-CAM and Grad-CAM++ for 3D models.

Grad-CAM/Grad-CAM++ are MONAI's :mod:`monai.visualize` implementations with
an identity postprocessing (MONAI's default normaliser inverts the map);
CAM for GAP + linear classifiers is ``ReLU(sum_k w_k^c A_k)`` computed here
(MONAI's ``CAM`` also adds the linear bias).  For a segmentation network the
score of class c is the sum of its logits over a region (the whole input by
default).  Maps are ReLU'd and trilinearly upsampled to the input grid
(``align_corners=False``) but *not* normalised: :func:`normalise_map` does
that separately.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base.defaults import CAM_BAND, IGNORE
from ..base.defaults import CAM_METHODS as METHODS
from ..base.errors import Cancelled, WeaksegError
from ..base.events import Progress, run


class RegionScore(nn.Module):
    """Class scores of a segmentation net: logits summed over a region."""

    def __init__(self, model: nn.Module, region: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        self.region = region

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if self.region is not None:
            logits = logits * self.region.to(logits.dtype)
        return logits.sum(dim=tuple(range(2, logits.ndim)))


def list_layers(model: nn.Module) -> list[str]:
    """Blocks a map can be taken from: top-level blocks holding 3D convs.

    For MONAI's DynUNet and the encoder classifier these are
    ``input_block``, ``downsamples.i``, ``bottleneck``, ``upsamples.i`` and
    ``output_block`` (deepest encoder block last among the encoder ones);
    for MONAI's UNet its nested down blocks, deepest last, then its up
    blocks (:func:`~.networks.unet_blocks`).
    """
    from ..nn.networks import blocks_of

    split = blocks_of(model)
    if split is not None:
        return split[0] + split[1]
    names = []
    for name, mod in model.named_modules():
        if not name or name.count(".") > 1 or name.startswith("skip_layers"):
            continue
        if isinstance(mod, nn.ModuleList | nn.ModuleDict):
            continue
        top = name.split(".")[0]
        parent = dict(model.named_modules()).get(top)
        if "." not in name and isinstance(parent, nn.ModuleList):
            continue
        if "." in name and not isinstance(parent, nn.ModuleList):
            continue
        if any(
            isinstance(m, nn.Conv3d | nn.ConvTranspose3d)
            for m in mod.modules()
        ):
            names.append(name)
    if not names:
        raise WeaksegError(
            "This model has no 3D convolutional layer to take a map from."
        )
    return names


def default_layer(model: nn.Module) -> str:
    """The deepest encoder block (``bottleneck`` when there is one)."""
    from ..nn.networks import blocks_of

    split = blocks_of(model)
    if split is not None:
        return split[0][-1]
    layers = list_layers(model)
    return "bottleneck" if "bottleneck" in layers else layers[-1]


def _check(
    model: nn.Module, x: torch.Tensor, layer: str, class_index: int
) -> torch.Tensor:
    layers = list_layers(model)
    if layer not in layers:
        raise WeaksegError(
            f"No layer '{layer}' to take a map from; choose one of "
            f"{', '.join(layers)}."
        )
    with torch.no_grad():
        out = model(x)
    _check_class(class_index, out.shape[1])
    return out


def _check_class(class_index: int, num_classes: int) -> None:
    if not 0 <= class_index < num_classes:
        raise WeaksegError(
            f"Class {class_index} is out of range; this model has classes "
            f"0..{num_classes - 1}."
        )


def upsample(m: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Trilinear upsampling to ``size`` with ``align_corners=False``."""
    return F.interpolate(
        m, size=tuple(size), mode="trilinear", align_corners=False
    )


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target_layer: str,
    class_index: int,
    region: torch.Tensor | None = None,
    method: str = "gradcam",
) -> torch.Tensor:
    """Raw Grad-CAM (or Grad-CAM++) map ``(B, 1, Z, Y, X)`` of ``x``."""
    from monai.visualize import GradCAM, GradCAMpp

    if method not in ("gradcam", "gradcam++"):
        raise WeaksegError(
            f"Unknown method '{method}'; use gradcam or gradcam++."
        )
    out = _check(model, x, target_layer, class_index)
    net = copy.deepcopy(model)  # MONAI's hooks stay on the module they hook
    name = target_layer
    if out.ndim > 2:  # segmentation: score = logits summed over the region
        net, name = RegionScore(net, region), f"model.{target_layer}"
    cls = GradCAM if method == "gradcam" else GradCAMpp
    cam_ = cls(nn_module=net, target_layers=name, postprocessing=lambda m: m)
    try:
        return cam_(x, class_idx=class_index).detach()
    finally:
        # MONAI's hooks keep the activations and the score with their
        # autograd graph, which refers back to the hooks: a cycle through
        # C++ that Python's collector cannot see (13 MB per call leaked)
        hooked = cam_.nn_module
        hooked.activations.clear()
        hooked.gradients.clear()
        hooked.score = None


def cam(
    model: nn.Module,
    x: torch.Tensor,
    class_index: int,
    padded: bool = False,
) -> torch.Tensor:
    """CAM ``ReLU(sum_k w_k^c A_k)`` of a GAP + linear classifier.

    The model must expose ``features(x)`` (the last feature maps) and a
    linear ``fc`` layer, as :class:`~.networks.EncoderClassifier` does; for
    a :class:`~.milnet.LocalClassifier` the CAM is the class map its
    pooling reads (ReLU of the per-voxel log-odds against class 0), and
    ``padded`` says ``x`` carries the model's context around the region
    to map.
    """
    if hasattr(model, "score_map"):
        model.eval()
        with torch.no_grad():
            s = model.score_map(x, padded)
        _check_class(class_index, s.shape[1])
        return F.relu(s[:, class_index : class_index + 1])
    if not (
        hasattr(model, "features")
        and isinstance(getattr(model, "fc", None), nn.Linear)
    ):
        raise WeaksegError(
            "CAM needs a classifier ending in global average pooling and one "
            "linear layer; use Grad-CAM for other models."
        )
    _check(model, x, default_layer(model), class_index)
    model.eval()
    with torch.no_grad():
        a = model.features(x)
        m = torch.einsum("k,bk...->b...", model.fc.weight[class_index], a)
    return upsample(F.relu(m)[:, None], x.shape[2:])


def normalise_map(m: np.ndarray | torch.Tensor) -> np.ndarray:
    """Min-max to [0, 1] (a constant map becomes zeros)."""
    a = np.asarray(m, np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def iter_map_volume(
    model: nn.Module,
    image: np.ndarray,
    class_index: int,
    method: str = "gradcam",
    layer: str | None = None,
    window: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    stop: threading.Event | None = None,
) -> Generator[Progress, None, np.ndarray]:
    """Raw map of a normalised whole volume, by Gaussian-blended windows;
    yields :class:`~.events.Progress` per window, returns the map.

    With ``window`` None (or larger than the image) one pass covers it.
    A local classifier's windows carry its context of the image, so the
    map does not depend on the tiling.
    """
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import compute_importance_map

    from .classifier import cut

    if method not in METHODS:
        raise WeaksegError(
            f"Unknown method '{method}'; use one of {', '.join(METHODS)}."
        )
    model = model.to(device).eval()
    layer = layer or default_layer(model)
    shape = image.shape
    win = [min(int(w), int(s)) for w, s in zip(window or shape, shape)]
    interval = [max(1, int(w * 0.75)) for w in win]
    slices = dense_patch_slices(shape, win, interval)
    weight = compute_importance_map(win, mode="gaussian", device="cpu").numpy()
    context = getattr(model, "context", 0) if method == "cam" else 0
    total = np.zeros(shape, np.float32)
    norm = np.zeros(shape, np.float32)
    yield Progress(0, len(slices), "map")
    for i, sl in enumerate(slices):
        if stop is not None and stop.is_set():
            raise Cancelled("Map stopped.")
        box = [s.start for s in sl] + [s.stop for s in sl]
        x = torch.as_tensor(cut(image, box, context), dtype=torch.float32)
        x = x[None, None].to(device)
        if method == "cam":
            m = cam(model, x, class_index, padded=bool(context))
        else:
            m = grad_cam(model, x, layer, class_index, method=method)
        total[sl] += m[0, 0].cpu().numpy() * weight
        norm[sl] += weight
        yield Progress(i + 1, len(slices), "map")
    return total / np.maximum(norm, 1e-8)


def map_volume(*args: Any, **kwargs: Any) -> np.ndarray:
    """:func:`iter_map_volume` run to the end (same parameters)."""
    return run(iter_map_volume(*args, **kwargs))


def pseudo_labels(
    cam_map: np.ndarray,
    class_index: int = 1,
    threshold: str | float = "otsu",
    band: float = CAM_BAND,
    ignore_label: int = IGNORE,
) -> np.ndarray:
    """Seeds from a map in the sparse label convention.

    Voxels at or above the threshold (Otsu, or a fraction of the maximum)
    are ``class_index``; at or below ``band * threshold`` background (0);
    the band in between is ``ignore_label`` -- seeds to expand and
    constrain by training on them, not final masks.
    """
    from skimage.filters import threshold_otsu

    m = np.asarray(cam_map, np.float32)
    if float(m.max()) <= float(m.min()):
        raise WeaksegError("The map is constant; it holds no localisation.")
    hi = (
        float(threshold_otsu(m))
        if threshold == "otsu"
        else float(threshold) * float(m.max())
    )
    out = np.full(m.shape, ignore_label, np.uint8)
    out[m >= hi] = class_index
    out[m <= band * hi] = 0
    return out
