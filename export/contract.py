"""The served model's interface: tensor names, dtypes and the Triton model name, defined once."""

from __future__ import annotations

from pathlib import Path

from training.registry import PROJECT_ROOT

MODEL_NAME = "cats_dogs"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
ONNX_FILENAME = "model.onnx"
LABELS_FILENAME = "labels.txt"
CONFIG_FILENAME = "config.pbtxt"
BASELINE_FILENAME = "baseline_stats.json"
VERSIONS_FILENAME = "versions.json"
OPSET = 18
# Triton's dims for the input after the batch axis are [S, S, 3]; the batch axis is symbolic in ONNX.
BATCH_DIM_NAME = "batch"

# Gate defaults (overridable on the command line; the floor also from params.yaml export.min_accuracy).
DEFAULT_MIN_ACCURACY = 0.8
MIN_PARITY_IMAGES = 64

DEFAULT_MANIFEST = PROJECT_ROOT / "data" / "manifest.csv"
DEFAULT_CACHE = PROJECT_ROOT / "data" / "cache"
DEFAULT_REPOSITORY = PROJECT_ROOT / "model_repository"
DEFAULT_CPU_REPOSITORY = PROJECT_ROOT / "build" / "model_repository_cpu"
DEFAULT_TRITON_VENV = PROJECT_ROOT / ".venv-triton"
# The latest export's files at a fixed path: the DVC output of the `export` stage (a version directory's
# name changes with every export, which a DVC `outs` entry cannot follow).
DEFAULT_ARTIFACT_DIR = PROJECT_ROOT / "artifacts" / "export"
# Rolled-back versions are moved here (outside every repository Triton scans), so they can be restored.
DEFAULT_RETIRED_DIR = PROJECT_ROOT / "artifacts" / "retired_versions"


def model_dir(repository: Path, name: str = MODEL_NAME) -> Path:
    return Path(repository) / name


# The uncertain-flag threshold of a model: logged on its MLflow run by whoever measured its
# calibration (training.bundled for the shipped model), written into config.pbtxt's parameters by
# export, read by the gateway (UNCERTAIN_THRESHOLD overrides it).
UNCERTAIN_THRESHOLD_METRIC = "calibration_threshold"
UNCERTAIN_THRESHOLD_PARAMETER = "uncertain_threshold"
