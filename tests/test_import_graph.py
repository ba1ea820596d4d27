"""The import graph has no cycle: not in the package (lazy imports
included) and not among the benchmark scripts."""

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a list of nodes, first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.fixture(scope="module")
def package_graph() -> dict[str, set[str]]:
    g = grimp.build_graph("napari_weakseg")
    return {
        m: {
            i
            for i in g.find_modules_directly_imported_by(m)
            if i.startswith("napari_weakseg")
        }
        for m in g.modules
    }


def test_the_package_has_no_import_cycle(package_graph):
    assert _cycle(package_graph) is None


def _script_imports(path: Path, names: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found & names


def test_the_benchmark_scripts_have_no_import_cycle():
    scripts = {p.stem: p for p in (ROOT / "benchmarks").glob("*.py")}
    graph = {n: _script_imports(p, set(scripts)) for n, p in scripts.items()}
    assert _cycle(graph) is None
    # the report renders result files only: it imports no benchmark
    assert graph["report"] == set()
