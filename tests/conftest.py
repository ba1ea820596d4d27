import numpy as np
import pytest

from napari_weakseg.core.data.geometry import Geometry
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.data.volumes import Volume, write_volume


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


@pytest.fixture
def files(tmp_path, oblique):
    """A phantom image and its sparse labels (two slices), oblique."""
    image, truth = make_phantom((16, 24, 24))
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[8] = truth[8]
    sparse[:, 12] = truth[:, 12]
    img = write_volume(tmp_path / "img.nrrd", Volume(image, oblique))
    lbl = write_volume(tmp_path / "sparse.nii.gz", Volume(sparse, oblique))
    return img, lbl
