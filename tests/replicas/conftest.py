"""The replica topology (serving.topology) for the tests in this folder, built once per module.

nginx → 2 gateway processes → 2 Triton servers, one PostgreSQL, all real, on loopback. The model is
the suite's tiny one (tests/support/triton.py). Figures the tests measure are collected
and, when ``REPLICAS_REPORT`` names a file, written there as JSON (docs/reliability/replicas.json).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.processes import PROJECT_ROOT
from serving.topology import Topology, TopologyOptions
from tests.support.triton import BACKEND_VENV, tiny_classifier, write_test_repositories

# Each table's own command prints it; the whole file comes from REPLICAS_REPORT=docs/reliability/replicas.json
# PYTHONPATH=. .venv/bin/pytest tests/replicas/test_replicas.py -q -s
COMMAND = "PYTHONPATH=. .venv/bin/pytest tests/replicas/test_replicas.py -q -s"


class Figures:
    """Measured figures in the shared docs/reliability/*.json format (rendered into RELIABILITY.md)."""

    def __init__(self) -> None:
        self.sections: list[dict[str, Any]] = []

    def add(self, heading: str, text: str, columns: list[str], rows: list[list[Any]], *, test: str) -> None:
        command = f"{COMMAND} -k {test}"
        table = {"caption": heading, "command": command, "columns": columns, "rows": rows}
        self.sections.append({"heading": heading, "text": text, "tables": [table]})
        print(f"\n{heading}\n  " + "\n  ".join(" | ".join(map(str, row)) for row in [columns, *rows]))

    def document(self) -> dict[str, Any]:
        return {
            "title": "Replicas: nginx → 2 gateways → 2 Tritons, one PostgreSQL (tests/replicas)",
            "sections": self.sections,
        }


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    if not (BACKEND_VENV / "bin" / "python").exists():
        pytest.fail(f"{BACKEND_VENV} missing: run `make setup` (the Triton server and its backend venv)")
    repository = write_test_repositories(tmp_path_factory.mktemp("replicas"), tiny_classifier())
    options = TopologyOptions(
        gateways=2,
        tritons=2,
        repository=repository,
        backend_venv=BACKEND_VENV,
        backends_dir=PROJECT_ROOT / "build" / "triton_backends",
        drain_timeout_s=1.0,
        gateway_env={"LOG_LEVEL": "INFO", "DECODE_THREADS": "1", "CACHE_TTL_S": "0"},
    )
    with Topology(options) as topo:
        yield topo


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    collected = Figures()
    yield collected
    target = os.environ.get("REPLICAS_REPORT")
    if target and collected.sections:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(collected.document(), indent=2, ensure_ascii=False) + "\n")
