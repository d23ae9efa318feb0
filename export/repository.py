"""Write one model version into a Triton repository and derive the CPU repository from it.

The single writer of repository versions: ``python -m export`` calls it after its gates, and the test
fixtures (tests/support) and the benchmark stack (benchmarks/stack.py) call it too, so what tests and
benchmarks serve is laid out exactly as an export lays it out — ONNX stamped with its facts,
``config.pbtxt`` built from the same facts and options, ``labels.txt``, ``versions.json`` and the
derived CPU repository.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from export import cpu_repository as cpu_repo
from export.contract import CONFIG_FILENAME, LABELS_FILENAME, model_dir
from export.metadata import ModelFacts, labels_text, write_onnx_metadata
from export.onnx_export import export_onnx, verify_contract
from export.triton_config import ServingOptions, build_config, set_parameters, write_config
from export.versions import VersionLog, VersionRecord, loadable_count, version_dirs, version_image_size


@dataclass(frozen=True)
class WrittenVersion:
    version: int
    model_dir: Path  # <repository>/cats_dogs
    version_dir: Path  # <repository>/cats_dogs/<version>
    cpu_model_dir: Path | None  # <cpu repository>/cats_dogs, None when none was derived


def write_model_file(classifier: nn.Module, facts: ModelFacts, path: Path) -> Path:
    """A version's ``model.onnx``: exported, stamped with ``facts`` and checked against the contract."""
    export_onnx(classifier, facts.image_size, path)
    write_onnx_metadata(path, facts)
    verify_contract(path, facts.image_size)
    return path


def versions_to_load(
    mdir: Path, facts: ModelFacts, options: ServingOptions, say: Callable[[str], None]
) -> int:
    """``num_versions`` for the new config: the new version plus older ones of the same input size.

    An input-size change would otherwise keep an older version loaded whose shape the config no
    longer describes: its warm-up fails and Triton does not start.
    """
    older = list(reversed(version_dirs(mdir)))
    sizes = [facts.image_size] + [version_image_size(mdir, v) for v in older]
    count = loadable_count(sizes, options.num_versions)
    if count < min(options.num_versions, len(sizes)):
        left_out, old_size = older[count - 1], sizes[count] or "?"
        say(
            f"input size changes {old_size} → {facts.image_size}px: Triton loads "
            f"{'only the new version' if count == 1 else f'the newest {count} versions'} "
            f"(num_versions {options.num_versions} would also load version {left_out}, which takes "
            f"{old_size}px and would fail the new warm-up); `make rollback` serves it again at its size"
        )
    return count


def write_repository_version(
    staged: Path,
    facts: ModelFacts,
    repository: Path,
    record: VersionRecord,
    *,
    cpu_repository: Path | None = None,
    serving: ServingOptions | None = None,
    cpu: cpu_repo.CpuOptions | None = None,
    parameters: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> WrittenVersion:
    """Move ``staged`` (a folder holding the version's files: ``model.onnx`` [+ variants, baseline])
    into ``<repository>/cats_dogs/<facts.triton_model_version>``, with the config built from
    ``facts`` + ``serving`` + ``parameters`` and the labels beside it; record it in ``versions.json``
    and (re)derive ``cpu_repository`` when given.

    ``staged`` must lie on the repository's filesystem: it is renamed into place, so a running Triton
    never sees a half-written version. The config is written (and strictly parsed back) before
    anything moves, so a config Triton would refuse leaves the repository untouched.
    """
    opts = serving or ServingOptions()
    version = facts.triton_model_version
    if record.triton_version != version:
        raise ValueError(f"record of version {record.triton_version} for version {version}")
    mdir = model_dir(repository)
    config = build_config(facts, opts)
    config.version_policy.latest.num_versions = versions_to_load(mdir, facts, opts, say)
    set_parameters(config, dict(parameters or {}))
    repository.mkdir(parents=True, exist_ok=True)
    side = Path(tempfile.mkdtemp(prefix=".repository-staging-", dir=repository.parent))
    try:
        write_config(config, side / CONFIG_FILENAME)
        (side / LABELS_FILENAME).write_text(labels_text(facts.class_names))
        # Commit: renames within one filesystem; the config's parameters describe the newest version,
        # so they follow its directory, and the mapping is written last.
        mdir.mkdir(parents=True, exist_ok=True)
        vdir = mdir / str(version)
        staged.rename(vdir)
        (side / LABELS_FILENAME).replace(mdir / LABELS_FILENAME)
        (side / CONFIG_FILENAME).replace(mdir / CONFIG_FILENAME)
    finally:
        shutil.rmtree(side, ignore_errors=True)
    log = VersionLog.load(mdir)
    log.put(record)
    log.num_versions = opts.num_versions
    log.save()
    cpu_dir = cpu_repo.build(mdir, cpu_repository, cpu) if cpu_repository is not None else None
    return WrittenVersion(version, mdir, vdir, cpu_dir)
