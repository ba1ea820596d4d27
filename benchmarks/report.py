"""Render the benchmark tables from ``results/*.json``.

    .venv/bin/python benchmarks/report.py > /tmp/tables.md   # every table
    .venv/bin/python benchmarks/report.py --readme   # README headline table
    .venv/bin/python benchmarks/report.py --docs DIR # the docs' pages
    .venv/bin/python benchmarks/report.py --plots    # redraw the plots

Each section is printed only when its benchmark has written results.
This module reads result files only: it imports no benchmark script (the
docs build runs it), and the benchmark scripts import their table
functions from here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
# Where rendered tables point their plots; the docs pages set their own.
IMG = "benchmarks/results/"


def save_plot(path, labels, series, ylabel, title) -> None:
    """Grouped bars with error bars; ``series`` maps name -> (means, stds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(labels))
    w = 0.8 / max(1, len(series))
    wide = max(6.0, 0.7 * len(labels) * max(1, len(series)))
    fig, ax = plt.subplots(figsize=(min(wide, 12.0), 3.6), tight_layout=True)
    for k, (name, (means, stds)) in enumerate(series.items()):
        ax.bar(x + k * w, means, w, yerr=stds, label=name, capsize=3)
    ax.set_xticks(
        x + w * (len(series) - 1) / 2,
        labels,
        rotation=30,
        ha="right",
        fontsize=8,
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")


def load(name: str, folder: Path = RESULTS) -> dict | None:
    p = folder / name
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


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
    print(f"\n![sparse]({IMG}sparse.png)\n")


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
    print("| phase | what | ticks | median ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for phase, r in d["rows"].items():
        print(
            f"| {phase} | {STALL_PHASES.get(phase, '')} | {r['ticks']} | "
            f"{r['median']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |"
        )
    print(f"\n![viewer stalls]({IMG}gui_stall.png)\n")


STALL_PHASES = {
    "idle": "docks open, nothing running",
    "training": "Start pressed, training, model saved",
    "predicting": "Apply pressed to the result shown",
    "apply": "Apply pressed to the result shown (the next three rows)",
    "apply: press": "empty layer added, model loaded (to the 1st window)",
    "apply: windows": "windows predicted, progress shown",
    "apply: result": "last window to the layer filled (in place)",
    "after": "500 ms after: the prediction drawn",
}


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
    print(f"![boxes]({IMG}boxes.png)\n")


def cam(d: dict) -> None:
    """Tables of ``bench_cam.py``: localisation, then segmentation."""
    print(
        f"**CAM from image-level labels** (`bench_cam.py`; classifier "
        f"steps per row, mean ± sd over {d.get('seeds', 1)} seeds; U-Nets "
        f"{d['unet_steps']} steps; pointing: map maximum within one voxel "
        "of the object, 2 mm on MNI, 1 mm on the hippocampus, *chance* the "
        f"share of a crop's voxels that count; held-back crops; "
        f"{d['machine']}):\n"
    )
    print(cam_table(d["results"]))
    print(f"\n![cam]({IMG}cam.png)\n")


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
        print(f"\n![recipe]({IMG}recipe.png)\n")
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
    print(f"\n![recipe]({IMG}recipe.png)\n")


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
    print(f"\n![real]({IMG}real.png)\n")


def scale(d: dict) -> None:
    """Table of ``bench_scale.py``: memory and speed past one machine."""
    print(
        "\n**Larger than memory, DDP** (`bench_scale.py`; network: 8 base "
        "filters, patch 48³, prediction overlap 0.25)"
    )
    scale_table(d)
    print(f"\n![scale]({IMG}scale.png)\n")


def cpu_steps(d: dict) -> None:
    """Table of ``bench_cpu_steps.py``: candidates for faster CPU steps."""
    print(
        "\n**Faster CPU training steps** (`bench_cpu_steps.py`; one step "
        "of the default U-Net as a user run plans it, median over 30 steps "
        f"after 5; {d['machine']}):\n"
    )
    print(cpu_steps_table(d["results"]))
    print(f"\n![cpu steps]({IMG}cpu_steps.png)\n")


def cam_table(results: dict) -> str:
    """Localisation rows, then image-level labels to segmentations."""
    out = [
        "| target | classifier / map | steps | accuracy | pointing "
        "(chance) | energy | IoU (Otsu) |",
        "|---|---|---|---|---|---|---|",
    ]

    def sd(row, k):
        n = row.get("seeds", 1)
        return f" ± {row[k + ' sd']:.2f}" if n > 1 else ""

    for name, r in results.items():
        for c, row in r["classifiers"].items():
            out.append(
                f"| {name} | {c} | {r.get('steps', '')} "
                f"| {row['accuracy']:.2f} "
                f"| {row['pointing']:.2f}{sd(row, 'pointing')} "
                f"({row.get('chance', float('nan')):.2f}) "
                f"| {row['energy']:.2f}{sd(row, 'energy')} "
                f"| {row['IoU']:.2f} |"
            )
    seg = [(n, r) for n, r in results.items() if "dense U-Net" in r]
    if seg:
        out += [
            "",
            "| target | dense U-Net | seeds | seed → U-Net "
            "| seed → expand (GWRP) → constrain (CRF) "
            "| rounds + CRF, no GWRP | map s/volume |",
            "|---|---|---|---|---|---|---|",
        ]
        for n, r in seg:
            d = r["dense U-Net"]
            cells = [
                f"{r[k]:.3f} ({r[k] / d:.2f}×)" if k in r else "–"
                for k in CAM_SEG
            ]
            out.append(
                f"| {n} | {d:.3f} | {' | '.join(cells)} "
                f"| {r['map s/volume']:.2f} |"
            )
    return "\n".join(out)


CAM_SEG = (
    "seed Dice (labelled voxels)",
    "seed -> U-Net",
    "seed -> expand -> constrain",
    "rounds + CRF, no GWRP",
)


def scale_table(r: dict) -> None:
    print(f"\nmachine: {r['machine']}\n")
    print("| volume | voxels | peak RSS (MiB) | voxels/s | seconds |")
    print("|---|---|---|---|---|")
    for p in r["prediction"]:
        shape = "x".join(map(str, p["shape"]))
        print(
            f"| predict {shape} | {p['voxels'] / 1e6:.0f} M | "
            f"{p['rss_mib']:.0f} | {p['voxels_per_s'] / 1e6:.2f} M | "
            f"{p['seconds']:.0f} |"
        )
    t = r["training"]
    print(
        f"| train {t['steps']} steps from {'x'.join(map(str, t['shape']))}"
        f" | | {t['rss_mib']:.0f} | | {t['seconds']:.0f} |"
    )
    small, big = r["prediction"][0], r["prediction"][-1]
    met = "met" if big["rss_mib"] < 3 * 1024 else "missed"
    print(
        f"\nTarget peak RSS < 3 GB at {big['voxels'] / 1e9:.1f} G voxels: "
        f"{met} ({big['rss_mib'] / 1024:.2f} GiB); "
        f"{big['voxels'] / small['voxels']:.0f}x the voxels took "
        f"{big['rss_mib'] / small['rss_mib']:.2f}x the memory."
    )
    one, two = r["ddp"]["1"], r["ddp"]["2"]
    print(
        f"\nDDP, {r['ddp_steps']} steps: 1 process "
        f"{one['patches_per_s']:.2f} patches/s, 2 gloo processes "
        f"{two['patches_per_s']:.2f} patches/s (x"
        f"{two['patches_per_s'] / one['patches_per_s']:.2f}); identical "
        f"weights on both ranks: {two['identical_weights']}"
    )


def cpu_steps_table(res: dict) -> str:
    out = [
        "| case | patch | variant | s/step | speed-up | first steps s |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in res.items():
        base = rows["contiguous"]["s/step"]
        for v, r in rows.items():
            out.append(
                f"| {name} | {'×'.join(map(str, r['patch']))} | {v} "
                f"| {r['s/step']:.3f} | {base / r['s/step']:.2f} "
                f"| {r['first steps s']:.1f} |"
            )
    return "\n".join(out)


def unlabelled(res: dict) -> None:
    """Tables of ``bench_unlabelled.py``: arms, pretraining, pool curve."""
    ms = _ms
    rows = res["runs"]
    arms = list(dict.fromkeys(r["arm"] for r in rows if r["pool"] in (0, 137)))
    base = [r["mean"] for r in rows if r["arm"] == "none"]
    print(
        f"\n**Unlabelled volumes** (`bench_unlabelled.py`; {res['machine']}; "
        f"device {res['device']}; 1 slice per axis on 3 cases, "
        f"{res['steps']} fine-tuning steps per training run (self-training "
        "runs two), seeds "
        f"{res['seeds']}; Dice on {res['test_cases']} unseen cases):\n"
    )
    print(
        "| arm | pool | steps in all | head | body | mean | "
        "vs none (points) | min/run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arm in arms:
        sel = [r for r in rows if r["arm"] == arm and r["pool"] in (0, 137)]
        sel = [r for r in sel if arm == "none" or r["pool"] == 137] or sel
        m = [r["mean"] for r in sel]
        gain = 100 * (np.mean(m) - np.mean(base)) if base else float("nan")
        print(
            f"| {arm} | {sel[0]['pool']} | "
            f"{sel[0]['steps'] * (2 if 'selftrain' in arm else 1)} | "
            f"{ms([r['head'] for r in sel])} | "
            f"{ms([r['body'] for r in sel])} | {ms(m)} | {gain:+.1f} | "
            f"{np.mean([r['seconds'] for r in sel]) / 60:.1f} |"
        )
    if res["pretraining"]:
        print("\n| pretraining | pool | steps | minutes | val loss | RSS |")
        print("|---|---|---|---|---|---|")
        for p in res["pretraining"]:
            print(
                f"| {p['task']} | {p['pool']} | {p['steps']} | "
                f"{p['seconds'] / 60:.1f} | {p['val_loss']:.3f} | "
                f"{p['rss_mib']:.0f} MiB |"
            )
    if res["curve"]:
        print(f"\n**Dice vs pool size** ({res['curve_arm']}):\n")
        print("| pool volumes | mean Dice | vs none (points) |")
        print("|---|---|---|")
        for n, vals in sorted(res["curve"].items(), key=lambda kv: int(kv[0])):
            gain = 100 * (np.mean(vals) - np.mean(base))
            print(f"| {n} | {ms(vals)} | {gain:+.1f} |")
    print(f"\n![unlabelled]({IMG}unlabelled.png)\n")


# --- headline table (README, docs home) ---------------------------------


def _mean(rows, **match) -> float:
    v = [
        r["mean"] for r in rows if all(r.get(k) == x for k, x in match.items())
    ]
    return float(np.mean(v)) if v else float("nan")


def headline(folder: Path = RESULTS, link: str = "benchmarks/") -> str:
    """One row per weak-label type, each from its result file; ``link``
    is where the benchmark pages are, seen from the page it goes on."""
    out = [
        "| annotation | data | result | benchmark |",
        "|---|---|---|---|",
    ]
    d = load("real.json", folder)
    if d:
        rows = [r for r in d["hippocampus"] if not r["init"]]
        rows = [r for r in rows if " corrected " not in r["key"]]
        steps = max(r["steps"] for r in rows)
        one = _mean(rows, setting="1/axis", steps=steps)
        five = _mean(rows, setting="5%", steps=steps)
        dense = _mean(rows, setting="dense", steps=steps)
        out.append(
            f"| one slice per axis per volume | hippocampus MRI, 3 cases "
            f"→ 5 unseen | Dice {one:.3f} = **{one / dense:.2f} × dense**"
            f" (5 % of slices: {five / dense:.2f} ×) | [real data]"
            f"({link}real.md) |"
        )
        fib = d.get("fibsem", [])
        if fib:
            s, dd = (
                np.mean([r["boundary"] for r in fib if r["setting"] == k])
                for k in ("sparse", "dense")
            )
            out.append(
                f"| 5 % of slices | FIB-SEM boundaries, unseen block | "
                f"boundary Dice {s:.3f} = **{s / dd:.2f} × dense** | "
                f"[real data]({link}real.md) |"
            )
    d = load("sparse.json", folder)
    if d:
        r = d["rows"][0]
        out.append(
            f"| {r['setting']} of slices ({100 * r['labelled_voxels']:.1f} "
            f"% of voxels) | MNI152 grey/white matter | "
            f"**{r['of_dense']:.2f} × dense** | [sparse slices]"
            f"({link}sparse.md) |"
        )
    d = load("boxes.json", folder)
    if d:
        res = d["results"].get("MNI152 lateral ventricles (2 boxes)")
        if res:
            v = res["GrabCut init + rounds"]
            ref = res["dense labels (reference)"]
            out.append(
                f"| one box per object | MNI152 lateral ventricles | Dice "
                f"{v:.3f} = **{100 * v / ref:.0f} % of dense** | [boxes]"
                f"({link}boxes.md) |"
            )
    d = load("cam.json", folder)
    if d:
        r = d["results"].get("MNI lateral ventricles")
        if r:
            c = r["classifiers"]["topk cam"]
            seg = r["seed -> expand -> constrain"] / r["dense U-Net"]
            out.append(
                f"| image-level labels of crops | MNI152 lateral ventricles"
                f" | pointing **{c['pointing']:.2f}**, energy "
                f"{c['energy']:.2f}; segmentation **{seg:.2f} × dense** | "
                f"[CAM]({link}cam.md) |"
            )
    d = load("recipe.json", folder)
    if d:
        get = {(r["case"], r["setting"], r["arm"]): r for r in d["rows"]}
        ours = get.get(("hippocampus", "sparse", "weakseg default"))
        ref = get.get(("hippocampus", "sparse", "MONAI reference"))
        if ours and ref:
            out.append(
                f"| 5 % of slices, same steps | hippocampus MRI vs a plain "
                f"MONAI loop | {ours['mean']:.3f} vs {ref['mean']:.3f} "
                f"(**{ours['mean'] - ref['mean']:+.3f}**) | [recipe]"
                f"({link}recipe.md) |"
            )
    d = load("scale.json", folder)
    if d:
        big = d["prediction"][-1]
        out.append(
            f"| (prediction) | {big['voxels'] / 1e6:.0f} M-voxel OME-Zarr, "
            f"block by block | peak RSS **{big['rss_mib'] / 1024:.2f} GiB** "
            f"| [scale]({link}scale.md) |"
        )
    return "\n".join(out)


# --- docs pages ------------------------------------------------------------

# slug, title, [(results file, renderer, script, command, data)], intro
RUN = "OMP_NUM_THREADS=2 .venv/bin/python benchmarks/"
HIPPO = "`../shared/data` beside the checkout: hippocampus MRI (Medical "
HIPPO += "Segmentation Decathlon task 4 crops), FIB-SEM boundaries"
MNI = "the shipped MNI152 sample (`sample_data/`)"
PAGES = [
    (
        "sparse",
        "Sparse slices vs dense (MNI152)",
        [
            (
                "sparse.json",
                sparse,
                "bench_sparse.py",
                f"{RUN}bench_sparse.py",
                MNI,
            ),
        ],
    ),
    (
        "real",
        "Real data: hippocampus and FIB-SEM",
        [
            ("real.json", real, "bench_real.py", f"{RUN}bench_real.py", HIPPO),
        ],
    ),
    (
        "recipe",
        "Training recipe vs a plain MONAI loop",
        [
            (
                "recipe.json",
                recipe,
                "bench_recipe.py",
                f"{RUN}bench_recipe.py",
                f"{HIPPO}; {MNI}",
            ),
        ],
    ),
    (
        "boxes",
        "Boxes to masks",
        [
            (
                "boxes.json",
                boxes,
                "bench_boxes.py",
                f"{RUN}bench_boxes.py",
                f"a synthetic blob phantom; {MNI}",
            ),
        ],
    ),
    (
        "cam",
        "CAM and image-level labels",
        [
            (
                "cam.json",
                cam,
                "bench_cam.py",
                f"{RUN}bench_cam.py",
                f"{MNI}; {HIPPO}",
            ),
        ],
    ),
    (
        "pretraining",
        "Pretraining and unlabelled pools",
        [
            (
                "unlabelled.json",
                unlabelled,
                "bench_unlabelled.py",
                f"{RUN}bench_unlabelled.py --steps 300 --semi selftrain "
                "meanteacher --tasks masked --skip-combined --curve 20 60 "
                "--curve-arm 'semi selftrain' --curve-seeds 0 "
                "--double-baseline",
                "`../shared/data/hippocampus_mri` (3 labelled "
                "cases, 34 unseen test cases, the 137-volume unlabelled pool)",
            ),
            ("ssl.json", None, "bench_ssl.py", f"{RUN}bench_ssl.py", MNI),
        ],
    ),
    (
        "speed",
        "Speed and overhead",
        [
            (
                "speed_cpu.json",
                speed,
                "bench_speed.py",
                f"{RUN}bench_speed.py",
                MNI,
            ),
            (
                "cpu_steps.json",
                cpu_steps,
                "bench_cpu_steps.py",
                f"{RUN}bench_cpu_steps.py",
                f"{HIPPO}; {MNI}",
            ),
        ],
    ),
    (
        "viewer",
        "Viewer responsiveness",
        [
            (
                "gui_stall.json",
                stall,
                "bench_gui_stall.py",
                "xvfb-run -a .venv/bin/python benchmarks/bench_gui_stall.py "
                "[--steps 5]",
                MNI,
            ),
        ],
    ),
    (
        "scale",
        "Larger than memory, DDP",
        [
            (
                "scale.json",
                scale,
                "bench_scale.py",
                f"{RUN}bench_scale.py",
                "synthetic uint8 OME-Zarr volumes of 512³ and 512×1024×1024",
            ),
        ],
    ),
]
NOTES = Path(__file__).resolve().parent / "notes"


def commit_of(path: Path) -> str:
    """The commit that last wrote a results file (``git log``)."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%h (%cs)", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return (
        f"`{out.split()[0]}` {' '.join(out.split()[1:])}"
        if out
        else ("not recorded (uncommitted file or no git checkout)")
    )


# Changes of the code that moved results: (commit, what changed).
CODE_CHANGES = [
    ("68a1365", "recipe: MONAI UNet with residual units, AdamW 3e-3"),
    (
        "330216c",
        "sampler: a sparse slice at a random place in its patch, "
        "margin around partly labelled volumes",
    ),
    ("53c2426", "CPU training steps in channels-last 3D"),
    ("6203b62", "cross-entropy at a tenth of the Dice term"),
]


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=RESULTS,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def code_table(folder: Path = RESULTS) -> str:
    """Which code changes each results file's commit already holds
    (``git merge-base --is-ancestor``); empty without git history."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        r = _git("log", "-1", "--format=%h", "--", path.name)
        commit = r.stdout.strip() if r and r.returncode == 0 else ""
        if not commit:
            continue
        cells = []
        for change, _ in CODE_CHANGES:
            a = _git("merge-base", "--is-ancestor", change, commit)
            if a is None or a.returncode not in (0, 1):
                return ""
            cells.append("yes" if a.returncode == 0 else "no")
        rows.append(f"| `{path.name}` | `{commit}` | " + " | ".join(cells))
    if not rows:
        return ""
    head = " | ".join(f"`{c}` {what}" for c, what in CODE_CHANGES)
    return "\n".join(
        [
            "| results file | commit | " + head + " |",
            "|---|---|" + "---|" * len(CODE_CHANGES),
            *(r + " |" for r in rows),
        ]
    )


def _render(fn, *args) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fn(*args)
    return buf.getvalue().strip()


def docs_pages(folder: Path = RESULTS) -> dict[str, str | bytes]:
    """Every benchmark page of the docs, keyed by its path in the docs
    (``benchmarks/<slug>.md``), plus the plots they show."""
    global IMG
    old, IMG = IMG, "results/"
    try:
        pages: dict[str, str | bytes] = {}
        index = [
            "# Benchmarks\n",
            "Every table on these pages is rendered by "
            "`benchmarks/report.py` from the result files in "
            "`benchmarks/results/` when the docs are built; each page "
            "names its data, the command that wrote the file, the commit "
            "that holds the file and the machine it ran on.\n",
            headline(folder, link=""),
            "",
        ]
        for slug, title, parts in PAGES:
            text = [f"# {title}\n"]
            for name, fn, script, command, data in parts:
                d = load(name, folder)
                if d is None:
                    continue
                text += [
                    f"**Results:** `benchmarks/results/{name}` · "
                    f"**script:** `benchmarks/{script}` · **commit of "
                    f"the results file:** {commit_of(folder / name)}\n",
                    f"- **data:** {data}",
                    f"- **machine:** {d.get('machine', 'not recorded')}",
                    f"- **command:** `{command}`\n",
                ]
                if name == "ssl.json":
                    text.append(_render(ssl, d, load("sparse.json", folder)))
                    text.append(f"\n![ssl]({IMG}ssl.png)\n")
                else:
                    text.append(_render(fn, d))
                text.append("")
            note = NOTES / f"{slug}.md"
            if note.exists():
                text += [
                    "## Reading the numbers\n",
                    note.read_text(encoding="utf-8"),
                ]
            pages[f"benchmarks/{slug}.md"] = "\n".join(text)
            index.append(f"- [{title}]({slug}.md)")
        known = {name for _, _, parts in PAGES for name, *_ in parts}
        for path in sorted(folder.glob("*.json")):
            if path.name in known:
                continue
            # A results file without a renderer here yet: shown as written.
            d = json.loads(path.read_text(encoding="utf-8"))
            script = f"bench_{path.stem}.py"
            machine = d.get("machine", "not recorded")
            pages[f"benchmarks/{path.stem}.md"] = "\n".join(
                [
                    f"# {path.stem}\n",
                    f"**Results:** `benchmarks/results/{path.name}` · "
                    f"**script:** `benchmarks/{script}` · **commit of the "
                    f"results file:** {commit_of(path)}\n",
                    f"- **machine:** {machine}",
                    f"- **command:** `{RUN}{script}`\n",
                    "`benchmarks/report.py` has no table for this file yet; "
                    "its content as written:\n",
                    "```json",
                    json.dumps(d, indent=1)[:30000],
                    "```",
                    "",
                ]
                + (
                    [f"![{path.stem}]({IMG}{path.stem}.png)\n"]
                    if (folder / f"{path.stem}.png").exists()
                    else []
                )
            )
            index.append(f"- [{path.stem}]({path.stem}.md)")
        note = NOTES / "index.md"
        if note.exists():
            index += ["", note.read_text(encoding="utf-8")]
        table = code_table(folder)
        if table:
            index += [
                "",
                "## Which code each result ran on\n",
                "A results file is written by its benchmark and committed "
                "with the code it ran on; *yes* means that commit already "
                "holds the change (`git merge-base --is-ancestor`). Results "
                "are rerun when a change can move them; the rows with *no* "
                "were not rerun after that change.\n",
                table,
            ]
        pages["benchmarks/index.md"] = "\n".join(index) + "\n"
        for png in sorted(folder.glob("*.png")):
            pages[f"benchmarks/results/{png.name}"] = png.read_bytes()
        return pages
    finally:
        IMG = old


def write_docs(out: Path) -> None:
    for rel, content in docs_pages().items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    print(f"benchmark pages written under {out}")


def readme(path: Path = RESULTS.parents[1] / "README.md") -> None:
    """Replace the README's headline table (between its benchmark
    markers) with the one rendered from ``results/``; its links point
    into the docs site."""
    site = "https://napari-weakseg.github.io/napari-weakseg/"
    table = headline(link=f"{site}benchmarks/").replace(".md)", "/)")
    text = path.read_text(encoding="utf-8")
    start = text.index("<!-- benchmarks:start")
    start = text.index("\n", start) + 1
    end = text.index("<!-- benchmarks:end -->")
    path.write_text(text[:start] + table + "\n" + text[end:], encoding="utf-8")
    print(f"headline table written into {path}")


def main() -> None:
    import sys

    if "--plots" in sys.argv:
        replot()
        return
    if "--readme" in sys.argv:
        readme()
        return
    if "--docs" in sys.argv:
        write_docs(Path(sys.argv[sys.argv.index("--docs") + 1]))
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
        ("unlabelled.json", unlabelled),
    ]:
        d = load(name)
        if d is not None:
            fn(d)
    d = load("ssl.json")
    if d is not None and d.get("runs"):
        ssl(d, base)


if __name__ == "__main__":
    main()
