"""docs/benchmarks/ANALYSIS.md reads the committed report beside it, BENCHMARKS.md: it names the report's
run, and every figure in its prose is one the report contains (none remembered from an older run or a log)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURE = re.compile(r"\d+(?:\.\d+)?")
RUN = re.compile(r"on (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC, commit `([0-9a-f]+)`")


def figures(markdown: str) -> set[str]:
    """Every number outside fenced code blocks (commands there are instructions, not results)."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    return set(FIGURE.findall(prose))


def test_the_analysis_reads_the_committed_report() -> None:
    report = (ROOT / "docs" / "benchmarks" / "BENCHMARKS.md").read_text()
    analysis = (ROOT / "docs" / "benchmarks" / "ANALYSIS.md").read_text()
    run = RUN.search(report)
    assert run, "BENCHMARKS.md does not say when and at which commit it was generated"
    when, commit = run.groups()
    assert when.split()[0] in analysis and commit in analysis, (
        f"ANALYSIS.md does not name the report's run ({when} UTC, {commit}): rewrite it against the report"
    )
    missing = sorted(figures(analysis) - figures(report), key=float)
    assert not missing, f"figures in ANALYSIS.md that BENCHMARKS.md does not contain: {missing}"
