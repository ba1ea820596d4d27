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
    print(
        f"**Boxes to masks** (`bench_boxes.py`; {d['rounds']} rounds × "
        f"{d['steps']} steps, dense reference trained "
        f"{d['rounds'] * d['steps']} steps; mean Dice over classes; "
        f"{d['machine']}):\n"
    )
    print("| method | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in res[names[0]]:
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
    print(
        f"**CAM from image-level labels** (`bench_cam.py`; {d['machine']}):\n"
    )
    print("| method | pointing game | energy in WM | IoU (Otsu) | s/volume |")
    print("|---|---|---|---|---|")
    for k, (p, e, i, t) in d["rows"].items():
        print(f"| {k} | {p:.2f} | {e:.2f} | {i:.2f} | {t:.2f} |")
    res = d["results"]
    dense = res["U-Net from dense labels"]
    print("\n| result | value | × dense U-Net |\n|---|---|---|")
    for k, v in res.items():
        frac = f"{v / dense:.2f}" if ("Dice" in k or "U-Net" in k) else ""
        print(f"| {k} | {v:.3f} | {frac} |")
    print("\n![cam](benchmarks/results/cam.png)\n")


def ssl(d: dict, base: dict | None) -> None:
    print(
        f"**Self-supervised pretraining** (`bench_ssl.py`; fine-tuning "
        f"{d['steps']} steps as in `bench_sparse.py`; {d['machine']}). "
        f"Pretext after pretraining: rotation accuracy "
        f"{d['pretrain']['rot']:.2f} (chance 0.10), contrastive top-1 "
        f"{d['pretrain']['top1']:.2f} (chance {1 / 7:.2f}).\n"
    )
    rows = {r["setting"]: r for r in (base or {}).get("rows", [])}
    print(
        "| labels | from scratch | pretrained | gain (Dice points) | seeds |"
    )
    print("|---|---|---|---|---|")
    for f in sorted({r["fraction"] for r in d["runs"]}):
        runs = [
            np.mean([r["gm"], r["wm"]])
            for r in d["runs"]
            if r["fraction"] == f
        ]
        b = rows.get(f"{100 * f:g} %")
        scratch = b["mean"] if b else float("nan")
        print(
            f"| {100 * f:g} % | {scratch:.3f} | {np.mean(runs):.3f} ± "
            f"{np.std(runs):.3f} | {100 * (np.mean(runs) - scratch):+.1f} | "
            f"{len(runs)} |"
        )
    print()


def replot(folder: Path = RESULTS) -> None:
    """Redraw every plot from the result files (no benchmark rerun)."""
    import sys

    sys.path.insert(0, str(RESULTS.parent))
    from _common import save_plot

    d = load("boxes.json", folder)
    if d:
        res, keys = d["results"], list(next(iter(d["results"].values())))
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
    d = load("sparse.json", folder)
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


def main() -> None:
    import sys

    if "--plots" in sys.argv:
        replot()
        return
    base = load("sparse.json")
    for name, fn in [
        ("sparse.json", sparse),
        ("speed_cpu.json", speed),
        ("speed_cuda.json", speed),
        ("gui_stall.json", stall),
        ("boxes.json", boxes),
        ("cam.json", cam),
    ]:
        d = load(name)
        if d is not None:
            fn(d)
    d = load("ssl.json")
    if d is not None and d.get("runs"):
        ssl(d, base)


if __name__ == "__main__":
    main()
