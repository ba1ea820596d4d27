"""Is an image like the model's training data?  Spacing and intensity.

A model file stores the voxel spacing and the raw intensity range (clip
bounds) of its training images.  Applied to an image whose spacing is
more than 1.5 times off on an axis, or whose intensities cover a range
four times wider or narrower or lie far outside the training range
(another modality, another scanner scaling), the model is likely to
fail; :func:`differences` says what differs, in sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .normalise import intensity_stats

#: spacing ratio on any axis beyond which a warning is given
SPACING_RATIO = 1.5
#: intensity range ratio beyond which a warning is given
RANGE_RATIO = 4.0


def training_intensity(images: Sequence[Any]) -> dict[str, float]:
    """Mean clip bounds of the training images (what a model stores)."""
    stats = [intensity_stats(img) for img in images]
    return {
        "lo": float(sum(s["lo"] for s in stats) / len(stats)),
        "hi": float(sum(s["hi"] for s in stats) / len(stats)),
    }


def differences(
    config: Any, image: Any, spacing: Sequence[float]
) -> list[str]:
    """Sentences saying how ``image`` (with ``spacing``) differs from the
    training data of the model ``config``; empty when it does not."""
    out = []
    trained = [float(s) for s in config.spacing]
    ratios = [float(s) / t for s, t in zip(spacing, trained)]
    worst = max(max(r, 1 / r) for r in ratios)
    if worst > SPACING_RATIO:
        out.append(
            f"its voxel spacing {_fmt(spacing)} differs from the training "
            f"data's {_fmt(trained)} by up to {worst:.1f}x"
        )
    if config.intensity:
        lo, hi = config.intensity["lo"], config.intensity["hi"]
        s = intensity_stats(image)
        width, new = max(hi - lo, 1e-6), max(s["hi"] - s["lo"], 1e-6)
        middle = (s["lo"] + s["hi"]) / 2
        if (
            not 1 / RANGE_RATIO <= new / width <= RANGE_RATIO
            or not lo - width <= middle <= hi + width
        ):
            out.append(
                f"its intensities span {s['lo']:.4g}..{s['hi']:.4g} where "
                f"the training images spanned {lo:.4g}..{hi:.4g}"
            )
    return out


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"
