"""The served model's names: Triton model, tensors, repository files and config parameters.

``export`` writes a model under these names; the gateway, bulk scoring, the serving launchers and the
benchmarks read it by them.
"""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "cats_dogs"
INPUT_NAME = "image"
INPUT_DATATYPE = "UINT8"
OUTPUT_NAME = "probabilities"
# The ONNX graph's symbolic batch axis; Triton's dims after it are [S, S, 3] (NHWC RGB).
BATCH_DIM_NAME = "batch"

# Files of a version directory and of the model directory in a Triton repository.
ONNX_FILENAME = "model.onnx"
LABELS_FILENAME = "labels.txt"
CONFIG_FILENAME = "config.pbtxt"
BASELINE_FILENAME = "baseline_stats.json"
VERSIONS_FILENAME = "versions.json"

# config.pbtxt ``parameters`` clients read (export.metadata.ModelFacts writes one per field, under the
# field's name; tests/contract checks the two agree).
CLASS_NAMES_PARAMETER = "class_names"  # JSON list, index order
IMAGE_SIZE_PARAMETER = "image_size"
ARCHITECTURE_PARAMETER = "architecture"
MLFLOW_MODEL_NAME_PARAMETER = "mlflow_model_name"
MLFLOW_VERSION_PARAMETER = "model_version_mlflow"  # the registered model version ("" when unknown)
MLFLOW_RUN_ID_PARAMETER = "mlflow_run_id"
EXPORTED_AT_PARAMETER = "exported_at"
# The drift reference for the gateway, which cannot read files beside the model (export.baseline_stats).
DRIFT_BASELINE_PARAMETER = "drift_baseline"

# The uncertain-flag threshold of a model: logged on its MLflow run by whoever measured its
# calibration (training.bundled for the shipped model), written into config.pbtxt's parameters by
# export, read by the gateway (UNCERTAIN_THRESHOLD overrides it).
UNCERTAIN_THRESHOLD_METRIC = "calibration_threshold"
UNCERTAIN_THRESHOLD_PARAMETER = "uncertain_threshold"


def model_dir(repository: Path, name: str = MODEL_NAME) -> Path:
    return Path(repository) / name
