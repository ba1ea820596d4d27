"""The bioimage.io description (``rdf.yaml``) of an exported model.

The network as MONAI builds it (the state dict's architecture), the
input and output tensors with their axes, sizes, halo and scale, the
preprocessing (``clip``, ``zero_mean_unit_variance``) and the softmax
postprocessing, built with ``bioimageio.spec`` (imported lazily).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ... import __version__
from ..base.errors import WeaksegError
from ..data.normalise import percentiles
from ..nn.networks import NETWORKS, ModelConfig

INPUT_ID = "raw"


OUTPUT_ID = "probabilities"


SPATIAL = ("z", "y", "x")


#: what ``zero_mean_unit_variance`` adds to the std (the spec's default)
EPS = 1e-6


def architecture(config: ModelConfig) -> tuple[str, str, dict[str, Any]]:
    """``(import_from, callable, kwargs)`` that rebuild the network of a
    built ``config`` (kernels and strides planned) from MONAI alone."""
    norm: Any = (
        ["INSTANCE", {"affine": True}]
        if config.norm == "instance"
        else "BATCH"
    )
    strides = [list(s) for s in config.strides]
    if config.network == "dynunet":
        return (
            "monai.networks.nets",
            "DynUNet",
            {
                "spatial_dims": 3,
                "in_channels": config.in_channels,
                "out_channels": config.num_classes,
                "kernel_size": [list(k) for k in config.kernel_sizes],
                "strides": strides,
                "upsample_kernel_size": strides[1:],
                "filters": list(config.filters),
                "norm_name": norm,
                "res_block": False,
            },
        )
    if config.network == "resunet":
        return (
            "monai.networks.nets",
            "UNet",
            {
                "spatial_dims": 3,
                "in_channels": config.in_channels,
                "out_channels": config.num_classes,
                "channels": list(config.filters),
                "strides": strides[1:],
                "num_res_units": 2,
                "norm": norm,
            },
        )
    raise WeaksegError(
        f"A {config.network} network cannot be described as a bioimage.io "
        f"architecture (known: {', '.join(NETWORKS)})."
    )


def pooling_factor(config: ModelConfig) -> list[int]:
    """Per axis, what an input size must be a multiple of."""
    return [math.prod(int(s[a]) for s in config.strides) for a in range(3)]


def halo(config: ModelConfig) -> list[int]:
    """Per axis, the border of an output tile to discard when tiling: a
    quarter of the patch (napari-weakseg's windows overlap by half)."""
    return [int(p) // 4 for p in config.patch_size]


def describe(
    config: ModelConfig,
    names: list[str],
    files: dict[str, Path],
    *,
    title: str,
    description: str,
    authors: Sequence[str],
    license: str,
) -> Any:
    """The ``ModelDescr`` of the package (``files``: its local files)."""
    from bioimageio.spec.model import v0_5 as v

    axes_in: list[Any] = [
        v.BatchAxis(),
        v.ChannelAxis(
            channel_names=[
                v.Identifier(f"channel{c}")
                if config.in_channels > 1
                else v.Identifier("image")
                for c in range(config.in_channels)
            ]
        ),
    ]
    axes_out: list[Any] = [
        v.BatchAxis(),
        v.ChannelAxis(channel_names=list(names)),
    ]
    for a, axis in enumerate(SPATIAL):
        axes_in.append(
            v.SpaceInputAxis(
                id=v.AxisId(axis),
                size=v.ParameterizedSize(
                    min=int(config.patch_size[a]),
                    step=pooling_factor(config)[a],
                ),
                scale=float(config.spacing[a]),
                description=f"sliding-window patch {config.patch_size[a]}",
            )
        )
        axes_out.append(
            v.SpaceOutputAxisWithHalo(
                id=v.AxisId(axis),
                size=v.SizeReference(
                    tensor_id=v.TensorId(INPUT_ID), axis_id=v.AxisId(axis)
                ),
                halo=halo(config)[a],
                scale=float(config.spacing[a]),
            )
        )
    lower, upper = percentiles(config.normalisation)
    spatial = [v.AxisId(a) for a in SPATIAL]
    where, name, kwargs = architecture(config)
    pytorch_version = v.Version(torch.__version__.split("+")[0])
    return v.ModelDescr(
        name=title,
        description=description,
        authors=[v.Author(name=a) for a in authors],
        cite=[
            v.CiteEntry(
                text="Isensee et al. nnU-Net: a self-configuring method for "
                "deep learning-based biomedical image segmentation. Nature "
                "Methods 18, 203-211 (2021)",
                doi=v.Doi("10.1038/s41592-020-01008-z"),
            ),
            v.CiteEntry(
                text="Cardoso et al. MONAI: An open-source framework for "
                "deep learning in healthcare (2022)",
                doi=v.Doi("10.48550/arXiv.2211.02701"),
            ),
        ],
        license=v.LicenseId(license),
        tags=[
            "3d",
            "semantic-segmentation",
            "unet",
            "pytorch",
            "napari-weakseg",
        ],
        documentation=v.FileDescr(source=files["readme"]),
        inputs=[
            v.InputTensorDescr(
                id=v.TensorId(INPUT_ID),
                description="image volume (z, y, x), any intensity range",
                axes=axes_in,
                test_tensor=v.FileDescr(source=files["input"]),
                data=v.IntervalOrRatioDataDescr(type="float32"),
                preprocessing=[
                    v.ClipDescr(
                        kwargs=v.ClipKwargs(
                            min_percentile=float(lower),
                            max_percentile=float(upper),
                            axes=spatial,
                        )
                    ),
                    v.ZeroMeanUnitVarianceDescr(
                        kwargs=v.ZeroMeanUnitVarianceKwargs(
                            axes=spatial, eps=EPS
                        )
                    ),
                ],
            )
        ],
        outputs=[
            v.OutputTensorDescr(
                id=v.TensorId(OUTPUT_ID),
                description="softmax probability of each class: "
                + ", ".join(names),
                axes=axes_out,
                test_tensor=v.FileDescr(source=files["output"]),
                data=v.IntervalOrRatioDataDescr(
                    type="float32", range=(0.0, 1.0)
                ),
                postprocessing=[
                    v.SoftmaxDescr(
                        kwargs=v.SoftmaxKwargs(axis=v.AxisId("channel"))
                    )
                ],
            )
        ],
        weights=v.WeightsDescr(
            pytorch_state_dict=v.PytorchStateDictWeightsDescr(
                source=files["state_dict"],
                architecture=v.ArchitectureFromLibraryDescr(
                    import_from=where,
                    callable=v.Identifier(name),
                    kwargs=kwargs,
                ),
                pytorch_version=pytorch_version,
            ),
            torchscript=v.TorchscriptWeightsDescr(
                source=files["torchscript"],
                pytorch_version=pytorch_version,
                parent="pytorch_state_dict",
            ),
        ),
        config=v.Config(
            weakseg={
                "model_config": json.loads(config.to_json()),
                "exported_by": __version__,
            }
        ),
    )
