"""bioimage.io model packages: export a segmentation model.

Export builds the description with ``bioimageio.spec`` (imported here
only, lazily: the ``[export]`` extra), packs it with test tensors and a
README into one ``.zip``, and by default runs ``bioimageio.core``'s model
test on the package before it is renamed onto the target: a package that
would not pass is never written.  Weights come twice: TorchScript and a
PyTorch state dict with MONAI's network as the architecture.

Reading a package back needs neither library (:mod:`~.packages`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import __version__
from ..base import classes
from ..base.errors import WeaksegError
from .models import read_model_file
from .networks import NETWORKS, ModelConfig
from .packages import SUFFIX

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


def _library_network(config: ModelConfig) -> torch.nn.Module:
    import importlib

    where, name, kwargs = architecture(config)
    return getattr(importlib.import_module(where), name)(**kwargs)


def pooling_factor(config: ModelConfig) -> list[int]:
    """Per axis, what an input size must be a multiple of."""
    return [math.prod(int(s[a]) for s in config.strides) for a in range(3)]


def halo(config: ModelConfig) -> list[int]:
    """Per axis, the border of an output tile to discard when tiling: a
    quarter of the patch (napari-weakseg's windows overlap by half)."""
    return [int(p) // 4 for p in config.patch_size]


def _expressible(config: ModelConfig, name: str) -> None:
    """Refuse, in one sentence, a model the spec cannot describe."""
    if config.kind != "unet":
        raise WeaksegError(
            f"{name} is a {config.kind} model; only segmentation models "
            "(from train, box2mask or cam2seg) export to bioimage.io."
        )
    norm = config.normalisation
    lower, upper = norm.get("lower", 0.5), norm.get("upper", 99.5)
    if not upper > 1:
        raise WeaksegError(
            f"{name} clips at the {upper} percentile; bioimage.io's clip "
            "takes an upper percentile above 1 only."
        )
    if config.num_classes < 2:
        raise WeaksegError(f"{name} predicts no class to export.")
    del lower


def make_test_input(config: ModelConfig, sample: Any = None) -> np.ndarray:
    """A float32 ``(1, C, Z, Y, X)`` test tensor of one patch: the middle
    of ``sample`` (edge-padded when smaller), else a phantom scaled to the
    training intensities."""
    patch = [int(p) for p in config.patch_size]
    if sample is None:
        from ..data.phantom import make_phantom

        image, _ = make_phantom(tuple(patch))
        lo, hi = config.intensity.get("lo"), config.intensity.get("hi")
        if lo is not None and hi is not None and hi > lo:
            image = lo + (hi - lo) * (image - image.min()) / np.ptp(image)
    else:
        shape = tuple(int(s) for s in sample.shape)
        if len(shape) != 3:
            raise WeaksegError(
                f"The sample image must be 3D (it has shape {shape})."
            )
        starts = [max(0, (s - p) // 2) for s, p in zip(shape, patch)]
        image = np.asarray(
            sample[tuple(slice(a, a + p) for a, p in zip(starts, patch))],
            dtype=np.float32,
        )
        pad = [(0, max(0, p - s)) for s, p in zip(image.shape, patch)]
        image = np.pad(image, pad, mode="edge")
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        raise WeaksegError("The sample image holds NaN or infinite values.")
    return np.broadcast_to(
        image[None, None], (1, config.in_channels, *patch)
    ).copy()


def spec_preprocess(image: np.ndarray, config: ModelConfig) -> np.ndarray:
    """What the package's preprocessing does to one channel, as
    ``bioimageio.core`` runs it: ``clip`` at the sample's percentiles
    (``inverted_cdf``), then ``zero_mean_unit_variance`` whose mean and
    std are measured on the raw sample (every statistic is taken before
    the first op), with ``eps`` added to the std."""
    x = np.asarray(image, dtype=np.float64)
    norm = config.normalisation
    lo, hi = np.percentile(
        x,
        [norm.get("lower", 0.5), norm.get("upper", 99.5)],
        method="inverted_cdf",
    )
    out = (np.clip(x, lo, hi) - x.mean()) / (x.std() + EPS)
    return out.astype(np.float32)


def _probabilities(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.ascontiguousarray(x)))
    return torch.softmax(logits, dim=1).numpy().astype(np.float32)


def expected_output(
    model: torch.nn.Module, config: ModelConfig, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(package, napari-weakseg)``: the probabilities for test tensor
    ``x`` (one window) after the package's preprocessing (what
    ``bioimageio.core`` must reproduce), and after napari-weakseg's own
    normalisation (how far the two differ goes in the README)."""
    from ..data.normalise import normalise

    channels = range(x.shape[1])
    spec = np.stack([spec_preprocess(x[0, c], config) for c in channels])
    ours = np.stack(
        [normalise(x[0, c], config.normalisation) for c in channels]
    )
    return _probabilities(model, spec[None]), _probabilities(model, ours[None])


def readme(
    config: ModelConfig,
    names: Sequence[str],
    title: str,
    source: str,
    agreement: tuple[float, float] = (float("nan"), float("nan")),
) -> str:
    """The package's documentation: classes, training data, how inputs
    are prepared (and where the spec's ops differ), validation."""
    norm = config.normalisation
    lo_p, hi_p = norm.get("lower", 0.5), norm.get("upper", 99.5)
    patch = " x ".join(str(p) for p in config.patch_size)
    spacing = " x ".join(f"{s:g}" for s in config.spacing)
    factor = " x ".join(str(f) for f in pooling_factor(config))
    halos = " x ".join(str(h) for h in halo(config))
    classes_md = "\n".join(f"| {k} | {n} |" for k, n in enumerate(names))
    intensity = (
        f"{config.intensity['lo']:.6g} to {config.intensity['hi']:.6g} "
        f"(mean {lo_p:g} and {hi_p:g} percentiles of the training images)"
        if config.intensity
        else "not recorded in the model file"
    )
    return f"""# {title}

A 3D semantic segmentation network trained with
[napari-weakseg](https://github.com/napari-weakseg/napari-weakseg)
{config.weakseg_version} from sparse annotation, exported from
`{source}` by napari-weakseg {__version__}.

## Classes

The output `{OUTPUT_ID}` holds one softmax probability per class along
its channel axis; the label of a voxel is the channel of highest
probability.

| label | class |
| --- | --- |
{classes_md}

## Training data

- voxel spacing (z, y, x): {spacing} (the axes' `scale`)
- raw intensity clip range: {intensity}
- patch size (z, y, x): {patch} voxels
- network: MONAI {architecture(config)[1]} ({config.network}), filters
  {", ".join(str(f) for f in config.filters)}, {config.norm} normalisation
- label {config.ignore_label} marked unlabelled voxels during training
{_recipe_lines(getattr(config, "recipe", None))}
## Inputs and outputs

- input `{INPUT_ID}`: (batch, channel, z, y, x), one channel, float32.
  Any size of {patch} plus multiples of {factor} voxels per axis works
  (the network pools by {factor}).
- output `{OUTPUT_ID}`: (batch, class, z, y, x), same spatial size as the
  input. napari-weakseg predicts with sliding windows of {patch} voxels
  overlapping by half with Gaussian blending; when tiling, discard a
  halo of {halos} voxels on each side of a tile.

## Preprocessing

napari-weakseg clips each image to its own {lo_p:g} and {hi_p:g}
percentiles (linear interpolation) and then subtracts the mean and
divides by the standard deviation of the clipped image. The package
describes this as the spec's `clip` (`min_percentile` {lo_p:g},
`max_percentile` {hi_p:g}, over z, y, x) followed by
`zero_mean_unit_variance` (over z, y, x). Where they differ:

- bioimage.io consumers (bioimageio.core) measure every statistic on
  the raw input before the first op: the mean and std are those of the
  unclipped image, not of the clipped one as in napari-weakseg;
- its percentiles use the `inverted_cdf` method, napari-weakseg's are
  interpolated linearly;
- `zero_mean_unit_variance` divides by std + {EPS:g}; napari-weakseg by
  the std alone (1 when the clipped image is constant);
- napari-weakseg measures the whole image (a strided subsample above
  2 million voxels, random 32^3 blocks of a volume read lazily); a
  consumer measures the tensor or tile it is given. Feed the whole
  volume (or large tiles) to come close.

On this package's test input the two preprocessings give probabilities
that differ by at most {agreement[0]:.3g} and the same label on
{100 * agreement[1]:.2f} % of voxels. The test output is the package's
own (its preprocessing as described); napari-weakseg reading this
package predicts exactly as the original model file.

The network's output is turned into probabilities by the postprocessing
`softmax` over the class axis.

## Validation

Predict held-out volumes with a reference segmentation and score them,
e.g. `weakseg predict --model this.zip --image IMG --out pred.nii.gz`
then `weakseg evaluate --pred pred.nii.gz --truth REF --class-names
{",".join(names[1:])}` (Dice, IoU, HD95 per class). The test tensors in
this package check reproducibility only, not accuracy.

## Using it in napari-weakseg

`api.predict("this.zip", image)` or `weakseg predict --model this.zip`
read the package directly (the state dict, without running pickled
code).
"""


def _recipe_lines(made: Any) -> str:
    """How the model was trained, from its recipe (files and settings),
    as README list items; empty for files without one."""
    if not isinstance(made, dict) or not made:
        return ""
    lines = []
    inputs = made.get("inputs") if isinstance(made.get("inputs"), dict) else {}
    for role, items in inputs.items():
        files = [
            str(i.get("file"))
            for i in (items if isinstance(items, list) else [])
            if isinstance(i, dict) and i.get("file")
        ]
        if files:
            lines.append(f"- {role}: {', '.join(files)}")
    settings = made.get("settings")
    if isinstance(settings, dict):
        shown = ", ".join(
            f"{k} {v}"
            for k, v in settings.items()
            if v not in (None, [], {}, "") and not isinstance(v, dict | list)
        )
        if shown:
            lines.append(f"- {made.get('command', 'train')} settings: {shown}")
    return "\n".join(lines) + ("\n" if lines else "")


def _descr(
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
    norm = config.normalisation
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
                            min_percentile=float(norm.get("lower", 0.5)),
                            max_percentile=float(norm.get("upper", 99.5)),
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


@contextlib.contextmanager
def _quiet() -> Any:
    """bioimageio's own log lines (loguru, INFO and up on stderr) off
    while it works for us; one sentence stays the product's voice."""
    try:
        from loguru import logger
    except ImportError:
        yield
        return
    logger.disable("bioimageio")
    try:
        yield
    finally:
        logger.enable("bioimageio")


def _one_sentence(exc: Exception) -> str:
    """The first line of a validation error, for a one-sentence message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            loc = ".".join(str(x) for x in first.get("loc", ()))
            text = f"{loc}: {first.get('msg', '')}".strip(": ")
            return text if len(text) <= 160 else text[:157] + "..."
        except Exception:  # noqa: BLE001 - fall back to the text
            pass
    return (
        str(exc).strip().splitlines()[0]
        if str(exc).strip()
        else (type(exc).__name__)
    )


def run_model_test(path: str | os.PathLike) -> tuple[bool, str]:
    """``(passed, first failure)`` of ``bioimageio.core``'s model test."""
    from bioimageio.core import test_model

    summary = test_model(str(path), devices=["cpu"])
    if summary.status == "passed":
        return True, ""
    for d in summary.details:
        if d.status == "failed":
            why = (d.errors[0].msg if d.errors else "") or d.name
            return False, f"{d.name}: {why}".splitlines()[0][:300]
    return False, f"status {summary.status}"


def export(
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    sample: Any = None,
    name: str | None = None,
    description: str | None = None,
    authors: Sequence[str] = (),
    license: str = "CC-BY-4.0",
    check: bool = True,
) -> Path:
    """Write ``model_path`` as a bioimage.io package at ``out`` (``.zip``).

    ``sample``: an image whose middle patch becomes the test input
    (default: a phantom).  With ``check`` the package must pass
    ``bioimageio.core``'s model test before it is renamed onto ``out``;
    nothing is left behind otherwise.
    """
    from ..base.files import discard, temporary_sibling

    out = Path(out)
    _, config = read_model_file(model_path)
    src = Path(model_path).name
    _expressible(config, src)
    try:
        from bioimageio.spec import save_bioimageio_package

        if check:
            import bioimageio.core  # noqa: F401 - its model test
    except ImportError:
        raise WeaksegError(
            "Exporting to bioimage.io needs bioimageio.spec and "
            "bioimageio.core: pip install 'napari-weakseg[export]'."
        ) from None
    from bioimageio.spec.model import v0_5

    try:
        v0_5.LicenseId(license)
    except ValueError:
        raise WeaksegError(
            f"'{license}' is not a license bioimage.io accepts (an SPDX "
            "identifier such as CC-BY-4.0, MIT or BSD-3-Clause)."
        ) from None
    from .models import load_model

    model, config = load_model(model_path)  # kernels/strides planned
    names = classes.of(config)
    # The weights in MONAI's own network: the state dict's architecture
    # must rebuild exactly this model.
    net = _library_network(config)
    net.load_state_dict(model.state_dict(), strict=True)
    net.eval()
    x = make_test_input(config, sample)
    y, y_ours = expected_output(net, config, x)
    agreement = (
        float(np.abs(y - y_ours).max()),
        float((y.argmax(1) == y_ours.argmax(1)).mean()),
    )
    if not np.isfinite(y).all():
        raise WeaksegError(f"{src} predicts NaN on the test input.")
    title = name or f"napari-weakseg {Path(model_path).stem}"
    text = description or (
        f"3D segmentation of {', '.join(names[1:])} (napari-weakseg "
        "U-Net trained from sparse annotation)."
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out, SUFFIX)
    try:
        with _quiet(), tempfile.TemporaryDirectory(prefix="weakseg-bmz-") as d:
            folder = Path(d)
            files = {
                "input": folder / "test_input.npy",
                "output": folder / "test_output.npy",
                "state_dict": folder / "weights.pt",
                "torchscript": folder / "weights_torchscript.pt",
                "readme": folder / "README.md",
            }
            np.save(files["input"], x)
            np.save(files["output"], y)
            torch.save(net.state_dict(), files["state_dict"])
            # the tracer warns of shape checks it bakes in; sizes other
            # than the test input's are run by the package's own test
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(net, torch.from_numpy(x))
            traced.save(str(files["torchscript"]))
            files["readme"].write_text(
                readme(config, names, title, src, agreement),
                encoding="utf-8",
            )
            try:
                descr = _descr(
                    config,
                    names,
                    files,
                    title=title,
                    description=text,
                    authors=authors,
                    license=license,
                )
            except ValueError as exc:  # pydantic's ValidationError
                raise WeaksegError(
                    f"{src} cannot be described as a bioimage.io model "
                    f"({_one_sentence(exc)})."
                ) from None
            try:
                save_bioimageio_package(descr, output_path=tmp)
            except TypeError as exc:  # bioimageio.spec vs pydantic
                raise WeaksegError(
                    "This bioimageio.spec cannot write packages with the "
                    "installed pydantic; pip install 'napari-weakseg[export]' "
                    f"(pydantic<2.14) ({str(exc)[:80]})."
                ) from None
        if check:
            with _quiet():
                passed, why = run_model_test(tmp)
            if not passed:
                raise WeaksegError(
                    f"The bioimage.io package of {src} fails "
                    f"bioimageio.core's model test ({why}); {out.name} was "
                    "not written."
                )
        os.replace(tmp, out)
    finally:
        discard(tmp)
    return out
