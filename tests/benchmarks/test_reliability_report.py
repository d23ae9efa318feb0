"""docs/reliability/RELIABILITY.md is rendered from the *.json beside it; the committed file is that
rendering."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.reliability_report import PROJECT_ROOT, main, render


def test_tables_come_from_every_results_file(tmp_path: Path) -> None:
    (tmp_path / "TEMPLATE.md").write_text("# Reliability\n\nprose\n\n<!-- results -->\n")
    for name, figure in (("a.json", 12345), ("b.json", "x|y")):
        table = {"caption": "c", "command": "make it", "columns": ["what", "value"], "rows": [[name, figure]]}
        document = {"title": f"T {name}", "sections": [{"heading": "H", "text": "t", "tables": [table]}]}
        (tmp_path / name).write_text(json.dumps(document))
    text = render(tmp_path, tmp_path / "TEMPLATE.md")
    assert text.startswith("# Reliability\n\nprose\n")
    assert "## T a.json" in text and "## T b.json" in text
    assert "| a.json | 12,345 |" in text and "| b.json | x\\|y |" in text
    assert "Command: `make it`" in text


def test_the_committed_reliability_md_is_the_rendering() -> None:
    assert main(["--check", "--out", str(PROJECT_ROOT / "docs" / "reliability" / "RELIABILITY.md")]) == 0
