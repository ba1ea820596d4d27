"""Pages the docs build generates (mkdocs-gen-files runs this).

- ``cli.md``: the ``weakseg`` reference, one section per subcommand with
  its ``--help`` text, rendered from the argparse parsers
  (``napari_weakseg.cli.build_parser``), so it cannot drift from the code;
- ``benchmarks/*.md`` and their plots: rendered by
  ``benchmarks/report.py`` from ``benchmarks/results/*.json`` only;
- ``changelog.md``: ``CHANGELOG.md``;
- ``index.md``: ``docs/index.md`` with its headline results table.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the checkout's code, not an install
os.environ["COLUMNS"] = "88"  # argparse wraps help at this width


def cli_page() -> str:
    from napari_weakseg import cli

    parser = cli.build_parser()
    sub = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    helps = {a.dest: a.help for a in sub._choices_actions}
    out = [
        "# Command line reference\n",
        "Generated from the `weakseg` parsers when the docs are built: "
        "each section is `weakseg COMMAND --help`. Usage with examples: "
        "[Command line](command-line.md).\n",
        "```text",
        parser.format_help().rstrip(),
        "```\n",
    ]
    for name, p in sub.choices.items():
        summary = helps.get(name) or ""
        out += [f"## `weakseg {name}`\n"]
        if summary:
            out.append(f"{summary[0].upper()}{summary[1:]}.\n")
        out += ["```text", p.format_help().rstrip(), "```\n"]
    return "\n".join(out)


def load_report():
    spec = importlib.util.spec_from_file_location(
        "weakseg_bench_report", ROOT / "benchmarks" / "report.py"
    )
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    return report


report = load_report()
with mkdocs_gen_files.open("cli.md", "w") as f:
    f.write(cli_page())
# The home page's headline table, rendered from the results files.
home = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
with mkdocs_gen_files.open("index.md", "w") as f:
    f.write(home.replace("<!-- headline -->", report.headline()))
for rel, content in report.docs_pages().items():
    mode = "wb" if isinstance(content, bytes) else "w"
    with mkdocs_gen_files.open(rel, mode) as f:
        f.write(content)
text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
with mkdocs_gen_files.open("changelog.md", "w") as f:
    f.write(text)
