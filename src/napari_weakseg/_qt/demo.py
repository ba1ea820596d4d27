"""``make demo``: napari with the MNI sample, its sparse slices and the docks.

With a display it opens the viewer for you to press *Start* (Train) and
*Apply*.  With ``--headless`` (no display; ``make demo`` runs it under Xvfb)
it drives the same docks itself: train -> apply, printing the CLI's
progress lines (step, loss, ETA at least every 5 s), then writes a
screenshot and prints the Dice of the result on the voxels nobody
annotated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import napari
import numpy as np
from qtpy.QtCore import QEventLoop

DOCKS = (
    "Sparse slice annotation",
    "Train (sparse slices)",
    "Apply and correct",
)


def build_viewer(show: bool = True) -> tuple[napari.Viewer, dict[str, Any]]:
    viewer = napari.Viewer(title="napari-weakseg demo", show=show)
    viewer.open_sample("napari-weakseg", "mni152")
    widgets, docks = {}, {}
    for k, name in enumerate(DOCKS):
        docks[name], widgets[name] = viewer.window.add_plugin_dock_widget(
            "napari-weakseg", name, tabify=k == 2
        )
    viewer.window.resize(1500, 950)
    # The pickers' own defaults, as a first-time user meets them.
    for w in widgets.values():
        w.reset_choices()
    viewer.dims.current_step = (47, 58, 49)
    return viewer, widgets


def _wait(worker: Any) -> None:
    loop = QEventLoop()
    worker.finished.connect(loop.quit)
    loop.exec()


def _finished(meter: Any, result: Any) -> None:
    """The CLI's last line of a training run."""
    meter.close()
    how = "stopped" if result.stopped else "finished"
    meter.say(
        f"{how} after {result.steps} steps; {result.summary()}; "
        f"model: {result.best_path}"
    )


def headless(steps: int, out: Path) -> int:
    from ..cli import Meter, _printer
    from ..core.base.defaults import IGNORE
    from ..core.base.metrics import dice_per_class
    from .layer_data import sparse_from_layer

    viewer, widgets = build_viewer(show=True)
    train, apply = widgets[DOCKS[1]], widgets[DOCKS[2]]
    train.steps.value = steps
    train.out.value = str(out.parent / "demo_model.safetensors")
    print(
        f"training {steps} steps on the MNI152 sample (CPU is fine)...",
        flush=True,
    )
    meter = Meter()  # the CLI's lines: step, loss, ETA every 5 s
    show = _printer(meter)
    worker = train.start_training()
    if worker is None:
        return 1
    worker.yielded.connect(show)
    worker.returned.connect(lambda result: _finished(meter, result))
    _wait(worker)
    worker = apply.start_apply()
    if worker is None:
        return 1
    worker.yielded.connect(show)
    _wait(worker)
    meter.close()
    ann = viewer.layers["annotations"]
    pred = viewer.layers["MNI152 T1 prediction"]
    truth = np.asarray(viewer.layers["tissue (reference)"].data)
    unannotated = sparse_from_layer(ann) == IGNORE
    dice = dice_per_class(np.asarray(pred.data), truth, 3, unannotated)
    ann.visible = False
    pred.opacity = 0.45
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    print(
        f"Dice on unannotated voxels: grey matter {dice[0]:.3f}, "
        f"white matter {dice[1]:.3f}"
    )
    print(f"screenshot written to {out.resolve()}")
    viewer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="napari-weakseg demo")
    parser.add_argument("--headless", action="store_true")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--out", type=Path, default=Path("demo_output/demo.png")
    )
    args = parser.parse_args(argv)
    if args.headless:
        return headless(args.steps, args.out)
    build_viewer(show=True)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
