import math
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.base.events import Pretext, Started, run
from napari_weakseg.core.data.phantom import make_phantom
from napari_weakseg.core.methods.pretraining import (
    PretrainConfig,
    iter_pretrain,
)
from napari_weakseg.core.methods.ssl import (
    ROTATIONS,
    contrastive_top1,
    parse_tasks,
    rotate,
)
from napari_weakseg.core.nn.models import read_model_file
from napari_weakseg.core.nn.networks import (
    ModelConfig,
    blocks_of,
    build_network,
    encoder_prefixes,
)
from napari_weakseg.core.train.budget import Budget
from napari_weakseg.core.train.unet import TrainConfig, iter_train


def nt_xent_by_hand(z1, z2, tau):
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        num = math.exp(float(z[i] @ z[j]) / tau)
        den = sum(
            math.exp(float(z[i] @ z[k]) / tau) for k in range(n2) if k != i
        )
        total += -math.log(num / den)
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_equals_the_formula(tau):
    from monai.losses import ContrastiveLoss

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    assert float(ContrastiveLoss(tau)(z1, z2)) == pytest.approx(
        nt_xent_by_hand(z1, z2, tau), rel=1e-5
    )


def test_nt_xent_of_random_embeddings_is_near_ln_2n_minus_1():
    from monai.losses import ContrastiveLoss

    g = torch.Generator().manual_seed(1)
    n = 8
    z1, z2 = (
        torch.randn(n, 4096, generator=g),
        torch.randn(n, 4096, generator=g),
    )
    assert float(ContrastiveLoss(0.5)(z1, z2)) == pytest.approx(
        math.log(2 * n - 1), abs=0.05
    )


def test_rotation_labels_are_ten_distinct_invertible_turns():
    x = torch.arange(4 * 4 * 4, dtype=torch.float32).reshape(1, 4, 4, 4)
    assert len(ROTATIONS) == 10
    turned = [rotate(x, k) for k in range(10)]
    for k, t in enumerate(turned):
        assert torch.equal(rotate(t, k, inverse=True), x)
    flat = {tuple(t.flatten().tolist()) for t in turned}
    assert len(flat) == 10


def test_contrastive_top1_counts_partners():
    z = torch.eye(4)
    assert contrastive_top1(z, z.clone()) == 1.0


@pytest.mark.parametrize("network", ["dynunet", "resunet"])
def test_pretext_loss_decreases_and_encoder_transfers(tmp_path, network):
    """Both registered networks: the encoder split comes from the
    registry, and the U-Net trained from the file is the same network."""
    image, truth = make_phantom((32, 40, 40))
    events = []
    cfg = PretrainConfig(
        budget=Budget(steps=40, val_every=20, device="cpu"),
        network=network,
        tasks=("rotation",),
        base_filters=4,
        patch=16,
        batch_size=8,
        learning_rate=3e-3,
    )
    run(
        iter_pretrain([image], tmp_path / "enc.safetensors", cfg),
        events.append,
    )
    losses = [
        dict(e.losses)["rotation"] for e in events if isinstance(e, Pretext)
    ]
    assert len(losses) == 40
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    tensors, conf = read_model_file(tmp_path / "enc.safetensors")
    assert conf.kind == "encoder" and conf.network == network
    net = build_network(
        ModelConfig(**{**conf.__dict__, "kind": "unet", "num_classes": 2})
    )
    prefixes = encoder_prefixes(net)
    assert all(k.startswith(prefixes) for k in tensors)
    decoder = blocks_of(net)[1]
    assert not any(k.startswith(tuple(decoder)) for k in tensors)

    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[16] = truth[16]
    started = []
    tc = TrainConfig(
        budget=Budget(steps=1, device="cpu"),
        network=network,
        base_filters=4,
        learning_rate=0.0,
        patch_size=[16, 16, 16],
    )
    run(
        iter_train(
            [image],
            [sparse],
            tmp_path / "u.safetensors",
            tc,
            init=tmp_path / "enc.safetensors",
        ),
        lambda e: started.append(e) if isinstance(e, Started) else None,
    )
    assert started[0].transferred == len(tensors)
    unet, uconf = read_model_file(tmp_path / "u.safetensors")
    assert uconf.network == network
    for k, v in tensors.items():
        assert torch.equal(unet[k], v), k


def test_encoder_of_another_architecture_is_refused(tmp_path):
    image, truth = make_phantom((24, 24, 24))
    run(
        iter_pretrain(
            [image],
            tmp_path / "enc.safetensors",
            PretrainConfig(
                budget=Budget(steps=1, device="cpu"), base_filters=8, patch=16
            ),
        )
    )
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[12] = truth[12]
    with pytest.raises(WeaksegError, match="does not match this model"):
        run(
            iter_train(
                [image],
                [sparse],
                tmp_path / "u.safetensors",
                TrainConfig(
                    budget=Budget(steps=1, device="cpu"), base_filters=4
                ),
                init=tmp_path / "enc.safetensors",
            )
        )


@pytest.mark.parametrize(
    ("image", "kw", "message"),
    [
        (
            np.zeros((8, 8, 8), np.float32) + np.arange(8),
            {"patch": 16},
            "smaller than a 16",
        ),
        (np.ones((20, 20, 20), np.float32), {"patch": 16}, "flat"),
    ],
)
def test_bad_pretraining_input(tmp_path, image, kw, message):
    with pytest.raises(WeaksegError, match=message):
        run(
            iter_pretrain(
                [image],
                tmp_path / "e.safetensors",
                PretrainConfig(budget=Budget(steps=1, device="cpu"), **kw),
            )
        )
    with pytest.raises(WeaksegError, match="Unknown pretext task 'jigsaw'"):
        parse_tasks("rotation,jigsaw")


def test_all_three_tasks_run_together(tmp_path):
    image, _ = make_phantom((24, 24, 24))
    events = []
    run(
        iter_pretrain(
            [image, image * 2],
            tmp_path / "e.safetensors",
            PretrainConfig(
                budget=Budget(steps=2, device="cpu"),
                base_filters=4,
                patch=16,
                tasks=("rotation", "contrastive", "inpainting"),
            ),
        ),
        events.append,
    )
    pretext = [e for e in events if isinstance(e, Pretext)]
    assert [k for k, _ in pretext[-1].losses] == [
        "rotation",
        "contrastive",
        "inpainting",
    ]
    assert 0.0 <= pretext[-1].contrastive_top1 <= 1.0


def test_rotation_is_learnt_well_above_chance(tmp_path):
    """The rotation head must see where things are: on the phantom the
    accuracy averaged over the last steps climbs far above chance (0.1)."""
    image, _ = make_phantom((32, 32, 32))
    events = []
    run(
        iter_pretrain(
            [image],
            tmp_path / "e.safetensors",
            PretrainConfig(
                budget=Budget(steps=150, device="cpu"),
                base_filters=4,
                patch=16,
                batch_size=8,
                tasks=("rotation",),
            ),
        ),
        events.append,
    )
    accuracy = [e.rotation_accuracy for e in events if isinstance(e, Pretext)]
    assert len(accuracy) == 150
    assert accuracy[-1] >= 0.25
    # one batch of 8 gives multiples of 1/8; the reported value is a mean
    # over a window of steps, so it takes values in between
    assert any(abs(a * 8 - round(a * 8)) > 1e-6 for a in accuracy[-20:])


def test_a_volume_a_little_shorter_than_the_patch_is_padded(tmp_path):
    image, _ = make_phantom((28, 40, 40))  # 28 < 32 on z
    fin = run(
        iter_pretrain(
            [image],
            tmp_path / "enc.safetensors",
            PretrainConfig(
                budget=Budget(steps=2, device="cpu"), base_filters=4, patch=32
            ),
        )
    )
    assert fin.steps == 2 and (tmp_path / "enc.safetensors").is_file()


def test_pretext_summary_names_only_the_tasks_that_run():
    from napari_weakseg.core.base.events import Pretext

    nan = float("nan")
    assert (
        Pretext(5, (("inpainting", 0.3741),), nan, nan).summary()
        == "inpainting 0.374"
    )
    both = Pretext(5, (("rotation", 1.0), ("contrastive", 2.5)), 0.9, 0.25)
    assert both.summary() == (
        "rotation 1.000  contrastive 2.500  rotation acc 0.90  top-1 0.25"
    )


# -- masked image modelling, the streaming pool, whole-U-Net transfer --


def test_masked_l1_counts_only_masked_voxels():
    from napari_weakseg.core.methods.ssl import mask_cubes, masked_l1

    gen = torch.Generator().manual_seed(0)
    p = torch.randn(2, 1, 16, 16, 16)
    xm, mask = mask_cubes(p, gen, cube=4, ratio=0.6)
    assert mask.shape == p.shape and torch.all(xm[mask] == 0)
    assert torch.equal(xm[~mask], p[~mask])
    # masking is by whole 4^3 cubes: the mask is constant inside each
    cubes = mask[:, 0].reshape(2, 4, 4, 4, 4, 4, 4)
    assert torch.all(cubes.amin((2, 4, 6)) == cubes.amax((2, 4, 6)))
    assert 0.3 < float(mask.float().mean()) < 0.9
    # wrong only outside the mask: zero; wrong inside: non-zero
    rec = p.clone()
    rec[~mask] += 5.0
    assert float(masked_l1(rec, p, mask)) == 0.0
    rec = p.clone()
    rec[mask] += 2.0
    assert float(masked_l1(rec, p, mask)) == pytest.approx(2.0)
    none = torch.zeros_like(mask)
    assert float(masked_l1(rec + 1, p, none)) == 0.0


def _write_pool(folder, count, shape=(20, 20, 20)):
    from napari_weakseg.core.data.volumes import Volume, write_volume

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(count):
        data = rng.normal(size=shape).astype(np.float32)
        write_volume(folder / f"u{k:02d}.nii.gz", Volume(data))
    return folder


def test_pool_streams_a_bounded_cache(tmp_path):
    from napari_weakseg.core.data.pool import VolumePool

    folder = _write_pool(tmp_path / "pool", 6)
    pool = VolumePool([folder], (24, 24, 24), cache=2, swap_every=1)
    assert len(pool) == 6 and len(pool.cache) == 2 and pool.reads == 2
    for _ in range(30):
        v = pool.volume()
        assert v.shape == (24, 24, 24)  # padded to the patch
        assert len(pool.cache) <= 2
    assert pool.reads > 6  # every volume read, one at a time, again
    assert len(pool.cache) == 2


def test_pool_skips_unreadable_files_and_refuses_bad_ones(tmp_path):
    from napari_weakseg.core.data.pool import VolumePool
    from napari_weakseg.core.data.volumes import Volume, write_volume

    folder = _write_pool(tmp_path / "pool", 3)
    (folder / "broken.nii.gz").write_bytes(b"not a volume")
    pool = VolumePool([folder], (16, 16, 16), cache=8)
    skipped = pool.drain()
    assert [Path(s.path).name for s in skipped] == ["broken.nii.gz"]
    assert "broken.nii.gz is skipped" in skipped[0].reason
    assert len(pool.cache) == 3 and pool.usable == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeaksegError, match="holds no volume file"):
        VolumePool([empty])
    with pytest.raises(WeaksegError, match="matches no volume file"):
        VolumePool([str(empty / "*.nii.gz")])
    flat = tmp_path / "flat"
    flat.mkdir()
    write_volume(flat / "a.nii.gz", Volume(np.ones((1, 30, 30), np.float32)))
    with pytest.raises(WeaksegError, match="is a 2D image"):
        VolumePool([flat])
    with pytest.raises(WeaksegError, match="has 2 channels"):
        VolumePool([np.zeros((2, 8, 8, 8), np.float32)])


def test_masked_pretraining_transfers_the_whole_unet(tmp_path):
    from napari_weakseg.core.data.pool import VolumePool

    folder = _write_pool(tmp_path / "pool", 3, (24, 24, 24))
    events = []
    cfg = PretrainConfig(
        budget=Budget(steps=2, device="cpu"),
        tasks=("masked",),
        base_filters=4,
        patch=16,
    )
    pool = VolumePool([folder], (16, 16, 16), cache=2)
    run(iter_pretrain(pool, tmp_path / "w.safetensors", cfg), events.append)
    assert [dict(e.losses) for e in events if isinstance(e, Pretext)][-1]
    tensors, conf = read_model_file(tmp_path / "w.safetensors")
    image, truth = make_phantom((24, 24, 24))
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[12] = truth[12]
    started = []
    run(
        iter_train(
            [image],
            [sparse],
            tmp_path / "u.safetensors",
            TrainConfig(
                budget=Budget(steps=1, device="cpu"),
                base_filters=4,
                patch_size=[16] * 3,
            ),
            init=tmp_path / "w.safetensors",
        ),
        lambda e: started.append(e) if isinstance(e, Started) else None,
    )
    unet, uconf = read_model_file(tmp_path / "u.safetensors")
    _, decoder = blocks_of(build_network(uconf))
    out_block = decoder[-1] + "."  # the top decoder block: the classes
    # all but the output block's class-sized tensors (its PReLU slope
    # has one value whatever the classes: it transfers too)
    whole = [
        k
        for k in unet
        if not k.startswith(out_block) or k.endswith(".adn.A.weight")
    ]
    assert sorted(tensors) == sorted(whole)
    assert started[0].transferred == len(whole)
    assert any(k.startswith(tuple(decoder[:-1])) for k in tensors)
