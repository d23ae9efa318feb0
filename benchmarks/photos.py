"""The photos load tests send: a folder the user names (``PERF_IMAGES`` / ``--images``), or, without
one, labelled synthetic photos the repository generates itself (training/synthetic.py), so
``make perf`` and ``make bench`` run on any clone without a dataset outside it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from contract.paths import PROJECT_ROOT

SYNTHETIC_DIR = PROJECT_ROOT / "build" / "perf" / "photos"
SYNTHETIC_PER_CLASS = 64
# Canvas sides of small real photos (pets-dev's are ~200-500 px), so decoding costs what it would.
SYNTHETIC_SIZES = (200, 500)


def resolve_photos(folder: Path | None, say: Callable[[str], object] = print) -> Path:
    """``folder`` if given (it must exist), else the synthetic set, generated once and reused."""
    if folder is not None:
        if not folder.is_dir():
            raise FileNotFoundError(
                f"photo folder not found: {folder} (set PERF_IMAGES=DIR or --images DIR; "
                "leave both unset for synthetic photos)"
            )
        return folder
    from training.synthetic import generate_synthetic  # draws with PIL; only needed here

    folder = generate_synthetic(SYNTHETIC_DIR, SYNTHETIC_PER_CLASS, size_range=SYNTHETIC_SIZES)
    shown = folder.relative_to(PROJECT_ROOT) if folder.is_relative_to(PROJECT_ROOT) else folder
    say(f"photos: {2 * SYNTHETIC_PER_CLASS} synthetic ones in {shown} (real photos: PERF_IMAGES=DIR)")
    return folder
