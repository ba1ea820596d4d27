"""Sparse slices vs dense labels on the MNI152 sample (grey/white matter).

For each labelled fraction of slices (evenly spaced over the three axes)
and for dense labels, train the same U-Net with the same budget (steps) and
score Dice per class on a common set of voxels nobody annotated (the voxels
unannotated at the largest sparse fraction), over several seeds.

    .venv/bin/python benchmarks/bench_sparse.py            # full run
    .venv/bin/python benchmarks/bench_sparse.py --quick    # smoke run

Prints a Markdown table, writes ``results/sparse.json`` and
``results/sparse.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, sample_volumes  # noqa: E402
from report import replot  # noqa: E402

from napari_weakseg import api  # noqa: E402
from napari_weakseg.core.base.metrics import dice_per_class  # noqa: E402
from napari_weakseg.core.data.sparse import evenly_spaced_slices  # noqa: E402


def sparse_labels(truth: np.ndarray, fraction: float) -> np.ndarray:
    """Evenly spaced slices on all three axes, ``fraction`` of all slices."""
    total = sum(truth.shape)
    k = max(3, round(fraction * total))
    sparse = np.full(truth.shape, 255, np.uint8)
    for axis, n in enumerate(truth.shape):
        for i in evenly_spaced_slices(n, max(1, round(k * n / total))):
            idx = [slice(None)] * 3
            idx[axis] = i
            sparse[tuple(idx)] = truth[tuple(idx)]
    return sparse


def run_one(
    image, truth, labels, eval_mask, steps, seed, device, filters, init=None
):
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        api.train(
            image,
            labels,
            Path(tmp) / "m.safetensors",
            steps=steps,
            seed=seed,
            device=device,
            base_filters=filters,
            init=init,
        )
        t_train = time.perf_counter() - t0
        pred, _ = api.predict(
            Path(tmp) / "m.safetensors", image, device=device
        )
    dice = dice_per_class(pred, truth.data, 3, eval_mask)
    return dice, t_train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--fractions", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.10]
    )
    ap.add_argument("--filters", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.seeds, args.fractions = 10, [0], [0.05]
    image, truth = sample_volumes()
    settings = {
        f"{100 * f:g} %": sparse_labels(truth.data, f) for f in args.fractions
    }
    eval_mask = list(settings.values())[-1] == 255
    settings["dense"] = truth.data.astype(np.uint8)
    rows = []
    for name, labels in settings.items():
        frac = (
            float(np.mean(np.any(labels != 255, axis=(1, 2))))
            if name != "dense"
            else 1.0
        )
        scores, times = [], []
        for seed in args.seeds:
            dice, t = run_one(
                image,
                truth,
                labels,
                eval_mask,
                args.steps,
                seed,
                args.device,
                args.filters,
            )
            scores.append(dice)
            times.append(t)
            print(
                f"{name:>6} seed {seed}: GM {dice[0]:.3f} WM {dice[1]:.3f} "
                f"({t:.0f} s)",
                flush=True,
            )
        s = np.asarray(scores)
        rows.append(
            {
                "setting": name,
                "labelled_voxels": float(np.mean(labels != 255)),
                "z_slices_fraction": frac,
                "gm_mean": float(s[:, 0].mean()),
                "gm_std": float(s[:, 0].std()),
                "wm_mean": float(s[:, 1].mean()),
                "wm_std": float(s[:, 1].std()),
                "mean": float(s.mean()),
                "train_s": float(np.mean(times)),
            }
        )
    dense = rows[-1]["mean"]
    for r in rows:
        r["of_dense"] = r["mean"] / dense
    print(
        f"\nMNI152 2 mm, {args.steps} steps, base filters {args.filters}, "
        f"seeds {args.seeds}, {machine()}"
    )
    print("| labels | labelled voxels | Dice GM | Dice WM | mean | × dense |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['setting']} | {100 * r['labelled_voxels']:.1f} % | "
            f"{r['gm_mean']:.3f} ± {r['gm_std']:.3f} | "
            f"{r['wm_mean']:.3f} ± {r['wm_std']:.3f} | {r['mean']:.3f} | "
            f"{r['of_dense']:.2f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sparse.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "python": platform.python_version(),
                "steps": args.steps,
                "seeds": args.seeds,
                "rows": rows,
            },
            indent=1,
        )
    )
    replot(args.out)  # the same plot report.py --plots draws


if __name__ == "__main__":
    main()
