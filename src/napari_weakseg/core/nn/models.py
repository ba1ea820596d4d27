"""Network builders, planning for anisotropic data, and safe model files.

The segmentation network is MONAI's :class:`~monai.networks.nets.DynUNet`
(the nnU-Net generic U-Net): per-axis kernel sizes and strides let it pool
only along axes that are fine enough, which is how anisotropic volumes (a
few thick slices of large planes) are handled.

A model file is a single ``.safetensors`` file: tensors plus a JSON config
in the header metadata.  Loading parses JSON and raw tensors only; no
pickle, so a model file can never execute code.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ... import __version__
from ..base.defaults import IGNORE
from ..base.errors import WeaksegError

FORMAT_VERSION = 1
CONFIG_KEY = "weakseg_config"
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
    if not isinstance(norm, dict) or set(norm) - {"method", "lower", "upper"}:
        return False
    lower, upper = norm.get("lower", 0.5), norm.get("upper", 99.5)
    return (
        norm.get("method", "percentile_zscore") == "percentile_zscore"
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
        default_factory=lambda: {
            "method": "percentile_zscore",
            "lower": 0.5,
            "upper": 99.5,
        }
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
            "pooling": self.pooling in ("gap", "topk"),
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
        }
        bad = [k for k, ok in rules.items() if not ok]
        if bad:
            value = json.dumps(getattr(self, bad[0]), default=str)[:60]
            raise ValueError(f"field '{bad[0]}' holds {value}")


def filter_widths(base_filters: int, depth: int) -> list[int]:
    """Channels per level: doubling from ``base_filters``, capped at 320.

    One rule for the U-Net, the classifier and the pretrained encoder, so
    encoders transfer whenever ``base_filters`` and depth agree.
    """
    return [min(320, base_filters * 2**i) for i in range(depth)]


def plan_network(
    patch_size: Sequence[int],
    spacing: Sequence[float],
    depth: int = 4,
) -> tuple[list[list[int]], list[list[int]]]:
    """nnU-Net-style kernel sizes and strides for one patch size/spacing.

    An axis is pooled only while its current spacing is at most twice the
    finest one and the feature map stays at least 8 voxels long; kernels
    are 1 along axes still more than twice as coarse as the finest.
    """
    size = [int(s) for s in patch_size]
    sp = [float(s) for s in spacing]
    kernels: list[list[int]] = []
    strides: list[list[int]] = [[1, 1, 1]]
    for level in range(depth):
        finest = min(sp)
        kernels.append([3 if s <= 2 * finest else 1 for s in sp])
        if level == depth - 1:
            break
        stride = [
            2 if (sp[a] <= 2 * finest and size[a] >= 8) else 1
            for a in range(3)
        ]
        strides.append(stride)
        size = [math.ceil(s / st) for s, st in zip(size, stride)]
        sp = [s * st for s, st in zip(sp, stride)]
    return kernels, strides


def plan_patch_size(
    shape: Sequence[int],
    spacing: Sequence[float],
    budget_voxels: int = 48**3,
    depth: int = 4,
) -> list[int]:
    """A patch of about ``budget_voxels`` with balanced physical extent.

    The patch covers a similar physical length on each axis, never exceeds
    the image, and is a multiple of the pooling factor on each axis.
    """
    sp = [float(s) for s in spacing]
    inv = [1.0 / s for s in sp]
    scale = (budget_voxels / math.prod(inv)) ** (1.0 / 3.0)
    patch = [max(8, min(int(n), round(scale * v))) for n, v in zip(shape, inv)]
    # Redistribute the budget lost to the cap on short axes.
    for _ in range(3):
        free = [a for a in range(3) if patch[a] < shape[a]]
        if not free or math.prod(patch) >= budget_voxels:
            break
        grow = (budget_voxels / math.prod(patch)) ** (1.0 / len(free))
        for a in free:
            patch[a] = min(int(shape[a]), round(patch[a] * grow))
    _, strides = plan_network(patch, sp, depth)
    factor = [math.prod(s[a] for s in strides) for a in range(3)]
    return [max(f, (p // f) * f) for p, f in zip(patch, factor)]


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


def non_finite(tensors: dict) -> str | None:
    """The name of the first floating tensor with a NaN or infinite
    value (None when every one is finite)."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def read_model_file(path: str | os.PathLike) -> tuple[dict, ModelConfig]:
    """Tensors and config of a model file (or of a bioimage.io package
    exported by napari-weakseg), with no code execution."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    p = Path(path)
    if p.suffix.lower() == ".zip":  # a bioimage.io package (see bmz)
        from .bmz import read_package

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
