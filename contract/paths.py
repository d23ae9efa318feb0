"""Where the project's files live: the checkout, its data, build and run folders.

Two kinds, kept apart on purpose. The training and data CLIs take paths relative to the working
directory (``make`` runs them at the root), so their defaults are the relative strings below, the
values ``--help`` and the MLflow run parameters show. The export, serving and benchmark tools are
anchored at the checkout (``PROJECT_ROOT``), so they find the same files whatever the working directory.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# --- relative to the working directory -------------------------------------------------------------
DOWNLOADS_DIR = "data/downloads"
RAW_DIR = "data/raw"
MANIFEST = "data/manifest.csv"
REJECTS = "data/rejects.csv"
CACHE_DIR = "data/cache"
ARTIFACTS_DIR = "artifacts"
EVALUATION_DIR = f"{ARTIFACTS_DIR}/evaluation"
# The gateway's SQLite prediction log (TRACKING_DB overrides it).
PREDICTIONS_DB = "run/predictions.db"

# --- anchored at the checkout ----------------------------------------------------------------------
PROJECT_MANIFEST = PROJECT_ROOT / MANIFEST
PROJECT_CACHE_DIR = PROJECT_ROOT / CACHE_DIR
# The canonical Triton repository export writes (GPU config), and the CPU one derived from it.
MODEL_REPOSITORY = PROJECT_ROOT / "model_repository"
CPU_MODEL_REPOSITORY = PROJECT_ROOT / "build" / "model_repository_cpu"
# Triton's python-backend environment and the folder the backend is prepared in.
TRITON_VENV = PROJECT_ROOT / ".venv-triton"
TRITON_BACKENDS_DIR = PROJECT_ROOT / "build" / "triton_backends"
# The latest export's files at a fixed path: the DVC output of the `export` stage (a version directory's
# name changes with every export, which a DVC `outs` entry cannot follow).
EXPORT_ARTIFACT_DIR = PROJECT_ROOT / ARTIFACTS_DIR / "export"
# Rolled-back versions are moved here (outside every repository Triton scans), so they can be restored.
RETIRED_VERSIONS_DIR = PROJECT_ROOT / ARTIFACTS_DIR / "retired_versions"
# PID files and logs of the processes `make up` starts.
RUN_DIR = PROJECT_ROOT / "run"
