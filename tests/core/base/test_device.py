"""Mixed precision choices per device and purpose."""

import pytest
import torch

from napari_weakseg.core.base import device as dev


@pytest.mark.parametrize(
    ("forced", "dtype"), [("1", torch.bfloat16), ("0", None)]
)
def test_cpu_training_steps_use_bf16_only_where_the_cpu_has_it(
    monkeypatch, forced, dtype
):
    monkeypatch.setenv("WEAKSEG_CPU_BF16", forced)
    cpu = torch.device("cpu")
    assert dev.autocast_dtype(cpu, training=True) is dtype
    # prediction on a CPU stays float32 whatever the CPU
    assert dev.autocast_dtype(cpu) is None
    assert dev.autocast_dtype(torch.device("mps"), training=True) is None


def test_cpu_bf16_follows_the_cpu_flags_unless_forced(monkeypatch, tmp_path):
    monkeypatch.delenv("WEAKSEG_CPU_BF16", raising=False)
    with open("/proc/cpuinfo") as f:
        flags = set(f.read().split())
    assert dev.cpu_bf16() is bool(flags & {"avx512_bf16", "amx_bf16"})
    monkeypatch.setenv("WEAKSEG_CPU_BF16", "1")
    assert dev.cpu_bf16() is True


def test_only_the_unet_trains_in_cpu_bf16():
    from napari_weakseg.core.methods.classifier import ClassifierTask
    from napari_weakseg.core.methods.pretraining import PretextTask
    from napari_weakseg.core.train.unet import UNetTask

    assert UNetTask.cpu_bf16 is True
    assert ClassifierTask.cpu_bf16 is False
    assert PretextTask.cpu_bf16 is False
