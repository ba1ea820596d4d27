"""Does self-supervised pretraining help at the sparsest settings?

Pretrain the encoder on the MNI T1 (rotation + contrastive), then fine-tune
exactly as ``bench_sparse.py`` does (same steps, filters, seeds, slice
sets, evaluation voxels) with ``init=encoder``.  The rows without
pretraining are read from ``results/sparse.json`` (run that first), so
both arms share every setting but the initialisation.  Results are written
after every run.

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
from napari_weakseg.core.events import Pretext  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--fractions", type=float, nargs="+", default=[0.01, 0.02, 0.05]
    )
    ap.add_argument("--filters", type=int, default=8)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    image, truth = sample_volumes()
    eval_mask = sparse_labels(truth.data, 0.10) == 255
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine(), "steps": args.steps, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        enc = Path(tmp) / "encoder.safetensors"
        last = {}
        t0 = time.perf_counter()
        api.pretrain(
            image,
            enc,
            steps=args.pretrain_steps,
            base_filters=args.filters,
            patch=32,
            batch_size=4,
            callback=lambda e: (
                last.update(rot=e.rotation_accuracy, top1=e.contrastive_top1)
                if isinstance(e, Pretext)
                else None
            ),
        )
        record["pretrain"] = {"seconds": time.perf_counter() - t0, **last}
        print(
            f"pretrained {args.pretrain_steps} steps in "
            f"{record['pretrain']['seconds']:.0f} s: rotation acc "
            f"{last['rot']:.2f} (chance 0.10), top-1 {last['top1']:.2f} "
            f"(chance {1 / 7:.2f})",
            flush=True,
        )
        for f in args.fractions:
            labels = sparse_labels(truth.data, f)
            for seed in args.seeds:
                dice, t = run_one(
                    image,
                    truth,
                    labels,
                    eval_mask,
                    args.steps,
                    seed,
                    "auto",
                    args.filters,
                    init=enc,
                )
                record["runs"].append(
                    {"fraction": f, "seed": seed, "gm": dice[0], "wm": dice[1]}
                )
                print(
                    f"{100 * f:g} % seed {seed} pretrained: GM "
                    f"{dice[0]:.3f} WM {dice[1]:.3f} ({t:.0f} s)",
                    flush=True,
                )
                (args.out / "ssl.json").write_text(
                    json.dumps(record, indent=1)
                )
    print()
    report.ssl(record, json.loads((args.out / "sparse.json").read_text()))


if __name__ == "__main__":
    main()
