"""Longest stall of napari's Qt event loop while training and predicting.

A 10 ms QTimer records the gap between its ticks while the Train and
Apply docks work on the MNI sample in their worker threads.  Target: no gap
over 100 ms.  Each phase runs from the button press (what the slot does
on the GUI thread: Apply adds its empty prediction layer) to the result
shown (Apply fills that layer in place; the rows of its parts say where
a stall is); a gap that spans a phase change is split there.  Run
under Xvfb where there is no display (``--steps 5`` is the short run):

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

#: phase -> what happens in it; "apply" is its three parts together
PHASES = {
    "idle": "docks open, nothing running",
    "training": "Start pressed, training, model saved",
    "apply": "Apply pressed to the result shown (the next three rows)",
    "apply: press": "empty layer added, model loaded (to the 1st window)",
    "apply: windows": "windows predicted, progress shown",
    "apply: result": "last window to the layer filled (in place)",
    "after": "500 ms after: the prediction drawn",
}
APPLY = ("apply: press", "apply: windows", "apply: result")


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

    def switch(self, phase: str) -> None:
        """Close the running gap in the old phase, then start ``phase``."""
        self.tick()
        self.phase = phase


def wait(worker=None, ms: int = 0) -> None:
    loop = QEventLoop()
    if worker is not None:
        worker.finished.connect(loop.quit)
    else:
        QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--steps", type=int, default=40, help="training steps (5: short)"
    )
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    viewer, widgets = build_viewer(show=True)
    train, apply = widgets[DOCKS[1]], widgets[DOCKS[2]]
    train.steps.value = args.steps
    train.out.value = str(args.out / "stall_model.safetensors")
    rec = GapRecorder()
    wait(ms=1000)
    rec.switch("training")
    wait(train.start_training())
    rec.switch(APPLY[0])
    worker = apply.start_apply()  # what the Apply button calls

    def progress(event) -> None:
        if rec.phase == APPLY[0]:
            rec.switch(APPLY[1])
        done, total = getattr(event, "done", 0), getattr(event, "total", 1)
        if rec.phase == APPLY[1] and done >= total:
            rec.switch(APPLY[2])

    worker.yielded.connect(progress)
    wait(worker)
    rec.switch("after")
    wait(ms=500)
    rec.switch("end")
    rec.timer.stop()
    viewer.close()
    (args.out / "stall_model.safetensors").unlink(missing_ok=True)
    (args.out / "stall_model.last.safetensors").unlink(missing_ok=True)
    print(f"\nQt event-loop gaps (10 ms timer), {machine()}")
    print("| phase | what | ticks | median ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    rows = {}
    rec.gaps["apply"] = [g for p in APPLY for g in rec.gaps.get(p, [])]
    for phase in PHASES:
        g = np.asarray(rec.gaps.get(phase) or [0.0])
        rows[phase] = {
            "ticks": len(g),
            "median": float(np.median(g)),
            "p99": float(np.percentile(g, 99)),
            "max": float(g.max()),
        }
        r = rows[phase]
        print(
            f"| {phase} | {PHASES[phase]} | {r['ticks']} | "
            f"{r['median']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |"
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
