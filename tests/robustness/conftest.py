import numpy as np
import pytest

from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.data.volumes import Volume, write_volume
from napari_weakseg.core.nn.models import save_model
from napari_weakseg.core.nn.networks import ModelConfig, build_network


@pytest.fixture
def case(tmp_path):
    """A phantom image, its sparse labels and a small model, as files."""
    image, truth = make_phantom((16, 24, 24))
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[8] = truth[8]
    sparse[:, 12] = truth[:, 12]
    img = write_volume(tmp_path / "img.nii.gz", Volume(image))
    lbl = write_volume(tmp_path / "lbl.nii.gz", Volume(sparse))
    cfg = ModelConfig(
        network="resunet",
        num_classes=3,
        filters=[4, 8, 16],
        patch_size=[16, 16, 16],
    )
    model = save_model(tmp_path / "old.safetensors", build_network(cfg), cfg)
    return img, lbl, model
