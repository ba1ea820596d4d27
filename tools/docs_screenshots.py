"""The five screenshots of docs/getting-started.md, taken under Xvfb.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \
        tools/docs_screenshots.py [--steps 200] [--out docs/images]

Drives the docks of ``make demo`` (``napari_weakseg._qt.demo``) on the
MNI152 sample: annotate -> train -> apply -> correct -> retrain and
compare, and writes ``viewer.screenshot(canvas_only=False)`` after each.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication, QDockWidget

from napari_weakseg._qt.demo import DOCKS, build_viewer


def wait(worker=None, ms: int = 0) -> None:
    loop = QEventLoop()
    if worker is not None:
        worker.finished.connect(loop.quit)
    else:
        QTimer.singleShot(ms, loop.quit)
    loop.exec()


def raise_dock(widget) -> None:
    w = widget.native
    while w is not None and not isinstance(w, QDockWidget):
        w = w.parentWidget()
    if w is not None:
        w.show()
        w.raise_()


def shot(viewer, path: Path) -> None:
    wait(ms=400)
    QApplication.processEvents()
    viewer.screenshot(str(path), canvas_only=False)
    print(f"wrote {path}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("docs/images"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="weakseg-"))

    viewer, widgets = build_viewer(show=True)
    viewer.window.resize(1500, 920)
    annotate, train, apply = (widgets[d] for d in DOCKS)
    ref = viewer.layers["tissue (reference)"]
    ref.visible = False
    ann = viewer.layers["annotations"]
    viewer.layers.selection.active = ann

    # 1 the sample and its annotated slices: an annotated axial slice
    step = list(viewer.dims.current_step)
    step[0] = 32  # the sample's first done axial slice
    viewer.dims.current_step = tuple(step)
    scene = viewer.scene if hasattr(viewer, "scene") else viewer  # 0.9
    scene.camera.zoom *= 1.5
    raise_dock(train)
    shot(viewer, args.out / "1-annotate.png")
    step[0] = 47  # a slice nobody annotated, to correct later
    viewer.dims.current_step = tuple(step)

    # 2 train
    train.steps.value = args.steps
    train.out.value = str(tmp / "mni152.safetensors")
    wait(train.start_training())
    raise_dock(train)
    shot(viewer, args.out / "2-train.png")

    # 3 apply
    raise_dock(apply)
    wait(apply.start_apply())
    pred = viewer.layers["MNI152 T1 prediction"]
    ann.visible = False
    pred.opacity = 0.5
    viewer.layers.selection.active = pred
    shot(viewer, args.out / "3-apply.png")

    # 4 correct: the shown slice of the prediction is edited (here: set
    # to the reference, as a user's brush would) and accepted
    z = int(viewer.dims.current_step[0])
    data = np.asarray(pred.data).copy()
    data[z] = np.asarray(ref.data)[z]
    pred.data = data
    apply.prediction.value = pred
    apply.annotations.value = ann
    apply.accept_current_slice()
    ann.visible = True
    pred.visible = False
    viewer.layers.selection.active = ann
    shot(viewer, args.out / "4-correct.png")

    # 5 retrain from the current model, apply, compare with the reference
    train.warm.value = True
    train.steps.value = max(args.steps // 4, 20)
    retrained = tmp / "mni152-corrected.safetensors"
    train.out.value = str(retrained)
    wait(train.start_training())
    apply.model.value = str(retrained)
    wait(apply.start_apply())
    pred = viewer.layers["MNI152 T1 prediction"]
    pred.visible = True
    ann.visible = False
    apply.reference.value = ref
    worker = apply.start_compare()
    if worker is not None:
        wait(worker)
    raise_dock(apply)
    shot(viewer, args.out / "5-retrain-compare.png")
    print(apply.scores.value)
    viewer.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
