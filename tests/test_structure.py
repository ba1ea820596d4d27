"""Tiers, manifest and import cost."""

import importlib
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _manifest():
    import napari_weakseg

    installed = Path(napari_weakseg.__file__).parent / "napari.yaml"
    return installed if installed.exists() else ROOT / "napari.yaml"


def test_manifest_validates_and_every_python_name_imports():
    from npe2 import PluginManifest

    pm = PluginManifest.from_file(_manifest())
    pm.validate_imports()
    names = [c.python_name for c in pm.contributions.commands]
    assert len(names) == 17  # 12 + the 5 Layers-menu commands
    for name in names:
        module, attr = name.split(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_installed_manifest_is_the_repository_one():
    assert yaml.safe_load(_manifest().read_text()) == yaml.safe_load(
        (ROOT / "napari.yaml").read_text()
    )


def test_manifest_sits_in_the_package_for_editable_installs():
    """``pip install -e .`` resolves ``napari_weakseg:napari.yaml`` in the
    source package; the root file is the same file (a link)."""
    src = ROOT / "src" / "napari_weakseg" / "napari.yaml"
    assert src.is_file() and not src.is_symlink()
    assert (ROOT / "napari.yaml").resolve() == src.resolve()


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_importing_the_package_loads_neither_qt_nor_torch():
    out = _run(
        "import sys, napari_weakseg; "
        "print(sorted(m for m in ('torch', 'qtpy', 'napari', 'PyQt6') "
        "if m in sys.modules))"
    )
    assert out == "[]"


def test_headless_tiers_work_with_qt_blocked():
    code = (
        "import sys\n"
        "for m in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari',"
        " 'magicgui', 'superqt'):\n"
        "    sys.modules[m] = None\n"
        "import numpy as np\n"
        "import napari_weakseg.api, napari_weakseg.cli\n"
        "import importlib, pkgutil, napari_weakseg.core as core\n"
        "prefix = 'napari_weakseg.core.'\n"
        "for m in pkgutil.walk_packages(core.__path__, prefix):\n"
        "    importlib.import_module(m.name)\n"
        "from napari_weakseg import _reader, _writer, _sample_data\n"
        "layers = _sample_data.mni152()\n"
        "print(layers[0][0].shape, layers[1][2], len(layers))\n"
    )
    assert _run(code) == "(95, 117, 99) labels 3"
