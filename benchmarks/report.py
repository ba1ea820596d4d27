"""Render the README's benchmark tables from ``results/*.json``.

    .venv/bin/python benchmarks/report.py > /tmp/tables.md

Each section is printed only when its benchmark has written results.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str, folder: Path = RESULTS) -> dict | None:
    p = folder / name
    return json.loads(p.read_text()) if p.exists() else None


def sparse(d: dict) -> None:
    print(
        f"**Sparse slices vs dense** (`bench_sparse.py`; {d['steps']} steps, "
        f"seeds {d['seeds']}; {d['machine']}). Dice on the voxels "
        "unannotated at 10 %, mean ± std over seeds:\n"
    )
    print("| labels | labelled voxels | Dice GM | Dice WM | × dense |")
    print("|---|---|---|---|---|")
    for r in d["rows"]:
        print(
            f"| {r['setting']} | {100 * r['labelled_voxels']:.1f} % | "
            f"{r['gm_mean']:.3f} ± {r['gm_std']:.3f} | "
            f"{r['wm_mean']:.3f} ± {r['wm_std']:.3f} | "
            f"{r['of_dense']:.3f} |"
        )
    print("\n![sparse](benchmarks/results/sparse.png)\n")


def speed(d: dict) -> None:
    print(
        f"**Overhead vs a plain MONAI loop** (`bench_speed.py`; patch "
        f"{d['patch']}; {d['machine']}):\n"
    )
    print("| measure | plain MONAI | napari-weakseg | overhead |")
    print("|---|---|---|---|")
    for r in d["rows"]:
        over = 100 * (r["plain"] / r["ours"] - 1)
        print(
            f"| {r['measure']} | {r['plain']:,.2f} | {r['ours']:,.2f} | "
            f"{over:+.1f} % |"
        )
    print(
        f"| peak RSS (whole benchmark) | | {d['peak_rss_mib']:,.0f} MiB | |\n"
    )


def stall(d: dict) -> None:
    print(
        f"**Viewer responsiveness** (`bench_gui_stall.py`, gaps between "
        f"ticks of a 10 ms QTimer; {d['machine']}, Xvfb):\n"
    )
    print("| phase | ticks | median ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for phase, r in d["rows"].items():
        print(
            f"| {phase} | {r['ticks']} | {r['median']:.1f} | "
            f"{r['p99']:.1f} | {r['max']:.1f} |"
        )
    print()


def boxes(d: dict) -> None:
    res = d["results"]
    names = list(res)
    budgets = d["budgets"]
    print(
        "**Boxes to masks** (`bench_boxes.py`; rounds × steps per round in "
        "each column's head, the dense reference trained as many steps in "
        f"all; mean Dice over classes; {d['machine']}):\n"
    )
    heads = [f"{n}, {budgets[n][0]} × {budgets[n][1]}" for n in names]
    print("| method | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(names))
    keys = list(dict.fromkeys(k for n in names for k in res[n]))
    for key in keys:
        cells = []
        for n in names:
            v = res[n].get(key)
            dense = res[n]["dense labels (reference)"]
            cells.append("–" if v is None else f"{v:.3f} ({v / dense:.0%})")
        print(f"| {key} | " + " | ".join(cells) + " |")
    print(
        f"\nDense CRF on 120×150×100, 2 classes, 5 iterations: "
        f"**{d['crf_s']:.2f} s**, +{d['crf_mib']:.0f} MiB peak (target "
        "< 6 s on 2 cores; MONAI's CRF block: 177 s, SimpleCRF: 5.8 s).\n"
    )
    print("![boxes](benchmarks/results/boxes.png)\n")


def cam(d: dict) -> None:
    """Tables of ``bench_cam.py``: localisation, then segmentation."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_cam import table

    print(
        f"**CAM from image-level labels** (`bench_cam.py`; classifier "
        f"steps per row, mean ± sd over {d.get('seeds', 1)} seeds; U-Nets "
        f"{d['unet_steps']} steps; pointing: map maximum within one voxel "
        "of the object, 2 mm on MNI, 1 mm on the hippocampus, *chance* the "
        f"share of a crop's voxels that count; held-back crops; "
        f"{d['machine']}):\n"
    )
    print(table(d["results"]))
    print("\n![cam](benchmarks/results/cam.png)\n")


def ssl_arms(d: dict, base: dict | None) -> list[dict]:
    """Mean ± std of both arms per (budget, labels); from-scratch rows of
    ``sparse.json`` stand in where its budget matches (their spread is
    approximated from its per-class spreads)."""
    rows = {r["setting"]: r for r in (base or {}).get("rows", [])}
    out = []
    for budget, f in sorted({(r["budget"], r["fraction"]) for r in d["runs"]}):
        arm = {}
        for name in ("scratch", "pretrained"):
            v = [
                np.mean([r["gm"], r["wm"]])
                for r in d["runs"]
                if (r["budget"], r["fraction"], r["arm"]) == (budget, f, name)
            ]
            if v:
                arm[name] = (float(np.mean(v)), float(np.std(v)), len(v))
        b = rows.get(f"{100 * f:g} %")
        if "scratch" not in arm and b and base["steps"] == budget:
            sd = float(np.hypot(b["gm_std"], b["wm_std"]) / 2)
            arm["scratch"] = (b["mean"], sd, len(base["seeds"]))
        out.append({"budget": budget, "fraction": f, **arm})
    return out


def ssl(d: dict, base: dict | None) -> None:
    p = d["pretrain"]
    print(
        f"**Self-supervised pretraining** (`bench_ssl.py`; {d['machine']}). "
        f"Pretraining: {p['steps']} steps of batch {p['batch']} (rotation + "
        f"contrastive) in {p['seconds'] / 60:.0f} min; pretext accuracy over "
        f"the last 50 steps: rotation {p['rot']:.2f} (chance 0.10), "
        f"contrastive top-1 {p['top1']:.2f} (chance {p['top1_chance']:.2f}). "
        "Fine-tuning as in `bench_sparse.py`, same budget for both arms; "
        "mean Dice of GM and WM on unannotated voxels.\n"
    )
    print(
        "| labels | fine-tuning steps | from scratch | pretrained | "
        "gain (Dice points) | seeds |"
    )
    print("|---|---|---|---|---|---|")
    nan = (float("nan"), float("nan"), 0)
    for r in ssl_arms(d, base):
        s, p = r.get("scratch", nan), r.get("pretrained", nan)
        print(
            f"| {100 * r['fraction']:g} % | {r['budget']} | {s[0]:.3f} ± "
            f"{s[1]:.3f} | {p[0]:.3f} ± {p[1]:.3f} | "
            f"{100 * (p[0] - s[0]):+.1f} | {p[2]} |"
        )
    print()


def replot(folder: Path = RESULTS) -> None:
    """Redraw every plot from the result files (no benchmark rerun)."""
    import sys

    sys.path.insert(0, str(RESULTS.parent))
    from _common import save_plot

    d = load("boxes.json", folder)
    if d:
        res = d["results"]
        keys = list(dict.fromkeys(k for r in res.values() for k in r))
        save_plot(
            folder / "boxes.png",
            keys,
            {
                n: ([r.get(k, 0) for k in keys], [0] * len(keys))
                for n, r in res.items()
            },
            "mean Dice",
            "Boxes to masks",
        )
    d, base = load("ssl.json", folder), load("sparse.json", folder)
    if d and d.get("runs") and "budget" in d["runs"][0]:
        arms = ssl_arms(d, base)
        nan = (float("nan"), float("nan"), 0)
        save_plot(
            folder / "ssl.png",
            [f"{100 * r['fraction']:g} %, {r['budget']} steps" for r in arms],
            {
                name: (
                    [r.get(name, nan)[0] for r in arms],
                    [r.get(name, nan)[1] for r in arms],
                )
                for name in ("scratch", "pretrained")
            },
            "Dice on unannotated voxels",
            "Self-supervised pretraining",
        )
    d = base
    if d:
        rows = d["rows"]
        save_plot(
            folder / "sparse.png",
            [r["setting"] for r in rows],
            {
                "grey matter": (
                    [r["gm_mean"] for r in rows],
                    [r["gm_std"] for r in rows],
                ),
                "white matter": (
                    [r["wm_mean"] for r in rows],
                    [r["wm_std"] for r in rows],
                ),
            },
            "Dice on unannotated voxels",
            f"Sparse slices vs dense, {d['steps']} steps",
        )


CASE_NAMES = {
    "hippocampus": "hippocampus MRI (3 cases → 5 unseen)",
    "fibsem": "FIB-SEM boundaries (unseen block)",
    "mni": "MNI152 GM/WM (unseen hemisphere)",
}


def recipe(d: dict) -> None:
    rows = d["rows"]
    get = {(r["case"], r["setting"], r["arm"]): r for r in rows}
    print(
        f"**Training recipe vs a plain MONAI loop** (`bench_recipe.py`; "
        f"{d['steps']} steps each, batch 2; seeds {d['seeds']}; "
        f"{d['machine']}, 1 thread per run, two runs at a time). Mean Dice "
        "over classes on voxels no label file touches, mean ± spread (std) "
        "over seeds; s/step = training wall time / steps (ours includes "
        "validation and checkpoints):\n"
    )
    print(
        "| case | labels | napari-weakseg | MONAI reference | difference "
        "| s/step ours / reference |"
    )
    print("|---|---|---|---|---|---|")
    for case, setting in dict.fromkeys(
        (r["case"], r["setting"]) for r in rows
    ):
        ref = get.get((case, setting, "MONAI reference"))
        for arm in ("weakseg default", "weakseg default, stacked file"):
            ours = get.get((case, setting, arm))
            if ours is None or ref is None:
                continue
            label = "" if arm == "weakseg default" else " (stacked file)"
            print(
                f"| {CASE_NAMES.get(case, case)}{label} | {setting} | "
                f"{ours['mean']:.3f} ± {ours['std']:.3f} | "
                f"{ref['mean']:.3f} ± {ref['std']:.3f} | "
                f"{ours['mean'] - ref['mean']:+.3f} | "
                f"{ours['s_per_step']:.2f} / {ref['s_per_step']:.2f} |"
            )
    ablation = [
        r
        for r in rows
        if r["arm"].startswith("weakseg ")
        and r["arm"]
        not in ("weakseg default", "weakseg default, stacked file")
    ]
    if not ablation:
        print("\n![recipe](benchmarks/results/recipe.png)\n")
        return
    print(
        "\n**Recipe ablation** (same benchmark, sparse labels): the default "
        "with one thing changed at a time.\n"
    )
    print("| case | variant | Dice | vs default | s/step |")
    print("|---|---|---|---|---|")
    for case in dict.fromkeys(r["case"] for r in ablation):
        base = get.get((case, "sparse", "weakseg default"))
        ref = get.get((case, "sparse", "MONAI reference"))
        for r in [base, ref] + [a for a in ablation if a["case"] == case]:
            if r is None:
                continue
            name = r["arm"].removeprefix("weakseg ")
            diff = r["mean"] - base["mean"] if base else float("nan")
            print(
                f"| {case} | {name} | {r['mean']:.3f} ± {r['std']:.3f} "
                f"(n={r['n']}) | {diff:+.3f} | {r['s_per_step']:.2f} |"
            )
    print("\n![recipe](benchmarks/results/recipe.png)\n")


def _ms(values: list[float]) -> str:
    import numpy as np

    v = np.asarray(values, float)
    return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def real(d: dict) -> None:
    """Tables of ``bench_real.py``: inductive hippocampus by labels and
    budget, pretraining tasks, retraining after a correction, FIB-SEM."""
    import numpy as np

    rows = d["hippocampus"]
    seeds = sorted({r["seed"] for r in rows})
    print(
        f"**Real data, inductive** (`bench_real.py`; hippocampus: one model "
        f"from 3 labelled cases, Dice on 5 unseen cases, each predicted on "
        f"its own; augmentation `{d.get('augment', 'none')}`; seeds "
        f"{seeds}; {d['machine']}):\n"
    )
    print("| labels | steps | minutes | head | body | mean | × dense |")
    print("|---|---|---|---|---|---|---|")
    plain = [
        r for r in rows if not r["init"] and " corrected " not in r["key"]
    ]
    dense = {r["steps"]: [] for r in plain if r["setting"] == "dense"}
    for r in plain:
        if r["setting"] == "dense":
            dense[r["steps"]].append(r["mean"])
    groups: dict = {}
    for r in plain:
        groups.setdefault((r["setting"], r["steps"]), []).append(r)
    for (setting, steps), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][1], kv[0][0])
    ):
        mean = np.mean([r["mean"] for r in rs])
        ref = np.mean(dense.get(steps, [np.nan]))
        minutes = np.mean([r["seconds"] for r in rs]) / 60
        head, body = _ms([r["head"] for r in rs]), _ms([r["body"] for r in rs])
        print(
            f"| {setting} | {steps} | {minutes:.1f} | {head} | {body} | "
            f"{_ms([r['mean'] for r in rs])} | {mean / ref:.2f} |"
        )
    pre = d.get("pretraining", [])
    if pre:
        big = max(r["steps"] for r in plain)
        scratch = [
            r["mean"]
            for r in plain
            if r["setting"] == "1/axis" and r["steps"] == big
        ]
        print(
            f"\n**Pretraining on the 20 unlabelled cases**, then one slice "
            f"per axis on 3 cases, {big} fine-tuning steps (scratch: "
            f"{_ms(scratch)}):\n"
        )
        print(
            "| pretext task | pretraining | pretext score | "
            "fine-tuned mean Dice | gain (points) |"
        )
        print("|---|---|---|---|---|")
        for info in pre:
            rs = [
                r
                for r in rows
                if r["key"].endswith(
                    f"pretrained {info['task']} {info['steps']}"
                )
            ]
            if not rs:
                continue
            gain = 100 * (np.mean([r["mean"] for r in rs]) - np.mean(scratch))
            score = (
                ", ".join(
                    f"{k} {info[k]:.2f}"
                    for k in ("rotation", "top1")
                    if k in info
                )
                or f"val. loss {info['val_loss']:.3f}"
            )
            minutes = info["seconds"] / 60
            # the label of an old default kept its cache key
            name = info["task"].replace(" (default)", "")
            name += " (default)" if name == "inpainting" else ""
            print(
                f"| {name} | {info['steps']} steps, {minutes:.1f} min "
                f"| {score} | {_ms([r['mean'] for r in rs])} | {gain:+.1f} |"
            )
    warm = [r for r in rows if " corrected warm " in r["key"]]
    cold = [r for r in rows if " corrected scratch " in r["key"]]
    if warm and cold:
        print(
            "\n**Retraining after a correction** (one more slice per case; "
            "warm = from the current model):\n"
        )
        print("| retrain | steps | seconds | × scratch time | mean Dice |")
        print("|---|---|---|---|---|")
        base = np.mean([r["seconds"] for r in cold])
        groups = {}
        for r in warm:
            groups.setdefault(("warm start", r["steps"]), []).append(r)
        groups[("from scratch", cold[0]["steps"])] = cold
        for (name, steps), rs in groups.items():
            seconds = np.mean([r["seconds"] for r in rs])
            print(
                f"| {name} | {steps} | {seconds:.1f} | {seconds / base:.2f} "
                f"| {_ms([r['mean'] for r in rs])} |"
            )
    fib = d.get("fibsem", [])
    if fib:
        print(
            "\n**FIB-SEM boundaries** (5 % of the slices vs dense on the "
            "first 80 z-slices, scored on the last 40):\n"
        )
        print("| labels | steps | boundary Dice | interior Dice |")
        print("|---|---|---|---|")
        for setting in ("sparse", "dense"):
            rs = [r for r in fib if r["setting"] == setting]
            if rs:
                b = _ms([r["boundary"] for r in rs])
                i = _ms([r["interior"] for r in rs])
                print(f"| {setting} | {rs[0]['steps']} | {b} | {i} |")
    print("\n![real](benchmarks/results/real.png)\n")


def scale(d: dict) -> None:
    """Table of ``bench_scale.py``: memory and speed past one machine."""
    from bench_scale import table

    print(
        "\n**Larger than memory, DDP** (`bench_scale.py`; network: 8 base "
        "filters, patch 48³, prediction overlap 0.25)"
    )
    table(d)
    print("\n![scale](benchmarks/results/scale.png)\n")


def cpu_steps(d: dict) -> None:
    """Table of ``bench_cpu_steps.py``: candidates for faster CPU steps."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_cpu_steps import table

    print(
        "\n**Faster CPU training steps** (`bench_cpu_steps.py`; one step "
        "of the default U-Net as a user run plans it, median over 30 steps "
        f"after 5; {d['machine']}):\n"
    )
    print(table(d["results"]))
    print("\n![cpu steps](benchmarks/results/cpu_steps.png)\n")


def readme(path: Path = RESULTS.parents[1] / "README.md") -> None:
    """Replace the README's tables (between its benchmark markers) with
    the ones rendered from ``results/``."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tables()
    text = path.read_text()
    start = text.index("<!-- benchmarks:start")
    start = text.index("\n", start) + 1
    end = text.index("<!-- benchmarks:end -->")
    path.write_text(text[:start] + buf.getvalue().strip() + "\n" + text[end:])
    print(f"tables written into {path}")


def main() -> None:
    import sys

    if "--plots" in sys.argv:
        replot()
        return
    if "--readme" in sys.argv:
        readme()
        return
    tables()


def tables() -> None:
    base = load("sparse.json")
    for name, fn in [
        ("sparse.json", sparse),
        ("speed_cpu.json", speed),
        ("speed_cuda.json", speed),
        ("gui_stall.json", stall),
        ("boxes.json", boxes),
        ("cam.json", cam),
        ("recipe.json", recipe),
        ("real.json", real),
        ("cpu_steps.json", cpu_steps),
        ("scale.json", scale),
    ]:
        d = load(name)
        if d is not None:
            fn(d)
    d = load("ssl.json")
    if d is not None and d.get("runs"):
        ssl(d, base)


if __name__ == "__main__":
    main()
