"""docs/reliability/RELIABILITY.md from its results files: ``python -m benchmarks.reliability_report``.

Every figure comes from a results file in ``docs/reliability/*.json`` (the hardening run writes
``hardening.json``; other suites add their own), each
``{"title", "sections": [{"heading", "text", "tables": [{"caption", "command", "columns", "rows"}]}]}``.
Prose written by people lives in ``docs/reliability/TEMPLATE.md``; its ``<!-- results -->`` line is
replaced by the rendered files, in file-name order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contract.paths import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "docs" / "reliability"
TEMPLATE = RESULTS_DIR / "TEMPLATE.md"
OUTPUT = RESULTS_DIR / "RELIABILITY.md"
MARKER = "<!-- results -->"


def _cell(value: Any) -> str:
    text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(table: dict[str, Any]) -> list[str]:
    lines = []
    if table.get("caption"):
        lines += [f"**{table['caption']}**", ""]
    if table.get("command"):
        lines += [f"Command: `{table['command']}`", ""]
    columns = table["columns"]
    lines.append("| " + " | ".join(_cell(c) for c in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in table["rows"]:
        if len(row) != len(columns):
            caption = table.get("caption")
            raise ValueError(f"table {caption!r}: a row has {len(row)} cells, not {len(columns)}")
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return [*lines, ""]


def render_file(path: Path) -> list[str]:
    document = json.loads(path.read_text())
    shown = path.relative_to(PROJECT_ROOT).as_posix() if path.is_relative_to(PROJECT_ROOT) else path.name
    lines = [f"## {document['title']}", "", f"Source: `{shown}`"]
    facts = [f"{k.replace('_', ' ')}: {document[k]}" for k in ("generated_at", "machine") if document.get(k)]
    if facts:
        lines[-1] += " (" + "; ".join(facts) + ")"
    lines.append("")
    for section in document["sections"]:
        lines += [f"### {section['heading']}", ""]
        if section.get("text"):
            lines += [section["text"], ""]
        for table in section.get("tables", []):
            lines += render_table(table)
    return lines


def render(results_dir: Path = RESULTS_DIR, template: Path = TEMPLATE) -> str:
    prose = template.read_text()
    if MARKER not in prose:
        raise ValueError(f"{template} has no '{MARKER}' line to put the results at")
    rendered: list[str] = []
    for path in sorted(results_dir.glob("*.json")):
        rendered += render_file(path)
    return prose.replace(MARKER, "\n".join(rendered).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reliability_report",
        description="Regenerate docs/reliability/RELIABILITY.md from the *.json and TEMPLATE.md beside it.",
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of results JSON files")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="hand-written prose with the marker")
    parser.add_argument("--out", type=Path, default=OUTPUT, help="the Markdown file to write")
    parser.add_argument("--check", action="store_true", help="exit 1 if --out is not what would be written")
    args = parser.parse_args(argv)
    try:
        text = render(args.results, args.template)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python -m benchmarks.reliability_report", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
