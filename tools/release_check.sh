#!/usr/bin/env bash
# Release check: build sdist and wheel, `twine check` them, install the
# wheel into a new, separate venv (with napari, Qt and torch) and check what
# a user gets from `pip install napari-weakseg[all]`: the npe2 manifest
# validates, `weakseg --help` exits 0, and napari lists the plugin's
# commands, widgets and sample data, opens a sample and docks a widget.
#
#   tools/release_check.sh            (make release-check runs this)
#
# Dependencies come from a local wheelhouse (.stamps/wheelhouse), filled
# once from the package index with the versions of the development venv
# (`pip freeze` as constraints) and reused while those stay the same, so a
# rerun downloads nothing.  The test venv itself is new on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
BASE_PY=${BASE_PY:-python3}
WORK=$ROOT/.stamps/release-check
WHEELHOUSE=$ROOT/.stamps/wheelhouse
DIST=$ROOT/dist
rm -rf "$WORK"
rm -f "$DIST"/napari_weakseg-*
mkdir -p "$WORK" "$WHEELHOUSE"

echo "== build sdist and wheel (the wheel from the sdist)"
"$PY" -m build --outdir "$DIST" . >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; exit 1; }
VERSION=$("$PY" -c "import re,pathlib;print(re.search(r'__version__ = \"(.+?)\"', pathlib.Path('src/napari_weakseg/__init__.py').read_text())[1])")
WHEEL=$DIST/napari_weakseg-$VERSION-py3-none-any.whl
SDIST=$DIST/napari_weakseg-$VERSION.tar.gz
ls "$WHEEL" "$SDIST"

echo "== twine check"
"$PY" -m twine check --strict "$WHEEL" "$SDIST"

echo "== wheel contents"
"$PY" - "$WHEEL" "$SDIST" <<'PY'
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1:]
names = zipfile.ZipFile(wheel).namelist()
need = ["napari_weakseg/napari.yaml", "napari_weakseg/cli/__init__.py",
        "napari_weakseg/sample_data/mni152_t1_2mm.nii.gz"]
missing = [n for n in need if n not in names]
assert not missing, f"wheel lacks {missing}"
assert any(n.endswith("licenses/LICENSE") for n in names), "no LICENSE"
top = {n.split("/")[1] for n in tarfile.open(sdist).getnames() if "/" in n}
for n in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "src"):
    assert n in top, f"sdist lacks {n}"
print(f"wheel: {len(names)} files; sdist: {sorted(top)}")
PY

echo "== wheelhouse (dependencies pinned to the development venv)"
"$PY" -m pip freeze --exclude-editable \
    | grep -v -i -E '^(napari-weakseg|napari_weakseg)([= @]|$)' \
    | grep -v ' @ ' >"$WORK/constraints.txt"
if ! cmp -s "$WORK/constraints.txt" "$WHEELHOUSE/constraints.txt"; then
    "$PY" -m pip wheel -q -w "$WHEELHOUSE" --find-links "$WHEELHOUSE" \
        -c "$WORK/constraints.txt" "$WHEEL[all]"
    cp "$WORK/constraints.txt" "$WHEELHOUSE/constraints.txt"
fi

echo "== new venv, pip install the wheel [all]"
"$BASE_PY" -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
"$VPY" -m pip install -q --no-compile --no-index --find-links "$WHEELHOUSE" \
    "$WHEEL[all]"
"$VPY" -m pip check

# Run from outside the checkout so nothing is imported from src/.
cd "$WORK"
echo "== npe2 validate napari-weakseg"
"$WORK/venv/bin/npe2" validate napari-weakseg
echo "== weakseg --help"
"$WORK/venv/bin/weakseg" --help >"$WORK/help.txt"
head -3 "$WORK/help.txt"
echo "== napari: plugin menu, sample data, dock widget"
xvfb-run -a -s "-screen 0 1280x1024x24" "$VPY" - "$ROOT" <<'PY'
import pathlib
import sys

import napari
import napari_weakseg
from npe2 import PluginManager

root = pathlib.Path(sys.argv[1])
where = pathlib.Path(napari_weakseg.__file__).resolve()
assert root / "src" not in where.parents, f"imported from src/: {where}"
assert "site-packages" in where.parts, where
pm = PluginManager.instance()
pm.discover()
mf = pm.get_manifest("napari-weakseg")
commands = {c.id for c in mf.contributions.commands}
samples = {s.key for s in mf.contributions.sample_data}
widgets = {w.display_name for w in mf.contributions.widgets}
assert {"mni152", "phantom"} <= samples, samples
assert "WeakSeg" in widgets, widgets
print(f"manifest: {len(commands)} commands, samples {sorted(samples)}, "
      f"{len(widgets)} widgets")

viewer = napari.Viewer(show=False)
menu = viewer.window.plugins_menu
titles = [a.text().replace("&", "") for a in menu.actions()]
assert any("WeakSeg" in t for t in titles), titles
layers = viewer.open_sample("napari-weakseg", "phantom")
assert layers and viewer.layers, "the phantom sample opened no layer"
print(f"sample phantom: {[layer.name for layer in viewer.layers]}")
dock, widget = viewer.window.add_plugin_dock_widget(
    "napari-weakseg", "WeakSeg"
)
print(f"dock: {type(widget).__name__}")
viewer.close()
print(f"napari {napari.__version__}: plugin menu, sample and dock OK")
PY
echo "release check passed: $(basename "$WHEEL") $(basename "$SDIST")"
