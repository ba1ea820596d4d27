import numpy as np
import pytest

from napari_weakseg.core.geometry import Geometry


@pytest.fixture(autouse=True)
def _weakseg_home(tmp_path, monkeypatch):
    """Autosaves and default model files go to a temporary folder."""
    monkeypatch.setenv("WEAKSEG_HOME", str(tmp_path / "weakseg-home"))


@pytest.fixture
def oblique() -> Geometry:
    """Non-unit spacing, non-zero origin and an oblique direction."""
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return Geometry((2.5, 0.8, 0.6), (-12.0, 30.5, 7.25), tuple(rot.ravel()))
