"""Quality per budget on real development data, as a user works: a few
slices on a few volumes, one model, applied to unseen volumes.

- **hippocampus, inductive**: 3 labelled cases train one model (each its
  own volume: ``api.train`` with three image/label pairs), which is then
  applied case by case to the 5 other labelled cases (``api.predict``);
  Dice of head and body on those.  Labels: one slice per axis per case,
  5 % of the slices, or dense.  Augmentation ``--augment affine`` (no
  mirroring -- head lies anterior of body -- but small turns, scaling and
  intensity jitter; ``none`` gives the earlier rows).  Budgets in steps
  (the wall-clock time of each run is recorded; the curve plots Dice
  against it).
- **pretraining**: the encoder of the default U-Net pretrained on the 20
  unlabelled hippocampus cases with each pretext task (rotation,
  contrastive, inpainting, all three), then fine-tuned from one slice per
  axis exactly as the from-scratch arm.
- **FIB-SEM boundaries**: 5 % of the slices vs dense on the first 80
  z-slices of a 128 x 160 x 160 crop, scored on its last 40 (boundary and
  interior Dice).
- **retraining after a correction**: the 1-slice-per-axis model gets one
  more slice per case and is retrained warm (``init=`` the model) for a
  quarter, a sixth and an eighth of the budget (``--warm-divisors``);
  seconds and Dice vs training from scratch on the corrected labels.

Every run is appended to ``results/real_runs.jsonl`` (a rerun skips runs
already there); ``results/real.json`` and ``real.png`` are rebuilt from it.

    .venv/bin/python benchmarks/bench_real.py [--quick] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import append_run, machine, read_runs  # noqa: E402
from _realdata import SHARED, fibsem  # noqa: E402

from napari_weakseg import api  # noqa: E402
from napari_weakseg.core.base.events import Pretext  # noqa: E402
from napari_weakseg.core.base.metrics import dice_per_class  # noqa: E402
from napari_weakseg.core.data.sparse import evenly_spaced_slices  # noqa: E402

IGNORE = 255
TRAIN = ("001", "003", "004")
TEST = ("006", "007", "008", "011", "014")
RUNS = HERE / "results" / "real_runs.jsonl"
TASKS = {
    "rotation": "rotation",
    "contrastive": "contrastive",
    "inpainting": "inpainting",
    "rotation + contrastive (default)": "rotation,contrastive",
    "all three": "rotation,contrastive,inpainting",
}


def hippo(ids) -> list[tuple[api.Volume, np.ndarray]]:
    root = SHARED / "hippocampus_mri" / "labelled"
    return [
        (
            api.read_volume(root / "images" / f"hippocampus_{i}.nii.gz"),
            np.asarray(
                api.read_volume(
                    root / "labels" / f"hippocampus_{i}.nii.gz"
                ).data
            ).astype(np.uint8),
        )
        for i in ids
    ]


def sparse(truth: np.ndarray, setting: str, extra: int = 0) -> np.ndarray:
    """``dense``, ``1/axis`` (middle slice of each axis; ``extra`` more
    evenly spaced ones on z) or ``5%`` of the slices, over all axes."""
    if setting == "dense":
        return truth.copy()
    out = np.full(truth.shape, IGNORE, np.uint8)
    if setting == "1/axis":
        picks = {a: [truth.shape[a] // 2] for a in range(3)}
        if extra:
            picks[0] += [
                i
                for i in evenly_spaced_slices(truth.shape[0], extra + 2)
                if i != truth.shape[0] // 2
            ][:extra]
    else:
        total = sum(truth.shape)
        k = max(3, round(0.05 * total))
        picks = {
            a: evenly_spaced_slices(n, max(1, round(k * n / total)))
            for a, n in enumerate(truth.shape)
        }
    for a, idx in picks.items():
        for i in idx:
            sl = [slice(None)] * 3
            sl[a] = i
            out[tuple(sl)] = truth[tuple(sl)]
    return out


def score(model: Path, cases, num_classes: int) -> list[float]:
    """Mean per-class Dice over the cases, each predicted on its own."""
    per = []
    for vol, truth in cases:
        labels, _ = api.predict(model, vol, device="cpu")
        per.append(dice_per_class(labels, truth, num_classes))
    return [float(v) for v in np.nanmean(np.asarray(per, float), axis=0)]


def done_runs() -> dict[str, dict]:
    return read_runs(RUNS)


def record(row: dict) -> dict:
    return append_run(RUNS, row)


def train_hippo(
    key,
    setting,
    steps,
    seed,
    *,
    train,
    test,
    tmp,
    init=None,
    extra=0,
    fresh=False,
    augment="affine",
) -> dict:
    cached = done_runs().get(key)
    if cached and not fresh:
        return cached
    out = Path(tmp) / f"{abs(hash(key))}.safetensors"
    t0 = time.perf_counter()
    fin = api.train(
        [v for v, _ in train],
        [sparse(t, setting, extra) for _, t in train],
        out,
        steps=steps,
        augment=augment,  # no mirroring: head vs body lie apart
        device="cpu",
        seed=seed,
        init=init,
    )
    seconds = time.perf_counter() - t0
    head, body = score(out, test, 3)
    row = {
        "key": key,
        "case": "hippocampus",
        "setting": setting,
        "steps": fin.steps,
        "seed": seed,
        "seconds": seconds,
        "head": head,
        "body": body,
        "mean": (head + body) / 2,
        "init": init is not None,
        "augment": augment,
        "model": str(out),
    }
    print(
        f"{key}: head {head:.3f} body {body:.3f} ({seconds:.0f} s)",
        flush=True,
    )
    return record(row)


def pretrain(task: str, steps: int, tmp: str) -> tuple[Path, dict]:
    root = SHARED / "hippocampus_mri" / "unlabelled"
    vols = [api.read_volume(p) for p in sorted(root.glob("*.nii.gz"))]
    enc = Path(tmp) / f"enc_{task.replace(' ', '_')}.safetensors"
    last: dict = {}
    t0 = time.perf_counter()
    fin = api.pretrain(
        vols,
        enc,
        tasks=TASKS[task],
        steps=steps,
        network="resunet",
        device="cpu",
        callback=lambda e: (
            last.update(rotation=e.rotation_accuracy, top1=e.contrastive_top1)
            if isinstance(e, Pretext)
            else None
        ),
    )
    info = {
        "task": task,
        "steps": steps,
        "seconds": time.perf_counter() - t0,
        "val_loss": fin.best,
        **{k: v for k, v in last.items() if v == v},
    }
    print(f"pretrained {task}: {info}", flush=True)
    return enc, info


def fibsem_runs(steps: int, seeds, tmp: str) -> list[dict]:
    case = fibsem()
    rows = []
    for setting in ("sparse", "dense"):
        for seed in seeds:
            key = f"fibsem {setting} {steps} s{seed}"
            cached = done_runs().get(key)
            if cached:
                rows.append(cached)
                continue
            out = Path(tmp) / f"fib_{setting}_{seed}.safetensors"
            t0 = time.perf_counter()
            api.train(
                case.image,
                case.labels(setting),
                out,
                steps=steps,
                device="cpu",
                seed=seed,
            )
            seconds = time.perf_counter() - t0
            labels, _ = api.predict(out, case.image, device="cpu")
            m = case.eval_mask
            boundary = dice_per_class(labels, case.truth, 2, m)[0]
            inside = dice_per_class(
                (labels == 0).astype(np.uint8),
                (case.truth == 0).astype(np.uint8),
                2,
                m,
            )[0]
            row = record(
                {
                    "key": key,
                    "case": "fibsem",
                    "setting": setting,
                    "steps": steps,
                    "seed": seed,
                    "seconds": seconds,
                    "boundary": boundary,
                    "interior": inside,
                }
            )
            print(
                f"{key}: boundary {boundary:.3f} interior {inside:.3f} "
                f"({seconds:.0f} s)",
                flush=True,
            )
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budgets", type=int, nargs="+", default=[300, 1500])
    ap.add_argument("--pretrain-steps", type=int, default=600)
    ap.add_argument("--fibsem-steps", type=int, default=300)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--warm-divisors", type=int, nargs="+", default=[4, 6, 8])
    ap.add_argument("--augment", choices=("none", "affine"), default="affine")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.budgets = [0], [20]
        args.pretrain_steps, args.fibsem_steps = 10, 10
    train, test = hippo(TRAIN), hippo(TEST)
    tmp = tempfile.mkdtemp(prefix="bench_real_")
    out: dict = {
        "machine": machine(),
        "augment": args.augment,
        "hippocampus": [],
        "pretraining": [],
    }
    # runs of another augmentation are other runs (``none``: the old keys)
    hip = "hippo" if args.augment == "none" else f"hippo/{args.augment}"

    fit = functools.partial(
        train_hippo, train=train, test=test, tmp=tmp, augment=args.augment
    )

    big = max(args.budgets)
    for steps in args.budgets:
        for setting in ("1/axis", "5%", "dense"):
            if setting == "5%" and steps != big:
                continue
            for seed in args.seeds:
                key = f"{hip} {setting} {steps} s{seed}"
                out["hippocampus"].append(fit(key, setting, steps, seed))
    # retraining after a correction: one more z-slice per case, warm start
    if "retrain" not in args.skip:
        for seed in args.seeds:
            key = f"{hip} 1/axis {big} s{seed}"
            model = Path(done_runs()[key]["model"])
            if not model.exists():  # from an earlier session: retrain it
                row = fit(key, "1/axis", big, seed, fresh=True)
                model = Path(row["model"])
            runs = [(True, big // d) for d in args.warm_divisors]
            for warm, steps in runs + [(False, big)]:
                how = "warm" if warm else "scratch"
                key = f"{hip} corrected {how} {steps} s{seed}"
                init = model if warm else None
                row = fit(key, "1/axis", steps, seed, init=init, extra=1)
                out["hippocampus"].append(row)
    if "pretraining" not in args.skip:
        for task in TASKS:
            enc, info = pretrain(task, args.pretrain_steps, tmp)
            out["pretraining"].append(info)
            for seed in args.seeds:
                key = (
                    f"{hip} 1/axis {big} s{seed} pretrained {task} "
                    f"{args.pretrain_steps}"
                )
                out["hippocampus"].append(
                    fit(key, "1/axis", big, seed, init=enc)
                )
    if "fibsem" not in args.skip:
        out["fibsem"] = fibsem_runs(args.fibsem_steps, args.seeds, tmp)
    previous = HERE / "results" / "real.json"
    if previous.exists():  # sections skipped this time keep their numbers
        for k, v in json.loads(previous.read_text()).items():
            if k in ("pretraining", "fibsem") and k in args.skip:
                out[k] = v
                if k == "pretraining":
                    out["hippocampus"] += [
                        r
                        for r in done_runs().values()
                        if " pretrained " in r["key"]
                        and r.get("augment", "none") == args.augment
                    ]
    previous.write_text(json.dumps(out, indent=1))
    import report

    report.real(out)
    plot(out)


def plot(out: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for setting, colour in (("1/axis", "C0"), ("5%", "C1"), ("dense", "C2")):
        rows = [
            r
            for r in out["hippocampus"]
            if r["setting"] == setting
            and not r["init"]
            and " corrected " not in r["key"]
        ]
        if not rows:
            continue
        ax.scatter(
            [r["seconds"] / 60 for r in rows],
            [r["mean"] for r in rows],
            color=colour,
            label=f"{setting} (scratch)",
        )
    pre = [r for r in out["hippocampus"] if "pretrained" in r["key"]]
    if pre:
        ax.scatter(
            [r["seconds"] / 60 for r in pre],
            [r["mean"] for r in pre],
            color="C3",
            marker="x",
            label="1/axis (pretrained)",
        )
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel("mean Dice, head and body, 5 unseen cases")
    ax.set_title("hippocampus: 3 training cases, inductive")
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "results" / "real.png", dpi=100)
    print("plot written to", HERE / "results" / "real.png")


if __name__ == "__main__":
    main()
