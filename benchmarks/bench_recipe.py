"""The training recipe against a plain MONAI loop, on real volumes.

For each case of :mod:`_realdata` (hippocampus MRI, FIB-SEM boundaries,
MNI152 GM/WM), each setting (5 % of slices, dense) and each seed, train
napari-weakseg's default recipe and the plain MONAI reference
(``../shared/tools/monai_reference.py``, run as it is) on the same files
with the same step budget, and score Dice per class on voxels no label
file touches.  The ablation (skip with ``--no-ablation``) adds recipe
variants, one difference at a time, on the hippocampus, sparse, and the
augmentation variant on FIB-SEM and MNI.

    .venv/bin/python benchmarks/bench_recipe.py            # with the ablation
    .venv/bin/python benchmarks/bench_recipe.py --quick    # smoke run

Each finished run is appended to ``results/recipe_runs.jsonl`` and reused
when the script is started again with the same arguments, so an
interrupted run resumes.  Prints Markdown tables and writes
``results/recipe.json`` and ``results/recipe.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, save_plot  # noqa: E402
from _realdata import CASES, SHARED  # noqa: E402

REFERENCE = SHARED.parent / "tools" / "monai_reference.py"

# Recipe variants for the ablation: TrainConfig overrides (val_every:
# the budget's), each the
# default with one thing changed (towards the old recipe or the reference).
ABLATION = {
    "default": {},
    "old recipe (before this change)": {
        "learning_rate": 1e-2,
        "network": "dynunet",
        "augment": "full",
        "final_phase": 0.0,
        "val_every": 50,
    },
    "lr 1e-2": {"learning_rate": 1e-2},
    "lr 1e-3 (the reference's)": {"learning_rate": 1e-3},
    "constant lr (no poly decay)": {"schedule": "constant"},
    "DynUNet blocks": {"network": "dynunet"},
    "+ 90° turns, intensity, noise": {"augment": "full"},
    "no augmentation": {"augment": "none"},
    "CE weight 1 (before this change)": {"ce_weight": 1.0},
    "best of 6 validations, no final phase": {
        "final_phase": 0.0,
        "val_every": 50,
    },
    "no held-back slices": {"hold_out": False},
    "held-back slices back in for the last half": {"final_phase": 0.5},
}


STACKED = ", stacked file"
STACKED_CASES = ("hippocampus",)
#: ablation variants that also run on other cases than the hippocampus
CROSS_CASE = ("no augmentation", "CE weight 1 (before this change)")
CROSS_CASES = ("fibsem", "mni")


def _threads(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def _score(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, k: int):
    from napari_weakseg.core.base.metrics import dice_per_class

    return dice_per_class(pred, truth, k, mask)


def run_weakseg(
    case, paths, steps, seed, threads, overrides, device, stacked=False
):
    """Train as a user would: each volume of the case is its own image
    (the hippocampus cases; the whole image otherwise), with the same
    labels as the reference's file, and each volume is predicted on its
    own.  ``stacked``: the single stacked file, exactly as the reference
    gets it."""
    import torch

    from napari_weakseg import api
    from napari_weakseg.core.base.events import run
    from napari_weakseg.core.train.budget import Budget
    from napari_weakseg.core.train.unet import TrainConfig, iter_train

    torch.set_num_threads(threads)
    image = np.asarray(api.read_volume(paths["image"]).data)
    labels = np.asarray(api.read_volume(paths["labels"]).data)
    boxes = (
        [tuple(slice(0, n) for n in image.shape)]
        if stacked
        else case.volumes()
    )
    train = [b for b in boxes if (labels[b] != 255).any()]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.safetensors"
        settings = dict(overrides)
        budget = Budget(
            steps=steps,
            val_every=settings.pop("val_every", None),
            seed=seed,
            device=device,
        )
        cfg = TrainConfig(budget=budget, **settings)
        t0 = time.perf_counter()
        fin = run(
            iter_train(
                [image[b] for b in train],
                [labels[b] for b in train],
                out,
                cfg,
                case.spacing,
            )
        )
        t_train = time.perf_counter() - t0
        model = api.load_model(out, device)
        pred = np.zeros(image.shape, np.uint8)
        for b in boxes:
            pred[b], _ = api.predict(model, image[b], device=device)
    return pred, t_train, fin.steps


def run_reference(case, paths, steps, seed, threads):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pred.nii.gz"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [
            sys.executable,
            str(REFERENCE),
            "--image",
            str(paths["image"]),
            "--labels",
            str(paths["labels"]),
            "--truth",
            str(paths["truth"]),
            "--steps",
            str(steps),
            "--out",
            str(out),
        ]
        if seed:  # the reference fixes seed 0; other seeds via a wrapper
            cmd = [sys.executable, "-c", _SEEDED.format(seed=seed)] + cmd[1:]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        wall = time.perf_counter() - t0
        m = re.search(r"(\d+) steps, (\d+) s", done.stdout)
        t_train = float(m.group(2)) if m else wall
        from napari_weakseg.api import read_volume

        pred = np.asarray(read_volume(out).data)
    return pred, t_train, steps


# Runs the reference script unchanged but with another seed: its own
# torch.manual_seed(0) / np.random.seed(0) calls are redirected.
_SEEDED = (
    "import runpy, sys, torch, numpy as np; "
    "s={seed}; ms=torch.manual_seed; ns=np.random.seed; "
    "torch.manual_seed=lambda _: ms(s); np.random.seed=lambda _: ns(s); "
    "sys.argv=sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def one(task):
    case_name, setting, arm, seed, steps, threads, device, data = task
    from _realdata import CASES

    case = CASES[case_name]()
    paths = case.paths(Path(data), setting)
    if arm == "MONAI reference":
        pred, t, n = run_reference(case, paths, steps, seed, threads)
    else:
        name = arm.removeprefix("weakseg ").removesuffix(STACKED)
        pred, t, n = run_weakseg(
            case,
            paths,
            steps,
            seed,
            threads,
            ABLATION[name],
            device,
            stacked=arm.endswith(STACKED),
        )
    dice = _score(pred, case.truth, case.eval_mask, case.num_classes)
    return {
        "case": case_name,
        "setting": setting,
        "arm": arm,
        "seed": seed,
        "steps": steps,
        "dice": dice,
        "mean": float(np.mean(dice)),
        "train_s": t,
        "steps_done": n,
        "threads": threads,
    }


def _key(r):
    return (r["case"], r["setting"], r["arm"], r["seed"], r["steps"])


def summarise(runs, keys):
    rows = []
    for key in keys:
        rs = [r for r in runs if (r["case"], r["setting"], r["arm"]) == key]
        if not rs:
            continue
        m = np.asarray([r["mean"] for r in rs])
        rows.append(
            {
                "case": key[0],
                "setting": key[1],
                "arm": key[2],
                "n": len(rs),
                "mean": float(m.mean()),
                "std": float(m.std()),
                "per_class": np.mean([r["dice"] for r in rs], 0).tolist(),
                "s_per_step": float(
                    np.mean(
                        [r["train_s"] / max(1, r["steps_done"]) for r in rs]
                    )
                ),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    ap.add_argument("--settings", nargs="+", default=["sparse", "dense"])
    ap.add_argument(
        "--no-ablation",
        dest="ablation",
        action="store_false",
        help="skip the recipe variants (run by default: hippocampus, and "
        "the augmentation variant on FIB-SEM and MNI)",
    )
    ap.add_argument("--ablation-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ablation-cases", nargs="+", default=["hippocampus"])
    ap.add_argument(
        "--variants", nargs="+", default=None, help="subset of the ablation"
    )
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.seeds, args.cases = 10, [0], ["hippocampus"]
        args.ablation_seeds = [0]
        args.out = Path(tempfile.mkdtemp())
    args.out.mkdir(parents=True, exist_ok=True)
    data = tempfile.mkdtemp(prefix="weakseg-recipe-")
    threads = _threads(args.jobs)
    arms = ["weakseg default", "MONAI reference"]

    def task(case, setting, arm, seed):
        return (
            case,
            setting,
            arm,
            seed,
            args.steps,
            threads,
            args.device,
            data,
        )

    tasks = [
        task(c, s, a, seed)
        for c in args.cases
        for s in args.settings
        for a in arms
        for seed in args.seeds
    ]
    # The reference takes one file: the stacked cases.  The product also
    # runs on that very file, beside its run on the separate cases.
    tasks += [
        task(c, s, "weakseg default" + STACKED, seed)
        for c in args.cases
        if c in STACKED_CASES
        for s in args.settings
        for seed in args.seeds
    ]
    if args.ablation:
        tasks += [
            task(c, "sparse", f"weakseg {v}", seed)
            for c in args.ablation_cases
            for v in args.variants or ABLATION
            if v != "default"
            for seed in args.ablation_seeds
        ]
        tasks += [
            task(c, "sparse", f"weakseg {v}", seed)
            for c in CROSS_CASES
            if c in args.cases and c not in args.ablation_cases
            for v in CROSS_CASE
            if not args.variants or v in args.variants
            for seed in args.ablation_seeds
        ]
    for c in dict.fromkeys(t[0] for t in tasks):  # files before workers
        case = CASES[c]()
        for s in dict.fromkeys(t[1] for t in tasks if t[0] == c):
            case.write(Path(data), s)
    log = args.out / "recipe_runs.jsonl"
    runs = (
        [json.loads(x) for x in log.read_text().splitlines()]
        if log.exists()
        else []
    )
    done = {_key(r) for r in runs}
    todo = [t for t in tasks if t[:5] not in done]
    print(
        f"{len(tasks) - len(todo)} runs reused, {len(todo)} to do, "
        f"{args.jobs} at a time, {threads} threads each",
        flush=True,
    )
    with ProcessPoolExecutor(args.jobs) as pool:
        for r in pool.map(one, todo):
            runs.append(r)
            with log.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(
                f"{r['case']:>11} {r['setting']:>6} {r['arm']:<40} "
                f"seed {r['seed']}: Dice {r['mean']:.3f} "
                f"({r['train_s']:.0f} s)",
                flush=True,
            )
    wanted = {t[:5] for t in tasks}
    runs = [r for r in runs if _key(r) in wanted]
    keys = list(dict.fromkeys((t[0], t[1], t[2]) for t in tasks))
    rows = summarise(runs, keys)
    print(f"\n{args.steps} steps, seeds {args.seeds}, {machine()}")
    print("| case | labels | arm | Dice (mean ± spread) | s/step |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['setting']} | {r['arm']} | "
            f"{r['mean']:.3f} ± {r['std']:.3f} | {r['s_per_step']:.2f} |"
        )
    (args.out / "recipe.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "steps": args.steps,
                "seeds": args.seeds,
                "rows": rows,
            },
            indent=1,
        )
    )
    main_rows = [r for r in rows if r["arm"] in arms]
    labels = list(
        dict.fromkeys(f"{r['case']} {r['setting']}" for r in main_rows)
    )
    series = {}
    for arm in arms:
        got = {
            f"{r['case']} {r['setting']}": r
            for r in main_rows
            if r["arm"] == arm
        }
        series[arm] = (
            [got[x]["mean"] if x in got else 0 for x in labels],
            [got[x]["std"] if x in got else 0 for x in labels],
        )
    save_plot(
        args.out / "recipe.png",
        labels,
        series,
        "Dice (unseen voxels)",
        f"napari-weakseg vs plain MONAI, {args.steps} steps",
    )


if __name__ == "__main__":
    main()
