"""``make fuzz``: the hardening fuzz tests at a large number of examples (≥ 10k cases in all).

Runs tests/hardening/test_fuzz.py under pytest (which starts the real Triton and gateway) with
``HARDENING_FUZZ_EXAMPLES`` set, so CI and ``make fuzz`` run the very same tests, only longer.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Hypothesis tests in test_fuzz.py that take the example count once (decoder ×3, /predict ×1); the
# OpenAPI test takes it once per operation with a body or parameters (POST /predict, /predict/batch,
# /feedback, GET /stats); the parameterless GETs have one distinct request each.
SINGLE_TESTS = 4
PARAMETERISED_OPERATIONS = 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tests/hardening/fuzz_main.py",
        description="Fuzz imaging.decode_image, POST /predict and every OpenAPI operation of the gateway.",
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=2000,
        help="examples per fuzz test and per OpenAPI operation (default 2000: about 16k cases in all)",
    )
    parser.add_argument(
        "-k", dest="keyword", default=None, help="only the fuzz tests matching this pytest -k"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.examples < 1:
        print("error: --examples must be at least 1", file=sys.stderr)
        return 2
    import pytest

    os.environ["HARDENING_FUZZ_EXAMPLES"] = str(args.examples)
    planned = args.examples * (SINGLE_TESTS + PARAMETERISED_OPERATIONS)
    print(f"fuzz: {args.examples} examples per test/operation, about {planned} cases", flush=True)
    # The in-process gateway logs every refused request; at this volume only warnings are worth reading.
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    pytest_args = [
        str(HERE / "test_fuzz.py"),
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
    ]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    return int(pytest.main(pytest_args))


if __name__ == "__main__":
    sys.exit(main())
