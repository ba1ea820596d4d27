"""Exporting a segmentation model as a bioimage.io model package.

Export builds the description with ``bioimageio.spec`` (imported here
only, lazily: the ``[export]`` extra), packs it with test tensors and a
README into one ``.zip``, and by default runs ``bioimageio.core``'s model
test on the package before it is renamed onto the target: a package that
would not pass is never written.  Weights come twice: TorchScript and a
PyTorch state dict with MONAI's network as the architecture.  The
description and the README are :mod:`~.export_rdf`'s and
:mod:`~.export_readme`'s; reading a package back needs neither library
(:mod:`~.packages`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base import classes
from ..base.errors import WeaksegError
from ..data.normalise import percentiles
from ..nn.models import load_model, read_model_file
from ..nn.networks import ModelConfig
from ..nn.packages import SUFFIX
from .export_rdf import EPS, architecture, describe
from .export_readme import readme


def _expressible(config: ModelConfig, name: str) -> None:
    """Refuse, in one sentence, a model the spec cannot describe."""
    if config.kind != "unet":
        raise WeaksegError(
            f"{name} is a {config.kind} model; only segmentation models "
            "(from train, box2mask or cam2seg) export to bioimage.io."
        )
    _, upper = percentiles(config.normalisation)
    if not upper > 1:
        raise WeaksegError(
            f"{name} clips at the {upper} percentile; bioimage.io's clip "
            "takes an upper percentile above 1 only."
        )
    if config.num_classes < 2:
        raise WeaksegError(f"{name} predicts no class to export.")


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
    lo, hi = np.percentile(
        x, list(percentiles(config.normalisation)), method="inverted_cdf"
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


def _library_network(config: ModelConfig) -> torch.nn.Module:
    import importlib

    where, name, kwargs = architecture(config)
    return getattr(importlib.import_module(where), name)(**kwargs)


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
                descr = describe(
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
