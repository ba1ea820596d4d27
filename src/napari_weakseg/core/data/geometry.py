"""Physical geometry of a 3D volume, always in napari's (z, y, x) order.

SimpleITK, NIfTI and friends speak (x, y, z); napari and numpy speak
(z, y, x).  Everything in this package uses (z, y, x); the conversion
happens once, in :mod:`napari_weakseg.core.data.volumes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..base.errors import WeaksegError

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
METADATA_KEY = "weakseg_geometry"


def _floats(values: Sequence[float], n: int, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise WeaksegError(
            f"The {what} needs {n} numbers, got {str(values)[:60]}."
        ) from None
    if len(out) != n:
        raise WeaksegError(f"The {what} needs {n} values, got {len(out)}.")
    return out


@dataclass(frozen=True)
class Geometry:
    """Voxel spacing, origin and direction cosines in (z, y, x) order.

    ``direction`` is the row-major 3x3 matrix whose columns are the
    physical directions of the z, y and x voxel axes.
    """

    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = field(default=_IDENTITY)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "spacing", _floats(self.spacing, 3, "spacing")
        )
        object.__setattr__(self, "origin", _floats(self.origin, 3, "origin"))
        object.__setattr__(
            self, "direction", _floats(self.direction, 9, "direction")
        )
        if min(self.spacing) <= 0 or not np.all(np.isfinite(self.spacing)):
            raise WeaksegError(
                f"Voxel spacing must be positive, got {self.spacing}."
            )
        if not np.all(np.isfinite(self.origin)):
            raise WeaksegError(
                f"The origin must be finite, got {self.origin}."
            )
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if not np.all(np.isfinite(d)) or abs(np.linalg.det(d)) < 1e-6:
            raise WeaksegError(
                "The direction matrix must be finite and invertible, got "
                f"{self.direction}."
            )

    @property
    def matrix(self) -> np.ndarray:
        """The direction as a 3x3 array."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def allclose(self, other: Geometry, rtol: float = 1e-4) -> bool:
        """Whether two grids describe the same physical placement."""
        return bool(
            np.allclose(self.spacing, other.spacing, rtol=rtol)
            and np.allclose(self.origin, other.origin, rtol=rtol, atol=1e-3)
            and np.allclose(self.direction, other.direction, atol=1e-4)
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Geometry:
        return cls(
            spacing=d.get("spacing", (1.0, 1.0, 1.0)),
            origin=d.get("origin", (0.0, 0.0, 0.0)),
            direction=d.get("direction", _IDENTITY),
        )

    def layer_kwargs(self) -> dict[str, Any]:
        """``scale``/``translate``/``affine``/``metadata`` for a layer.

        napari applies ``affine`` after scale and translate, so with
        ``affine = [[D, (I - D) o], [0, 1]]`` a voxel ``x`` lands at
        ``D S x + o``, its physical position: volumes of any direction
        overlay in world coordinates, while ``scale`` stays the spacing and
        ``translate`` the origin.  The geometry also rides in ``metadata``
        so the writer restores it exactly.
        """
        d, o = self.matrix, np.asarray(self.origin, float)
        affine = np.eye(4)
        affine[:3, :3] = d
        affine[:3, 3] = o - d @ o
        return {
            "scale": self.spacing,
            "translate": self.origin,
            "affine": affine,
            "metadata": {METADATA_KEY: self.to_dict()},
        }

    @classmethod
    def from_layer(
        cls,
        scale: Sequence[float],
        translate: Sequence[float],
        metadata: Mapping[str, Any] | None = None,
    ) -> Geometry:
        """Rebuild the geometry of a napari layer (the last 3 axes)."""
        stored = (metadata or {}).get(METADATA_KEY, {})
        return cls(
            spacing=tuple(scale)[-3:],
            origin=tuple(translate)[-3:],
            direction=stored.get("direction", _IDENTITY),
        )
