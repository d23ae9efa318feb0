"""The conftest hook: a test that needs a Triton through its fixtures is marked ``triton`` and ``slow``
even without a mark of its own, so ``-m "not triton"`` starts no server."""

from __future__ import annotations

import subprocess
import sys

from serving.processes import PROJECT_ROOT

# None of these carries a mark of its own: the first needs the session Triton through
# tracked_gateway, the second the replicas' Tritons (topology); the third needs none.
THROUGH_A_FIXTURE = "tests/gateway_tracking/test_feedback_and_stats.py::test_feedback_codes_and_stats"
THROUGH_TOPOLOGY = (
    "tests/replicas/test_replicas.py::test_feedback_through_another_replica_and_identical_stats"
)
NO_TRITON = "tests/scoring/test_inputs.py::test_directory_listing_is_recursive_and_skips_hidden"


def _collected(marks: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marks,
         THROUGH_A_FIXTURE, THROUGH_TOPOLOGY, NO_TRITON],
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert result.returncode in (0, 5), result.stdout + result.stderr  # 5: every test deselected
    return {line for line in result.stdout.splitlines() if "::" in line}


def test_not_triton_deselects_tests_that_reach_triton_through_fixtures() -> None:
    assert _collected("not triton") == {NO_TRITON}


def test_triton_users_are_also_slow() -> None:
    assert _collected("triton and slow") == {THROUGH_A_FIXTURE, THROUGH_TOPOLOGY}
