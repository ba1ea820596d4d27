"""Model files: load, describe, name classes, export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.base.errors import WeaksegError
from ..core.data.outputs import (
    check_outputs,
)
from ..core.data.validate import require_3d
from ._common import PathLike, VolumeLike, _label, as_volume


def load_model(path: PathLike, device: str = "auto") -> tuple[Any, Any]:
    """``(torch module, ModelConfig)`` from a model file; never runs code."""
    from ..core.base.device import resolve_device
    from ..core.nn.models import load_model as _load

    return _load(path, resolve_device(device))


def class_names(model: PathLike | tuple[Any, Any]) -> list[str]:
    """The names of a model's classes, background first (``["background",
    "head", "body"]``); files without names give ``class 1``, ``class
    2``...  ``model``: a model file, a bioimage.io package exported by
    napari-weakseg, or ``(module, config)``."""
    from ..core.base import classes
    from ..core.nn.models import read_model_file

    if isinstance(model, tuple):
        return classes.of(model[1])
    return classes.of(read_model_file(model)[1])


#: formats :func:`export_model` writes
EXPORT_FORMATS = ("bioimageio",)


def export_model(
    model: PathLike,
    out: PathLike,
    *,
    format: str = "bioimageio",
    sample: VolumeLike | None = None,
    name: str | None = None,
    description: str | None = None,
    authors: Sequence[str] = (),
    license: str = "CC-BY-4.0",
    check: bool = True,
) -> Path:
    """Write segmentation model ``model`` as a bioimage.io model package
    ``out`` (``.zip``) that opens in the bioimage.io ecosystem.

    The package holds TorchScript and PyTorch state-dict weights (MONAI's
    network as the architecture), the percentile clip and z-score as the
    spec's preprocessing, softmax as postprocessing, the class names, the
    patch size and halo, test tensors and a README.  ``sample``: an image
    whose middle patch becomes the test input (default: a phantom).  With
    ``check``, ``bioimageio.core``'s model test must pass before the file
    appears.  ``predict`` reads such a package back like a model file.
    Needs the ``[export]`` extra (``bioimageio.core``).
    """
    from ..core.data.outputs import PACKAGE
    from ..core.methods import export

    if format not in EXPORT_FORMATS:
        raise WeaksegError(
            f"Unknown export format '{format}' (known: "
            f"{', '.join(EXPORT_FORMATS)})."
        )
    check_outputs({"out": (out, PACKAGE)}, [model, sample])
    image = None
    if sample is not None:  # only its middle patch is read
        image = as_volume(sample, lazy=True, name="sample").data
        require_3d(image, _label(sample, what="sample"))
    return export.export(
        model,
        out,
        sample=image,
        name=name,
        description=description,
        authors=list(authors),
        license=license,
        check=check,
    )


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`model_info` reads from a model file."""

    path: Path
    config: Any  # core.models.ModelConfig
    #: how it was made (see :mod:`.core.recipe`; empty for older files)
    recipe: dict
    #: the ``weakseg`` command that makes it again into another file
    #: (None when its inputs were arrays, not files, or it has no recipe)
    command: str | None

    def lines(self) -> list[str]:
        from ..core.base import recipe

        c = self.config
        text = [
            f"{self.path.name}: {c.kind} ({c.network}), "
            f"{c.num_classes} classes: {', '.join(c.class_names) or '-'}",
            f"patch {c.patch_size}, spacing {c.spacing}, filters "
            f"{c.filters}, napari-weakseg {c.weakseg_version}",
        ]
        if not self.recipe:
            return [*text, "made by: unknown (no recipe in the file)"]
        return text + recipe.lines(self.recipe, self.path)

    def __str__(self) -> str:
        return "\n".join(self.lines())


def model_info(model: PathLike) -> ModelInfo:
    """The config and recipe of a model file, and the ``weakseg``
    command that makes it again (one sentence for a file that is no
    napari-weakseg model)."""
    from ..core.base import recipe
    from ..core.nn.models import read_model_file

    path = Path(model)
    _, config = read_model_file(path)
    made = dict(config.recipe)
    command = None
    if recipe.runnable(made):
        command = recipe.command_line(made, recipe.other_out(path))
    return ModelInfo(path, config, made, command)
