"""Block-wise (dask) prediction equals whole-volume prediction."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_weakseg.core.base.errors import Cancelled, WeaksegError
from napari_weakseg.core.data.normalise import (
    apply_normalisation,
    intensity_stats,
)
from napari_weakseg.core.data.volumes import Volume, write_volume
from napari_weakseg.core.nn.models import save_model
from napari_weakseg.core.nn.networks import ModelConfig, build_network
from napari_weakseg.core.nn.planning import filter_widths, plan_network
from napari_weakseg.core.predict import tiled
from napari_weakseg.core.predict.sliding import predict_probabilities

PATCH = [16, 16, 16]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    kernels, strides = plan_network(PATCH, [1.0, 1.0, 1.0], 3)
    config = ModelConfig(
        network="resunet",
        num_classes=3,
        class_names=["background", "a", "b"],
        filters=filter_widths(4, 3),
        kernel_sizes=kernels,
        strides=strides,
        norm="instance",
        patch_size=PATCH,
        spacing=[1.0, 1.0, 1.0],
        ignore_label=255,
    )
    return build_network(config).eval(), config


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).normal(size=(53, 41, 70)).astype("f4")


def whole(net, image, overlap):
    stats = intensity_stats(image)
    norm = apply_normalisation(image, stats)
    cpu = torch.device("cpu")
    return stats, predict_probabilities(net, norm, PATCH, cpu, overlap)


@pytest.mark.parametrize("overlap", [0.5, 0.25])
def test_blocks_equal_the_whole_volume(net, image, overlap):
    """Halo and block starts on the window grid: every voxel gets the
    same windows, also at block borders and volume edges."""
    stats, ref = whole(net[0], image, overlap)
    graph = tiled.probability_graph(
        image, net[0], stats, PATCH, 3, overlap, edge=16
    )
    assert graph.numblocks[1:] == ((3, 2, 4) if overlap == 0.5 else (2, 2, 3))
    np.testing.assert_allclose(graph.compute(scheduler="sync"), ref, atol=1e-5)


def test_plan_chunks():
    # step 8: blocks of 32; a short rest joins the last block
    assert tiled.plan_chunks((100, 70, 16), (16, 16, 16), 0.5, 32) == (
        (32, 32, 36),
        (32, 38),
        (16,),
    )
    assert tiled.halo(16, 0.5) == (8, 8)
    assert tiled.halo(16, 0.25) == (12, 4)


def test_blocks_smaller_than_a_patch_are_refused():
    with pytest.raises(WeaksegError, match="smaller than the model's patch"):
        tiled.plan_chunks((100, 100, 100), (32, 32, 32), 0.5, 16)


def saved(tmp_path, net):
    path = tmp_path / "m.safetensors"
    save_model(path, *net)
    return path


def test_stop_between_blocks_leaves_no_output(tmp_path, net, image):
    stop = threading.Event()
    out = tmp_path / "seg.ome.zarr"
    gen = tiled.iter_predict_volume(
        net[0], net[1], Volume(image), out, stop=stop, edge=16
    )
    next(gen), next(gen)  # start, first block
    stop.set()
    with pytest.raises(Cancelled):
        list(gen)
    assert list(tmp_path.iterdir()) == []


def test_distributed_scheduler_gives_the_same_labels(tmp_path, net, image):
    """A dask.distributed cluster: its worker loads the model file and
    writes its blocks into the store."""
    distributed = pytest.importorskip("distributed")
    stats, ref = whole(net[0], image, 0.5)
    model = tiled.ModelRef(str(saved(tmp_path, net)), "cpu")
    img = write_volume(tmp_path / "img.zarr", Volume(image))
    from napari_weakseg.core.data.volumes import read_volume

    vol = read_volume(img, lazy=True)
    out = tmp_path / "seg.zarr"
    with (
        distributed.LocalCluster(
            n_workers=1, processes=False, dashboard_address=None
        ) as cluster,
        tiled.connect(cluster.scheduler_address) as client,
    ):
        gen = tiled.iter_predict_volume(
            model, net[1], vol, out, client=client, edge=32
        )
        events = []
        with distributed.get_task_stream(client) as stream:
            try:
                while True:
                    events.append(next(gen))
            except StopIteration as done:
                labels, probs = done.value
    ran = {t["key"][0] if isinstance(t["key"], tuple) else t["key"]
           for t in stream.data}  # fmt: skip
    # the four blocks were predicted and written by the cluster's worker
    assert sum(str(k).startswith("write-") for k in ran) == 4
    assert [e.done for e in events] == [0, 1, 2, 3, 4]
    assert probs is None
    np.testing.assert_array_equal(np.asarray(labels), ref.argmax(0))


def test_a_scheduler_that_does_not_answer_is_one_sentence(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(tiled, "CONNECT_TIMEOUT", "1s")
    with (
        pytest.raises(WeaksegError, match="No dask scheduler answers at"),
        tiled.connect("tcp://127.0.0.1:9"),
    ):
        pass
