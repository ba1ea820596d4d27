"""Longest stall of napari's Qt event loop while training and predicting.

A 10 ms QTimer records the gap between its ticks while the Train and
Apply docks work on the MNI sample in their worker threads.  Target: no gap
over 100 ms.  Run under Xvfb where there is no display:

    xvfb-run -a .venv/bin/python benchmarks/bench_gui_stall.py --steps 40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import QEventLoop, QTimer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, save_plot  # noqa: E402

from napari_weakseg._qt.demo import DOCKS, build_viewer  # noqa: E402


class GapRecorder:
    def __init__(self) -> None:
        self.gaps: dict[str, list[float]] = {}
        self.phase = "idle"
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        now = time.perf_counter()
        self.gaps.setdefault(self.phase, []).append((now - self.last) * 1000)
        self.last = now


def wait(worker=None, ms: int = 0) -> None:
    loop = QEventLoop()
    if worker is not None:
        worker.finished.connect(loop.quit)
    else:
        QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    viewer, widgets = build_viewer(show=True)
    train, apply = widgets[DOCKS[1]], widgets[DOCKS[2]]
    train.steps.value = args.steps
    train.out.value = str(args.out / "stall_model.safetensors")
    rec = GapRecorder()
    wait(ms=1000)
    rec.phase = "training"
    wait(train.start_training())
    rec.phase = "predicting"
    wait(apply.start_apply())
    rec.phase = "after"  # the new layers are drawn, controls built
    wait(ms=500)
    rec.timer.stop()
    viewer.close()
    (args.out / "stall_model.safetensors").unlink(missing_ok=True)
    (args.out / "stall_model.last.safetensors").unlink(missing_ok=True)
    print(f"\nQt event-loop gaps (10 ms timer), {machine()}")
    print("| phase | ticks | median ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    rows = {}
    for phase in ("idle", "training", "predicting", "after"):
        g = np.asarray(rec.gaps.get(phase, [0.0]))
        rows[phase] = {
            "ticks": len(g),
            "median": float(np.median(g)),
            "p99": float(np.percentile(g, 99)),
            "max": float(g.max()),
        }
        r = rows[phase]
        print(
            f"| {phase} | {r['ticks']} | {r['median']:.1f} | "
            f"{r['p99']:.1f} | {r['max']:.1f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gui_stall.json").write_text(
        json.dumps({"machine": machine(), "rows": rows}, indent=1)
    )
    save_plot(
        args.out / "gui_stall.png",
        list(rows),
        {
            "p99": ([r["p99"] for r in rows.values()], [0] * len(rows)),
            "max": ([r["max"] for r in rows.values()], [0] * len(rows)),
        },
        "gap between 10 ms ticks (ms)",
        "Qt event loop while working",
    )


if __name__ == "__main__":
    main()
