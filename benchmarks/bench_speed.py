"""Training steps/s and prediction voxels/s against a plain MONAI loop.

Same network, same patches, same loss: the difference is what
napari-weakseg adds (event generator, stop flag, progress, blocks).  Also
peak memory.  Target: overhead <= 10 %.

    .venv/bin/python benchmarks/bench_speed.py [--steps 40] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, peak_rss_mib, sample_volumes, save_plot  # noqa: E402

from napari_weakseg.core.base.device import resolve_device  # noqa: E402
from napari_weakseg.core.base.events import Step, run  # noqa: E402
from napari_weakseg.core.data.normalise import normalise  # noqa: E402
from napari_weakseg.core.nn.losses import MaskedDiceCELoss  # noqa: E402
from napari_weakseg.core.nn.models import load_model  # noqa: E402
from napari_weakseg.core.predict.sliding import iter_predict  # noqa: E402
from napari_weakseg.core.train.budget import Budget  # noqa: E402
from napari_weakseg.core.train.sampling import PatchSampler  # noqa: E402
from napari_weakseg.core.train.unet import TrainConfig, iter_train  # noqa: E402


def plain_training(model, sampler, steps, device, num_classes) -> float:
    loss_fn = MaskedDiceCELoss(num_classes).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    t0 = time.perf_counter()
    for i in range(steps + 1):
        if i == 1:  # the first step carries one-time costs: not timed
            t0 = time.perf_counter()
        b = sampler.batch(2)
        loss = loss_fn(model(b["image"].to(device)), b["label"].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def plain_prediction(model, image, patch, device) -> float:
    from monai.inferers import sliding_window_inference

    model.eval()
    t0 = time.perf_counter()  # normalising is part of the work, as ours
    x = torch.as_tensor(normalise(image))[None, None].to(device)
    with torch.inference_mode():
        p = torch.softmax(
            sliding_window_inference(
                x, patch, 2, model, overlap=0.5, mode="gaussian"
            ),
            1,
        )
        p.argmax(1).cpu()
    return image.size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    device = resolve_device(args.device)
    image, truth = sample_volumes()
    img, lbl = np.asarray(image.data), truth.data.astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.safetensors"
        # Pure step cost: no validation inside the timed steps (the recipe
        # benchmark's s/step includes validation and checkpoints).
        cfg = TrainConfig(
            budget=Budget(
                steps=args.steps, val_every=10**9, device=str(device)
            ),
            hold_out=False,
            base_filters=args.filters,
        )
        # A short run first, so neither arm pays the process's one-time
        # costs (allocator, oneDNN kernels); then time steps 2..N+1.
        run(
            iter_train(
                [img],
                [lbl],
                out,
                TrainConfig(
                    budget=Budget(steps=3, device=str(device)),
                    hold_out=False,
                    base_filters=args.filters,
                ),
            )
        )
        cfg.steps = args.steps + 1
        last: list[Step] = []
        run(
            iter_train([img], [lbl], out, cfg, image.geometry.spacing),
            lambda e: last.append(e) if isinstance(e, Step) else None,
        )
        ours_train = args.steps / (last[-1].elapsed_s - last[0].elapsed_s)
        model, config = load_model(out, device)
    sampler = PatchSampler(
        [normalise(img)], [lbl], config.patch_size, 3, image.geometry.spacing
    )
    plain_train = plain_training(model, sampler, args.steps, device, 3)
    plain_pred = plain_prediction(model, img, config.patch_size, device)
    # The API/CLI path: per-window progress reported on the calling thread
    # (the GUI's worker gets every window through the generator instead).
    windows = []
    t0 = time.perf_counter()
    run(
        iter_predict(
            model,
            img,
            config.patch_size,
            config.normalisation,
            device,
            on_progress=windows.append,
        )
    )
    ours_pred = img.size / (time.perf_counter() - t0)
    assert windows, "no progress reported"
    gpu_mem = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else float("nan")
    )
    rows = [
        ("training steps/s", plain_train, ours_train),
        ("prediction voxels/s", plain_pred, ours_pred),
    ]
    print(
        f"\nMNI152 2 mm {img.shape}, patch {config.patch_size}, "
        f"filters {config.filters}, batch 2, {machine()}"
    )
    print("| measure | plain MONAI | napari-weakseg | overhead |")
    print("|---|---|---|---|")
    for name, plain, ours in rows:
        print(
            f"| {name} | {plain:,.1f} | {ours:,.1f} | "
            f"{100 * (plain / ours - 1):+.1f} % |"
        )
    print(f"| peak RSS | | {peak_rss_mib():,.0f} MiB | |")
    if device.type == "cuda":
        print(f"| peak GPU memory | | {gpu_mem:,.0f} MiB | |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"speed_{device.type}.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "patch": config.patch_size,
                "rows": [
                    dict(zip(("measure", "plain", "ours"), r)) for r in rows
                ],
                "peak_rss_mib": peak_rss_mib(),
                "peak_gpu_mib": gpu_mem,
            },
            indent=1,
        )
    )
    save_plot(
        args.out / f"speed_{device.type}.png",
        [r[0] for r in rows],
        {
            "plain MONAI": ([1.0, 1.0], [0, 0]),
            "napari-weakseg": ([r[2] / r[1] for r in rows], [0, 0]),
        },
        "throughput relative to plain",
        f"Overhead, {machine()}",
    )


if __name__ == "__main__":
    main()
