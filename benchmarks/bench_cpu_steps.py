"""Faster CPU training steps: what each candidate buys, measured.

Issue 14 asks for faster CPU steps "where measurement shows a gain, each
kept only with its number".  One training step (patch sampling, forward,
masked Dice + CE, backward, AdamW) of the default U-Net, planned as a user
run plans it, on the hippocampus (3 cases, one slice per axis) and on the
MNI sample, with:

* ``contiguous``: float32, torch's default thread count, the default
  (contiguous) memory format -- what ``weakseg train`` did before;
* ``1 thread``: ``torch.set_num_threads(1)`` (is the second core used?);
* ``channels_last_3d``: network and batch in channels-last memory format,
  now the default on a CPU (``training.UNetTask``);
* ``bf16 autocast``: ``torch.autocast("cpu", torch.bfloat16)``;
* ``torch.compile``: the network compiled (default mode); the compile
  time of its first steps is reported on its own.

Median seconds per step over ``--steps`` steps after ``--warmup`` steps.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_cpu_steps.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, sample_volumes, save_plot  # noqa: E402
from bench_real import TRAIN, hippo, sparse  # noqa: E402

from napari_weakseg.core.nn.losses import MaskedDiceCELoss  # noqa: E402
from napari_weakseg.core.nn.networks import build_network  # noqa: E402
from napari_weakseg.core.train.engine import optimiser_step  # noqa: E402
from napari_weakseg.core.train.sampling import PatchSampler  # noqa: E402
from napari_weakseg.core.train.trainset import prepare  # noqa: E402
from napari_weakseg.core.train.unet import (  # noqa: E402
    TrainConfig,
    model_config_for,
)

VARIANTS = (
    "contiguous",
    "1 thread",
    "channels_last_3d",
    "bf16 autocast",
    "torch.compile",
)


def case(name: str):
    """(images, sparse labels, spacing) as a user run would get them."""
    if name == "hippocampus":
        pairs = hippo(TRAIN)
        return (
            [np.asarray(v.data, np.float32) for v, _ in pairs],
            [sparse(t, "1/axis") for _, t in pairs],
            tuple(pairs[0][0].geometry.spacing),
        )
    image, tissue = sample_volumes()
    lbl = np.full(tissue.shape, 255, np.uint8)
    mid = tissue.shape[0] // 2
    lbl[mid] = np.asarray(tissue.data)[mid]
    return (
        [np.asarray(image.data, np.float32)],
        [lbl],
        tuple(image.geometry.spacing),
    )


def time_variant(name: str, variant: str, steps: int, warmup: int) -> dict:
    images, labels, spacing = case(name)
    cfg = TrainConfig()
    cpu = torch.device("cpu")
    ts = prepare(images, labels, hold_out=False)
    mconf = model_config_for(ts, images[0].shape, spacing, cfg, cpu)
    torch.manual_seed(0)
    model = build_network(mconf)
    sampler = PatchSampler(
        ts.images,
        ts.targets,
        mconf.patch_size,
        ts.num_classes,
        spacing,
        augment=cfg.augment,
    )
    loss_fn = MaskedDiceCELoss(ts.num_classes)
    threads = torch.get_num_threads()
    fmt = torch.contiguous_format
    if variant == "1 thread":
        torch.set_num_threads(1)
    if variant == "channels_last_3d":
        fmt = torch.channels_last_3d
        model = model.to(memory_format=fmt)
    net = torch.compile(model) if variant == "torch.compile" else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)

    def autocast():
        if variant == "bf16 autocast":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    times = []
    try:
        for _ in range(warmup + steps):
            t0 = time.perf_counter()
            batch = sampler.batch(cfg.batch_size)
            x = batch["image"].contiguous(memory_format=fmt)
            with autocast():
                loss = loss_fn(net(x), batch["label"])
            optimiser_step(opt, loss)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    row = {
        "s/step": float(np.median(times[warmup:])),
        "first steps s": float(sum(times[:warmup])),
        "patch": list(mconf.patch_size),
        "final loss": float(loss.detach()),
    }
    print(f"  {name} / {variant}: {row}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cases", nargs="+", default=["hippocampus", "mni"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    res: dict = {}
    for name in args.cases:
        res[name] = {
            v: time_variant(name, v, args.steps, args.warmup)
            for v in args.variants
        }
    print(f"\n{machine()}, {torch.get_num_threads()} threads")
    print(table(res))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_steps.json").write_text(
        json.dumps({"machine": machine(), "results": res}, indent=1)
    )
    base = {n: r["contiguous"]["s/step"] for n, r in res.items()}
    save_plot(
        args.out / "cpu_steps.png",
        list(args.variants),
        {
            n: ([base[n] / r[v]["s/step"] for v in args.variants], None)
            for n, r in res.items()
        },
        "speed-up over contiguous float32",
        "CPU training step, default U-Net (higher is faster)",
    )


from report import cpu_steps_table as table  # noqa: E402

if __name__ == "__main__":
    main()
