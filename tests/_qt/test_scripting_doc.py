"""docs/scripting.md is what tools/scripting_doc.py makes of the docks."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    path = ROOT / "tools" / "scripting_doc.py"
    spec = importlib.util.spec_from_file_location("scripting_doc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scripting_page_matches_the_docks(make_napari_viewer):
    gen = _generator()
    text = gen.render(make_napari_viewer())
    assert (ROOT / "docs" / "scripting.md").read_text() == text, (
        "docs/scripting.md is out of date: run python tools/scripting_doc.py"
    )


def test_every_field_has_its_api_and_cli_equivalent(make_napari_viewer):
    gen = _generator()
    viewer = make_napari_viewer()
    for _, module, cls in gen._docks():
        dock = getattr(__import__(module, fromlist=[cls]), cls)(viewer)
        if not hasattr(dock, "fields"):
            continue
        known = gen.EQUIVALENTS.get(cls, {})
        missing = [n for n in dock.field_names() if n not in known]
        assert missing == [], (cls, missing)
