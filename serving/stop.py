"""``make stop``: stop the gateway, then Triton, by their PID files (SIGINT, then SIGKILL after a timeout)."""

from __future__ import annotations

import sys
from pathlib import Path

from contract.paths import RUN_DIR
from imaging.cli import ArgumentParser
from serving.processes import stop_by_pid_file


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m serving.stop",
        description="Stop what `make up` started.",
        epilog="""examples:
  python -m serving.stop
  python -m serving.stop --timeout 30""",
    )
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR, help="folder holding the PID files")
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds to wait after SIGINT before SIGKILL"
    )
    args = parser.parse_args(argv)
    # The gateway first, so it never reports a dead Triton to a client during shutdown.
    for name in ("gateway", "triton"):
        print(stop_by_pid_file(args.run_dir / f"{name}.pid", timeout_s=args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
