"""Write docs/scripting.md from the docks themselves (so it cannot drift).

    python tools/scripting_doc.py           # rewrite docs/scripting.md
    python tools/scripting_doc.py --check   # exit 1 if it is out of date

Each dock is built in a hidden viewer; its widget name comes from the
plugin manifest (napari.yaml), and each field's name, type, default and
range from its control.  ``tests/_qt/test_scripting_doc.py`` checks that
the committed page equals :func:`render`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "scripting.md"
sys.path.insert(0, str(ROOT / "src"))

#: (dock class, field) -> its API keyword and CLI flag ("" where none);
#: a field missing here is a test failure (tests/_qt/test_scripting_doc)
EQUIVALENTS: dict[str, dict[str, tuple[str, str]]] = {
    "AnnotationWidget": {
        "image": ("the image (`api.train(images, ...)`)", "`--image`"),
        "annotations": ("`to_sparse_labels` of it: `labels`", "`--labels`"),
        "axis": ("`api.suggest_slice(axis=)`", "`weakseg suggest --axis`"),
    },
    "TrainWidget": {
        "image": ("`api.train(images, ...)`", "`--image`"),
        "labels": (
            "`api.train(..., labels, ...)` (its sparse labels)",
            "`--labels`",
        ),
        "class_names": ("`class_names=`", "`--class-names`"),
        "every_image": (
            "a list of `images` and `labels`",
            "`--image`/`--labels` repeated",
        ),
        "steps": ("`steps=`", "`--steps`"),
        "patience": ("`patience=` (0: None)", "`--patience`"),
        "base_filters": ("`base_filters=`", "`--base-filters`"),
        "device": ("`device=`", "`--device`"),
        "augment": ("`augment=`", "`--augment`"),
        "init": ("`init=`", "`--init`"),
        "unlabelled": ("`unlabelled=`", "`--unlabelled`"),
        "warm": ("`init=` the last model", "`--init`"),
        "preview": ("", ""),
        "out": ("`out`", "`--out`"),
    },
    "ApplyWidget": {
        "image": ("`api.predict(model, image)`", "`weakseg predict --image`"),
        "model": ("`model`", "`--model`"),
        "tta": ("`tta=`", "`--tta`"),
        "show_probabilities": ("`probabilities=`", "`--probabilities`"),
        "prediction": (
            "`api.evaluate(pred, ...)`",
            "`weakseg evaluate --pred`",
        ),
        "annotations": ("", ""),
        "reference": ("`api.evaluate(..., truth)`", "`--truth`"),
        "ignore_unlabelled": ("`ignore_label=255`", "`--ignore-label 255`"),
        "table_file": ("`api.evaluate(out=)`", "`--csv`"),
    },
    "BoxesWidget": {
        "image": (
            "`api.boxes_to_masks(image, ...)`",
            "`weakseg box2mask --image`",
        ),
        "boxes": ("`boxes` (a list of `Box` or a file)", "`--boxes`"),
        "box_class": ("the `class` of a box", "the boxes file's `class`"),
        "depth": (
            "a box's extent along the slice axis",
            "the boxes file's `z0`/`z1`",
        ),
        "file": ("`boxes` (a CSV or JSON file)", "`--boxes`"),
        "rounds": ("`rounds=`", "`--rounds`"),
        "steps_per_round": ("`steps_per_round=`", "`--steps-per-round`"),
        "initial": ("`initial=`", "`--initial`"),
        "crf": ("`crf=`", "`--no-crf`"),
        "outside_boxes": ("`outside_boxes=`", "`--no-outside-rule`"),
        "wrong_class": ("`wrong_class=`", "`--no-class-rule`"),
        "off_core": ("`off_core=`", "`--no-core-rule`"),
        "min_fill": ("`min_fill=`", "`--min-fill`"),
    },
    "CamWidget": {
        "image": (
            "`api.class_activation_map(model, image)`",
            "`weakseg cam --image`",
        ),
        "model": ("`model`", "`--model`"),
        "layer": ("`layer=`", "`--layer`"),
        "class_index": ("`class_index=`", "`--class`"),
        "method": ("`method=`", "`--method`"),
        "opacity": ("", ""),
    },
    "PretrainWidget": {
        "images": (
            "`api.pretrain(images, ...)`",
            "`weakseg pretrain --image`",
        ),
        "folder": ("`images` (a folder)", "`--image FOLDER`"),
        "rotation": ("`tasks=` holds `rotation`", "`--tasks`"),
        "contrastive": ("`tasks=` holds `contrastive`", "`--tasks`"),
        "inpainting": ("`tasks=` holds `inpainting`", "`--tasks`"),
        "masked": ("`tasks=` holds `masked`", "`--tasks`"),
        "steps": ("`steps=`", "`--steps`"),
        "patch": ("`patch=`", "`--patch`"),
        "base_filters": ("`base_filters=`", "`--base-filters`"),
        "out": ("`out`", "`--out`"),
    },
}

INTRO = """\
# Scripting

Every dock of napari-weakseg can be driven from a Python script or the
napari console: its fields have names, it runs its job and waits for it,
and it can write its current settings as a script.  This page is
generated from the docks themselves by `tools/scripting_doc.py` (a test
checks it is up to date).

## Open a dock

```python
import napari

viewer = napari.Viewer()          # napari.Viewer(show=False): no window
viewer.open_sample("napari-weakseg", "phantom")
_, train = viewer.window.add_plugin_dock_widget(
    "napari-weakseg", "Train (sparse slices)"
)
```

The second argument is the dock's *widget name* (below, under each dock).
`"WeakSeg"` opens all docks as tabs; its docks are in `.docks`
(`docks["Train"]`).

## Fields

```python
train["steps"].value = 300        # one field
train.update(steps=300, device="cpu", image="phantom")
settings = train.asdict()         # every field by name
train.update(settings)            # ... and back
```

A layer field takes a layer or a layer's name.  `update` checks every
value first: a name that is no field (the sentence lists the fields), a
layer name not in the viewer, or a value outside the field's range is one
`WeaksegError` sentence, and no field changes.

## Run a job

```python
result = train.run(steps=200, out="model.safetensors")
result.path      # the model file it wrote
result.layers    # the layers it added or filled
result.value     # the job's own result (training: steps, best Dice...)

worker = train.start(steps=200)  # returns at once; train.wait() waits
```

`run` applies the settings, starts the job, processes Qt events until it
ends and returns what it produced; a failure raises `WeaksegError` with
the dock's sentence, and `run` while the dock is running is refused.
Docks with more than one job take its name first:
`apply.run("compare", reference="truth")`.

## Copy as script

The *Copy as script* button of a dock (and `dock.as_script("python")`,
`dock.as_script("cli")`, `dock.as_script("python", "train.py")`) writes
the equivalent of its settings as `api` calls or a `weakseg` command.
Layers opened from a file are named by that file; a layer with no file
is saved beside the output and named in the script.  Run on the same
machine, the script and the command give what the dock gave: the same
weights (Train, Pretrain, and the Boxes dock's rounds model), the same
labels (Apply, Boxes) and the same map (CAM's *Compute map*; *Segment
from map* has no script yet).

## How a model was made

Every model or encoder file that training, classifier training,
pretraining, boxes to masks (`--model-out`) or CAM to segmentation
(`--model-out`) writes keeps its recipe: settings, input files and
their SHA-256, package version and seed.  `weakseg info MODEL` (or
`api.model_info(MODEL)`) prints it with the `weakseg` line (`weakseg
train ...`, `weakseg box2mask ...`) that, run again into another file,
makes the same weights on the same machine (`box2mask` and `cam2seg`
write their labels beside the model).  A model of
`api.segment_from_map` names no command (none runs it).  A model
trained in the Train dock on layers records their
SHA-256 but names no command (its inputs were in memory); the dock's
*Copy as script* saves them as files and gives the command.

## Examples

`examples/` holds scripts that run as `python examples/NAME.py` (a
viewer) or `python examples/NAME.py --headless` (no window):

{examples}

## The docks
"""


def _docks() -> list[tuple[str, str, str]]:
    """(widget name, module, class) of each dock, from the manifest."""
    import yaml

    manifest = yaml.safe_load(
        (ROOT / "src" / "napari_weakseg" / "napari.yaml").read_text(
            encoding="utf-8"
        )
    )
    commands = {
        c["id"]: c["python_name"]
        for c in manifest["contributions"]["commands"]
    }
    out = []
    for w in manifest["contributions"]["widgets"]:
        module, cls = commands[w["command"]].split(":")
        out.append((w["display_name"], module, cls))
    return out


def _kind(widget: Any) -> str:
    from magicgui.widgets import (
        CheckBox,
        FileEdit,
        FloatSlider,
        FloatSpinBox,
        LineEdit,
        Select,
        SpinBox,
    )
    from magicgui.widgets.bases import CategoricalWidget

    from napari_weakseg._qt.fields import LayerPicker, layer_kind

    if isinstance(widget, LayerPicker):
        optional = " or None" if widget._nullable else ""
        return f"{layer_kind(widget)} layer or its name{optional}"
    if isinstance(widget, CheckBox):
        return "bool"
    if isinstance(widget, SpinBox):
        return "int"
    if isinstance(widget, FloatSpinBox | FloatSlider):
        return "float"
    if isinstance(widget, FileEdit):
        mode = {"r": "file", "w": "file to write", "d": "folder"}
        return "path (" + mode.get(str(widget.mode.value), "file") + ")"
    if isinstance(widget, Select):
        return "list of image layer names"
    if isinstance(widget, CategoricalWidget):
        return "str"
    if isinstance(widget, LineEdit):
        return "str"
    return type(widget).__name__


def _range(widget: Any) -> str:
    from magicgui.widgets import ComboBox
    from magicgui.widgets.bases import RangedWidget

    from napari_weakseg._qt.fields import LayerPicker

    if isinstance(widget, RangedWidget):
        return f"{_number(widget.min)} – {_number(widget.max)}"
    if isinstance(widget, ComboBox) and not isinstance(widget, LayerPicker):
        return ", ".join(f"`{c}`" for c in widget.choices) or "from the model"
    return ""


def _number(value: float) -> str:
    """Whole numbers in full (``1000000000``), others as ``%g``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _default(widget: Any) -> str:
    value = widget.value
    if value is None or value == [] or value == "":
        return ""
    if isinstance(value, os.PathLike):
        text = str(value)
        return "" if text == "." else f"`{text}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _examples() -> str:
    lines = []
    for path in sorted((ROOT / "examples").glob("[!_]*.py")):
        doc = (
            path.read_text(encoding="utf-8")
            .split('"""')[1]
            .strip()
            .split("\n\n")[0]
        )
        lines.append(f"- `{path.name}`: {' '.join(doc.split())}")
    return "\n".join(lines)


def render(viewer: Any = None) -> str:
    """The page, from docks built in ``viewer`` (a hidden one if None)."""
    import napari

    from napari_weakseg._qt import script_calls

    own = viewer is None
    if own:
        viewer = napari.Viewer(show=False)
    home = os.environ.get("WEAKSEG_HOME")
    os.environ["WEAKSEG_HOME"] = "~/.napari-weakseg"  # the default, as text
    try:
        parts = [INTRO.replace("{examples}", _examples())]
        for title, module, cls in _docks():
            dock = getattr(importlib.import_module(module), cls)(viewer)
            parts.append(_dock_section(title, cls, dock, script_calls))
    finally:
        if home is None:
            os.environ.pop("WEAKSEG_HOME", None)
        else:
            os.environ["WEAKSEG_HOME"] = home
        if own:
            viewer.close()
    return "\n".join(parts).rstrip() + "\n"


def _dock_section(title: str, cls: str, dock: Any, script_calls: Any) -> str:
    head = [f"### {title}\n"]
    code = f'add_plugin_dock_widget("napari-weakseg", "{title}")'
    head.append(f"Widget name: `{title}` (`{code}`).\n")
    if not hasattr(dock, "fields"):  # the tabs
        head.append(
            "All docks below as tabs, in workflow order; `widget.docks` "
            "maps each tab's title (`Annotate`, `Train`, `Apply`, `Boxes`, "
            "`CAM`, `Pretrain`) to its dock.\n"
        )
        return "\n".join(head)
    jobs = dock.jobs()
    if jobs:
        names = ", ".join(f"`{j}`" for j in jobs)
        head.append(
            f"Jobs for `run`/`start`: {names} (the first by default).\n"
        )
    if cls in script_calls.CALLS:
        head.append("Copy as script: yes.\n")
    rows = [
        "| field | type | default | range | API | CLI |",
        "|---|---|---|---|---|---|",
    ]
    table = EQUIVALENTS.get(cls, {})
    for w in dock.fields():
        api, flag = table.get(w.name, ("?", "?"))
        cells = [
            f"`{w.name}`",
            _kind(w),
            _default(w),
            _range(w),
            api or "—",
            flag or "—",
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join([*head, *rows, ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is out of date: run tools/scripting_doc.py")
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
