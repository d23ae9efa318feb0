"""Make a running local Triton pick up an export or a rollback.

The local server (``make triton`` / ``make up``) runs in explicit model-control mode on the default
derived repository, so a new or removed version directory goes live only when the model is loaded
again. Only that server is touched, and only when the repository just written is the one it serves:
exports into other folders (tests, experiments) never reload anybody's server.
"""

from __future__ import annotations

from pathlib import Path

from contract.paths import CPU_MODEL_REPOSITORY


def reload_if_serving(cpu_repository: Path | None) -> str:
    from serving.processes import read_pid
    from serving.triton import TritonOptions, reload_model

    if cpu_repository is None or cpu_repository.resolve() != CPU_MODEL_REPOSITORY.resolve():
        return "local Triton not reloaded (a non-default repository was written)"
    options = TritonOptions()
    if read_pid(options.pid_file) is None:
        return "no local Triton running; it serves this state when started (make triton / make up)"
    reload_model(options)
    return f"local Triton at {options.http_url} reloaded {options.model!r}"
