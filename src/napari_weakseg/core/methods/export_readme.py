"""The README of an exported bioimage.io package: classes, training
data, inputs and outputs, how its preprocessing differs from
napari-weakseg's, and how to validate it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ... import __version__
from ..data.normalise import percentiles
from ..nn.networks import ModelConfig
from .export_rdf import (
    EPS,
    INPUT_ID,
    OUTPUT_ID,
    architecture,
    halo,
    pooling_factor,
)


def readme(
    config: ModelConfig,
    names: Sequence[str],
    title: str,
    source: str,
    agreement: tuple[float, float] = (float("nan"), float("nan")),
) -> str:
    """The package's documentation: classes, training data, how inputs
    are prepared (and where the spec's ops differ), validation."""
    lo_p, hi_p = percentiles(config.normalisation)
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
