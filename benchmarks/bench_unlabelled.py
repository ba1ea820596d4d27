"""Do unlabelled volumes pay?  Pretraining and semi-supervised training
with the pool of 137 unlabelled hippocampus MRI crops (issue 29).

One slice per axis (the middle one) on 3 labelled cases (001, 003, 004)
trains one U-Net, applied case by case to the unseen labelled cases
046-099 (34 cases); Dice of head and body and their mean.  Arms, all
fine-tuned for the same number of steps (``--steps``):

- **none**: no unlabelled data;
- **pretrained <task>**: ``api.pretrain`` on the pool (streamed, in a
  child process whose peak RSS is recorded) with one pretext task, then
  ``train(init=...)``;
- **semi <method>**: ``train(unlabelled=pool, semi=method)``;
- **masked + semi**: both.

The best arm is rerun with 20 and 60 pool volumes (the first ones by
name) for a Dice-vs-pool-size curve.  Every run is appended to
``results/unlabelled_runs.jsonl`` keyed by its settings (a rerun reuses
them); ``results/unlabelled.json`` and ``unlabelled.png`` are rebuilt.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_unlabelled.py \\
        [--quick] [--seeds 0 1 2] [--steps 600]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import append_run, machine, read_runs  # noqa: E402
from _realdata import SHARED  # noqa: E402
from bench_real import hippo, score, sparse  # noqa: E402

from napari_weakseg import api  # noqa: E402

TRAIN = ("001", "003", "004")
RESULTS = HERE / "results"
RUNS = RESULTS / "unlabelled_runs.jsonl"
CACHE = Path(tempfile.gettempdir()) / "weakseg_bench_unlabelled"
POOL = SHARED / "hippocampus_mri" / "unlabelled"
PRETEXT = ("masked", "inpainting", "rotation", "contrastive")
SEMI = ("selftrain", "meanteacher", "pseudo")


def test_ids() -> list[str]:
    root = SHARED / "hippocampus_mri" / "labelled" / "images"
    ids = [p.name.split("_")[1].split(".")[0] for p in root.glob("*.nii*")]
    return sorted(i for i in ids if 46 <= int(i) <= 99)


def pool_files(n: int | None) -> list[Path]:
    files = sorted(POOL.glob("*.nii.gz"))
    return files if n is None else files[:n]


def done() -> dict[str, dict]:
    return read_runs(RUNS)


def record(row: dict) -> dict:
    return append_run(RUNS, row)


CHILD = r"""
import json, resource, sys, time
from napari_weakseg import api
from napari_weakseg.core.base.events import Pretext, Skipped
a = json.loads(sys.argv[1])
last, skipped = {}, []
t0 = time.perf_counter()
fin = api.pretrain(
    a["pool"], a["out"], tasks=a["task"], steps=a["steps"],
    patch=a["patch"], batch_size=a["batch"], base_filters=a["filters"],
    device=a["device"], seed=0,
    callback=lambda e: (
        last.update(dict(e.losses)) if isinstance(e, Pretext)
        else skipped.append(e.path) if isinstance(e, Skipped) else None
    ),
)
print(json.dumps({
    "seconds": time.perf_counter() - t0, "val_loss": fin.best,
    "last": last, "skipped": len(skipped),
    "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def pretrain(
    task: str, n: int | None, args, cached_only: bool = False
) -> tuple[Path, dict]:
    """Pretrain in a child process (its own peak RSS); cached by key."""
    key = (
        f"pretrain {task} pool{n or 'all'} {args.pretrain_steps} "
        f"p{args.patch} b{args.pretrain_batch} f{args.filters}"
    )
    enc = CACHE / (key.replace(" ", "_") + ".safetensors")
    row = done().get(key)
    if row and (enc.exists() or cached_only or args.report_only):
        return enc, row  # fine-tuning runs cached: no encoder needed
    CACHE.mkdir(parents=True, exist_ok=True)
    files = pool_files(n)
    argv = {
        "pool": [str(POOL)] if n is None else [str(f) for f in files],
        "out": str(enc),
        "task": task,
        "steps": args.pretrain_steps,
        "patch": args.patch,
        "batch": args.pretrain_batch,
        "filters": args.filters,
        "device": args.device,
    }
    res = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(argv)],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(res.stdout.strip().splitlines()[-1])
    row = {"key": key, "kind": "pretrain", "task": task, "pool": len(files)}
    row.update(info, steps=args.pretrain_steps, patch=args.patch)
    print(
        f"{key}: {info['seconds']:.0f} s, val loss {info['val_loss']:.3f}, "
        f"peak RSS {info['rss_mib']:.0f} MiB",
        flush=True,
    )
    return enc, record(row)


def fine_tune(arm, seed, args, train, test, init=None, semi=None, n=None):
    pool_n = len(pool_files(n)) if (semi or init) and n != 0 else 0
    key = (
        f"{arm} pool{pool_n} {args.steps} s{seed} "
        f"f{args.filters} w{args.semi_weight}"
    )
    row = done().get(key)
    if row or args.report_only:
        return row
    out = CACHE / (key.replace(" ", "_") + ".safetensors")
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    api.train(
        [v for v, _ in train],
        [sparse(t, "1/axis") for _, t in train],
        out,
        steps=args.steps,
        base_filters=args.filters,
        augment="affine",
        device=args.device,
        seed=seed,
        init=init,
        unlabelled=[str(f) for f in pool_files(n)]
        if semi and n != 0
        else None,
        semi=semi,
        semi_weight=args.semi_weight,
    )
    seconds = time.perf_counter() - t0
    head, body = score(out, test, 3)
    row = {
        "key": key,
        "kind": "train",
        "arm": arm,
        "pool": pool_n,
        "seed": seed,
        "steps": args.steps,
        "seconds": seconds,
        "head": head,
        "body": body,
        "mean": (head + body) / 2,
    }
    print(
        f"{key}: head {head:.3f} body {body:.3f} mean {row['mean']:.3f} "
        f"({seconds:.0f} s)",
        flush=True,
    )
    return record(row)


def _ms(vals) -> str:
    return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"


from report import unlabelled as table  # noqa: E402


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), tight_layout=True)
    rows = res["runs"]
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    means, stds = [], []
    for arm in arms:
        sel = [r for r in rows if r["arm"] == arm and r["pool"] in (0, 137)]
        means.append(np.mean([r["mean"] for r in sel]))
        stds.append(np.std([r["mean"] for r in sel]))
    a1.bar(range(len(arms)), means, yerr=stds, capsize=3)
    a1.set_xticks(range(len(arms)), arms, rotation=30, ha="right", fontsize=8)
    a1.set_ylim(min(means) - 0.05, max(means) + 0.03)
    a1.set_ylabel(f"mean Dice, {res['test_cases']} unseen cases")
    a1.set_title("1 slice/axis on 3 cases", fontsize=9)
    if res["curve"]:
        ns = sorted(res["curve"], key=int)
        a2.errorbar(
            [int(n) for n in ns],
            [np.mean(res["curve"][n]) for n in ns],
            yerr=[np.std(res["curve"][n]) for n in ns],
            marker="o",
            capsize=3,
        )
        a2.set_xlabel("unlabelled volumes in the pool")
        a2.set_ylabel("mean Dice")
        a2.set_title(res["curve_arm"], fontsize=9)
    fig.savefig(path, dpi=110)
    print("plot written to", path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument(
        "--long-pretrain",
        type=int,
        default=0,
        help="also pretrain each task for this many steps (its own arms)",
    )
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--pretrain-batch", type=int, default=4)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--semi-weight", type=float, default=1.0)
    ap.add_argument("--tasks", nargs="*", default=list(PRETEXT))
    ap.add_argument("--semi", nargs="*", default=list(SEMI))
    ap.add_argument("--curve", type=int, nargs="*", default=[20, 60])
    ap.add_argument("--curve-arm", default=None)
    ap.add_argument(
        "--curve-seeds",
        type=int,
        nargs="*",
        default=None,
        help="seeds of the curve's smaller pools (default: --seeds)",
    )
    ap.add_argument(
        "--double-baseline",
        action="store_true",
        help="also run the no-pool arm at twice the steps (what "
        "self-training's two rounds cost)",
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="tables and plot from the cached runs only (runs not made "
        "yet are left out)",
    )
    ap.add_argument(
        "--skip-own",
        action="store_true",
        help="leave out self-training without the pool (own voxels only)",
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--skip-combined",
        action="store_true",
        help="leave out the masked + semi arm",
    )
    args = ap.parse_args()
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    global RUNS
    if args.quick:
        RUNS = Path(tempfile.mkdtemp()) / "quick_runs.jsonl"
        args.seeds, args.steps, args.pretrain_steps = [0], 6, 4
        args.tasks, args.curve = ["masked"], [20]
    ids = test_ids()
    train, test = hippo(TRAIN), hippo(ids[:4] if args.quick else ids)
    res = {
        "machine": machine(),
        "device": args.device,
        "steps": args.steps,
        "seeds": args.seeds,
        "test_cases": len(test),
        "filters": args.filters,
        "pretrain_steps": args.pretrain_steps,
        "runs": [],
        "pretraining": [],
        "curve": {},
        "curve_arm": None,
    }

    def fit(*a, **kw):
        row = fine_tune(*a, args, train, test, **kw)
        if row is not None:  # None: --report-only and not run yet
            res["runs"].append(row)

    for seed in args.seeds:
        fit("none", seed)
    if args.double_baseline:  # self-training trains twice: the fair match
        twice = argparse.Namespace(**{**vars(args), "steps": 2 * args.steps})
        for seed in args.seeds:
            row = fine_tune("none, 2x steps", seed, twice, train, test)
            if row is not None:
                res["runs"].append(row)
    for method in args.semi:
        for seed in args.seeds:
            fit(f"semi {method}", seed, semi=method)
    if "selftrain" in args.semi and not args.skip_own:
        # the same two rounds with no pool: the annotated volumes' own
        # unannotated voxels are all it pseudo-labels
        for seed in args.seeds:
            fit("selftrain, own voxels only", seed, semi="selftrain", n=0)
    encs = {}
    budgets = [args.pretrain_steps] + (
        [args.long_pretrain] if args.long_pretrain else []
    )
    for task, psteps in [(t, b) for b in budgets for t in args.tasks]:
        pargs = argparse.Namespace(**{**vars(args), "pretrain_steps": psteps})
        arm = f"pretrained {task}" + (
            f", {psteps} steps" if psteps != args.pretrain_steps else ""
        )
        cached = all(
            done().get(
                f"{arm} pool137 {args.steps} s{s} f{args.filters} "
                f"w{args.semi_weight}"
            )
            for s in args.seeds
        )
        enc, info = pretrain(task, None, pargs, cached_only=cached)
        if psteps == args.pretrain_steps:
            encs[task] = enc
        res["pretraining"].append(info)
        for seed in args.seeds:
            fit(arm, seed, init=enc)
    if encs and args.semi and not args.skip_combined:
        # the best pretext task's encoder, then the best semi method
        best_task = max(
            encs,
            key=lambda t: np.mean(
                [
                    r["mean"]
                    for r in res["runs"]
                    if r["arm"] == f"pretrained {t}"
                ]
            ),
        )
        enc, _ = pretrain(best_task, None, args)  # the file, even if cached
        best_semi = max(
            args.semi,
            key=lambda m: np.mean(
                [r["mean"] for r in res["runs"] if r["arm"] == f"semi {m}"]
            ),
        )
        for seed in args.seeds:
            fit(
                f"{best_task} + semi {best_semi}",
                seed,
                init=enc,
                semi=best_semi,
            )
    # the curve: the best arm that uses the pool at training time or
    # through pretraining, rerun with fewer pool volumes
    means = {}
    for r in res["runs"]:
        if not r["arm"].startswith("none") and r["pool"]:
            means.setdefault(r["arm"], []).append(r["mean"])
    best = args.curve_arm or max(means, key=lambda a: np.mean(means[a]))
    res["curve_arm"] = best
    base = [r["mean"] for r in res["runs"] if r["arm"] == "none"]
    res["curve"] = {"0": base, "137": means[best]}
    for n in args.curve:
        vals = []
        for seed in args.curve_seeds or args.seeds:
            init, semi = None, None
            if "semi" in best:
                semi = best.split()[-1]
            for task in PRETEXT:
                if best.startswith(("pretrained " + task, task)):
                    init, info = pretrain(task, n, args)
                    if info not in res["pretraining"]:
                        res["pretraining"].append(info)
            row = fine_tune(
                best, seed, args, train, test, init=init, semi=semi, n=n
            )
            if row is not None:
                vals.append(row["mean"])
        if vals:
            res["curve"][str(n)] = vals
    if args.quick:
        table(res)
        return
    (RESULTS / "unlabelled.json").write_text(json.dumps(res, indent=1))
    table(res)
    plot(res, RESULTS / "unlabelled.png")


if __name__ == "__main__":
    main()
