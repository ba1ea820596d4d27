import json
import pickle

import numpy as np
import pytest
import torch

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.nn.models import (
    load_model,
    save_model,
    transfer_weights,
)
from napari_weakseg.core.nn.networks import (
    NETWORKS,
    ModelConfig,
    blocks_of,
    build_network,
    encode,
    encoder_prefixes,
)
from napari_weakseg.core.nn.planning import plan_network, plan_patch_size


def _small(num_classes=3):
    return ModelConfig(
        num_classes=num_classes, filters=[4, 8, 16], patch_size=[16, 16, 16]
    )


def test_anisotropic_plan_pools_the_fine_axes_first():
    # 20 slices of 512 x 512 at 10x coarser z
    patch = plan_patch_size((20, 512, 512), (10.0, 1.0, 1.0))
    kernels, strides = plan_network(patch, (10.0, 1.0, 1.0))
    assert patch[0] <= 20 and patch[1] == patch[2] > 4 * patch[0]
    assert strides[1] == [1, 2, 2] and kernels[0] == [1, 3, 3]
    assert plan_network((32, 32, 32), (1, 1, 1), 3) == (
        [[3, 3, 3]] * 3,
        [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
    )


def test_patch_never_exceeds_the_image_and_fits_pooling():
    patch = plan_patch_size((12, 200, 30), (1.0, 1.0, 1.0))
    assert patch[0] <= 12 and patch[2] <= 30
    _, strides = plan_network(patch, (1, 1, 1))
    for a in range(3):
        assert patch[a] % int(np.prod([s[a] for s in strides])) == 0


def test_save_load_gives_identical_outputs(tmp_path):
    cfg = _small()
    net = build_network(cfg).eval()
    path = save_model(tmp_path / "m.safetensors", net, cfg)
    loaded, cfg2 = load_model(path)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
    assert cfg2.num_classes == 3 and cfg2.filters == [4, 8, 16]
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_pickled_model_never_executes(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(WeaksegError, match="not a napari-weakseg model"):
        load_model(bad)
    torch.save({"w": torch.zeros(1)}, tmp_path / "torch.pt")
    with pytest.raises(WeaksegError, match="not a napari-weakseg model"):
        load_model(tmp_path / "torch.pt")
    assert not marker.exists()


def test_foreign_and_future_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(WeaksegError, match="no weakseg config"):
        load_model(tmp_path / "plain.safetensors")
    cfg = _small()
    path = save_model(tmp_path / "m.safetensors", build_network(cfg), cfg)
    from safetensors.torch import load_file

    meta = json.loads(cfg.to_json())
    meta["format_version"] = 99
    save_file(
        load_file(str(path)),
        str(tmp_path / "future.safetensors"),
        metadata={"weakseg_config": json.dumps(meta)},
    )
    with pytest.raises(WeaksegError, match="format 99"):
        load_model(tmp_path / "future.safetensors")
    with pytest.raises(WeaksegError, match="No model file"):
        load_model(tmp_path / "nothing.safetensors")


def test_transfer_refuses_a_mismatch_and_changes_nothing():
    a, b = build_network(_small(3)), build_network(_small(2))
    before = {k: v.clone() for k, v in b.state_dict().items()}
    with pytest.raises(WeaksegError, match="does not match"):
        transfer_weights(b, a.state_dict(), "a")
    for k, v in b.state_dict().items():
        assert torch.equal(v, before[k])
    enc = {
        k: v for k, v in a.state_dict().items() if k.startswith("input_block")
    }
    assert transfer_weights(b, enc) == len(enc) > 0
    assert torch.equal(
        b.state_dict()["input_block.conv1.conv.weight"],
        a.state_dict()["input_block.conv1.conv.weight"],
    )


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_registry_splits_each_network_into_encoder_and_decoder(network):
    config = ModelConfig(
        network=network,
        num_classes=3,
        filters=[4, 8, 16, 32],
        patch_size=[32, 32, 32],
    )
    model = build_network(config)
    encoder, decoder = blocks_of(model)
    assert len(encoder) == 4 and len(decoder) == len(encoder) - 1 + (
        network == "dynunet"  # DynUNet's output block is its own
    )
    names = dict(model.named_modules())
    assert all(n in names for n in encoder + decoder)
    # the encoder path alone reaches the deepest level: 32 / 2^3 = 4
    deep = encode(model, torch.zeros(1, 1, 32, 32, 32))
    assert tuple(deep.shape) == (1, 32, 4, 4, 4)
    # every encoder tensor is under one of its prefixes, no decoder one
    state = model.state_dict()
    enc = [k for k in state if k.startswith(encoder_prefixes(model))]
    assert enc and not any(k.startswith(tuple(decoder)) for k in enc)


def test_classifier_features_are_its_encoder_path():
    config = ModelConfig(
        kind="classifier",
        num_classes=2,
        filters=[4, 8, 16, 32],
        patch_size=[16, 16, 16],
    )
    model = build_network(config).eval()
    x = torch.randn(1, 1, 16, 16, 16)
    assert torch.equal(encode(model, x), model.features(x))
    assert blocks_of(model)[1] == []


def test_an_unregistered_network_has_no_encoder():
    with pytest.raises(WeaksegError, match="not a registered network"):
        encoder_prefixes(torch.nn.Conv3d(1, 1, 3))
