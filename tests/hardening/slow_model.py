"""A cats_dogs model that can be made slow at run time, for the deadline and cancellation tests.

It is the real CPU-repository model.py (export/triton_python_model.py, same name, inputs and
outputs) with ``execute`` wrapped: before answering it sleeps for the seconds written in
``<model dir>/sleep_s`` (absent = no sleep, so warm-up is fast), polling Triton's
``request.is_cancelled()``; when Triton cancels the requests it writes one line per batch to
``<model dir>/cancelled.log`` and answers at once. That file is how a test sees, from outside the
server, that a cancellation reached the model.
"""

from __future__ import annotations

from pathlib import Path

SLEEP_FILE = "sleep_s"
CANCELLED_LOG = "cancelled.log"

_WRAPPER = f"""

# --- test-only wrapper (tests/hardening/slow_model.py) ----------------------------------------
import time as _time

_ORIGINAL_INITIALIZE = TritonPythonModel.initialize
_ORIGINAL_EXECUTE = TritonPythonModel.execute


def _initialize(self, args):
    _ORIGINAL_INITIALIZE(self, args)
    self._control = Path(args["model_repository"])


def _execute(self, requests):
    try:
        delay = float((self._control / "{SLEEP_FILE}").read_text())
    except (OSError, ValueError):
        delay = 0.0
    deadline = _time.monotonic() + delay
    while _time.monotonic() < deadline:
        if all(request.is_cancelled() for request in requests):
            with (self._control / "{CANCELLED_LOG}").open("a") as log:
                log.write(f"{{len(requests)}}\\n")
            return [
                pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError("cancelled"))
                for _ in requests
            ]
        _time.sleep(0.01)
    return _ORIGINAL_EXECUTE(self, requests)


TritonPythonModel.initialize = _initialize
TritonPythonModel.execute = _execute
"""


def make_slow(model_dir: Path) -> None:
    """Rewrite every version's model.py in a derived CPU repository's model folder."""
    scripts = sorted(model_dir.glob("*/model.py"))
    if not scripts:
        raise FileNotFoundError(f"no <version>/model.py under {model_dir}")
    for script in scripts:
        source = script.read_text()
        script.unlink()  # never write through a link into the template
        script.write_text(source + _WRAPPER)


def set_delay(model_dir: Path, seconds: float) -> None:
    (model_dir / SLEEP_FILE).write_text(str(seconds))


def cancellations(model_dir: Path) -> int:
    log = model_dir / CANCELLED_LOG
    return len(log.read_text().splitlines()) if log.exists() else 0
