"""Network builders and the model config that describes a network.

The segmentation network is MONAI's :class:`~monai.networks.nets.DynUNet`
(the nnU-Net generic U-Net) or its ``UNet`` with residual units: per-axis
kernel sizes and strides (:mod:`~.planning`) let it pool only along axes
that are fine enough, which is how anisotropic volumes (a few thick
slices of large planes) are handled.  :data:`NETWORKS` registers each
network with its encoder/decoder block split, which CAM layers, encoder
transfer and pretraining read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ... import __version__
from ..base.defaults import IGNORE, POOLINGS
from ..base.errors import WeaksegError
from ..data.normalise import DEFAULT, percentiles
from .planning import plan_network

FORMAT_VERSION = 1
#: the largest patch a model file may ask for (a 256^3 window): a larger
#: one in a downloaded file would allocate without bound
MAX_PATCH_VOXELS = 256**3


def _intensity_ok(stats: Any) -> bool:
    """Empty, or finite ``lo`` <= ``hi``."""
    if stats == {}:
        return True
    return (
        isinstance(stats, dict)
        and set(stats) == {"lo", "hi"}
        and all(
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            for v in stats.values()
        )
        and stats["lo"] <= stats["hi"]
    )


def _normalisation_ok(norm: Any) -> bool:
    """The one method there is, with percentiles 0 <= lower < upper <= 100."""
    if not isinstance(norm, dict) or set(norm) - set(DEFAULT):
        return False
    lower, upper = percentiles(norm)
    return (
        norm.get("method", DEFAULT["method"]) == DEFAULT["method"]
        and all(
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            for v in (lower, upper)
        )
        and 0 <= lower < upper <= 100
    )


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network and use it on a new image."""

    kind: str = "unet"
    #: ``resunet`` (MONAI ``UNet``, residual units) or ``dynunet``; files
    #: written before the field existed hold a DynUNet.
    network: str = "dynunet"
    num_classes: int = 2
    class_names: list[str] = field(default_factory=list)
    in_channels: int = 1
    filters: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    kernel_sizes: list[list[int]] = field(default_factory=list)
    strides: list[list[int]] = field(default_factory=list)
    norm: str = "instance"
    #: classifiers: ``gap`` (U-Net encoder + GAP + linear) or ``topk``
    #: (:class:`~.milnet.LocalClassifier`: local evidence, top-k pooled)
    pooling: str = "gap"
    #: ``topk`` classifiers: dilations of their convolutions, pooled share
    dilations: list[int] = field(default_factory=list)
    topk: float = 0.002
    patch_size: list[int] = field(default_factory=lambda: [48, 48, 48])
    spacing: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    normalisation: dict[str, Any] = field(
        default_factory=lambda: dict(DEFAULT)
    )
    ignore_label: int = IGNORE
    #: raw intensity clip bounds (0.5 / 99.5 percentiles) of the training
    #: images, mean over them: ``{"lo": .., "hi": ..}`` (empty: unknown)
    intensity: dict[str, float] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    weakseg_version: str = __version__
    #: how the file was made: settings, inputs and their SHA-256, seed
    #: (see :mod:`~.recipe`; empty: unknown)
    recipe: dict[str, Any] = field(default_factory=dict)
    #: axes (0 = z, 1 = y, 2 = x) patches were mirrored along in training:
    #: test-time flips use only these (None: unknown, every axis)
    mirrored: list[int] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Parse and check every field; ``ValueError`` names the first bad."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("the config is nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError("the config is not a JSON object")
        known = set(cls.__dataclass_fields__)
        config = cls(**{k: v for k, v in data.items() if k in known})
        config.check()
        return config

    def check(self) -> None:
        """Types and ranges of every field, so no network is built wrong."""

        def ints(v: Any, n: int | None, lo: int, hi: int) -> bool:
            return (
                isinstance(v, list)
                and (n is None or len(v) == n)
                and all(type(x) is int and lo <= x <= hi for x in v)
            )

        depth = len(self.filters) if isinstance(self.filters, list) else 0
        rules = {
            "kind": self.kind in ("unet", "classifier", "encoder"),
            "network": self.network in NETWORKS,
            "num_classes": type(self.num_classes) is int
            and 0 <= self.num_classes <= 255,
            "class_names": isinstance(self.class_names, list)
            and all(isinstance(c, str) for c in self.class_names),
            "in_channels": type(self.in_channels) is int
            and 1 <= self.in_channels <= 16,
            "filters": ints(self.filters, None, 1, 320) and 3 <= depth <= 6,
            "kernel_sizes": self.kernel_sizes == []
            or (
                isinstance(self.kernel_sizes, list)
                and len(self.kernel_sizes) == depth
                and all(ints(k, 3, 1, 7) for k in self.kernel_sizes)
                and all(x % 2 for k in self.kernel_sizes for x in k)
            ),
            "strides": self.strides == []
            or (
                isinstance(self.strides, list)
                and len(self.strides) == depth
                and all(ints(k, 3, 1, 2) for k in self.strides)
            ),
            "norm": self.norm in ("instance", "batch"),
            "pooling": self.pooling in POOLINGS,
            "dilations": ints(self.dilations, None, 1, 8)
            and len(self.dilations) <= 12
            and (self.pooling != "topk" or len(self.dilations) > 0),
            "topk": isinstance(self.topk, int | float) and 0 < self.topk <= 1,
            "patch_size": ints(self.patch_size, 3, 1, 512)
            and math.prod(self.patch_size) <= MAX_PATCH_VOXELS,
            "spacing": isinstance(self.spacing, list)
            and len(self.spacing) == 3
            and all(
                isinstance(x, int | float) and math.isfinite(x) and x > 0
                for x in self.spacing
            ),
            "normalisation": _normalisation_ok(self.normalisation),
            "intensity": _intensity_ok(self.intensity),
            "ignore_label": type(self.ignore_label) is int
            and 0 <= self.ignore_label <= 255,
            "format_version": type(self.format_version) is int,
            "recipe": isinstance(self.recipe, dict),
            "mirrored": self.mirrored is None
            or (ints(self.mirrored, None, 0, 2) and len(self.mirrored) <= 3),
        }
        bad = [k for k, ok in rules.items() if not ok]
        if bad:
            value = json.dumps(getattr(self, bad[0]), default=str)[:60]
            raise ValueError(f"field '{bad[0]}' holds {value}")


def build_network(config: ModelConfig) -> Any:
    """The torch module a config describes: U-Net or encoder classifier."""
    if config.kind == "unet":
        if config.network not in NETWORKS:
            raise WeaksegError(
                f"Unknown network '{config.network}' in the model file "
                f"(known: {', '.join(NETWORKS)})."
            )
        return NETWORKS[config.network].build(config)
    if config.kind == "classifier" and config.pooling == "topk":
        from .milnet import LocalClassifier

        return LocalClassifier(
            config.filters[0],
            config.num_classes,
            config.dilations,
            config.topk,
        )
    if config.kind == "classifier":
        return EncoderClassifier(_dynunet(config), config.num_classes)
    raise WeaksegError(
        f"Unknown model kind '{config.kind}' in the model file."
    )


class EncoderClassifier(torch.nn.Module):
    """The U-Net encoder, global average pooling and one linear layer.

    Its blocks carry the U-Net's names (``input_block``, ``downsamples``,
    ``bottleneck``), so U-Net and pretrained-encoder weights transfer
    directly, and GAP + linear makes CAM exact.
    """

    def __init__(self, unet: Any, num_classes: int) -> None:
        super().__init__()
        self.input_block = unet.input_block
        self.downsamples = unet.downsamples
        self.bottleneck = unet.bottleneck
        self.pool = torch.nn.AdaptiveAvgPool3d(1)
        self.fc = torch.nn.Linear(unet.filters[-1], num_classes)

    def features(self, x: Any) -> Any:
        x = self.input_block(x)
        for block in self.downsamples:
            x = block(x)
        return self.bottleneck(x)

    def forward(self, x: Any) -> Any:
        return self.fc(self.pool(self.features(x)).flatten(1))


def _dynunet(config: ModelConfig) -> Any:
    from monai.networks.nets import DynUNet

    kernels, strides = config.kernel_sizes, config.strides
    if not kernels:
        kernels, strides = plan_network(
            config.patch_size, config.spacing, len(config.filters)
        )
        config.kernel_sizes, config.strides = kernels, strides
    norm = (
        ("INSTANCE", {"affine": True})
        if config.norm == "instance"
        else ("BATCH")
    )
    return DynUNet(
        spatial_dims=3,
        in_channels=config.in_channels,
        out_channels=config.num_classes,
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=config.filters,
        norm_name=norm,
        res_block=False,
    )


def _resunet(config: ModelConfig) -> Any:
    """MONAI's ``UNet`` with two residual units per level.

    The first level already downsamples, so little work runs at full
    resolution: about 4x cheaper per step than DynUNet at equal filters,
    and what plain MONAI users train.  Per-axis strides come from the same
    planning as DynUNet, so anisotropic volumes pool only fine axes.
    """
    from monai.networks.nets import UNet

    strides = config.strides
    if not strides:
        _, strides = plan_network(
            config.patch_size, config.spacing, len(config.filters)
        )
        config.kernel_sizes, config.strides = [], strides
    return UNet(
        spatial_dims=3,
        in_channels=config.in_channels,
        out_channels=config.num_classes,
        channels=config.filters,
        strides=[tuple(s) for s in strides[1:]],
        num_res_units=2,
        norm=("INSTANCE", {"affine": True})
        if config.norm == "instance"
        else "BATCH",
    )


def dynunet_blocks(model: Any) -> tuple[list[str], list[str]]:
    """Encoder and decoder block names of a MONAI ``DynUNet`` (or the
    encoder classifier built from one), top first, deepest encoder last."""
    names = dict(model.named_children())
    down = [f"downsamples.{i}" for i in range(len(names["downsamples"]))]
    up = [f"upsamples.{i}" for i in range(len(names.get("upsamples", [])))]
    tail = ["output_block"] if "output_block" in names else []
    return ["input_block", *down, "bottleneck"], up + tail


def unet_blocks(model: Any) -> tuple[list[str], list[str]]:
    """Encoder and decoder block names of a MONAI ``UNet``, top first.

    ``UNet`` nests each level in a ``SkipConnection``: level ``i``'s down
    block is ``model.1.submodule.`` repeated ``i`` times then ``0``, its up
    block the same path ending in ``2``; the deepest is ``...submodule``.
    """
    enc, dec, path = [], [], "model"
    node = model.model
    while True:
        enc.append(f"{path}.0")
        dec.insert(0, f"{path}.2")
        inner = node[1].submodule
        path = f"{path}.1.submodule"
        if not isinstance(inner, torch.nn.Sequential) or len(inner) != 3:
            enc.append(path)
            return enc, dec
        node = inner


@dataclass(frozen=True)
class Network:
    """A segmentation network: how to build it from a config, the MONAI
    class it is, and how it splits into encoder and decoder blocks (what
    CAM layers, encoder transfer and pretraining read)."""

    build: Callable[[ModelConfig], Any]
    module: str
    blocks: Callable[[Any], tuple[list[str], list[str]]]


#: Segmentation networks by name (``ModelConfig.network``).  A new one
#: needs a builder and its block split; nothing else names its blocks.
NETWORKS = {
    "resunet": Network(lambda c: _resunet(c), "UNet", unet_blocks),
    "dynunet": Network(lambda c: _dynunet(c), "DynUNet", dynunet_blocks),
}


def blocks_of(model: Any) -> tuple[list[str], list[str]] | None:
    """``(encoder, decoder)`` block names of a built network, top first
    (the deepest encoder block last); None for a network not registered."""
    if isinstance(model, EncoderClassifier):
        return dynunet_blocks(model)
    for net in NETWORKS.values():
        if type(model).__name__ == net.module:
            return net.blocks(model)
    return None


def encoder_prefixes(model: Any) -> tuple[str, ...]:
    """State-dict prefixes of a network's encoder (what transfers)."""
    split = blocks_of(model)
    if split is None:
        raise WeaksegError(
            f"{type(model).__name__} is not a registered network; its "
            "encoder is unknown."
        )
    return tuple(f"{name}." for name in split[0])


def encode(model: Any, x: Any) -> Any:
    """The deepest encoder features of ``x`` (the encoder path alone)."""
    for name in blocks_of(model)[0]:
        x = model.get_submodule(name)(x)
    return x


def canonical_state(model: Any) -> dict:
    """State dict with each shared tensor once, under its first name.

    MONAI's DynUNet registers its blocks twice (``skip_layers`` alias the
    encoder/decoder lists); names holding ``skip_layers`` lose.
    """
    items = sorted(
        model.state_dict().items(),
        key=lambda kv: ("skip_layers" in kv[0], kv[0]),
    )
    seen: set[int] = set()
    out = {}
    for k, v in items:
        ptr = v.data_ptr() if v.numel() else id(v)
        if ptr in seen:
            continue
        seen.add(ptr)
        out[k] = v.detach().to("cpu").contiguous()
    return out


def non_finite(tensors: dict) -> str | None:
    """The name of the first floating tensor with a NaN or infinite
    value (None when every one is finite)."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None
