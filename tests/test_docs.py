"""The user documentation's generated parts and the release metadata."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _report():
    spec = importlib.util.spec_from_file_location(
        "weakseg_report_test", ROOT / "benchmarks" / "report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_imports_no_benchmark_module():
    tree = ast.parse(
        (ROOT / "benchmarks" / "report.py").read_text(encoding="utf-8")
    )
    local = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        assert not {n.split(".")[0] for n in names} & local, names


def test_every_result_file_has_a_docs_page():
    report = _report()
    pages = report.docs_pages()
    for path in report.RESULTS.glob("*.json"):
        assert any(
            f"`benchmarks/results/{path.name}`" in text
            for text in pages.values()
            if isinstance(text, str)
        ), path.name
    for slug, _, parts in report.PAGES:
        text = pages[f"benchmarks/{slug}.md"]
        for name, *_ in parts:
            assert f"`benchmarks/results/{name}`" in text
        assert "**machine:**" in text and "**command:**" in text
        for png in re.findall(r"\]\(results/([^)]+\.png)\)", text):
            assert f"benchmarks/results/{png}" in pages, png


def test_readme_is_short_and_states_facts():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    words = r"\b(session|issue|previously|we fixed)\b|#\d+"
    assert not re.search(words, text, re.IGNORECASE)
    assert "make demo" in text and "make test" in text


def test_version_lives_in_one_place():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" in meta["project"]["dynamic"]
    assert meta["tool"]["hatch"]["version"]["path"] == (
        "src/napari_weakseg/__init__.py"
    )
    assert "Framework :: napari" in meta["project"]["classifiers"]
    assert {"Source", "Documentation", "Bug Tracker"} <= set(
        meta["project"]["urls"]
    )
    assert (ROOT / "LICENSE").exists() and (ROOT / "CHANGELOG.md").exists()
