"""The hardening run's figures → docs/reliability/hardening.json (RELIABILITY.md is rendered from it by
``python -m benchmarks.reliability_report``).

Tests record rows with the ``figures`` fixture; the file is written at the end of the session only when
``HARDENING_RESULTS`` names it (``make reliability``), so an ordinary ``make test`` never rewrites it.
A section/table the run did not reach keeps its rows from the previous file.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

TITLE = "Hardening run (tests/hardening)"


class Figures:
    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], dict[str, Any]] = {}
        self.texts: dict[str, str] = {}

    def row(
        self, heading: str, caption: str, columns: list[str], row: list[Any], *, command: str = ""
    ) -> None:
        table = self.tables.setdefault(
            (heading, caption), {"caption": caption, "command": command, "columns": columns, "rows": []}
        )
        table["rows"].append(row)

    def text(self, heading: str, text: str) -> None:
        self.texts[heading] = text

    def write(self, path: Path) -> None:
        previous = json.loads(path.read_text()) if path.exists() else {"sections": []}
        sections: dict[str, dict[str, Any]] = {s["heading"]: s for s in previous.get("sections", [])}
        for (heading, caption), table in self.tables.items():
            section = sections.setdefault(heading, {"heading": heading, "text": "", "tables": []})
            kept = [t for t in section["tables"] if t["caption"] != caption]
            section["tables"] = [*kept, table]
        for heading, text in self.texts.items():
            sections.setdefault(heading, {"heading": heading, "text": "", "tables": []})["text"] = text
        document = {
            "title": TITLE,
            "generated_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at the end of the run",
            "sections": list(sections.values()),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")


FIGURES = Figures()


def results_path() -> Path | None:
    value = os.environ.get("HARDENING_RESULTS", "")
    return Path(value) if value else None
