"""Does self-supervised pretraining help at the sparsest settings?

Pretrain the encoder on the MNI T1 (rotation + contrastive), then fine-tune
exactly as ``bench_sparse.py`` does (same filters, seeds, slice sets,
evaluation voxels) with ``init=encoder``, for each fine-tuning budget.
Where a budget equals the one ``results/sparse.json`` was run with, its
from-scratch rows are reused (run that first); other budgets run their own
from-scratch arm.  Both arms share every setting but the initialisation.
Results are written after every run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_ssl.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
from _common import machine, sample_volumes  # noqa: E402
from bench_sparse import run_one, sparse_labels  # noqa: E402

from napari_weakseg import api  # noqa: E402
from napari_weakseg.core.base.events import Pretext  # noqa: E402


def pretrain(image, out: Path, args) -> dict:
    last: dict = {}
    t0 = time.perf_counter()
    api.pretrain(
        image,
        out,
        steps=args.pretrain_steps,
        base_filters=args.filters,
        patch=32,
        batch_size=args.pretrain_batch,
        callback=lambda e: (
            last.update(rot=e.rotation_accuracy, top1=e.contrastive_top1)
            if isinstance(e, Pretext)
            else None
        ),
    )
    info = {
        "seconds": time.perf_counter() - t0,
        "steps": args.pretrain_steps,
        "batch": args.pretrain_batch,
        "top1_chance": 1 / (2 * args.pretrain_batch - 1),
        **last,
    }
    print(
        f"pretrained {args.pretrain_steps} steps in {info['seconds']:.0f} s: "
        f"rotation acc {last['rot']:.2f} (chance 0.10), top-1 "
        f"{last['top1']:.2f} (chance {info['top1_chance']:.2f})",
        flush=True,
    )
    return info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 300])
    ap.add_argument(
        "--budget-fractions",
        type=float,
        nargs="+",
        default=[0.01],
        help="fractions run at budgets other than the last one",
    )
    ap.add_argument("--pretrain-steps", type=int, default=1000)
    ap.add_argument("--pretrain-batch", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--fractions", type=float, nargs="+", default=[0.01, 0.02, 0.05]
    )
    ap.add_argument("--filters", type=int, default=8)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    image, truth = sample_volumes()
    eval_mask = sparse_labels(truth.data, 0.10) == 255
    base = json.loads((args.out / "sparse.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory()
    enc = Path(tmp.name) / "encoder.safetensors"
    record = {
        "machine": machine(),
        "pretrain": pretrain(image, enc, args),
        "runs": [],
    }
    for budget in args.budgets:
        fractions = (
            args.fractions
            if budget == args.budgets[-1]
            else args.budget_fractions
        )
        arms = {"pretrained": enc}
        if budget != base["steps"]:
            arms["scratch"] = None
        for f in fractions:
            labels = sparse_labels(truth.data, f)
            for seed in args.seeds:
                for arm, init in arms.items():
                    dice, t = run_one(
                        image,
                        truth,
                        labels,
                        eval_mask,
                        budget,
                        seed,
                        "auto",
                        args.filters,
                        init=init,
                    )
                    record["runs"].append(
                        {
                            "budget": budget,
                            "fraction": f,
                            "seed": seed,
                            "arm": arm,
                            "gm": dice[0],
                            "wm": dice[1],
                        }
                    )
                    print(
                        f"{budget} steps {100 * f:g} % seed {seed} {arm}: GM "
                        f"{dice[0]:.3f} WM {dice[1]:.3f} ({t:.0f} s)",
                        flush=True,
                    )
                    (args.out / "ssl.json").write_text(
                        json.dumps(record, indent=1)
                    )
    tmp.cleanup()
    print()
    report.ssl(record, base)
    report.replot(args.out)


if __name__ == "__main__":
    main()
