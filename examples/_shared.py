"""What the examples share: ``--headless``, the viewer, docks by name.

Each example runs as ``python examples/NAME.py`` (a viewer window that
stays open) or ``python examples/NAME.py --headless`` (no window; exits
when done).  Files go to a temporary folder (``--out`` to choose one),
which is also the plugin's home for autosaves.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def start(description: str) -> tuple[Any, argparse.Namespace]:
    """Parse the arguments, open a viewer (hidden with --headless)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--headless", action="store_true", help="no window; exit when done"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the files (default: a new temporary folder)",
    )
    args = parser.parse_args()
    args.out = args.out or Path(tempfile.mkdtemp(prefix="weakseg-example-"))
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["WEAKSEG_HOME"] = str(args.out / "home")
    import napari

    return napari.Viewer(show=not args.headless), args


def dock(viewer: Any, name: str) -> Any:
    """Open a napari-weakseg dock by its widget name (see
    docs/scripting.md) and return it."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-weakseg", name)
    return widget


def annotate(
    viewer: Any,
    image: str,
    truth: np.ndarray,
    slices: tuple[tuple[str, int], ...],
) -> Any:
    """A new annotation layer of ``image`` with ``slices`` painted from
    ``truth`` and marked done, through the Annotate dock (as a user
    paints, then presses Mark slice done)."""
    annotate = dock(viewer, "Sparse slice annotation")
    layer = annotate.run(image=image).layers[0]
    for axis, index in slices:
        annotate.update(axis=axis)
        a = "zyx".index(axis)
        where: list[Any] = [slice(None)] * 3
        where[a] = index
        plane = tuple(where)
        layer.data[plane] = truth[plane]  # the classes, as a brush would
        step = list(viewer.dims.current_step)
        step[a] = index
        viewer.dims.current_step = tuple(step)
        annotate.mark_current_slice_done()  # the rest: background brush
    return layer


def finish(viewer: Any, args: argparse.Namespace) -> None:
    """Keep the window open, or (headless) close the viewer."""
    print(f"files in {args.out}")
    if args.headless:
        viewer.close()
    else:
        import napari

        napari.run()
