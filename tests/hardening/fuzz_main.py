"""``make fuzz``: the hardening fuzz tests at a large number of examples (≥ 10k cases in all).

Runs tests/hardening/test_fuzz.py under pytest (which starts the real Triton and gateway) with
``HARDENING_FUZZ_EXAMPLES`` set, so CI and ``make fuzz`` run the very same tests, only longer.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Hypothesis tests in test_fuzz.py that take the example count once (decoder ×3, /predict ×1);
# the OpenAPI test takes it once per operation of the schema.
SINGLE_TESTS = 4
MIN_OPERATIONS = 9


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tests/hardening/fuzz_main.py",
        description="Fuzz imaging.decode_image, POST /predict and every OpenAPI operation of the gateway.",
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=1000,
        help="examples per fuzz test and per OpenAPI operation (default 1000: 13k+ cases in all)",
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
    planned = args.examples * (SINGLE_TESTS + MIN_OPERATIONS)
    print(f"fuzz: {args.examples} examples per test/operation, at least {planned} cases", flush=True)
    pytest_args = [str(HERE / "test_fuzz.py"), "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics"]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    return int(pytest.main(pytest_args))


if __name__ == "__main__":
    sys.exit(main())
